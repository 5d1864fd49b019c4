"""Count the SQL statements a warehouse or carrier event costs, alone and in a batch.

    .venv/bin/python -m bench.bulk_events [--orders 200]

It creates a scratch PostgreSQL database, places `--orders` one-group orders twice over
(released to the warehouse by their jobs, in this process), then confirms the first set
event by event (`POST /wms/events`, `POST /carriers/events`) and the second in three
batches (`POST /wms/events/bulk` of the packs, of the shipments, then
`POST /carriers/events/bulk` of the deliveries), and prints the statements per event of
each, counted by a SQLAlchemy `before_cursor_execute` listener: the request's own
statements, not those of the jobs it starts after committing (labels, invoices, notices).
It never passes or fails on figures.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from adapters.bootstrap import build_services
from adapters.migrations import upgrade
from adapters.outbox import Outbox
from adapters.settings import Settings
from api import create_app
from bench.capture import drop_database, scratch_database

ADMIN_KEY = "bench-bulk-events-admin-key-000000000000"
PRODUCTS = [
    {"sku": "LAMP-1", "name": "Desk lamp", "weight_g": 900, "length_cm": 30, "width_cm": 20,
     "height_cm": 45, "value": "89.90", "currency": "BRL"},
    {"sku": "MUG-2", "name": "Mug", "weight_g": 350, "length_cm": 12, "width_cm": 9,
     "height_cm": 10, "value": "24.50", "currency": "BRL"},
]


class Statements:
    """Counts the statements sent to the database, by their first word, while `counting`."""

    def __init__(self, engine: Any) -> None:
        self.kinds: Counter[str] = Counter()
        self.paused = 0
        self.jobs_seconds = 0.0  # spent dispatching and running jobs after commits
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not self.paused:
            self.kinds[statement.split(None, 1)[0].upper()] += 1

    @contextmanager
    def counting(self) -> Iterator[Counter[str]]:
        self.kinds = Counter()
        yield self.kinds

    @contextmanager
    def timing(self, into: list[float]) -> Iterator[None]:
        """Time what is inside, less the jobs run after its commits."""
        jobs, started = self.jobs_seconds, time.perf_counter()
        yield
        into.append(time.perf_counter() - started - (self.jobs_seconds - jobs))

    def quiet(self, dispatch: Callable[..., int]) -> Callable[..., int]:
        """Leave out what the outbox's dispatch (and the jobs it runs here) sends."""
        def dispatched(*args: Any, **kwargs: Any) -> int:
            self.paused += 1
            started = time.perf_counter()
            try:
                return dispatch(*args, **kwargs)
            finally:
                self.paused -= 1
                self.jobs_seconds += time.perf_counter() - started
        return dispatched


def place(client: Any, admin: dict[str, str], count: int) -> list[dict[str, Any]]:
    """Place one-group orders; return their released groups."""
    groups = []
    for _ in range(count):
        created = client.post("/orders", headers=admin, json={
            "channel": "web", "channel_order_ref": f"B-{uuid.uuid4().hex[:12]}",
            "customer_id": "C-ANA", "currency": "BRL", "service_level": "express",
            "shipping_address": {"name": "Ana Lima", "line1": "Av. Paulista 1000",
                                 "city": "Sao Paulo", "region": "SP",
                                 "postal_code": "01310-100", "country": "BR"},
            "lines": [{"sku": "LAMP-1", "quantity": 2, "unit_price": "89.90"},
                      {"sku": "MUG-2", "quantity": 1, "unit_price": "24.50"}],
            "shipping_amount": "15.00"})
        assert created.status_code == 201, created.json
        [group] = client.get(f"/orders/{created.json['id']}/fulfilment",
                             headers=admin).json["items"]
        assert group["status"] == "released", group
        groups.append(group)
    return groups


