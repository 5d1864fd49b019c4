"""Benchmark allocation: capture + validation + sourcing + reservation, against pgbench.

    .venv/bin/python -m bench.allocate [--orders 3000] [--hot-orders 1500] [--clients 16]

It creates a scratch PostgreSQL database with the Olist catalogue, customers, city
locations, postal areas and stock seeded from sales (scaled so the spread run never runs
dry), starts gunicorn, and drives POST /orders from concurrent clients twice:

1. spread: Olist-shaped orders over many SKUs (1-3 lines, sampled from the catalogue);
2. hot: every client orders one unit of the same SKU, which has stock for half of them.

Then it runs pgbench (TPC-B-like, same client count, same server) and prints orders/s,
latency percentiles, the ratio to pgbench's tps, SQL statements and server CPU per order,
and checks the hot SKU was never
oversold (reserved = allocated units <= on hand, backorders = the rest). It never passes
or fails on time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import uuid
from typing import Any

from sqlalchemy import func, select

from adapters.bootstrap import build_services
from adapters.migrations import upgrade
from adapters.olist import OlistPack, OrderGenerator
from adapters.settings import Settings
from api.carriers import shipped_carriers
from api.demo import load_postal_areas, seed_stock, upsert_all
from api.schemas import CustomerSchema, LocationSchema, ProductSchema
from bench.capture import (
    drive,
    jobs_on_redis,
    reference,
    scratch_database,
    server_arguments,
    start_gunicorn,
    stop,
)
from engine import access
from engine.actors import system_actor
from engine.carriers.rate_cards import install_default_carriers
from engine.catalog.reference import CUSTOMERS, LOCATIONS, PRODUCTS
from engine.decisions import rulesets
from engine.inventory import stock as inventory
from engine.record import Order, OrderLine, StockLevel


def prepare(url: str, pack: OlistPack, stock_per_sale: int) -> str:
    """Load the Olist data into a fresh database; return an integration key."""
    services = build_services(Settings(database_url=url))
    upgrade(services.engine)
    with services.uow() as uow:
        rulesets.install_defaults(uow, system_actor("bench"))
        install_default_carriers(uow, shipped_carriers)
        uow.commit()
    upsert_all(services, PRODUCTS, ProductSchema(), pack.products)
    upsert_all(services, CUSTOMERS, CustomerSchema(), pack.customers)
    upsert_all(services, LOCATIONS, LocationSchema(), pack.locations())
    load_postal_areas(services, pack.postal_areas())
    with services.uow() as uow:
        _, plaintext = access.create_api_key(uow, "bench-olist", "channel", "olist")
        uow.commit()
    seed_stock(services, pack.stock(per_sale=stock_per_sale), say=lambda _: None)
    services.close()
    return plaintext


def hot_bodies(pack: OlistPack, generator: OrderGenerator, count: int) -> tuple[str, list[bytes]]:
    """Orders of one unit each of the best-selling SKU, from different customers."""
    sku = max(set(generator.skus), key=lambda s: generator.weights[generator.skus.index(s)])
    bodies = []
    for _ in range(count):
        body: dict[str, Any] = generator.next_order()
        body["lines"] = [{"sku": sku, "quantity": 1, "unit_price": generator.prices[sku]}]
        bodies.append(json.dumps(body).encode())
    return sku, bodies


def set_hot_stock(url: str, sku: str, units: int) -> str:
    """Leave `units` available at the hot SKU's first location and none elsewhere."""
    services = build_services(Settings(database_url=url))
    with services.uow() as uow:
        levels = list(uow.session.scalars(select(StockLevel).where(StockLevel.sku == sku)
                                          .order_by(StockLevel.location_code)))
        changes = [inventory.StockChange("count", sku, level.location_code,
                                         level.reserved + (units if index == 0 else 0))
                   for index, level in enumerate(levels)]
        inventory.apply_changes(uow, system_actor("bench"), changes)
        uow.commit()
    services.close()
    return levels[0].location_code


