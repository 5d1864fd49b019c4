"""A service process (gunicorn's `wsgi:app`, `oms worker`, `oms scheduler`) keeps what it
loaded out of the cycle collector's sight and collects young objects less often; a process
that only builds the app (as the tests do) keeps Python's defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from adapters.runtime import YOUNG_COLLECTION_EVERY

REPORT = "import gc, json; print(json.dumps([gc.get_threshold()[0], gc.get_freeze_count()]))"


def _collector_after(database_url: str, code: str) -> tuple[int, int]:
    environment = {**os.environ, "OMS_DATABASE_URL": database_url}
    environment.pop("OMS_REDIS_URL", None)
    done = subprocess.run([sys.executable, "-c", f"{code}\n{REPORT}"], env=environment,
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    threshold, frozen = json.loads(done.stdout.strip().splitlines()[-1])
    return threshold, frozen


def test_gunicorn_s_app_freezes_what_it_loaded_and_collects_young_objects_less_often(
        database_url):
    threshold, frozen = _collector_after(database_url, "import wsgi")
    assert threshold == YOUNG_COLLECTION_EVERY
    assert frozen > 10_000  # the modules, the app and its services


def test_building_the_app_alone_leaves_the_collector_as_python_sets_it(database_url):
    threshold, frozen = _collector_after(database_url,
                                         "from api import create_app; create_app()")
    assert (threshold, frozen) == (700, 0)
