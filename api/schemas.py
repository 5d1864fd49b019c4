"""Marshmallow schemas: what the API accepts and what it returns."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from marshmallow import (
    EXCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from api.problems import flatten_messages
from engine.decisions.recording import full_trace
from engine.iso import country_codes, currency_codes, decimals, minor_units
from engine.status import OrderStatus
from rules.vocabulary import CUSTOMER_TIERS, LOCATION_KINDS, PAYMENT_TERMS, SERVICE_LEVELS

_DECIMAL = re.compile(r"^-?\d{1,12}(\.\d{1,4})?$")
# Years a timestamp filter may name: wide enough for any order, narrow enough to convert.
_YEARS = range(1900, 9000)


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE
        ordered = True


class Money(fields.Field):
    """An amount as a decimal string ("19.90"); never a float."""

    default_error_messages = {
        "invalid": 'must be a decimal string such as "19.90"',
        "negative": "must not be negative",
        "places": "has more than {places} decimals",
    }

    def __init__(self, *, currency_of: str | None = None, places: int = 4,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.currency_of = currency_of  # where the dumped object keeps its currency
        self.places = places

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> Decimal:
        if not isinstance(value, str) or not _DECIMAL.match(value):
            raise self.make_error("invalid")
        amount = Decimal(value)
        if amount < 0:
            raise self.make_error("negative")
        if decimals(amount) > self.places:
            raise self.make_error("places", places=self.places)
        return amount

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        places = 2
        if self.currency_of is not None:
            holder = obj
            for step in self.currency_of.split("."):
                holder = getattr(holder, step)
            places = minor_units(holder)
        return str(Decimal(value).quantize(Decimal(1).scaleb(-places)))


class Measure(fields.Field):
    """A number (weights, sizes, coordinates), kept exactly, with at most `places` decimals."""

    default_error_messages = {"invalid": "must be a finite number",
                              "places": "has more than {places} decimals"}

    def __init__(self, *, places: int = 4, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.places = places

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        number = Decimal(str(value))
        if not number.is_finite() or abs(number) >= 10**9:
            raise self.make_error("invalid")
        if decimals(number) > self.places:
            raise self.make_error("places", places=self.places)
        return number

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        number = Decimal(value).normalize()
        return int(number) if number == number.to_integral_value() else float(number)


def is_clean_text(value: str) -> bool:
    """Tell whether text is free of NUL, other control characters and lone surrogates."""
    return not any(char < " " and char not in "\t\n\r" or "\ud800" <= char <= "\udfff"
                   for char in value)


def no_control_characters(value: str) -> None:
    """Refuse text no database stores faithfully, and text of spaces only."""
    if not is_clean_text(value):
        raise ValidationError("must not contain control characters or invalid unicode")
    if value and not value.strip():
        raise ValidationError("must not be blank")


def reasonable_time(value: datetime) -> None:
    """Refuse timestamps too far out to be an order's (or to convert between zones)."""
    if value.year not in _YEARS:
        raise ValidationError(f"must be between the years {_YEARS.start} and {_YEARS.stop}")


def _one_of(choices: tuple[str, ...] | frozenset[str], what: str) -> validate.Validator:
    return validate.OneOf(sorted(choices), error=f"must be {what}")


def country_field(**kwargs: Any) -> fields.String:
    return fields.String(validate=_one_of(country_codes(), "an ISO 3166-1 alpha-2 country code "
                                          "in upper case, such as BR"), **kwargs)


def currency_field(**kwargs: Any) -> fields.String:
    return fields.String(validate=_one_of(currency_codes(), "an ISO 4217 currency code in "
                                          "upper case, such as BRL"), **kwargs)


def text(maximum: int, **kwargs: Any) -> fields.String:
    return fields.String(validate=[validate.Length(min=1, max=maximum), no_control_characters],
                         **kwargs)


def timestamp(**kwargs: Any) -> fields.AwareDateTime:
    return fields.AwareDateTime(default_timezone=UTC, validate=reasonable_time, **kwargs)


def any_of(field: fields.Field, **kwargs: Any) -> fields.List:
    """A query filter that may be repeated: it matches any of its values."""
    return fields.List(field, validate=validate.Length(max=50), **kwargs)