def oversell_check(url: str, sku: str) -> dict[str, int]:
    services = build_services(Settings(database_url=url))
    with services.uow() as uow:
        on_hand, reserved = uow.session.execute(
            select(func.sum(StockLevel.on_hand), func.sum(StockLevel.reserved))
            .where(StockLevel.sku == sku)).one()
        allocated, backordered = uow.session.execute(
            select(func.sum(OrderLine.quantity_allocated),
                   func.sum(OrderLine.quantity_backordered)).where(OrderLine.sku == sku)).one()
        statuses = dict(uow.session.execute(
            select(Order.status, func.count()).join(OrderLine, OrderLine.order_id == Order.id)
            .where(OrderLine.sku == sku).group_by(Order.status)).all())
    services.close()
    return {"on_hand": on_hand, "reserved": reserved, "allocated_units": allocated,
            "backordered_units": backordered,
            **{f"orders_{status.value}": count for status, count in statuses.items()}}


def olist_database(benchmark: str) -> tuple[str, str, str, OlistPack]:
    """A scratch database with the Olist data loaded: its name, URL, an integration key
    and the pack (stock seeded so that a run over many SKUs never runs dry)."""
    name = f"oms_bench_{benchmark}_{uuid.uuid4().hex[:6]}"
    print(f"preparing {name}: Olist catalogue, customers, locations, stock ...", flush=True)
    pack = OlistPack()
    url = scratch_database(name)
    return name, url, prepare(url, pack, stock_per_sale=200), pack


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--hot-orders", type=int, default=1500)
    args = server_arguments(parser, port=18082).parse_args()

    name, url, key, pack = olist_database("allocate")
    generator = OrderGenerator(pack, seed=2026)
    spread = [json.dumps(generator.next_order()).encode() for _ in range(args.orders + 200)]
    sku, hot = hot_bodies(pack, generator, args.hot_orders)
    lines = [len(json.loads(body)["lines"]) for body in spread]

    with jobs_on_redis():
        server = start_gunicorn(url, args.port, args.workers, args.threads)
        try:
            drive(args.port, key, spread[:200], args.clients, "warmup", False)
            spread_run = drive(args.port, key, spread[200:], args.clients, "spread", True)
            location = set_hot_stock(url, sku, args.hot_orders // 2)
            hot_run = drive(args.port, key, hot, args.clients, "hot-sku", True)
            check = oversell_check(url, sku)
            spread_statuses = statuses_now(url)
            # the floor of this stack: a request that only asks PostgreSQL "SELECT 1"
            floor = drive(args.port, key, [b""] * 3000, args.clients, "floor", False,
                          path="/readyz")
        finally:
            stop(server, args, name)
    tps = reference(args, f"spread orders of {statistics.mean(lines):.2f} lines on average "
                          f"over {len(generator.skus):,} SKUs")
    for run in (spread_run, hot_run):
        print(f"POST /orders {run.label:>8}: {run.figures(tps)}   statuses {run.statuses}")
    print(f"GET /readyz (floor: SELECT 1, Redis ping): {floor.figures(tps, 'request')}")
    print(f"order statuses after both runs: {spread_statuses}")
    print(f"hot SKU {sku} ({args.hot_orders // 2} units at {location}): {check}")
    oversold = (check["reserved"] != check["allocated_units"]
                or check["reserved"] > check["on_hand"])
    print("oversell: " + ("YES - reserved does not match allocations" if oversold else
                          "none (reserved = allocated units <= on hand)"))


def statuses_now(url: str) -> dict[str, int]:
    """How many orders are in each status."""
    services = build_services(Settings(database_url=url))
    with services.uow() as uow:
        found = {status.value: count for status, count in uow.session.execute(
            select(Order.status, func.count()).group_by(Order.status)).all()}
    services.close()
    return found


if __name__ == "__main__":
    main()
