"""Benchmark the round trip: capture -> release -> shipment -> delivery -> completion.

    .venv/bin/python -m bench.roundtrip [--orders 400] [--clients 16] [--rq-workers 2]

It loads the Olist catalogue into a scratch PostgreSQL database, starts gunicorn and RQ
workers (`oms worker`) on Redis, and has each client take orders through the whole trip
over HTTP, as the partners would: POST /orders; wait until the warehouse has the order
(released by a job); confirm each group shipped (POST /wms/events); report each package
delivered (POST /carriers/events); wait until the order is completed (its invoices are
posted by jobs). It prints completed orders/s, the capture-to-completion latency, and
pgbench's tps on the same server with the ratio. It never passes or fails on time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from adapters.bootstrap import build_services
from adapters.olist import OrderGenerator
from adapters.settings import PROJECT_ROOT, Settings
from bench.allocate import olist_database
from bench.capture import (
    Run,
    in_parallel,
    jobs_on_redis,
    reference,
    server_arguments,
    start_gunicorn,
    stop,
)
from engine import access

POLL_SECONDS = 0.2  # waiting clients poll gently: their GETs share the CPUs measured


class Keys:
    """Who speaks in the trip: the sales channel, the warehouses and the carriers."""

    def __init__(self, url: str, channel: str) -> None:
        services = build_services(Settings(database_url=url))
        with services.uow() as uow:
            _, self.warehouse = access.create_api_key(uow, "bench-wms", "warehouse", None, ["*"])
            _, self.carrier = access.create_api_key(uow, "bench-carriers", "carrier", None, ["*"])
            uow.commit()
        services.close()
        self.channel = channel


class Trip:
    """One client's HTTP connection, taking orders through the round trip."""

    def __init__(self, port: int, keys: Keys) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.keys = keys

    def call(self, method: str, path: str, body: Any = None, key: str | None = None,
             ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json",
                   "Authorization": f"Bearer {key or self.keys.channel}"}
        self.connection.request(method, path, headers=headers,
                                body=None if body is None else json.dumps(body))
        response = self.connection.getresponse()
        return response.status, json.loads(response.read() or b"null")

    def wait_for(self, path: str, ready: Any, limit: float = 120.0) -> Any:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            status, body = self.call("GET", path)
            if status == 200 and ready(body):
                return body
            time.sleep(POLL_SECONDS)
        raise TimeoutError(f"{path} did not get there in {limit} s: {body}")

    def run(self, number: int, body: bytes) -> str:
        """Take one order from capture to completion; return its final status."""
        status, order = self.call("POST", "/orders", json.loads(body))
        if status != 201:
            return f"refused {status}"
        if order["status"] not in ("allocated", "released"):
            return order["status"]  # backordered or held: the trip stops here
        if any(line["quantities"]["backordered"] for line in order["lines"]):
            return "waiting for stock"  # released only once every unit is allocated
        groups = self.wait_for(f"/orders/{order['id']}/fulfilment",
                               lambda b: all(g["status"] == "released" for g in b["items"]))
        for group in groups["items"]:
            tracking = f"BENCH{number:06d}G{group['id']}"
            self.call("POST", "/wms/events", key=self.keys.warehouse, body={
                "event_id": f"ship-{tracking}", "type": "shipped", "group_id": group["id"],
                "tracking_number": tracking,
                "lines": [{"sku": line["sku"], "quantity": line["quantity"]}
                          for line in group["lines"]]})
            self.call("POST", "/carriers/events", key=self.keys.carrier, body={
                "event_id": f"deliver-{tracking}", "tracking_number": tracking,
                "status": "delivered"})
        final = self.wait_for(f"/orders/{order['id']}",
                              lambda b: b["status"] in ("completed", "on_hold"))
        return str(final["status"])


def drive(port: int, keys: Keys, bodies: list[bytes], clients: int,
          label: str) -> tuple[Run, dict[str, int]]:
    """Take every order through the trip from `clients` threads; return the completed
    orders' run and the count of each final outcome."""
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    position = iter(range(len(bodies)))

    def client() -> None:
        trip = Trip(port, keys)
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                break
            started = time.perf_counter()
            try:
                outcome = trip.run(index, bodies[index])
            except TimeoutError:
                outcome = "timed out"
            elapsed = time.perf_counter() - started
            with lock:
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                if outcome == "completed":
                    latencies.append(elapsed)
        trip.connection.close()

    seconds = in_parallel(clients, client)
    return Run(label, outcomes.get("completed", 0), seconds, latencies, {}), outcomes


def start_workers(count: int, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    oms = str(Path(sys.executable).parent / "oms")
    return [subprocess.Popen([oms, "worker", "--dispatch-every", "1"], cwd=PROJECT_ROOT,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=400)
    parser.add_argument("--rq-workers", type=int, default=2)
    args = server_arguments(parser, port=18083).parse_args()

    name, url, key, pack = olist_database("roundtrip")
    keys = Keys(url, key)
    generator = OrderGenerator(pack, seed=7)
    bodies = [json.dumps(generator.next_order()).encode() for _ in range(args.orders + 40)]

    with jobs_on_redis():
        server = start_gunicorn(url, args.port, args.workers, args.threads)
        workers = start_workers(args.rq_workers, {**os.environ, "OMS_DATABASE_URL": url})
        try:
            drive(args.port, keys, bodies[:40], args.clients, "warmup")
            run, outcomes = drive(args.port, keys, bodies[40:], args.clients, "roundtrip")
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(timeout=30)
            stop(server, args, name)
    tps = reference(args, f"{args.rq_workers} RQ workers on Redis; orders of Olist shape")
    print(f"round trip: {run.rate:6.1f} completed orders/s   "
          f"p50 {statistics.median(run.latencies) * 1000:6.0f} ms   "
          f"p99 {run.percentile(0.99):6.0f} ms (capture to completed)   "
          f"ratio to pgbench {run.rate / tps:.4f}")
    print(f"outcomes: {outcomes}")


if __name__ == "__main__":
    main()
