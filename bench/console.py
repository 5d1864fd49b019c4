"""Benchmark the console's pages with 50,000 orders in the record.

    .venv/bin/python -m bench.console [--orders 50000] [--requests 60] [--workers 2]

It creates a scratch PostgreSQL database, loads the Olist catalogue, customers and
locations, then writes generated orders straight into the record by a fast path (Core
multi-row inserts, not the pipeline): orders of 60 days over four channels in every
status, with their lines, rule decisions, fulfilment groups, shipments, holds (open and
released), returns and timeline events, shaped like what the pipeline writes. It then
starts gunicorn, signs in as an ops person and an analyst, and requests the inbox, the
order search, order pages and the dashboard (and GET /kpis) one at a time, printing p50
and p95 of each. It never passes or fails on time: it prints what it measured (the
target is p95 under 300 ms).
"""

from __future__ import annotations

import argparse
import bisect
import http.client
import itertools
import math
import os
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import accumulate
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Table, insert, text

from adapters.bootstrap import build_services
from adapters.migrations import upgrade
from adapters.olist import OlistPack
from adapters.settings import Settings
from api.demo import upsert_all
from api.schemas import CustomerSchema, LocationSchema, ProductSchema
from bench.capture import (
    drop_database,
    per,
    pgbench,
    scratch_database,
    service_usage,
    start_gunicorn,
)
from engine import access
from engine.actors import system_actor
from engine.catalog.reference import CUSTOMERS, LOCATIONS, PRODUCTS
from engine.decisions.rulesets import install_defaults
from engine.people import create_user
from engine.record import (
    FulfilmentGroup,
    FulfilmentLine,
    Hold,
    Order,
    OrderDecision,
    OrderEvent,
    OrderLine,
    OrderReturn,
    RuleSetVersion,
    Shipment,
    ShipmentLine,
)
from engine.reference_cache import RULE_SETS, bump

BATCH = 2000
DAYS = 60
CHANNELS = (("olist", 50), ("web", 25), ("marketplace", 20), ("edi", 5))
CARRIERS = (("CORREIOS", "PAC", 30, 4.0), ("CORREIOS", "SEDEX", 15, 1.5),
            ("JADLOG", "PACKAGE", 25, 3.0), ("AZUL", "AMANHA", 10, 1.0),
            ("TOTAL", "STANDARD", 20, 5.0))  # carrier, service, weight, days in transit
QUEUES = ("fraud-review", "credit", "address-review", "vip-care", "warehouse", "payment")
RETURN_REASONS = ("damaged in transit", "wrong size", "not as described",
                  "changed my mind", "arrived late")
# (status, weight) for orders older than ten days, and for the last ten days
OLD = (("completed", 70), ("delivered", 8), ("shipped", 4), ("cancelled", 4),
       ("rejected", 2), ("on_hold", 4), ("backordered", 4), ("released", 4))
RECENT = (("received", 2), ("allocated", 10), ("released", 20), ("shipped", 25),
          ("delivered", 15), ("completed", 8), ("on_hold", 8), ("backordered", 7),
          ("cancelled", 3), ("rejected", 2))
SHIPPED = {"shipped", "delivered", "completed"}
DELIVERED = {"delivered", "completed"}


def weighted(choices: tuple[tuple[Any, ...], ...]) -> Callable[[random.Random], Any]:
    """A fast weighted choice (cumulative weights, bisect): the first field of a row."""
    cumulative = list(accumulate(row[-1] if len(row) == 2 else row[2] for row in choices))

    def pick(rng: random.Random) -> Any:
        return choices[bisect.bisect(cumulative, rng.random() * cumulative[-1])]

    return pick


