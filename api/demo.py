"""Demo data: the Olist catalogue, customers, sellers and real orders, loaded through the API's
own schemas and the engine, so demo data obeys every rule real data does."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from marshmallow import Schema
from sqlalchemy import select

from adapters.bootstrap import Services
from adapters.olist import OlistPack
from api.orders import draft_from
from api.schemas import CustomerSchema, LocationSchema, OrderInSchema, ProductSchema
from engine import pipeline
from engine.actors import system_actor
from engine.catalog import geo, reference
from engine.catalog.reference import CUSTOMERS, LOCATIONS, PRODUCTS, ReferenceKind
from engine.errors import DuplicateOrderError
from engine.fulfilment.tracking import TrackingEvent, apply_tracking_event
from engine.fulfilment.warehouse_events import PackedLine, WmsEvent, apply_wms_event
from engine.inventory import stock as inventory
from engine.orders.holds import MANUAL_QUEUE
from engine.record import FulfilmentGroup, Hold, Order, Shipment, StockLevel, utcnow
from engine.status import OrderStatus

BATCH = 1000
STOCK_BATCH = 5000


def load_demo_data(services: Services, order_count: int,
                   say: Callable[[str], None] = print) -> None:
    """Load reference data and replay up to order_count real orders; safe to run again."""
    pack = OlistPack()
    for kind, schema, rows in ((PRODUCTS, ProductSchema, pack.products),
                               (CUSTOMERS, CustomerSchema, pack.customers),
                               (LOCATIONS, LocationSchema, pack.locations())):
        upsert_all(services, kind, schema(), rows)
        say(f"  {len(rows):>6} {kind.name}s")
    areas = pack.postal_areas()
    load_postal_areas(services, areas)
    say(f"  {len(areas):>6} postal areas")
    seed_stock(services, pack.stock(), say)
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
    shipped, delivered = work_the_warehouses(services)
    say(f"  {shipped:>6} packages packed and shipped by the embedded warehouses, "
        f"{delivered} delivered by the carriers")
    held = hold_some_for_review(services)
    say(f"  {held:>6} orders held by hand for review (the console's inbox)")


# Of the groups released to the warehouses, these shares ship and, of what ships, arrive:
# the dashboard then has cycle times, fill and on-time rates and a carrier scorecard.
SHIPPED_SHARE, DELIVERED_SHARE = 2 / 3, 3 / 4


def work_the_warehouses(services: Services) -> tuple[int, int]:
    """Pack and ship some released groups and deliver most of those packages, as the
    embedded warehouses and carriers would confirm them; once (a database with shipments
    keeps them)."""
    warehouse, carrier = system_actor("demo-warehouse"), system_actor("demo-carrier")
    with services.uow() as uow:
        if uow.session.scalar(select(Shipment.id).limit(1)) is not None:
            return 0, 0
        released = list(uow.session.scalars(
            select(FulfilmentGroup.id).where(FulfilmentGroup.status == "released")
            .order_by(FulfilmentGroup.id)))
    chosen = released[:int(len(released) * SHIPPED_SHARE)]
    for group_id in chosen:
        package = f"DEMO-{group_id}"
        with services.uow() as uow:  # packed: the label is bought by its job, after commit
            group = uow.session.get(FulfilmentGroup, group_id)
            assert group is not None
            lines = tuple(PackedLine(line.sku, line.quantity) for line in group.lines)
            apply_wms_event(uow, warehouse, WmsEvent(f"demo-packed-{group_id}", "packed",
                                                     group_id, package, lines),
                            {"demo": "packed", "group": group_id})
            uow.commit()
        with services.uow() as uow:
            apply_wms_event(uow, warehouse, WmsEvent(f"demo-shipped-{group_id}", "shipped",
                                                     group_id, package),
                            {"demo": "shipped", "group": group_id})
            uow.commit()
    with services.uow() as uow:
        tracked = list(uow.session.scalars(select(Shipment.tracking_number).where(
            Shipment.tracking_number.is_not(None)).order_by(Shipment.id)))
    arrived = tracked[:int(len(tracked) * DELIVERED_SHARE)]
    for tracking_number in arrived:
        with services.uow() as uow:
            apply_tracking_event(uow, carrier, TrackingEvent(
                f"demo-delivered-{tracking_number}", tracking_number, "delivered", utcnow()),
                {"demo": "delivered", "tracking_number": tracking_number})
            uow.commit()
    return len(chosen), len(arrived)


# Holds people put on orders in a working day, so that the demo's inbox has work in it
# beside what the rules held.
REVIEW_REASONS = (
    "Customer called: wants to change the delivery address",
    "Address looks incomplete: call the customer before shipping",
    "Bank flagged the payment: waiting for its answer",
    "Gift order: check the message with the customer",
    "Possible duplicate of another order of this customer",
)


def hold_some_for_review(services: Services) -> int:
    """Hold a few orders that have not shipped, by hand, once (a database with such holds
    keeps them)."""
    actor = system_actor("demo-loader")
    with services.uow() as uow:
        if uow.session.scalar(select(Hold.id).where(Hold.queue == MANUAL_QUEUE).limit(1)):
            return 0
        order_ids = list(uow.session.scalars(
            select(Order.id).where(Order.status.in_((OrderStatus.ALLOCATED, OrderStatus.RELEASED)))
            .order_by(Order.id.desc()).limit(len(REVIEW_REASONS))))
        for order_id, reason in zip(order_ids, REVIEW_REASONS, strict=False):
            pipeline.hold(uow, actor, order_id, reason)
        uow.commit()
    return len(order_ids)


def load_postal_areas(services: Services, rows: Sequence[dict[str, Any]]) -> None:
    """Create or replace postal areas, in batches (as `POST /postal-areas/bulk` does)."""
    for start in range(0, len(rows), STOCK_BATCH):
        with services.uow() as uow:
            geo.upsert_postal_areas(uow, list(rows[start:start + STOCK_BATCH]))
            uow.commit()


def seed_stock(services: Services, rows: Sequence[dict[str, Any]],
               say: Callable[[str], None]) -> None:
    """Count the seeded stock in, as a WMS would; a database that has stock keeps it."""
    with services.uow() as uow:
        if uow.session.scalar(select(StockLevel.sku).limit(1)) is not None:
            say("  stock already loaded: kept as it is")
            return
    actor = system_actor("demo-loader")
    for start in range(0, len(rows), STOCK_BATCH):
        with services.uow() as uow:
            inventory.apply_changes(uow, actor, [
                inventory.StockChange("count", row["sku"], row["location"], row["on_hand"],
                                      reason="opening stock (demo)")
                for row in rows[start:start + STOCK_BATCH]])
            uow.commit()
    say(f"  {sum(row['on_hand'] for row in rows):>6} units of stock at "
        f"{len({row['location'] for row in rows})} locations")


def upsert_all(services: Services, kind: ReferenceKind[Any], schema: Schema,
               rows: Sequence[dict[str, Any]]) -> None:
    """Validate rows with the API's schema and upsert them in batches."""
    for start in range(0, len(rows), BATCH):
        loaded = [schema.load(row) for row in rows[start:start + BATCH]]
        with services.uow() as uow:
            reference.upsert_records(uow, kind, loaded)
            uow.commit()
