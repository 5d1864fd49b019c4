"""Benchmark the round trip: capture -> release -> packed/shipped -> delivered -> completed.

    .venv/bin/python -m bench.roundtrip [--orders 400] [--batch-orders 5000] [--clients 16]
                                        [--rq-workers 2]

It loads the Olist catalogue into a scratch PostgreSQL database, starts gunicorn and RQ
workers (`oms worker`) on Redis, and takes orders through the whole trip over HTTP, as the
partners would, twice:

1. one order at a time (the reference line): each client posts POST /orders, waits until
   the warehouse has the order (released by a job), confirms each group packed and shipped
   (POST /wms/events), reports each package delivered (POST /carriers/events), and waits
   until the order is completed (its invoices are posted by jobs);
2. in batches (`Batches`, also what bench.lifecycle drives): channels post POST
   /orders/bulk with 1,000 orders, warehouses take their released work (GET /wms/work) and
   confirm it, carriers report deliveries, with the bulk event routes
   (POST /wms/events/bulk, /carriers/events/bulk) when the server has them.

It prints completed orders/s, the capture-to-completion latency, SQL statements and server
CPU per completed order, and pgbench's tps on the same server with the ratio. It never
passes or fails on time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, and_, case, create_engine, func, select

from adapters.bootstrap import build_services
from adapters.olist import OrderGenerator
from adapters.settings import Settings
from bench.allocate import olist_database
from bench.bulk import PER_REQUEST, bulk_body
from bench.capture import (
    Run,
    Usage,
    in_parallel,
    jobs_on_redis,
    per,
    reference,
    server_arguments,
    service_usage,
    start_gunicorn,
    start_workers,
    stop,
    stop_workers,
)
from engine import access
from engine.record import Location, Order, OrderLine
from engine.status import OrderStatus

POLL_SECONDS = 0.2  # waiting clients poll gently: their GETs share the CPUs measured
BULK_EVENTS = 500  # events per POST /wms/events/bulk or /carriers/events/bulk
# Longer than two waves of the default period (OMS_WAVE_SECONDS, 300): orders wait for a
# wave to the warehouse and for a billing run without anything moving meanwhile.
QUIET_SECONDS = 660
# What an order that stops short of completed waits for: stock, a person, or nothing more.
STOPPED = (OrderStatus.ON_HOLD, OrderStatus.BACKORDERED, OrderStatus.REJECTED,
           OrderStatus.CANCELLED)
# An allocated order some of whose units wait for stock: it stops short too.
WAITING_FOR_STOCK = "allocated, waiting for stock"


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


class Partner:
    """One HTTP connection, speaking as the channel, a warehouse or a carrier."""

    def __init__(self, port: int, keys: Keys) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
        self.keys = keys

    def call(self, method: str, path: str, body: Any = None, key: str | None = None,
             extra: dict[str, str] | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json",
                   "Authorization": f"Bearer {key or self.keys.channel}", **(extra or {})}
        payload = None if body is None else json.dumps(body)
        try:
            return self._send(method, path, payload, headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # gunicorn closes a connection idle for 2 s; again on a new one (every request
            # sent is safe to repeat: a GET, events by their ids, orders under a key)
            self.connection.close()
            return self._send(method, path, payload, headers)

    def _send(self, method: str, path: str, payload: str | None,
              headers: dict[str, str]) -> tuple[int, Any]:
        self.connection.request(method, path, headers=headers, body=payload)
        response = self.connection.getresponse()
        return response.status, json.loads(response.read() or b"null")

    def wait_for(self, path: str, ready: Callable[[Any], bool], limit: float = 120.0) -> Any:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            status, body = self.call("GET", path)
            if status == 200 and ready(body):
                return body
            time.sleep(POLL_SECONDS)
        raise TimeoutError(f"{path} did not get there in {limit} s: {body}")

    def has_route(self, path: str) -> bool:
        """Tell whether the server's OpenAPI document lists this path."""
        status, document = self.call("GET", "/openapi.json")
        return status == 200 and path in document.get("paths", {})

    def send(self, path: str, events: list[dict[str, Any]], key: str,
             bulk: bool) -> Counter[str]:
        """Post warehouse or carrier events (path: /wms/events or /carriers/events), in
        bulk requests or one by one; return how many had each outcome."""
        outcomes: Counter[str] = Counter()
        if not bulk:
            for event in events:
                status, answer = self.call("POST", path, event, key=key)
                outcomes[answer["outcome"] if status == 200 else f"refused {status}"] += 1
            return outcomes
        for start in range(0, len(events), BULK_EVENTS):
            status, answer = self.call("POST", path + "/bulk",
                                       {"events": events[start:start + BULK_EVENTS]}, key=key)
            if status != 200:
                outcomes[f"refused {status}"] += len(events[start:start + BULK_EVENTS])
                continue
            outcomes.update(result["outcome"] for result in answer["results"])
        return outcomes


