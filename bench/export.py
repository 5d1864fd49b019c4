"""Benchmark the streamed export: a million orders out of GET /orders/export, CSV and NDJSON.

    .venv/bin/python -m bench.export [--orders 1000000] [--pgbench-seconds 20]

It creates a scratch PostgreSQL database, loads the Olist catalogue and customers, then
writes generated Olist-shaped orders (1-3 lines, sampled from the catalogue and the
customers) straight into the record by a fast path (COPY, not the pipeline). It starts
gunicorn (one worker, two threads; one export at a time), streams
the whole export once as CSV and once as NDJSON over HTTP, reading as fast as it can, and
prints rows/s, orders/s, the server worker's resident memory before and its peak after
each (VmHWM from /proc), the server's CPU, and the ratio of orders/s to pgbench's tps
(TPC-B-like, one client, same server) run in the same invocation. It never passes or fails
on time: it prints what it measured.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, create_engine, text

from adapters.bootstrap import build_services
from adapters.olist import OlistPack
from adapters.settings import Settings
from bench.capture import (
    drop_database,
    pgbench,
    prepare,
    scratch_database,
    service_usage,
    start_gunicorn,
)
from engine import access
from engine.orders.transfers import ADDRESS_PARTS
from engine.status import OrderStatus

# What generated orders have become, roughly as a working day leaves them.
STATUSES = ((OrderStatus.RELEASED, 40), (OrderStatus.SHIPPED, 25), (OrderStatus.DELIVERED, 15),
            (OrderStatus.COMPLETED, 10), (OrderStatus.ON_HOLD, 5),
            (OrderStatus.BACKORDERED, 3), (OrderStatus.CANCELLED, 2))

# Orders written per round: their rows, then their lines' (so memory stays flat).
ROUND = 50_000

Customer = tuple[str, dict[str, Any]]  # id, shipping address (POST /orders' fields)


ORDER_COLUMNS = ("id", "channel", "channel_order_ref", "customer_id", "status", "currency",
                 "service_level", "payment_terms", "ship_to_name", "ship_to_line1",
                 "ship_to_line2", "ship_to_city", "ship_to_region", "ship_to_postal_code",
                 "ship_to_country", "ship_to_phone", "subtotal", "shipping_amount",
                 "tax_amount", "total", "created_by", "created_at", "updated_at")
LINE_COLUMNS = ("order_id", "line_no", "sku", "unit_price", "line_total", "quantity_ordered",
                "quantity_allocated", "quantity_shipped", "quantity_delivered",
                "quantity_cancelled", "quantity_returned", "quantity_backordered")


def write_orders(connection: Connection, count: int, customers: Sequence[Customer],
                 products: Sequence[tuple[str, Decimal]], channels: Sequence[str],
                 first_id: int = 1, seed: int = 2026) -> int:
    """Write `count` orders with 1-3 lines each (ids from `first_id`) into PostgreSQL with
    COPY, in the connection's transaction; return how many lines were written.

    COPY, not INSERTs: SQLAlchemy's multi-row INSERTs spend their time compiling and
    splitting statements of thousands of parameters (about 4 ms an order on 2 busy CPUs),
    while COPY streams the rows as they are made, in flat memory.
    """
    rng = random.Random(seed)
    statuses = [status.value for status, _ in STATUSES]
    weights = [weight for _, weight in STATUSES]
    start = datetime.now(UTC) - timedelta(days=60)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    written = 0
    for round_start in range(first_id, first_id + count, ROUND):
        lines: list[tuple[Any, ...]] = []
        with cursor.copy(f"COPY orders ({', '.join(ORDER_COLUMNS)}) FROM STDIN") as copy:
            for order_id in range(round_start, min(round_start + ROUND, first_id + count)):
                customer_id, address = customers[rng.randrange(len(customers))]
                created = start + timedelta(seconds=(order_id - first_id) * 5)
                subtotal = Decimal(0)
                for line_no in range(1, rng.choices((2, 3, 4), weights=(88, 10, 2))[0]):
                    sku, price = products[rng.randrange(len(products))]
                    quantity = rng.choices((1, 2, 3), weights=(90, 8, 2))[0]
                    subtotal += price * quantity
                    lines.append((order_id, line_no, sku, price, price * quantity, quantity,
                                  0, 0, 0, 0, 0, 0))
                shipping = Decimal("15.00")
                copy.write_row((
                    order_id, channels[order_id % len(channels)], f"EXP-{order_id}",
                    customer_id, rng.choices(statuses, weights=weights)[0], "BRL", "standard",
                    "prepaid", *(address.get(part) for part in ADDRESS_PARTS),
                    subtotal, shipping, Decimal(0), subtotal + shipping, "bench:export",
                    created, created))
        with cursor.copy(f"COPY order_lines ({', '.join(LINE_COLUMNS)}) FROM STDIN") as copy:
            for line in lines:
                copy.write_row(line)
        written += len(lines)
    cursor.close()
    return written


def olist_orders(url: str, pack: OlistPack, count: int) -> int:
    """Write `count` Olist-shaped orders of the channel `olist`; return their lines."""
    customers = [(customer_id, {"name": f"Olist customer {customer_id[:8]}",
                                "line1": f"Endereco {customer_id[:4]}", "city": city.title(),
                                "region": state, "postal_code": f"{prefix}-000",
                                "country": "BR"})
                 for customer_id, (prefix, city, state) in pack.customer_places.items()]
    products = [(product["sku"], Decimal(product["value"])) for product in pack.products]
    engine = create_engine(url)
    with engine.begin() as connection:
        lines = write_orders(connection, count, customers, products, ["olist"])
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE orders, order_lines"))
    engine.dispose()
    return lines


def admin_key(url: str) -> str:
    services = build_services(Settings(database_url=url))
    with services.uow() as uow:
        _, plaintext = access.create_api_key(uow, "bench-export", "admin", None)
        uow.commit()
    services.close()
    return plaintext


def memory_kib(pid: int) -> dict[str, int]:
    """The process's resident memory now (VmRSS) and at its peak (VmHWM), in KiB."""
    found = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])
    return found


