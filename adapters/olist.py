"""The Olist public e-commerce data pack, as API-shaped rows and orders for demos and benchmarks.

Everything returned here is JSON-ready in exactly the shape the API accepts, so the same
rows can be posted over HTTP (benchmarks) or loaded through the API's schemas (the demo).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

from adapters.settings import PROJECT_ROOT

DEFAULT_DIR = PROJECT_ROOT.parent / "shared" / "data" / "olist"
CHANNEL = "olist"
CURRENCY = "BRL"
TIERS = ("standard", "standard", "standard", "silver", "gold", "platinum")
PAYMENT_TERMS = {"credit_card": "card", "debit_card": "card", "boleto": "prepaid",
                 "voucher": "prepaid"}


def data_dir() -> Path:
    """Return where the pack lives: OMS_OLIST_DIR, or shared/data/olist beside the repo."""
    return Path(os.environ.get("OMS_OLIST_DIR") or DEFAULT_DIR)


def _rows(directory: Path, name: str) -> Iterator[dict[str, str]]:
    with gzip.open(directory / f"{name}.csv.gz", "rt", encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


def _measure(raw: str, default: int) -> int:
    return int(float(raw)) if raw else default


def _stable_choice(key: str, options: tuple[str, ...]) -> str:
    digest = hashlib.sha256(key.encode()).digest()
    return options[digest[0] % len(options)]


@dataclass
class OlistPack:
    """The pack, read lazily; each property is computed once."""

    directory: Path = field(default_factory=data_dir)

    @cached_property
    def prefixes(self) -> dict[str, dict[str, str]]:
        return {row["geolocation_zip_code_prefix"]: row
                for row in _rows(self.directory, "zip_prefixes")}

    @cached_property
    def items(self) -> list[dict[str, str]]:
        return list(_rows(self.directory, "order_items"))

    @cached_property
    def products(self) -> list[dict[str, Any]]:
        """Every product of the catalogue, priced at its median selling price."""
        english = {row["product_category_name"]: row["product_category_name_english"]
                   for row in _rows(self.directory, "category_translation")}
        prices: dict[str, list[Decimal]] = defaultdict(list)
        for item in self.items:
            prices[item["product_id"]].append(Decimal(item["price"]))
        rows = []
        for row in _rows(self.directory, "products"):
            sku = row["product_id"]
            category = english.get(row["product_category_name"],
                                   row["product_category_name"] or None)
            weight = _measure(row["product_weight_g"], 500)
            seen = prices.get(sku)
            # Never-sold products get a price that grows with weight, like the ones sold.
            value = (statistics.median(seen) if seen
                     else Decimal(20) + Decimal(weight) / 40).quantize(Decimal("0.01"))
            rows.append({
                "sku": sku,
                "name": f"{(category or 'product').replace('_', ' ')} {sku[:6]}",
                "category": category,
                "weight_g": weight,
                "length_cm": _measure(row["product_length_cm"], 20),
                "width_cm": _measure(row["product_width_cm"], 15),
                "height_cm": _measure(row["product_height_cm"], 10),
                "value": str(value),
                "currency": CURRENCY,
                "hazmat": False,
            })
        return rows

    @cached_property
    def customers(self) -> list[dict[str, Any]]:
        """Every customer of the sample orders, placed at their postal prefix."""
        terms: dict[str, str] = {}
        orders_by_customer = {row["order_id"]: row["customer_id"]
                              for row in _rows(self.directory, "orders")}
        for payment in _rows(self.directory, "payments"):
            customer = orders_by_customer.get(payment["order_id"])
            if customer is not None and payment["payment_sequential"] == "1":
                terms[customer] = PAYMENT_TERMS.get(payment["payment_type"], "prepaid")
        rows = []
        for row in _rows(self.directory, "customers"):
            prefix = self.prefixes.get(row["customer_zip_code_prefix"])
            rows.append({
                "id": row["customer_id"],
                "name": f"Olist customer {row['customer_unique_id'][:8]}",
                "tier": _stable_choice(row["customer_unique_id"], TIERS),
                "payment_terms": terms.get(row["customer_id"], "prepaid"),
                "postal_code": row["customer_zip_code_prefix"],
                "country": "BR",
                "latitude": round(float(prefix["lat_median"]), 4) if prefix else None,
                "longitude": round(float(prefix["lng_median"]), 4) if prefix else None,
            })
        return rows

    @cached_property
    def customer_places(self) -> dict[str, tuple[str, str, str]]:
        """Customer id -> (postal prefix, city, state)."""
        return {row["customer_id"]: (row["customer_zip_code_prefix"], row["customer_city"],
                                     row["customer_state"])
                for row in _rows(self.directory, "customers")}

    @cached_property
    def _places(self) -> dict[str, tuple[str, str]]:
        """Seller id -> (city, state): sellers of one city ship from one location."""
        return {row["seller_id"]: (row["seller_city"].strip().lower(), row["seller_state"])
                for row in _rows(self.directory, "sellers")}

    @staticmethod
    def location_code(place: tuple[str, str]) -> str:
        city, state = place
        slug = "".join(ch if ch.isalnum() else "-" for ch in city.upper()).strip("-")
        return f"BR-{state}-{slug}"[:64]

    @cached_property
    def _seller_points(self) -> dict[str, tuple[float, float]]:
        sellers = {row["seller_id"]: row["seller_zip_code_prefix"]
                   for row in _rows(self.directory, "sellers")}
        return {seller: (float(area["lat_median"]), float(area["lng_median"]))
                for seller, prefix in sellers.items()
                if (area := self.prefixes.get(prefix)) is not None}

    def locations(self, warehouses: int = 40) -> list[dict[str, Any]]:
        """Every city with sellers that sold something, as one fulfilment location.

        The cities that ship the most items are warehouses; the others are stores, with a
        daily capacity. A location sits at the median of its sellers' postal coordinates.
        """
        volume: Counter[str] = Counter(
            self.location_code(self._places[item["seller_id"]]) for item in self.items)
        points: dict[str, list[tuple[float, float]]] = defaultdict(list)
        places: dict[str, tuple[str, str]] = {}
        for seller, point in self._seller_points.items():
            code = self.location_code(self._places[seller])
            points[code].append(point)
            places.setdefault(code, self._places[seller])
        rows = []
        for rank, (code, _) in enumerate(volume.most_common()):
            if not points[code]:
                continue
            city, state = places[code]
            is_warehouse = rank < warehouses
            rows.append({
                "code": code,
                "name": f"{city.title()} {'fulfilment centre' if is_warehouse else 'store'}",
                "kind": "warehouse" if is_warehouse else "store",
                "city": city.title()[:100],
                "region": state,
                "country": "BR",
                "latitude": round(statistics.median(p[0] for p in points[code]), 4),
                "longitude": round(statistics.median(p[1] for p in points[code]), 4),
                "daily_capacity": None if is_warehouse else 50,
            })
        return rows

    def stock(self, per_sale: int = 5, spare: int = 3) -> list[dict[str, Any]]:
        """On-hand counts seeded from sales: per product and selling city, 5 per item sold
        plus 3, at the locations `locations()` returns."""
        located = {row["code"] for row in self.locations()}
        sold: Counter[tuple[str, str]] = Counter(
            (item["product_id"], self.location_code(self._places[item["seller_id"]]))
            for item in self.items)
        return [{"sku": sku, "location": code, "on_hand": count * per_sale + spare}
                for (sku, code), count in sorted(sold.items()) if code in located]

    def postal_areas(self) -> list[dict[str, Any]]:
        """Every postal prefix with its coordinates, city and state."""
        return [{"country": "BR", "prefix": prefix,
                 "latitude": Decimal(row["lat_median"]).quantize(Decimal("0.000001")),
                 "longitude": Decimal(row["lng_median"]).quantize(Decimal("0.000001")),
                 "city": row["city_mode"].title()[:100] or None,
                 "region": row["state_mode"] or None}
                for prefix, row in self.prefixes.items()]

    def sample_orders(self) -> list[dict[str, Any]]:
        """The pack's real orders that have items, as POST /orders bodies."""
        lines: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
        freight: dict[str, Decimal] = defaultdict(Decimal)
        for item in self.items:
            lines[item["order_id"]][(item["product_id"], item["price"])] += 1
            freight[item["order_id"]] += Decimal(item["freight_value"])
        bodies = []
        for row in _rows(self.directory, "orders"):
            order_id = row["order_id"]
            if order_id not in lines:
                continue
            body = self._order_body(row["customer_id"], [
                {"sku": sku, "quantity": quantity, "unit_price": price}
                for (sku, price), quantity in lines[order_id].items()
            ])
            body["channel_order_ref"] = order_id
            body["shipping_amount"] = str(freight[order_id])
            bodies.append(body)
        return bodies

    def _order_body(self, customer_id: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
        prefix, city, state = self.customer_places[customer_id]
        return {
            "channel": CHANNEL,
            "customer_id": customer_id,
            "currency": CURRENCY,
            "service_level": "standard",
            "shipping_address": {
                "name": f"Olist customer {customer_id[:8]}",
                "line1": f"Endereco {customer_id[:4]}",
                "city": city.title(),
                "region": state,
                "postal_code": f"{prefix}-000",
                "country": "BR",
            },
            "lines": lines,
        }


class OrderGenerator:
    """Realistic orders in any number, sampled from the catalogue and the customers (seeded)."""

    def __init__(self, pack: OlistPack, seed: int = 7) -> None:
        self.pack = pack
        self.random = random.Random(seed)
        sold = Counter(item["product_id"] for item in pack.items)
        self.skus = list(sold)
        self.weights = [sold[sku] for sku in self.skus]
        self.prices = {row["sku"]: row["value"] for row in pack.products}
        self.customer_ids = [row["id"] for row in pack.customers]
        self.count = 0

    def next_order(self) -> dict[str, Any]:
        """Return one POST /orders body with 1 to 3 lines and a fresh channel reference."""
        self.count += 1
        line_count = self.random.choices((1, 2, 3), weights=(88, 10, 2))[0]
        skus: list[str] = []
        while len(skus) < line_count:
            sku = self.random.choices(self.skus, weights=self.weights)[0]
            if sku not in skus:
                skus.append(sku)
        body = self.pack._order_body(self.random.choice(self.customer_ids), [
            {"sku": sku, "quantity": self.random.choices((1, 2, 3), weights=(90, 8, 2))[0],
             "unit_price": self.prices[sku]}
            for sku in skus
        ])
        body["channel_order_ref"] = f"GEN-{self.random.getrandbits(48):012x}-{self.count}"
        return body