def shipment_events(group: dict[str, Any], tracking: str) -> list[dict[str, Any]]:
    """The warehouse's word on one released group: packed in one package, then shipped."""
    lines = [{"sku": line["sku"], "quantity": line["quantity"]} for line in group["lines"]]
    return [{"event_id": f"pack-{tracking}", "type": "packed", "group_id": group["id"],
             "package_ref": tracking, "lines": lines},
            {"event_id": f"ship-{tracking}", "type": "shipped", "group_id": group["id"],
             "package_ref": tracking, "tracking_number": tracking}]


def delivery_event(tracking: str) -> dict[str, Any]:
    """The carrier's word that a package arrived."""
    return {"event_id": f"deliver-{tracking}", "tracking_number": tracking,
            "status": "delivered"}


class Trip(Partner):
    """One client taking orders through the round trip one at a time."""

    def run(self, number: int, body: bytes) -> str:
        """Take one order from capture to completion; return its final status."""
        status, order = self.call("POST", "/orders", json.loads(body))
        if status != 201:
            return f"refused {status}"
        if order["status"] not in ("allocated", "released"):
            return str(order["status"])  # backordered or held: the trip stops here
        if any(line["quantities"]["backordered"] for line in order["lines"]):
            return "waiting for stock"  # released only once every unit is allocated
        groups = self.wait_for(f"/orders/{order['id']}/fulfilment",
                               lambda b: all(g["status"] == "released" for g in b["items"]))
        for group in groups["items"]:
            tracking = f"BENCH{number:06d}G{group['id']}"
            self.send("/wms/events", shipment_events(group, tracking), self.keys.warehouse,
                      bulk=False)
            self.send("/carriers/events", [delivery_event(tracking)], self.keys.carrier,
                      bulk=False)
        final = self.wait_for(f"/orders/{order['id']}",
                              lambda b: b["status"] in ("completed", "on_hold"))
        return str(final["status"])