def version_number(**kwargs: Any) -> fields.Integer:
    """A rule set version number: a positive integer the database can store (32 bits)."""
    return fields.Integer(validate=validate.Range(min=1, max=2**31 - 1), **kwargs)


def quantity(**kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=1, max=1_000_000), **kwargs)


# ----- orders -----

class AddressSchema(StrictSchema):
    name = text(200, required=True)
    line1 = text(200, required=True)
    line2 = text(200, allow_none=True)
    city = text(100, required=True)
    region = text(100, allow_none=True)
    postal_code = text(16, allow_none=True)
    country = country_field(required=True)
    phone = text(40, allow_none=True)


class LineInSchema(StrictSchema):
    sku = text(64, required=True)
    quantity = quantity(required=True)
    unit_price = Money(required=True)


class OrderInSchema(StrictSchema):
    channel = text(64)
    channel_order_ref = text(128)
    customer_id = text(64, required=True)
    currency = currency_field(required=True)
    service_level = fields.String(load_default="standard",
                                  validate=_one_of(SERVICE_LEVELS, "one of "
                                                   + ", ".join(SERVICE_LEVELS)))
    payment_terms = fields.String(validate=_one_of(PAYMENT_TERMS, "one of "
                                                   + ", ".join(PAYMENT_TERMS)))
    shipping_address = fields.Nested(AddressSchema, required=True)
    lines = fields.List(fields.Nested(LineInSchema), required=True,
                        validate=validate.Length(min=1, max=500,
                                                 error="an order has 1 to 500 lines"))
    shipping_amount = Money(load_default=Decimal("0"))
    tax_amount = Money(load_default=Decimal("0"))


class QuantitiesSchema(Schema):
    ordered = fields.Integer(attribute="quantity_ordered")
    allocated = fields.Integer(attribute="quantity_allocated")
    shipped = fields.Integer(attribute="quantity_shipped")
    delivered = fields.Integer(attribute="quantity_delivered")
    cancelled = fields.Integer(attribute="quantity_cancelled")
    returned = fields.Integer(attribute="quantity_returned")
    backordered = fields.Integer(attribute="quantity_backordered",
                                 metadata={"description": "Units waiting for stock"})


_QUANTITIES = QuantitiesSchema()


class LineOutSchema(Schema):
    line_no = fields.Integer()
    sku = fields.String()
    unit_price = Money(currency_of="order.currency")
    line_total = Money(currency_of="order.currency")
    quantities = fields.Function(lambda line: _QUANTITIES.dump(line),
                                 metadata={"type": "object"})


class AddressOutSchema(Schema):
    name = fields.String(attribute="ship_to_name")
    line1 = fields.String(attribute="ship_to_line1")
    line2 = fields.String(allow_none=True, attribute="ship_to_line2")
    city = fields.String(attribute="ship_to_city")
    region = fields.String(allow_none=True, attribute="ship_to_region")
    postal_code = fields.String(allow_none=True, attribute="ship_to_postal_code")
    country = fields.String(attribute="ship_to_country")
    phone = fields.String(allow_none=True, attribute="ship_to_phone")


_ADDRESS = AddressOutSchema()


class OrderOutSchema(Schema):
    id = fields.Integer()
    status = fields.Enum(OrderStatus, by_value=True)
    channel = fields.String()
    channel_order_ref = fields.String(allow_none=True)
    customer_id = fields.String()
    currency = fields.String()
    service_level = fields.String()
    payment_terms = fields.String()
    shipping_address = fields.Function(lambda order: _ADDRESS.dump(order),
                                       metadata={"type": "object"})
    lines = fields.List(fields.Nested(LineOutSchema))
    subtotal = Money(currency_of="currency")
    shipping_amount = Money(currency_of="currency")
    tax_amount = Money(currency_of="currency")
    total = Money(currency_of="currency")
    created_by = fields.String()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


class FulfilmentLineOutSchema(Schema):
    line_no = fields.Function(lambda line: line.order_line.line_no, metadata={"type": "integer"})
    sku = fields.String()
    quantity = fields.Integer()