def worker_pid(master: int) -> int:
    """The pid of gunicorn's one worker (the master's child)."""
    with open(f"/proc/{master}/task/{master}/children") as children:
        return int(children.read().split()[0])


def stream(port: int, key: str, form: str) -> tuple[int, int, float]:
    """Read the whole export once; return its bytes, its records (CSV rows without the
    header, or NDJSON lines) and the seconds it took."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    connection.request("GET", f"/orders/export?format={form}",
                       headers={"Authorization": f"Bearer {key}"})
    response = connection.getresponse()
    if response.status != 200:
        raise SystemExit(f"export answered {response.status}: {response.read()[:300]!r}")
    size = records = 0
    separator = b"\r\n" if form == "csv" else b"\n"
    while chunk := response.read(1 << 20):
        size += len(chunk)
        records += chunk.count(separator)
    seconds = time.perf_counter() - started
    connection.close()
    return size, records - (1 if form == "csv" else 0), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=18085)
    parser.add_argument("--pgbench-seconds", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    # The periodic sweeps would work on the generated orders in the same worker meanwhile.
    os.environ.setdefault("OMS_SCHEDULER", "off")

    name = f"oms_bench_export_{uuid.uuid4().hex[:6]}"
    print(f"preparing {name}: Olist catalogue and customers ...", flush=True)
    pack = OlistPack()
    url = scratch_database(name)
    try:
        prepare(url, pack)
        key = admin_key(url)
        started = time.perf_counter()
        lines = olist_orders(url, pack, args.orders)
        print(f"wrote {args.orders:,} orders with {lines:,} lines in "
              f"{time.perf_counter() - started:.0f} s (COPY)", flush=True)
        # Threads (gunicorn's gthread worker): a sync worker is killed after --timeout (30 s)
        # however busy it is, and streaming a million orders takes longer.
        server = start_gunicorn(url, args.port, workers=1, threads=2)
        results = []
        try:
            worker = worker_pid(server.pid)
            for form in ("csv", "ndjson"):
                before = memory_kib(worker)
                used = service_usage()
                size, records, seconds = stream(args.port, key, form)
                results.append((form, size, records, seconds, before, memory_kib(worker),
                                service_usage() - used))
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        if not args.keep:
            drop_database(name)
    tps = pgbench(1, args.pgbench_seconds, scale=10)
    print()
    print(f"gunicorn: 1 worker x 2 threads; one client reading as fast as it can; "
          f"{args.orders:,} orders, {lines:,} lines")
    print(f"pgbench (TPC-B-like, 1 client, same server): {tps:,.0f} tps")
    for form, size, records, seconds, before, after, used in results:
        orders_per_second = args.orders / seconds
        print(f"GET /orders/export?format={form:<6}: {records:>9,} records  "
              f"{size / 1e6:7.1f} MB  {seconds:6.1f} s  {records / seconds:9,.0f} rows/s  "
              f"{orders_per_second:9,.0f} orders/s  ratio to pgbench "
              f"{orders_per_second / tps:5.1f}  server RSS {before['VmRSS'] / 1024:.0f} MiB "
              f"before, peak {after['VmHWM'] / 1024:.0f} MiB  server CPU "
              f"{used.cpu_seconds * 1e6 / args.orders:.0f} us/order  "
              f"{used.statements / args.orders:.4f} statements/order")


if __name__ == "__main__":
    main()