def one_at_a_time(port: int, keys: Keys, bodies: list[bytes], clients: int,
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

    before = service_usage()
    seconds = in_parallel(clients, client)
    return (Run(label, outcomes.get("completed", 0), seconds, latencies, {},
                service_usage() - before), outcomes)


class Batches:
    """Orders through the whole trip in batches, as partners that batch would: channels
    post POST /orders/bulk, warehouses sweep their locations' released work (GET
    /wms/work, each location polled again at once while it has work, less and less often
    while it has none) and confirm it packed and shipped, carriers report the packages
    delivered; jobs on the RQ workers release and invoice. The database is watched (by
    the benchmark, not through the service) for the orders' statuses."""

    def __init__(self, port: int, keys: Keys, url: str, locations: list[str],
                 bodies: Iterator[dict[str, Any]], orders: int, capture_clients: int = 2,
                 warehouse_clients: int = 2) -> None:
        self.port, self.keys, self.locations = port, keys, locations
        self.bodies, self.orders = bodies, orders
        self.capture_clients, self.warehouse_clients = capture_clients, warehouse_clients
        self.engine: Engine = create_engine(url, pool_size=1)
        with self.engine.connect() as connection:  # the orders before these are not counted
            self.after_id = connection.scalar(select(func.coalesce(func.max(Order.id), 0)))
        self.lock = threading.Lock()
        self.sent = 0
        self.captured: Counter[str] = Counter()  # the created orders' statuses, or "refused"
        self.capture_latencies: list[float] = []
        self.events: Counter[str] = Counter()
        self.capturing = capture_clients  # capture clients still sending
        self.done = False
        self.bulk_events = Partner(port, keys).has_route("/wms/events/bulk")

    def statuses(self) -> Counter[str]:
        """How many of these orders are in each status now; an allocated order that waits
        for some units (released only once it has them all) counts as `WAITING_FOR_STOCK`."""
        waiting = (select(OrderLine.order_id).where(OrderLine.quantity_backordered > 0)
                   .correlate(Order).where(OrderLine.order_id == Order.id).exists())
        shown = case((and_(Order.status == OrderStatus.ALLOCATED, waiting),
                      WAITING_FOR_STOCK), else_=Order.status)
        with self.engine.connect() as connection:
            return Counter({getattr(status, "value", status): count
                            for status, count in connection.execute(
                                select(shown, func.count()).where(Order.id > self.after_id)
                                .group_by(shown))})

    def run(self, every: float, report: Callable[[float, Counter[str]], None],
            quiet_seconds: float = QUIET_SECONDS) -> Finished:
        """Drive until every captured order is completed or stopped short (or nothing has
        moved for `quiet_seconds`), calling `report` every `every` seconds."""
        before = service_usage()
        started = time.perf_counter()
        shares = [self.locations[n::self.warehouse_clients]
                  for n in range(self.warehouse_clients)]
        threads = [threading.Thread(target=self._capture) for _ in range(self.capture_clients)]
        threads += [threading.Thread(target=self._warehouse, args=(share,)) for share in shares]
        for thread in threads:
            thread.start()
        last, moved = Counter[str](), time.monotonic()
        while True:
            time.sleep(every)
            now = self.statuses()
            report(time.perf_counter() - started, now)
            if now != last:
                last, moved = now, time.monotonic()
            created = sum(count for outcome, count in self.captured.items()
                          if not outcome.startswith("refused"))
            settled = (now["completed"] + now[WAITING_FOR_STOCK]
                       + sum(now[status.value] for status in STOPPED))
            if not self.capturing and settled >= created:
                break
            if time.monotonic() - moved > quiet_seconds:
                print(f"nothing moved for {quiet_seconds:.0f} s: stopping", flush=True)
                break
        seconds = time.perf_counter() - started
        self.done = True
        for thread in threads:
            thread.join()
        usage = service_usage() - before
        return Finished(seconds, usage, self.statuses(), self._completion_percentiles(),
                        Run("bulk", len(self.capture_latencies), seconds,
                            self.capture_latencies, {}))

    def _capture(self) -> None:
        partner = Partner(self.port, self.keys)
        while True:
            with self.lock:
                batch = list(islice(self.bodies, min(PER_REQUEST, self.orders - self.sent)))
                key = f"batch-{self.sent}"
                self.sent += len(batch)
            if not batch:
                break
            started = time.perf_counter()
            status, answer = partner.call("POST", "/orders/bulk", bulk_body(batch),
                                          extra={"Idempotency-Key": key})
            elapsed = time.perf_counter() - started
            with self.lock:
                self.capture_latencies.append(elapsed)
                if status != 200:
                    self.captured[f"refused {status}"] += len(batch)
                    continue
                self.captured.update(result["status"] if result.get("id") else "refused"
                                     for result in answer["results"])
        with self.lock:
            self.capturing -= 1

    def _warehouse(self, locations: list[str]) -> None:
        partner = Partner(self.port, self.keys)
        wait = dict.fromkeys(locations, 0.25)  # seconds until each is polled again
        due = dict.fromkeys(locations, 0.0)
        while not self.done:
            now = time.monotonic()
            location = min(due, key=due.__getitem__)
            if due[location] > now:
                time.sleep(min(due[location] - now, 0.5))
                continue
            status, work = partner.call("GET", f"/wms/work?location={quote(location)}",
                                        key=self.keys.warehouse)
            groups = work["items"] if status == 200 else []
            if groups:
                self._ship(partner, groups)
                wait[location] = 0.25
            else:
                wait[location] = min(wait[location] * 2, 8.0)
            due[location] = time.monotonic() + (0 if groups else wait[location])

    def _ship(self, partner: Partner, groups: list[dict[str, Any]]) -> None:
        """Confirm the groups packed, then shipped, then their packages delivered."""
        tracking = {group["id"]: f"BK{group['id']:010d}" for group in groups}
        events = [shipment_events(group, tracking[group["id"]]) for group in groups]
        outcomes = partner.send("/wms/events", [pack for pack, _ in events],
                                self.keys.warehouse, self.bulk_events)
        outcomes += partner.send("/wms/events", [ship for _, ship in events],
                                 self.keys.warehouse, self.bulk_events)
        outcomes += partner.send("/carriers/events", [delivery_event(number) for number
                                                      in tracking.values()],
                                 self.keys.carrier, self.bulk_events)
        with self.lock:
            self.events += outcomes

    def _completion_percentiles(self) -> tuple[float, float]:
        """p50 and p99 of capture to completed, over the completed orders, in seconds."""
        age = func.extract("epoch", Order.updated_at - Order.created_at)
        with self.engine.connect() as connection:
            p50, p99 = connection.execute(
                select(func.percentile_cont(0.5).within_group(age),
                       func.percentile_cont(0.99).within_group(age))
                .where(Order.id > self.after_id, Order.status == OrderStatus.COMPLETED)).one()
        return float(p50 or 0), float(p99 or 0)


@dataclass
class Finished:
    """What a run of Batches measured."""

    seconds: float
    usage: Usage
    statuses: Counter[str]  # of the run's orders, at the end
    completion: tuple[float, float]  # p50, p99 of capture to completed, in seconds
    requests: Run  # the POST /orders/bulk requests

    def figures(self, tps: float) -> str:
        """Completed orders/s, p50/p99, the ratio to pgbench, statements and CPU per order."""
        completed = self.statuses["completed"]
        rate = completed / self.seconds
        p50, p99 = self.completion
        return (f"{rate:8.1f} completed orders/s   p50 {p50:6.1f} s   p99 {p99:6.1f} s "
                f"(capture to completed)   ratio to pgbench {rate / tps:.3f}   "
                f"{per(self.usage, completed, 'completed order')}\n"
                f"  POST /orders/bulk: p50 {self.requests.percentile(0.5):6.0f} ms   "
                f"p99 {self.requests.percentile(0.99):6.0f} ms a request   "
                f"final statuses: {dict(self.statuses)}")


def location_codes(url: str) -> list[str]:
    """Every location's code, in the order the warehouses sweep them."""
    engine = create_engine(url)
    with engine.connect() as connection:
        codes = list(connection.scalars(select(Location.code).order_by(Location.code)))
    engine.dispose()
    return codes


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=400)
    parser.add_argument("--batch-orders", type=int, default=5000)
    parser.add_argument("--rq-workers", type=int, default=2)
    args = server_arguments(parser, port=18083).parse_args()

    name, url, key, pack = olist_database("roundtrip")
    keys = Keys(url, key)
    generator = OrderGenerator(pack, seed=7)
    bodies = [json.dumps(generator.next_order()).encode() for _ in range(args.orders + 40)]

    with jobs_on_redis():
        server = start_gunicorn(url, args.port, args.workers, args.threads)
        workers = start_workers(args.rq_workers, url)
        try:
            one_at_a_time(args.port, keys, bodies[:40], args.clients, "warmup")
            run, outcomes = one_at_a_time(args.port, keys, bodies[40:], args.clients,
                                          "roundtrip")
            batches = Batches(args.port, keys, url, location_codes(url),
                              iter(generator.next_order, None), args.batch_orders)
            finished = batches.run(5.0, lambda *_: None)
        finally:
            stop_workers(workers)
            stop(server, args, name)
    tps = reference(args, f"{args.rq_workers} RQ workers and the scheduler on Redis; "
                          "orders of Olist shape")
    print(f"round trip, one at a time: {run.figures(tps, 'completed order')}")
    print(f"  (p50/p99: capture to completed)   outcomes: {outcomes}")
    print(f"round trip in batches ({PER_REQUEST:,}-order POST /orders/bulk, "
          f"{'bulk' if batches.bulk_events else 'single'} event routes):")
    print(f"{finished.figures(tps)}\n  events: {dict(batches.events)}")


if __name__ == "__main__":
    main()