class FulfilmentGroupOutSchema(Schema):
    id = fields.Integer()
    location = fields.String(attribute="location_code")
    status = fields.String(metadata={"enum": ["allocated", "released", "on_hold", "shipped",
                                             "cancelled"]})
    decision_id = fields.Integer(allow_none=True)
    created_at = fields.AwareDateTime()
    carrier = fields.String(allow_none=True, attribute="carrier_code")
    service = fields.String(allow_none=True, attribute="service_code")
    shipping_cost = Money(allow_none=True)
    promised_at = fields.AwareDateTime(allow_none=True)
    carrier_decision_id = fields.Integer(allow_none=True)
    wms_reference = fields.String(allow_none=True)
    released_at = fields.AwareDateTime(allow_none=True)
    lines = fields.List(fields.Nested(FulfilmentLineOutSchema),
                        metadata={"description": "What the group still has to ship"})


class EventOutSchema(Schema):
    id = fields.Integer()
    type = fields.String()
    occurred_at = fields.AwareDateTime()
    actor = fields.Function(lambda event: {"type": event.actor_type, "id": event.actor_id},
                            metadata={"type": "object"})
    data = fields.Dict()


class DecisionOutSchema(Schema):
    id = fields.Integer()
    stage = fields.String()
    version = fields.Function(lambda d: d.version.version if d.version else None,
                              metadata={"type": "integer"})
    outcome = fields.String()
    decision = fields.Dict()
    facts = fields.Dict()
    trace = fields.Function(full_trace, metadata={"type": "array", "items": {"type": "object"}})
    evaluated_at = fields.AwareDateTime()


class DecisionListSchema(Schema):
    items = fields.List(fields.Nested(DecisionOutSchema))





class EventListSchema(Schema):
    items = fields.List(fields.Nested(EventOutSchema))


class FulfilmentListSchema(Schema):
    items = fields.List(fields.Nested(FulfilmentGroupOutSchema))


class Cursor(fields.Field):
    """An opaque page cursor: a small JSON object naming one position, e.g. {"before": 42}."""

    default_error_messages = {"invalid": "is not a cursor this API returned"}

    def __init__(self, position: str, kind: type[int] | type[str], **kwargs: Any) -> None:
        super().__init__(metadata={"type": "string"}, **kwargs)
        self.position, self.kind = position, kind

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> int | str:
        found = self._position(value, 200)
        if type(found) is not self.kind:  # noqa: E721 - bool must not pass for int
            raise self.make_error("invalid")
        if isinstance(found, int) and not 1 <= found < 2**63:
            raise self.make_error("invalid")
        if isinstance(found, str) and not (0 < len(found) <= 64 and is_clean_text(found)):
            raise self.make_error("invalid")
        return found

    def _position(self, value: Any, longest: int) -> Any:
        """Return what the cursor names at its position (None if nothing), or refuse it."""
        if not isinstance(value, str) or len(value) > longest:
            raise self.make_error("invalid")
        try:
            decoded = json.loads(base64.urlsafe_b64decode(value.encode() + b"=="))
        except (ValueError, binascii.Error, RecursionError) as error:
            raise self.make_error("invalid") from error
        return decoded.get(self.position) if isinstance(decoded, dict) else None


def page_schema(items: type[Schema], name: str) -> type[Schema]:
    """Return the schema of one page of a list: its items and the cursor of the next page."""
    return Schema.from_dict({"items": fields.List(fields.Nested(items)),
                             "next_cursor": fields.String(allow_none=True)}, name=name)


def page(items: list[Any], position: str, next_value: Any) -> dict[str, Any]:
    """Return one page of a list, with an opaque cursor to the next one (None: last page)."""
    cursor = encode_cursor({position: next_value}) if next_value is not None else None
    return {"items": items, "next_cursor": cursor}


