from __future__ import annotations

from decimal import Decimal

import pytest
from marshmallow import ValidationError

from api.problems import flatten_messages
from api.schemas import OrderInSchema, OrderQuerySchema, encode_cursor
from tests.conftest import order_body


def errors_of(body: dict) -> dict[str, str]:
    with pytest.raises(ValidationError) as raised:
        OrderInSchema().load(body)
    return {entry["field"]: entry["message"]
            for entry in flatten_messages(raised.value.messages, "body")}


def test_a_valid_order_loads_with_exact_decimals():
    loaded = OrderInSchema().load(order_body())
    assert loaded["lines"][0]["unit_price"] == Decimal("89.90")
    assert loaded["shipping_amount"] == Decimal("15.00")
    assert loaded["tax_amount"] == Decimal("0")


def test_every_bad_field_is_reported_at_once():
    body = order_body(currency="XYZ", surprise=True)
    body["shipping_address"] = {"name": "A", "line1": "B", "city": "C", "country": "Brazil"}
    body["lines"] = [{"sku": "LAMP-1", "quantity": 0, "unit_price": "1.00"},
                     {"sku": "MUG-2", "quantity": "2", "unit_price": 3.5}]
    errors = errors_of(body)
    assert set(errors) == {"currency", "surprise", "shipping_address/country",
                           "lines/0/quantity", "lines/1/quantity", "lines/1/unit_price"}
    assert "ISO 4217" in errors["currency"]
    assert "ISO 3166" in errors["shipping_address/country"]
    assert errors["surprise"] == "Unknown field."


def test_quantities_are_positive_integers_not_floats_or_strings():
    for bad in (0, -1, 1.5, "1", True):
        body = order_body(lines=[{"sku": "LAMP-1", "quantity": bad, "unit_price": "1.00"}])
        assert "lines/0/quantity" in errors_of(body), bad


def test_money_is_a_decimal_string_never_a_float():
    for bad in (19.9, "19,90", "1e3", "-1.00", "12.34567", ""):
        body = order_body(lines=[{"sku": "LAMP-1", "quantity": 1, "unit_price": bad}])
        assert "lines/0/unit_price" in errors_of(body), bad


def test_an_order_needs_at_least_one_line_and_the_required_fields():
    errors = errors_of({"lines": []})
    assert {"customer_id", "currency", "shipping_address", "lines"} <= set(errors)


def test_a_cursor_the_api_returned_reads_back_and_a_forged_one_is_refused():
    assert OrderQuerySchema().load({"cursor": encode_cursor({"before": 42})})["cursor"] == 42
    with pytest.raises(ValidationError) as raised:
        OrderQuerySchema().load({"cursor": "not-a-cursor!"})
    assert "cursor" in raised.value.messages