def events_for(groups: list[dict[str, Any]], tag: str) -> tuple[list[Any], list[Any], list[Any]]:
    packs, ships, deliveries = [], [], []
    for group in groups:
        n = group["id"]
        tracking = f"{tag}{n:09d}BR"
        packs.append({"event_id": f"{tag}-pack-{n}", "type": "packed", "group_id": n,
                      "package_ref": f"BOX-{n}", "tracking_number": tracking,
                      "weight_kg": 2.5, "lines": [{"sku": line["sku"], "quantity": line[
                          "quantity"]} for line in group["lines"]]})
        ships.append({"event_id": f"{tag}-ship-{n}", "type": "shipped", "group_id": n,
                      "package_ref": f"BOX-{n}"})
        deliveries.append({"event_id": f"{tag}-dlv-{n}", "tracking_number": tracking,
                           "status": "delivered"})
    return packs, ships, deliveries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=200)
    args = parser.parse_args()
    name = f"oms_bench_events_{uuid.uuid4().hex[:8]}"
    url = scratch_database(name)
    try:
        services = build_services(Settings(database_url=url))
        upgrade(services.engine)
        services.close()
        app = create_app({"DATABASE_URL": url, "ADMIN_API_KEY": ADMIN_KEY, "SCHEDULER": "off"})
        client = app.test_client()
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        for path, rows in (
                ("/customers/bulk", [{"id": "C-ANA", "name": "Ana Lima", "tier": "gold",
                                      "credit_limit": "99999999.00", "country": "BR",
                                      "postal_code": "01310"}]),
                ("/products/bulk", PRODUCTS),
                ("/locations/bulk", [{"code": "WH-SP", "name": "Sao Paulo", "kind": "warehouse",
                                      "country": "BR", "latitude": -23.55,
                                      "longitude": -46.63}])):
            assert client.post(path, json={"rows": rows}, headers=admin).json["failed"] == 0
        for product in PRODUCTS:
            assert client.post("/inventory/counts", headers=admin, json={
                "sku": product["sku"], "location": "WH-SP",
                "on_hand": 10 * args.orders}).status_code == 200
        alone, batched = place(client, admin, args.orders), place(client, admin, args.orders)
        statements = Statements(app.extensions["oms"].engine)
        Outbox.dispatch = statements.quiet(Outbox.dispatch)  # type: ignore[method-assign]
        print(f"{args.orders} one-group orders (2 lines), PostgreSQL; statements per event, "
              "the request's own (jobs after commit left out)")
        print(f"{'event':<12}{'alone':>10}{'in a batch':>12}{'ms alone':>10}{'ms batched':>12}"
              "   batch: statements by kind")
        for label, single, bulk, events in zip(
                ("packed", "shipped", "delivered"),
                ("/wms/events", "/wms/events", "/carriers/events"),
                ("/wms/events/bulk", "/wms/events/bulk", "/carriers/events/bulk"),
                zip(events_for(alone, "AL"), events_for(batched, "BT"), strict=True),
                strict=True):
            one_by_one, together = events
            alone_seconds: list[float] = []
            batch_seconds: list[float] = []
            with statements.counting() as alone_kinds, statements.timing(alone_seconds):
                for sent in one_by_one:
                    answer = client.post(single, json=sent, headers=admin)
                    assert answer.json["outcome"] == "applied", answer.json
            with statements.counting() as batch_kinds, statements.timing(batch_seconds):
                answer = client.post(bulk, json={"events": together}, headers=admin)
                assert answer.json["applied"] == len(together), answer.json
            per_alone = sum(alone_kinds.values()) / len(one_by_one)
            per_batch = sum(batch_kinds.values()) / len(together)
            kinds = ", ".join(f"{kind} {count / len(together):.2f}"
                              for kind, count in batch_kinds.most_common())
            print(f"{label:<12}{per_alone:>10.2f}{per_batch:>12.2f}"
                  f"{alone_seconds[0] * 1000 / len(one_by_one):>10.1f}"
                  f"{batch_seconds[0] * 1000 / len(together):>12.1f}   {kinds}")
        app.extensions["oms"].close()
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