def encode_cursor(position: Mapping[str, Any]) -> str:
    """Return the opaque cursor for a page position."""
    raw = json.dumps(dict(position), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class PageQuerySchema(StrictSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = Cursor("after", str)


class OrderQuerySchema(StrictSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = Cursor("before", int)
    # A filter given more than once matches any of its values (`status=new&status=held`).
    status = any_of(fields.Enum(OrderStatus, by_value=True))
    channel = any_of(text(64))
    customer_id = any_of(text(64))
    sku = any_of(text(64))
    created_from = timestamp()
    created_to = timestamp()
    channel_order_ref = any_of(text(128))
    tracking_number = any_of(text(64))
    customer_name = text(200, metadata={"description": "Part of the customer's name, in any "
                                                       "case"})
    updated_from = timestamp(metadata={
        "description": "Orders changed at or after this time (anything on their timeline): "
                       "for integrations that sync"})


class ReasonSchema(StrictSchema):
    reason = text(500, required=True)


class CancelLineSchema(StrictSchema):
    line_no = fields.Integer(strict=True, validate=validate.Range(min=1, max=500), metadata={
        "description": "The order line's number (`lines[].line_no` of the order)"})
    sku = text(64, metadata={"description": "Or its SKU (a SKU listed twice: its lines in "
                                            "order)"})
    quantity = quantity(required=True, metadata={"description": "Units to cancel, at most "
                                                                "those not shipped yet"})

    @validates_schema
    def names_one_line(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("line_no" in data) == ("sku" in data):
            raise ValidationError("name the line by line_no or by sku (one of them)",
                                  "line_no")


class CancelSchema(StrictSchema):
    reason = text(500, required=True)
    lines = fields.List(fields.Nested(CancelLineSchema),
                        validate=validate.Length(min=1, max=500), metadata={
                            "description": "Cancel only these units; without it, "
                                           "everything not shipped yet"})


class NoteSchema(StrictSchema):
    note = text(500)


# ----- reference data -----

class CustomerSchema(StrictSchema):
    id = text(64, required=True)
    name = text(200, required=True)
    email = fields.Email(allow_none=True, validate=validate.Length(max=254))
    tier = fields.String(load_default="standard",
                         validate=_one_of(CUSTOMER_TIERS, "one of " + ", ".join(CUSTOMER_TIERS)))
    credit_limit = Money(allow_none=True, load_default=None, places=2)
    payment_terms = fields.String(load_default="prepaid",
                                  validate=_one_of(PAYMENT_TERMS, "one of "
                                                   + ", ".join(PAYMENT_TERMS)))
    postal_code = text(16, allow_none=True)
    country = country_field(allow_none=True)
    latitude = Measure(allow_none=True, places=6, validate=validate.Range(min=-90, max=90))
    longitude = Measure(allow_none=True, places=6, validate=validate.Range(min=-180, max=180))
    created_at = fields.AwareDateTime(dump_only=True)
    updated_at = fields.AwareDateTime(dump_only=True)


class ProductSchema(StrictSchema):
    sku = text(64, required=True)
    name = text(200, required=True)
    category = text(100, allow_none=True)
    weight_g = fields.Integer(strict=True, required=True,
                              validate=validate.Range(min=0, max=10_000_000))
    length_cm = Measure(required=True, validate=validate.Range(min=0, max=100_000))
    width_cm = Measure(required=True, validate=validate.Range(min=0, max=100_000))
    height_cm = Measure(required=True, validate=validate.Range(min=0, max=100_000))
    value = Money(required=True, currency_of="currency")
    currency = currency_field(required=True)
    hazmat = fields.Boolean(load_default=False)
    active = fields.Boolean(load_default=True)
    created_at = fields.AwareDateTime(dump_only=True)
    updated_at = fields.AwareDateTime(dump_only=True)

    @validates_schema
    def value_fits_the_currency(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "value" in data and "currency" in data:
            places = minor_units(data["currency"])
            if decimals(data["value"]) > places:
                raise ValidationError(f"{data['currency']} amounts have at most {places} "
                                      "decimals", "value")


class LocationSchema(StrictSchema):
    code = text(64, required=True)
    name = text(200, required=True)
    kind = fields.String(required=True,
                         validate=_one_of(LOCATION_KINDS, "one of " + ", ".join(LOCATION_KINDS)))
    line1 = text(200, allow_none=True)
    city = text(100, allow_none=True)
    region = text(100, allow_none=True)
    postal_code = text(16, allow_none=True)
    country = country_field(required=True)
    latitude = Measure(required=True, places=6, validate=validate.Range(min=-90, max=90))
    longitude = Measure(required=True, places=6, validate=validate.Range(min=-180, max=180))
    daily_capacity = fields.Integer(strict=True, allow_none=True,
                                    validate=validate.Range(min=0, max=10_000_000))
    active = fields.Boolean(load_default=True)
    created_at = fields.AwareDateTime(dump_only=True)
    updated_at = fields.AwareDateTime(dump_only=True)


class BulkRowResultSchema(Schema):
    index = fields.Integer()
    key = fields.String(allow_none=True)
    outcome = fields.String(metadata={"enum": ["created", "updated", "error"]})
    errors = fields.List(fields.Dict())


class BulkResultSchema(Schema):
    created = fields.Integer()
    updated = fields.Integer()
    failed = fields.Integer()
    results = fields.List(fields.Nested(BulkRowResultSchema))


# ----- errors -----

class FieldErrorSchema(Schema):
    field = fields.String(metadata={"description": "slash-separated path, e.g. lines/0/quantity"})
    in_ = fields.String(data_key="in", attribute="in",
                        metadata={"enum": ["body", "query", "path"]})
    message = fields.String()


class ProblemSchema(Schema):
    """RFC 9457 problem details, with a stable machine `code`."""

    class Meta:
        unknown = EXCLUDE

    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    code = fields.String()
    detail = fields.String()
    instance = fields.String()
    errors = fields.List(fields.Nested(FieldErrorSchema))
    current_status = fields.String(metadata={"description": "on invalid_transition"})
    requested_status = fields.String(metadata={"description": "on invalid_transition"})
    order_id = fields.Integer(metadata={"description": "on duplicate_order"})


@dataclass(frozen=True)
class RowError:
    """A bulk row that cannot be applied: where it was, what was sent, every bad field."""

    index: int
    row: Any
    errors: list[dict[str, str]]

    def sent(self, field: str) -> str | None:
        """Return a text field of the row as sent, if there is one."""
        value = self.row.get(field) if isinstance(self.row, Mapping) else None
        return value if isinstance(value, str) else None


def check_rows(schema: Schema, rows: list[Any], unique: tuple[str, ...] = (),
               prefix: str = "rows") -> tuple[list[tuple[int, dict[str, Any]]], list[RowError]]:
    """Load each row of a bulk request on its own: the good rows, and per bad row every
    offending field as `rows/<i>/...` (`prefix`: the list's name in the body). With
    `unique`, a row repeating an earlier row's values of those fields is refused too (the
    last of them is named)."""
    good: list[tuple[int, dict[str, Any]]] = []
    bad: list[RowError] = []
    first_seen: dict[tuple[Any, ...], int] = {}
    for index, row in enumerate(rows):
        try:
            loaded = schema.load(row)
        except ValidationError as error:
            bad.append(RowError(index, row, flatten_messages(error.messages, "body",
                                                             f"{prefix}/{index}")))
            continue
        if unique:
            key = tuple(loaded[name] for name in unique)
            if key in first_seen:
                bad.append(RowError(index, row, [{
                    "field": f"{prefix}/{index}/{unique[-1]}", "in": "body",
                    "message": f"appears twice in this request, first at row {first_seen[key]}"}]))
                continue
            first_seen[key] = index
        good.append((index, loaded))
    return good, bad


OrderPageSchema = page_schema(OrderOutSchema, "OrderPage")


# ----- inventory -----

class KeyCursor(Cursor):
    """An opaque cursor naming a position by a composite key, e.g. {"after": ["SKU", "WH"]}."""

    def __init__(self, position: str, size: int, **kwargs: Any) -> None:
        super().__init__(position, str, **kwargs)
        self.size = size

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> Any:
        found = self._position(value, 400)
        if not (isinstance(found, list) and len(found) == self.size
                and all(isinstance(part, str) and 0 < len(part) <= 64 and is_clean_text(part)
                        for part in found)):
            raise self.make_error("invalid")
        return tuple(found)
