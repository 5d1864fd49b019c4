"""A small world whose KPIs are known: four orders over two days written straight into the
record with chosen times (the API would stamp them all "now"), plus one from before.

Day one (three days ago), channel web:
- A: 3 units, sourced by sourcing v1, shipped after 24 h by JADLOG (cost 10), delivered
  after 48 h, a day before its promise; completed. A perfect order.
- B: 4 units, 2 allocated at once and 2 on backorder (sourcing v2); the first package
  ships after 12 h, the second after 72 h, both by CORREIOS (20 and 30) and delivered
  after 96 h, both after their promises (60 h and 80 h). It was held once (queue stock,
  released) and 1 unit came back "Damaged in transit".
Day two (two days ago), channel marketplace:
- C: 1 unit, held in queue fraud since 09:00 (open), never sourced.
- D: 2 units waiting for stock since 15:00 (sourcing v2).
Before the period: E (web, 40 days ago), delivered; it must count nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from engine.record import (
    FulfilmentGroup,
    Hold,
    Order,
    OrderDecision,
    OrderLine,
    OrderReturn,
    RuleSetVersion,
    Shipment,
    ShipmentLine,
)


@dataclass(frozen=True)
class KpiWorld:
    day_one: date
    day_two: date
    orders: dict[str, int]


def _order(session: Any, ref: str, channel: str, status: str, at: datetime,
           lines: list[tuple[str, dict[str, int]]]) -> Order:
    order = Order(channel=channel, channel_order_ref=ref, customer_id="C-ANA", status=status,
                  currency="BRL", service_level="express", payment_terms="net30",
                  ship_to_name="Ana Lima", ship_to_line1="Av. Paulista 1000",
                  ship_to_city="Sao Paulo", ship_to_country="BR", subtotal=Decimal("100"),
                  shipping_amount=Decimal("10"), tax_amount=Decimal("0"),
                  total=Decimal("110"), created_by="api_key:test", created_at=at,
                  updated_at=at)
    for number, (sku, quantities) in enumerate(lines, start=1):
        order.lines.append(OrderLine(line_no=number, sku=sku, unit_price=Decimal("10"),
                                     line_total=Decimal("10") * quantities["ordered"],
                                     quantity_ordered=quantities["ordered"],
                                     **{f"quantity_{name}": units
                                        for name, units in quantities.items()
                                        if name != "ordered"}))
    session.add(order)
    session.flush()
    return order


def _decision(session: Any, order: Order, version_id: int, at: datetime) -> OrderDecision:
    decision = OrderDecision(order_id=order.id, stage="sourcing", rule_set_version_id=version_id,
                             outcome="allocated", decision={}, facts={}, trace=[],
                             evaluated_at=at)
    session.add(decision)
    session.flush()
    return decision


def _group(session: Any, order: Order, decision: OrderDecision, at: datetime,
           promised: datetime, carrier: str, cost: str) -> FulfilmentGroup:
    group = FulfilmentGroup(order_id=order.id, location_code="WH-SP", status="shipped",
                            decision_id=decision.id, created_at=at, carrier_code=carrier,
                            service_code="STD", shipping_cost=Decimal(cost),
                            promised_at=promised)
    session.add(group)
    session.flush()
    return group


def _shipment(session: Any, order: Order, group: FulfilmentGroup, ref: str,
              shipped: datetime, delivered: datetime | None, cost: str,
              units: list[tuple[OrderLine, int]]) -> None:
    shipment = Shipment(order_id=order.id, group_id=group.id, package_ref=ref,
                        location_code="WH-SP", carrier_code=group.carrier_code,
                        service_code="STD", status="delivered" if delivered else "shipped",
                        tracking_number=f"TRK-{ref}", label_cost=Decimal(cost),
                        created_at=shipped, shipped_at=shipped, delivered_at=delivered)
    for line, quantity in units:
        shipment.lines.append(ShipmentLine(order_line_id=line.id, sku=line.sku,
                                           quantity=quantity))
    session.add(shipment)


def build_kpi_world(services: Any, today: date | None = None) -> KpiWorld:
    """Write the world into the record (the catalog fixture's customers and products)."""
    today = today or datetime.now(UTC).date()
    day_one, day_two = today - timedelta(days=3), today - timedelta(days=2)

    def at(day: date, hours: float) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hours)

    with services.uow() as uow:
        session = uow.session
        v1 = session.scalar(select(RuleSetVersion).where(
            RuleSetVersion.stage == "sourcing", RuleSetVersion.version == 1))
        v1.state = "retired"
        session.flush()
        v2 = RuleSetVersion(stage="sourcing", version=2, state="published", document=v1.document,
                            comment="prefer complete shipments", author="ana",
                            published_at=at(day_one, 11), published_by="ana")
        session.add(v2)
        session.flush()

        # A: perfect
        start = at(day_one, 10)
        a = _order(session, "A", "web", "completed", start,
                   [("LAMP-1", {"ordered": 2, "shipped": 2, "delivered": 2}),
                    ("MUG-2", {"ordered": 1, "shipped": 1, "delivered": 1})])
        decided = _decision(session, a, v1.id, start)
        group = _group(session, a, decided, start, start + timedelta(hours=72), "JADLOG", "10")
        _shipment(session, a, group, "A-1", start + timedelta(hours=24),
                  start + timedelta(hours=48), "10", [(a.lines[0], 2), (a.lines[1], 1)])

        # B: half at once, half from a backorder; late, held once, one unit back damaged
        start = at(day_one, 12)
        b = _order(session, "B", "web", "delivered", start,
                   [("LAMP-1", {"ordered": 4, "shipped": 4, "delivered": 4, "returned": 1})])
        first = _decision(session, b, v1.id, start)
        later = _decision(session, b, v2.id, start + timedelta(hours=48))
        group_one = _group(session, b, first, start, start + timedelta(hours=60),
                           "CORREIOS", "20")
        group_two = _group(session, b, later, start + timedelta(hours=48),
                           start + timedelta(hours=80), "CORREIOS", "30")
        _shipment(session, b, group_one, "B-1", start + timedelta(hours=12),
                  start + timedelta(hours=96), "20", [(b.lines[0], 2)])
        _shipment(session, b, group_two, "B-2", start + timedelta(hours=72),
                  start + timedelta(hours=96), "30", [(b.lines[0], 2)])
        session.add(Hold(order_id=b.id, stage="sourcing", queue="stock", reason="short",
                         created_at=start + timedelta(hours=1), created_by="system:test",
                         resolved_at=start + timedelta(hours=2), resolved_by="user:ops",
                         resolution="released"))
        session.add(OrderReturn(order_id=b.id, reason="Damaged in transit",
                                lines=[{"order_line_id": b.lines[0].id, "sku": "LAMP-1",
                                        "quantity": 1}],
                                net_amount=Decimal("10"), tax_amount=Decimal("0"),
                                created_at=start + timedelta(hours=120), created_by="user:ops"))

        # C: held for fraud, still open
        start = at(day_two, 9)
        c = _order(session, "C", "marketplace", "on_hold", start,
                   [("MUG-2", {"ordered": 1})])
        session.add(Hold(order_id=c.id, stage="validation", queue="fraud", reason="risk",
                         created_at=start, created_by="system:test"))

        # D: waiting for stock
        start = at(day_two, 15)
        d = _order(session, "D", "marketplace", "backordered", start,
                   [("BATT-3", {"ordered": 2, "backordered": 2})])
        _decision(session, d, v2.id, start)

        # E: before the period
        start = at(today - timedelta(days=40), 8)
        e = _order(session, "E", "web", "delivered", start,
                   [("MUG-2", {"ordered": 1, "shipped": 1, "delivered": 1})])
        decided = _decision(session, e, v1.id, start)
        group = _group(session, e, decided, start, start + timedelta(hours=1), "JADLOG", "99")
        _shipment(session, e, group, "E-1", start + timedelta(hours=2),
                  start + timedelta(hours=300), "99", [(e.lines[0], 1)])
        session.add(Hold(order_id=e.id, stage="validation", queue="fraud", reason="old",
                         created_at=start, created_by="system:test"))
        uow.commit()
        ids = {"A": a.id, "B": b.id, "C": c.id, "D": d.id, "E": e.id}
    return KpiWorld(day_one, day_two, ids)
