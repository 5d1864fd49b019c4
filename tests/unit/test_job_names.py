"""Background jobs are named once (engine/job_names.py), and every name runs a job."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import jobs
from adapters.queue import resolve
from adapters.schedule import SCHEDULE
from engine.job_names import ALL_JOBS


def test_every_job_name_runs_a_function_of_the_jobs_package():
    # given every name the engine, the scheduler and the CLI enqueue
    for name in ALL_JOBS:
        # when the queue looks it up, then it finds the function of that name
        assert resolve(name).__name__ == name.rpartition(".")[2], name


def test_every_job_function_has_a_name():
    # given the public functions defined in the jobs package's modules
    defined = {f"{module.__name__}.{name}"
               for info in pkgutil.iter_modules(jobs.__path__)
               for module in [importlib.import_module(f"jobs.{info.name}")]
               for name, function in inspect.getmembers(module, inspect.isfunction)
               if function.__module__ == module.__name__ and not name.startswith("_")}
    # then each is named once, and nothing else is
    assert defined == set(ALL_JOBS)
    assert len(ALL_JOBS) == len(set(ALL_JOBS))


def test_the_schedule_starts_only_named_jobs():
    # given the periodic jobs
    # then each is one of the named jobs, each scheduled once
    assert {periodic.job for periodic in SCHEDULE} <= set(ALL_JOBS)
    assert len({periodic.job for periodic in SCHEDULE}) == len(SCHEDULE)
