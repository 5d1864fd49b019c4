"""The stock ledger: every level is the sum of its movements, and movements are never edited."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from engine.actors import system_actor
from engine.inventory.stock import lock_levels, move
from engine.record import StockLevel, StockMovement

SKUS = ("T-LEDGER-A", "T-LEDGER-B", "T-LEDGER-C")
LOCATIONS = ("T-LG-EAST", "T-LG-WEST")
KEYS = [(sku, code) for sku in SKUS for code in LOCATIONS]


@pytest.fixture
def ledger_world(client, admin, catalog):
    """Our own SKUs and locations, apart from whatever the catalog stocks."""
    products = [{"sku": sku, "name": sku, "weight_g": 100, "length_cm": 1, "width_cm": 1,
                 "height_cm": 1, "value": "1.00", "currency": "BRL"} for sku in SKUS]
    locations = [{"code": code, "name": code, "kind": "warehouse", "country": "BR",
                  "latitude": -23.5, "longitude": -46.6} for code in LOCATIONS]
    for path, rows in (("/products/bulk", products), ("/locations/bulk", locations)):
        response = client.post(path, json={"rows": rows}, headers=admin)
        assert response.json["failed"] == 0, response.json
    return KEYS


class Model:
    """What the levels should be, and whether a change should be accepted."""

    def __init__(self) -> None:
        self.on_hand: dict[tuple[str, str], int] = defaultdict(int)
        self.reserved: dict[tuple[str, str], int] = defaultdict(int)
        self.safety: dict[tuple[str, str], int] = defaultdict(int)

    def accepts(self, kind: str, row: dict) -> bool:
        key = (row["sku"], row["location"])
        if key not in KEYS:
            return False
        target = {"count": lambda: row.get("on_hand", 0),
                  "adjustment": lambda: self.on_hand[key] + row.get("quantity", 0),
                  "receipt": lambda: self.on_hand[key] + row.get("quantity", 0)}[kind]()
        return target >= self.reserved[key]

    def apply(self, kind: str, row: dict) -> None:
        key = (row["sku"], row["location"])
        if kind == "count":
            self.on_hand[key] = row["on_hand"]
            if "safety_stock" in row:
                self.safety[key] = row["safety_stock"]
        else:
            self.on_hand[key] += row["quantity"]


def random_row(rng: random.Random, kind: str) -> dict:
    sku, code = rng.choice(KEYS)
    if rng.random() < 0.05:  # now and then a SKU or location that does not exist
        sku, code = rng.choice([("T-GHOST", code), (sku, "T-NOWHERE")])
    row: dict = {"sku": sku, "location": code, "reference": f"DOC-{rng.randrange(10**6)}"}
    if kind == "count":
        row["on_hand"] = rng.randrange(0, 40)
        if rng.random() < 0.3:
            row["safety_stock"] = rng.randrange(0, 5)
    elif kind == "adjustment":
        row["quantity"] = rng.choice([n for n in range(-25, 16) if n])
        row["reason"] = "random adjustment"
    else:
        row["quantity"] = rng.randrange(1, 20)
    return row


def reserve_or_release(services, rng: random.Random, model: Model) -> None:
    """Reserve or give back units as sourcing and cancellations do (no API does this)."""
    key = rng.choice(KEYS)
    free = model.on_hand[key] - model.reserved[key]
    with services.uow() as uow:
        level = lock_levels(uow, [key])[key]
        if model.reserved[key] and rng.random() < 0.5:
            units = rng.randrange(1, model.reserved[key] + 1)
            move(uow, system_actor("test"), level, "release", 0, -units, order_id=1)
            model.reserved[key] -= units
        elif free > 0:
            units = rng.randrange(1, free + 1)
            move(uow, system_actor("test"), level, "reservation", 0, units, order_id=1)
            model.reserved[key] += units
        uow.commit()


PATHS = {"count": "/inventory/counts", "adjustment": "/inventory/adjustments",
         "receipt": "/inventory/receipts"}


def test_every_level_is_the_sum_of_its_ledger_after_a_random_history(client, admin, services,
                                                                     ledger_world):
    rng = random.Random(20261122)
    model = Model()
    refused = applied = 0
    for _ in range(300):
        roll = rng.random()
        kind = rng.choice(list(PATHS))
        if roll < 0.15:
            reserve_or_release(services, rng, model)
        elif roll < 0.30:  # a bulk of a few rows, some of them refused
            rows = [random_row(rng, kind) for _ in range(rng.randrange(1, 8))]
            response = client.post(PATHS[kind] + "/bulk", json={"rows": rows}, headers=admin)
            assert response.status_code == 200, response.json
            for row, result in zip(rows, response.json["results"], strict=True):
                expected = model.accepts(kind, row)
                assert (result["outcome"] == "applied") is expected, (row, result)
                if expected:
                    model.apply(kind, row)
                    applied += 1
                else:
                    refused += 1
        else:
            row = random_row(rng, kind)
            response = client.post(PATHS[kind], json=row, headers=admin)
            if model.accepts(kind, row):
                assert response.status_code == 200, (row, response.json)
                model.apply(kind, row)
                applied += 1
            else:
                assert response.status_code in (409, 422), (row, response.json)
                refused += 1
    assert applied > 150 and refused > 20  # the history exercised both

    # the levels are what the model says, as the API reports them
    for sku, code in KEYS:
        [level] = client.get(f"/inventory?sku={sku}&location={code}", headers=admin).json[
            "items"] or [{"on_hand": 0, "reserved": 0, "safety_stock": 0}]
        assert (level["on_hand"], level["reserved"], level["safety_stock"]) == (
            model.on_hand[(sku, code)], model.reserved[(sku, code)], model.safety[(sku, code)])
    assert_ledger_adds_up(services)


def assert_ledger_adds_up(services) -> None:
    """Check every level in the database against its movements, in id order."""
    with services.uow() as uow:
        levels = {(level.sku, level.location_code): (level.on_hand, level.reserved)
                  for level in uow.session.scalars(select(StockLevel))}
        movements: dict[tuple[str, str], list[tuple[int, int, int, int]]] = defaultdict(list)
        for movement in uow.session.scalars(select(StockMovement).order_by(StockMovement.id)):
            movements[(movement.sku, movement.location_code)].append(
                (movement.on_hand_change, movement.reserved_change, movement.on_hand_after,
                 movement.reserved_after))
    assert set(movements) <= set(levels)  # no movement of a level that does not exist
    for key, (level_on_hand, level_reserved) in levels.items():
        history = movements.get(key, [])
        assert level_on_hand == sum(change for change, _, _, _ in history), key
        assert level_reserved == sum(change for _, change, _, _ in history), key
        on_hand = reserved = 0
        for on_hand_change, reserved_change, on_hand_after, reserved_after in history:
            # each movement's "after" follows from the one before
            on_hand += on_hand_change
            reserved += reserved_change
            assert (on_hand_after, reserved_after) == (on_hand, reserved), key
            assert 0 <= reserved <= on_hand
        if history:
            assert history[-1][2:] == (level_on_hand, level_reserved), key


def test_concurrent_changes_to_the_same_levels_keep_the_ledger_whole(live_server, admin,
                                                                    services, ledger_world):
    # given two levels of 50 units, changed by many requests at once over HTTP
    keys = KEYS[:2]
    for sku, code in keys:
        status, _, body = live_server.request("POST", "/inventory/counts",
                                              {"sku": sku, "location": code, "on_hand": 50},
                                              admin)
        assert status == 200, body
    rng = random.Random(7)
    batches = [[{"sku": sku, "location": code, "quantity": rng.choice([-9, -4, 3, 6]),
                 "reason": "concurrent"} for sku, code in rng.sample(keys + keys, 3)]
               for _ in range(40)]

    def send(rows):
        status, _, body = live_server.request("POST", "/inventory/adjustments/bulk",
                                              {"rows": rows}, admin)
        assert status == 200, body
        return json.loads(body)["results"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(send, batches))
    # then each level moved by exactly what was applied, and the ledger adds up
    moved = defaultdict(int)
    for rows, outcome in zip(batches, results, strict=True):
        for row, result in zip(rows, outcome, strict=True):
            if result["outcome"] == "applied":
                moved[(row["sku"], row["location"])] += row["quantity"]
    with services.uow() as uow:
        for key in keys:
            assert uow.session.get(StockLevel, key).on_hand == 50 + moved[key]
    assert_ledger_adds_up(services)


def test_the_ledger_refuses_updates_and_deletes(client, admin, services, ledger_world):
    sku, code = KEYS[0]
    client.post("/inventory/receipts", json={"sku": sku, "location": code, "quantity": 5},
                headers=admin)
    before = client.get(f"/inventory/ledger?sku={sku}&location={code}", headers=admin).json
    assert len(before["items"]) == 1
    for statement in ("UPDATE stock_movements SET on_hand_change = 500",
                      "UPDATE stock_movements SET reason = 'forged' WHERE id > 0",
                      "DELETE FROM stock_movements"):
        with services.engine.connect() as connection, pytest.raises(DatabaseError) as refused:
            connection.execute(text(statement))
        assert "append-only" in str(refused.value)
    assert client.get(f"/inventory/ledger?sku={sku}&location={code}",
                      headers=admin).json == before