class Rows:
    """Rows per table, written in multi-row INSERTs of BATCH rows as they fill up."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.pending: dict[Table, list[dict[str, Any]]] = {}
        self.written: Counter[str] = Counter()
        self.ids: Counter[str] = Counter()

    def next_id(self, table: Table) -> int:
        self.ids[table.name] += 1
        return self.ids[table.name]

    def add(self, table: Table, **row: Any) -> int:
        row.setdefault("id", self.next_id(table))
        self.pending.setdefault(table, []).append(row)
        return int(row["id"])

    def flush(self, tables: list[Table]) -> None:
        for table in tables:  # parents first
            rows = self.pending.pop(table, [])
            for start in range(0, len(rows), BATCH):
                self.connection.execute(insert(table), rows[start:start + BATCH])
            self.written[table.name] += len(rows)


TABLES: list[Table] = [model.__table__ for model in (  # type: ignore[misc]
    Order, OrderLine, OrderDecision, FulfilmentGroup, FulfilmentLine, Shipment, ShipmentLine,
    Hold, OrderReturn, OrderEvent)]


def load_orders(url: str, pack: OlistPack, count: int, seed: int = 2026) -> dict[str, int]:
    """Write `count` generated orders and everything hanging off them; return row counts."""
    rng = random.Random(seed)
    sold = Counter(item["product_id"] for item in pack.items)
    skus = list(sold)
    sku_cumulative = list(accumulate(sold[sku] for sku in skus))
    prices = {row["sku"]: Decimal(str(row["value"])) for row in pack.products}
    customers = [row["id"] for row in pack.customers]
    places = pack.customer_places
    locations = [row["code"] for row in pack.locations()]
    channel = weighted(CHANNELS)
    carrier = weighted(CARRIERS)
    old_status, recent_status = weighted(OLD), weighted(RECENT)
    now = datetime.now(UTC)
    first = now - timedelta(days=DAYS)
    services = build_services(Settings(database_url=url))
    tables = {table.name: table for table in TABLES}
    started = time.perf_counter()
    with services.engine.begin() as connection:
        versions = _second_versions(connection, now - timedelta(days=20))
        rows = Rows(connection)
        for index in range(count):
            created = first + timedelta(seconds=(index + rng.random()) * DAYS * 86400 / count)
            status = (old_status if now - created > timedelta(days=10) else recent_status)(rng)[0]
            _one_order(rows, tables, rng, index, created, status, channel(rng)[0],
                       customers, places, skus, sku_cumulative, prices, locations, carrier,
                       versions)
            if (index + 1) % BATCH == 0:
                rows.flush(TABLES)
        rows.flush(TABLES)
        if connection.dialect.name == "postgresql":
            for table in TABLES:
                connection.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                    f"(SELECT max(id) FROM {table.name}))"))
            connection.execute(text("ANALYZE"))
    services.close()
    print(f"  loaded {count:,} orders in {time.perf_counter() - started:.1f} s: "
          + ", ".join(f"{n:,} {name}" for name, n in rows.written.items()), flush=True)
    return dict(rows.written)


def _second_versions(connection: Any, published: datetime) -> dict[str, tuple[int, int, datetime]]:
    """Publish a second version of validation and sourcing 20 days ago (the first retired):
    (first id, second id, when) per stage, so KPIs per rule version have two groups."""
    table: Table = RuleSetVersion.__table__  # type: ignore[assignment]
    found = {}
    for stage in ("validation", "sourcing"):
        first = connection.execute(text(
            "SELECT id, document FROM rule_set_versions WHERE stage = :stage AND version = 1"),
            {"stage": stage}).one()
        connection.execute(text("UPDATE rule_set_versions SET state = 'retired' WHERE id = :id"),
                           {"id": first.id})
        second = connection.execute(insert(table).returning(table.c.id), [{
            "stage": stage, "version": 2, "state": "published",
            "document": first.document, "comment": "bench: second version",
            "author": "bench", "created_at": published, "updated_at": published,
            "published_at": published, "published_by": "bench"}]).scalar_one()
        found[stage] = (first.id, second, published)
    bump(connection, [RULE_SETS])  # written with Core: the caches' rule (reference_cache)
    return found


def _one_order(rows: Rows, tables: dict[str, Table], rng: random.Random, index: int,
               created: datetime, status: str, channel: str, customers: list[str],
               places: dict[str, tuple[str, str, str]], skus: list[str],
               sku_cumulative: list[int], prices: dict[str, Decimal], locations: list[str],
               carrier: Callable[[random.Random], Any],
               versions: dict[str, tuple[int, int, datetime]]) -> None:
    customer = rng.choice(customers)
    postal, city, region = places.get(customer, ("01310", "sao paulo", "SP"))
    chosen: list[str] = []
    for _ in range(rng.choices((1, 2, 3), weights=(88, 10, 2))[0]):
        sku = skus[bisect.bisect(sku_cumulative, rng.random() * sku_cumulative[-1])]
        if sku not in chosen:
            chosen.append(sku)
    quantities = [rng.choices((1, 2, 3), weights=(90, 8, 2))[0] for _ in chosen]
    subtotal = sum((prices[sku] * n for sku, n in zip(chosen, quantities, strict=True)),
                   Decimal(0))
    order_id = rows.add(
        tables["orders"], channel=channel, channel_order_ref=f"BENCH-{index:07d}",
        customer_id=customer, status=status, currency="BRL",
        service_level=rng.choice(("standard", "express", "economy")), payment_terms="card",
        ship_to_name=f"Customer {customer[:8]}", ship_to_line1=f"Rua {index % 997} {index}",
        ship_to_line2=None, ship_to_city=city, ship_to_region=region,
        ship_to_postal_code=postal, ship_to_country="BR", ship_to_phone=None,
        subtotal=subtotal, shipping_amount=Decimal("15.00"), tax_amount=Decimal(0),
        total=subtotal + Decimal("15.00"), held_from="released" if status == "on_hold" else None,
        created_by=f"api_key:bench-{channel}", created_at=created,
        updated_at=created)
    at = created
    rows.add(tables["order_events"], order_id=order_id, occurred_at=at, type="order.received",
             actor_type="api_key", actor_id=f"bench-{channel}",
             data={"status": "received", "channel": channel})

    def version(stage: str) -> int:
        first_id, second_id, published = versions[stage]
        return second_id if at >= published else first_id

    def decide(stage: str, outcome: str) -> int:
        return rows.add(tables["order_decisions"], order_id=order_id, stage=stage,
                        rule_set_version_id=version(stage), outcome=outcome,
                        decision={"outcome": outcome}, facts={"channel": channel},
                        trace=[], evaluated_at=at)

    if status == "received":
        _lines(rows, tables, order_id, chosen, quantities, prices, {})
        return
    at += timedelta(seconds=rng.uniform(0.05, 2))
    decide("validation", "rejected" if status == "rejected" else "accepted")
    if status == "rejected":
        _lines(rows, tables, order_id, chosen, quantities, prices, {})
        _event(rows, tables, order_id, at, "order.rejected", status)
        return
    held = status == "on_hold" or rng.random() < 0.05
    if held:  # some holds were released since; the order went on
        queue = rng.choice(QUEUES)
        open_ = status == "on_hold"
        rows.add(tables["holds"], order_id=order_id, stage="validation", queue=queue,
                 reason=f"bench: {queue}", rule=f"{queue}-rule",
                 rule_set_version_id=version("validation"), created_at=at,
                 created_by="system:pipeline",
                 resolved_at=None if open_ else at + timedelta(hours=rng.uniform(0.5, 30)),
                 resolved_by=None if open_ else "user:bench-ops",
                 resolution=None if open_ else "released")
        _event(rows, tables, order_id, at, "order.held", "on_hold", queue=queue)
        if open_:
            _lines(rows, tables, order_id, chosen, quantities, prices, {})
            return
        at += timedelta(hours=rng.uniform(0.5, 30))
    sourced = decide("sourcing", "backordered" if status == "backordered" else "allocated")
    if status in ("backordered", "cancelled"):
        kind = "backordered" if status == "backordered" else "cancelled"
        _lines(rows, tables, order_id, chosen, quantities, prices,
               {n: {kind: q} for n, q in enumerate(quantities)})
        _event(rows, tables, order_id, at, f"order.{status}", status)
        return
    carrier_code, service, _, transit_days = carrier(rng)
    location = rng.choice(locations)
    promised = at + timedelta(days=transit_days + 2)
    cost = Decimal(rng.randint(900, 4500)) / 100
    group_status = {"allocated": "allocated", "released": "released"}.get(status, "shipped")
    group_id = rows.add(tables["fulfilment_groups"], order_id=order_id, location_code=location,
                        status=group_status, decision_id=sourced, created_at=at,
                        carrier_code=carrier_code, service_code=service, shipping_cost=cost,
                        promised_at=promised, carrier_decision_id=None,
                        wms_reference=None if status == "allocated" else f"WMS-{index}",
                        released_at=None if status == "allocated" else at, releases=1)
    returned = status in DELIVERED and rng.random() < 0.04
    line_ids = _lines(rows, tables, order_id, chosen, quantities, prices, {
        n: ({"allocated": q} if status in ("allocated", "released") else
            {"shipped": q, "delivered": q if status in DELIVERED else 0,
             "returned": 1 if returned and n == 0 else 0})
        for n, q in enumerate(quantities)})
    for line_id, sku, quantity in zip(line_ids, chosen, quantities, strict=True):
        rows.add(tables["fulfilment_lines"], group_id=group_id, order_line_id=line_id, sku=sku,
                 quantity=quantity)
    _event(rows, tables, order_id, at, "order.allocated", "allocated", location=location)
    if status not in SHIPPED:
        if status == "released":
            _event(rows, tables, order_id, at, "order.released", "released")
        return
    shipped = at + timedelta(hours=rng.lognormvariate(2.8, 0.6))
    delivered = (shipped + timedelta(days=transit_days * rng.uniform(0.6, 1.8))
                 if status in DELIVERED else None)
    shipment_id = rows.add(
        tables["shipments"], order_id=order_id, group_id=group_id, package_ref=f"BOX-{index}",
        location_code=location, carrier_code=carrier_code, service_code=service,
        status="delivered" if delivered else "in_transit",
        tracking_number=f"BN{index:09d}BR", label_cost=cost, weight_kg=Decimal("1.2"),
        net_amount=subtotal, tax_amount=Decimal(0), shipping_amount=Decimal("15.00"),
        created_at=shipped, shipped_at=shipped, delivered_at=delivered,
        invoice_reference=None, invoiced_at=None)
    for line_id, sku, quantity in zip(line_ids, chosen, quantities, strict=True):
        rows.add(tables["shipment_lines"], shipment_id=shipment_id, order_line_id=line_id,
                 sku=sku, quantity=quantity)
    _event(rows, tables, order_id, shipped, "order.shipped", "shipped",
           tracking_number=f"BN{index:09d}BR")
    if delivered is not None:
        _event(rows, tables, order_id, delivered, "order.delivered", "delivered")
        if returned:
            rows.add(tables["order_returns"], order_id=order_id,
                     reason=rng.choice(RETURN_REASONS),
                     lines=[{"order_line_id": line_ids[0], "sku": chosen[0], "quantity": 1}],
                     restock_location=location, net_amount=prices[chosen[0]],
                     tax_amount=Decimal(0), created_at=delivered + timedelta(days=2),
                     created_by="user:bench-ops", settle_failures=0)


def _lines(rows: Rows, tables: dict[str, Table], order_id: int, skus: list[str],
           quantities: list[int], prices: dict[str, Decimal],
           counts: dict[int, dict[str, int]]) -> list[int]:
    ids = []
    for n, (sku, quantity) in enumerate(zip(skus, quantities, strict=True)):
        given = counts.get(n, {})
        ids.append(rows.add(
            tables["order_lines"], order_id=order_id, line_no=n + 1, sku=sku,
            unit_price=prices[sku], line_total=prices[sku] * quantity,
            quantity_ordered=quantity, quantity_allocated=given.get("allocated", 0),
            quantity_shipped=given.get("shipped", 0),
            quantity_delivered=given.get("delivered", 0),
            quantity_cancelled=given.get("cancelled", 0),
            quantity_returned=given.get("returned", 0),
            quantity_backordered=given.get("backordered", 0)))
    return ids


def _event(rows: Rows, tables: dict[str, Table], order_id: int, at: datetime, type: str,
           status: str, **data: Any) -> None:
    rows.add(tables["order_events"], order_id=order_id, occurred_at=at, type=type,
             actor_type="system", actor_id="pipeline", data={"status": status, **data})


# ----- the measurement -----

def prepare(url: str, pack: OlistPack) -> dict[str, str]:
    """Migrate, load the catalogue, customers and locations, install the rule sets; return
    API keys of an analyst and an ops person."""
    services = build_services(Settings(database_url=url))
    upgrade(services.engine)
    upsert_all(services, PRODUCTS, ProductSchema(), pack.products)
    upsert_all(services, CUSTOMERS, CustomerSchema(), pack.customers)
    upsert_all(services, LOCATIONS, LocationSchema(), pack.locations())
    keys = {}
    with services.uow() as uow:
        install_defaults(uow, system_actor("rules-installer"))
        for role in ("analyst", "ops"):
            _, keys[role] = access.create_api_key(uow, f"bench-{role}", role, None)
        uow.commit()
    services.close()
    return keys


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of latencies, in milliseconds."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)] * 1000


def timed_gets(port: int, paths: Iterator[str], rounds: int,
               headers: dict[str, str]) -> tuple[list[float], Counter[int]]:
    """GET `rounds` paths one after the other on one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    for _ in range(rounds):
        path = next(paths)
        started = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        statuses[response.status] += 1
    connection.close()
    return latencies, statuses


