"""Benchmark order capture: POST /orders on gunicorn + PostgreSQL, against pgbench in the same run.

    .venv/bin/python -m bench.capture [--orders 4000] [--clients 16] [--workers 4]

It creates a scratch database, loads the Olist catalogue and customers, starts gunicorn,
drives POST /orders with Olist-shaped orders (1-3 lines, generated from the catalogue)
from concurrent clients, then runs pgbench (TPC-B-like, same client count, same server)
and prints orders/s, latency percentiles, the ratio orders/s / pgbench tps, and the SQL
statements and server CPU each order cost. Each order is sent once with an Idempotency-Key
(as a channel should) and once without. It never passes or fails on time: it prints what
it measured.

Every benchmark measures the service the same way (`service_usage`): the processes it
starts (gunicorn, `oms worker`) count their SQL statements into a scratch directory
(OMS_STATEMENT_COUNTS), and their CPU time and resident memory are read from /proc.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis
from rq import Queue
from sqlalchemy import create_engine, text

from adapters.bootstrap import build_services
from adapters.migrations import upgrade
from adapters.olist import OlistPack, OrderGenerator
from adapters.settings import PROJECT_ROOT, Settings
from api.demo import upsert_all
from api.schemas import CustomerSchema, ProductSchema
from engine import access
from engine.catalog.reference import CUSTOMERS, PRODUCTS

ADMIN_URL = os.environ.get("OMS_BENCH_POSTGRES_URL",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("OMS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextmanager
def jobs_on_redis() -> Iterator[str]:
    """Send the server's jobs to a scratch RQ queue (as in production, not run inline in
    the request); yield the queue's name and empty it afterwards."""
    queue_name = f"oms-bench-{uuid.uuid4().hex[:6]}"
    saved = {name: os.environ.get(name) for name in ("OMS_REDIS_URL", "OMS_QUEUE_NAME")}
    os.environ.update({"OMS_REDIS_URL": REDIS_URL, "OMS_QUEUE_NAME": queue_name})
    try:
        yield queue_name
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        redis = Redis.from_url(REDIS_URL)
        Queue(queue_name, connection=redis).empty()
        redis.close()


@dataclass(frozen=True)
class Usage:
    """What the service's processes have spent: CPU time and SQL statements."""

    cpu_seconds: float = 0.0
    statements: int = 0

    def __sub__(self, earlier: Usage) -> Usage:
        return Usage(self.cpu_seconds - earlier.cpu_seconds,
                     self.statements - earlier.statements)


@dataclass
class Run:
    label: str
    orders: int
    seconds: float
    latencies: list[float]
    statuses: dict[int, int]
    usage: Usage = field(default_factory=Usage)  # what the service spent meanwhile

    @property
    def rate(self) -> float:
        return self.orders / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

    def figures(self, tps: float, unit: str = "order") -> str:
        """orders/s, p50/p99, the ratio to pgbench, statements and CPU per order."""
        return (f"{self.rate:8.1f} {unit}s/s   p50 {self.percentile(0.5):7.1f} ms   "
                f"p99 {self.percentile(0.99):7.1f} ms   ratio to pgbench "
                f"{self.rate / tps:.3f}   {per(self.usage, self.orders, unit)}")


def per(usage: Usage, count: int, unit: str = "order") -> str:
    """Statements and server CPU per order (or per `unit`), as every benchmark prints them."""
    count = max(count, 1)
    return (f"{usage.statements / count:6.2f} statements/{unit}   "
            f"server CPU {usage.cpu_seconds * 1000 / count:6.2f} ms/{unit}")


def scratch_database(name: str) -> str:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    admin.dispose()
    return url


def drop_database(name: str) -> None:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def prepare(url: str, pack: OlistPack) -> str:
    """Migrate, load the catalogue and customers, and return an integration key."""
    services = build_services(Settings(database_url=url))
    upgrade(services.engine)
    upsert_all(services, PRODUCTS, ProductSchema(), pack.products)
    upsert_all(services, CUSTOMERS, CustomerSchema(), pack.customers)
    with services.uow() as uow:
        _, plaintext = access.create_api_key(uow, "bench-olist", "channel", "olist")
        uow.commit()
    services.close()
    return plaintext


def start_gunicorn(url: str, port: int, workers: int, threads: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, **SERVICE_ENV, "OMS_DATABASE_URL": url,
           "OMS_DATABASE_POOL_SIZE": str(threads + 1)}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "--workers", str(workers),
         "--threads", str(threads), "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
         "wsgi:app"],
        cwd=PROJECT_ROOT, env=env,
    )
    deadline = time.monotonic() + 120  # four workers starting on two busy CPUs
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("gunicorn did not start")


def start_workers(count: int, url: str) -> list[subprocess.Popen[bytes]]:
    """Start `count` `oms worker`s and one `oms scheduler` (the periodic jobs), as in
    production, on the run's database and queue (set by jobs_on_redis)."""
    oms = str(Path(sys.executable).parent / "oms")
    env = {**os.environ, **SERVICE_ENV, "OMS_DATABASE_URL": url}
    commands = [[oms, "worker", "--dispatch-every", "1"]] * count + [[oms, "scheduler"]]
    return [subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for command in commands]


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(timeout=30)


