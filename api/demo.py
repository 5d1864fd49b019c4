"""Demo data: the Olist catalogue, customers, sellers and real orders, loaded through the API's
own schemas and the engine, so demo data obeys every rule real data does."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from marshmallow import Schema

from adapters.bootstrap import Services
from adapters.olist import OlistPack
from api.orders import draft_from
from api.schemas import CustomerSchema, LocationSchema, OrderInSchema, ProductSchema
from engine import pipeline, reference
from engine.actors import system_actor
from engine.errors import DuplicateOrderError
from engine.reference import CUSTOMERS, LOCATIONS, PRODUCTS, ReferenceKind

BATCH = 1000


def load_demo_data(services: Services, order_count: int,
                   say: Callable[[str], None] = print) -> None:
    """Load reference data and replay up to order_count real orders; safe to run again."""
    pack = OlistPack()
    for kind, schema, rows in ((PRODUCTS, ProductSchema, pack.products),
                               (CUSTOMERS, CustomerSchema, pack.customers),
                               (LOCATIONS, LocationSchema, pack.locations())):
        upsert_all(services, kind, schema(), rows)
        say(f"  {len(rows):>6} {kind.name}s")
    actor = system_actor("demo-loader")
    loader = OrderInSchema()
    replayed = 0
    for body in pack.sample_orders()[:order_count]:
        with services.uow() as uow:
            try:
                pipeline.receive_order(uow, actor, draft_from(loader.load(body)))
                uow.commit()
                replayed += 1
            except DuplicateOrderError:
                continue  # loaded by an earlier run
    say(f"  {replayed:>6} orders replayed from the Olist sample")


def upsert_all(services: Services, kind: ReferenceKind[Any], schema: Schema,
               rows: Sequence[dict[str, Any]]) -> None:
    """Validate rows with the API's schema and upsert them in batches."""
    for start in range(0, len(rows), BATCH):
        loaded = [schema.load(row) for row in rows[start:start + BATCH]]
        with services.uow() as uow:
            reference.upsert_records(uow, kind, loaded)
            uow.commit()