def cycling(rng: random.Random, make: Callable[[random.Random], str]) -> Iterator[str]:
    while True:
        yield make(rng)


_periods = itertools.count()


def new_period() -> str:
    """A period of 30 days or more not asked for before in this run (so not kept)."""
    n = next(_periods)
    last = datetime.now(UTC).date() - timedelta(days=n % 40)
    first = last - timedelta(days=29 + n // 40)
    return urlencode({"from": first.isoformat(), "to": last.isoformat()})


def targets(count: int) -> dict[str, tuple[str, Callable[[random.Random], str]]]:
    """What is measured: label -> (who asks, the next path)."""
    def search(rng: random.Random) -> str:
        query = rng.choice([{"status": "on_hold"}, {"channel": "web"},
                            {"channel_order_ref": f"BENCH-{rng.randrange(count):07d}"},
                            {"status": "shipped", "channel": "marketplace"}])
        return "?" + urlencode(query)

    return {
        "inbox page": ("ops", lambda rng: "/console/inbox"),
        "search page": ("ops", lambda rng: "/console/orders" + search(rng)),
        "order page": ("ops", lambda rng: f"/console/orders/{rng.randrange(1, count + 1)}"),
        "dashboard page (30 days, kept a minute)": ("analyst", lambda rng: "/console/dashboard"),
        "dashboard page (computed: a new period each time)": (
            "analyst", lambda rng: "/console/dashboard?" + new_period()),
        "dashboard per rule version (computed)": (
            "analyst", lambda rng: "/console/dashboard?group_by=rule_version&" + new_period()),
        "GET /kpis (computed: a new period each time)": (
            "analyst-key", lambda rng: "/kpis?" + new_period()),
        "GET /holds": ("ops-key", lambda rng: "/holds"),
        "GET /orders (search)": ("ops-key", lambda rng: "/orders" + search(rng)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=60, help="per page, after 5 warm-ups")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--port", type=int, default=18085)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    args = parser.parse_args()

    name = f"oms_bench_console_{uuid.uuid4().hex[:6]}"
    print(f"preparing {name}: Olist catalogue, customers, locations ...", flush=True)
    pack = OlistPack()
    url = scratch_database(name)
    keys = prepare(url, pack)
    load_orders(url, pack, args.orders)
    # Pages are measured, not the periodic sweeps that a server without Redis would also
    # run in its workers (over 50,000 orders they would land inside some page's timings).
    os.environ.setdefault("OMS_SCHEDULER", "off")
    server = start_gunicorn(url, args.port, args.workers, args.threads)
    results = []
    try:
        callers = {"analyst-key": {"Authorization": f"Bearer {keys['analyst']}"},
                   "ops-key": {"Authorization": f"Bearer {keys['ops']}"}}
        callers.update(people(url, args.port))
        rng = random.Random(7)
        for label, (who, make) in targets(args.orders).items():
            if who not in callers:
                results.append((label, None, f"no {who} session", ""))
                continue
            paths = cycling(rng, make)
            timed_gets(args.port, paths, 5, callers[who])  # warm the worker's caches
            before = service_usage()
            latencies, statuses = timed_gets(args.port, paths, args.requests, callers[who])
            spent = per(service_usage() - before, args.requests, "request")
            results.append((label, latencies, dict(statuses), spent))
    finally:
        server.terminate()
        server.wait(timeout=30)
        if not args.keep:
            drop_database(name)
    reference_tps = pgbench(1, args.pgbench_seconds, scale=10)
    reference_ms = 1000 / reference_tps
    print()
    print(f"{args.orders:,} orders; gunicorn {args.workers} workers x {args.threads} threads; "
          f"{os.cpu_count()} CPUs; one request at a time, {args.requests} per line")
    print(f"reference: pgbench TPC-B-like, 1 client, same server: {reference_tps:,.0f} tps "
          f"= {reference_ms:.2f} ms a transaction; 'x pgbench' is p50 / that")
    for label, latencies, statuses, spent in results:
        if latencies is None or set(statuses) == {404}:
            why = statuses if latencies is None else "the page is not in this build (404)"
            print(f"{label:<52} not measured: {why}")
            continue
        p50 = percentile(latencies, 0.5)
        print(f"{label:<52} p50 {p50:7.1f} ms   p95 {percentile(latencies, 0.95):7.1f} ms   "
              f"{p50 / reference_ms:6.0f} x pgbench   {spent}   "
              f"statuses {statuses}")



def people(url: str, port: int) -> dict[str, dict[str, str]]:
    """Sign in an ops person and an analyst through the sign-in form; return the cookie
    headers of their sessions."""
    services = build_services(Settings(database_url=url))
    with services.uow() as uow:
        for role in ("ops", "analyst"):
            create_user(uow, system_actor("bench"), f"bench-{role}", [role], password=PASSWORD)
        uow.commit()
    services.close()
    return {role: sign_in(port, f"bench-{role}") for role in ("ops", "analyst")}


PASSWORD = "bench password, long enough"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in(port: int, username: str) -> dict[str, str]:
    """Sign in as a browser would; return the headers that carry the session."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/console/sign-in")
    answer = connection.getresponse()
    form = answer.read().decode()
    cookie = _cookie(answer)
    token = _CSRF.search(form)
    if token is None:
        raise SystemExit("the sign-in page has no CSRF token")
    connection.request("POST", "/console/sign-in", body=urlencode(
        {"username": username, "password": PASSWORD, "csrf_token": token.group(1)}),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    answer = connection.getresponse()
    answer.read()
    connection.close()
    if answer.status != 303:
        raise SystemExit(f"signing in as {username} answered {answer.status}")
    return {"Cookie": _cookie(answer)}


def _cookie(answer: http.client.HTTPResponse) -> str:
    return "; ".join(header.split(";", 1)[0] for header in answer.headers.get_all("Set-Cookie")
                     or [])


if __name__ == "__main__":
    main()