def drive(port: int, key: str, bodies: list[bytes], clients: int, label: str,
          idempotent: bool, path: str = "/orders", timeout: float = 60) -> Run:
    """Send every body once, from `clients` threads on keep-alive connections (an empty
    body is a GET)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    position = iter(range(len(bodies)))

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        mine: list[float] = []
        seen: dict[int, int] = {}
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                break
            if idempotent:
                headers["Idempotency-Key"] = f"{label}-{index}"
            started = time.perf_counter()
            connection.request("POST" if bodies[index] else "GET", path,
                               body=bodies[index] or None, headers=headers)
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            seen[response.status] = seen.get(response.status, 0) + 1
        connection.close()
        with lock:
            latencies.extend(mine)
            for status, count in seen.items():
                statuses[status] = statuses.get(status, 0) + count

    before = service_usage()
    seconds = in_parallel(clients, client)
    return Run(label, len(bodies), seconds, latencies, statuses, service_usage() - before)


# The service processes this run starts (gunicorn's, `oms worker`, `oms scheduler`) carry
# this in their environment: they count their SQL statements into the directory, and it
# tells them apart from any other service running on the machine.
COUNTS = Path(tempfile.mkdtemp(prefix="oms-bench-statements-"))
atexit.register(shutil.rmtree, COUNTS, ignore_errors=True)
SERVICE_ENV = {"OMS_STATEMENT_COUNTS": str(COUNTS)}
SERVICE_COMMANDS = (b"gunicorn", b"oms\x00worker", b"oms\x00scheduler")


def service_processes() -> dict[int, str]:
    """This run's service processes still alive: pid -> "gunicorn", "oms worker" or
    "oms scheduler"."""
    marker = f"OMS_STATEMENT_COUNTS={COUNTS}\x00".encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as command:
                line = command.read()
            names = [name for name in SERVICE_COMMANDS if name in line]
            if not names:
                continue
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if marker not in environ.read():
                    continue
        except OSError:
            continue  # ended meanwhile, or not ours to read
        found[int(entry)] = names[0].replace(b"\x00", b" ").decode()
    return found


def service_usage() -> Usage:
    """What this run's service processes have spent so far: CPU time (user + system, from
    /proc) and the SQL statements they counted. It waits out the counts' once-a-second
    write first, so call it before and after a run, not inside one."""
    time.sleep(1.2)
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = 0
    for pid in service_processes():
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a process that ended meanwhile
        cpu += int(fields[11]) + int(fields[12])  # utime, stime
    statements = sum(int(path.read_text() or 0) for path in COUNTS.iterdir()
                     if path.name.isdigit())
    return Usage(cpu / ticks, statements)


def resident_mb(pid: int) -> float:
    """A process's resident memory (VmRSS), in MB; 0 once it has ended."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def in_parallel(clients: int, client: Callable[[], None]) -> float:
    """Run `client` in that many threads at once; return the seconds until all finish."""
    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def pgbench(clients: int, seconds: int, scale: int) -> float:
    """Run TPC-B-like pgbench on its own scratch database; return its tps."""
    name = f"oms_bench_pgbench_{uuid.uuid4().hex[:6]}"
    scratch_database(name)
    try:
        base = ["-h", "127.0.0.1", "-U", "postgres"]
        subprocess.run(["pgbench", *base, "-i", "-q", "-s", str(scale), name], check=True,
                       capture_output=True)
        result = subprocess.run(["pgbench", *base, "-c", str(clients), "-j", "2", "-T",
                                 str(seconds), "-n", name], check=True, capture_output=True,
                                text=True)
    finally:
        drop_database(name)
    match = re.search(r"tps = ([\d.]+)", result.stdout)
    if match is None:
        raise SystemExit(f"could not read pgbench's output:\n{result.stdout}")
    return float(match.group(1))


def stop(server: subprocess.Popen[bytes], args: argparse.Namespace, name: str) -> None:
    """Stop gunicorn and drop the scratch database (unless asked to keep it)."""
    server.terminate()
    server.wait(timeout=30)
    if not args.keep:
        drop_database(name)


def reference(args: argparse.Namespace, workload: str) -> float:
    """Run pgbench with the run's client count, print the set-up, and return its tps."""
    tps = pgbench(args.clients, args.pgbench_seconds, scale=max(args.clients, 10))
    print()
    print(f"gunicorn: {args.workers} workers x {args.threads} threads; {args.clients} "
          f"concurrent clients; {os.cpu_count()} CPUs; {workload}")
    print(f"pgbench (TPC-B-like, {args.clients} clients, same server): {tps:,.0f} tps")
    return tps


def server_arguments(parser: argparse.ArgumentParser, port: int) -> argparse.ArgumentParser:
    """Add the options every HTTP benchmark takes: load, server shape, pgbench, keep."""
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--pgbench-seconds", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    return parser


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=4000)
    args = server_arguments(parser, port=18081).parse_args()

    name = f"oms_bench_capture_{uuid.uuid4().hex[:6]}"
    print(f"preparing {name}: Olist catalogue and customers ...", flush=True)
    pack = OlistPack()
    url = scratch_database(name)
    key = prepare(url, pack)
    generator = OrderGenerator(pack, seed=2026)
    bodies = [json.dumps(generator.next_order()).encode() for _ in range(2 * args.orders)]
    lines = [len(json.loads(body)["lines"]) for body in bodies]

    server = start_gunicorn(url, args.port, args.workers, args.threads)
    try:
        warmup = min(200, args.orders // 4)
        drive(args.port, key, bodies[:warmup], args.clients, "warmup", False)  # warm the pools
        runs = [
            drive(args.port, key, bodies[warmup:args.orders], args.clients, "with-key", True),
            drive(args.port, key, bodies[args.orders:], args.clients, "no-key", False),
        ]
    finally:
        stop(server, args, name)
    tps = reference(args, f"orders of {statistics.mean(lines):.2f} lines on average (1-3)")
    for run in runs:
        print(f"POST /orders {run.label:>8}: {run.figures(tps)}   statuses {run.statuses}")


if __name__ == "__main__":
    main()
