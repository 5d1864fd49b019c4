"""Carriers: services, limits, surcharges and rate cards, read and replaced whole."""

from __future__ import annotations

from functools import partial
from typing import Any

from flask_smorest import Blueprint
from marshmallow import ValidationError, fields, pre_load, validate, validates_schema

from adapters import carriers as adapters_carriers
from api.access import allow
from api.problems import ApiProblem, document_errors, field_errors
from api.schemas import Measure, Money, StrictSchema, _one_of, text
from api.transactions import command, request_uow
from engine.carriers import rate_cards
from engine.errors import FieldProblem
from engine.record import Carrier
from rules.vocabulary import SERVICE_LEVELS

READERS = ("ops", "analyst")  # negotiated rates are not for integrations to read
WRITERS = ("ops",)  # and admin: the people who negotiate rates keep them current
CODE = validate.Regexp(r"^[A-Z0-9][A-Z0-9_.-]{0,31}$",
                       error="1 to 32 upper-case letters, digits, '_', '.' or '-'")

blp = Blueprint("carriers", __name__, url_prefix="/carriers",
                description="Carriers, their services and rate cards")
_errors = partial(document_errors, blp)


class RateSchema(StrictSchema):
    max_km = fields.Integer(required=True, strict=True,
                            validate=validate.Range(min=1, max=50_000))
    max_kg = Measure(required=True, places=3, validate=validate.Range(min=0.001, max=100_000))
    price = Money(required=True)
    transit_days = fields.Integer(required=True, strict=True,
                                  validate=validate.Range(min=0, max=90))


class ServiceSchema(StrictSchema):
    code = fields.String(required=True, validate=CODE)
    name = text(200, required=True)
    service_level = fields.String(required=True, validate=_one_of(
        SERVICE_LEVELS, "one of " + ", ".join(SERVICE_LEVELS)))
    mode = fields.String(required=True, validate=_one_of(("air", "ground"), "air or ground"))
    max_weight_kg = Measure(required=True, places=3,
                            validate=validate.Range(min=0.001, max=100_000))
    insured = fields.Boolean(load_default=False)
    max_insured_value = Money(load_default=0)
    hazmat_allowed = fields.Boolean(load_default=False)
    cutoff_hour = fields.Integer(load_default=16, strict=True,
                                 validate=validate.Range(min=0, max=24),
                                 metadata={"description": "UTC hour after which it ships the "
                                                          "next day (24: never)"})
    dim_divisor = fields.Integer(load_default=6000, strict=True,
                                 validate=validate.Range(min=1000, max=10_000),
                                 metadata={"description": "cm3 per billable kg"})
    fuel_surcharge_pct = Measure(load_default=0, places=2, validate=validate.Range(0, 100))
    hazmat_fee = Money(load_default=0)
    insurance_pct = Measure(load_default=0, places=2, validate=validate.Range(0, 100),
                            metadata={"description": "percent of the insured value"})
    rates = fields.List(fields.Nested(RateSchema), required=True,
                        validate=validate.Length(min=1, max=2000))

    @validates_schema(skip_on_field_errors=False)  # listed with the other bad fields
    def unique_cells(self, data: dict[str, Any], **kwargs: Any) -> None:
        cells = [(rate["max_km"], rate["max_kg"]) for rate in data.get("rates", [])
                 if "max_km" in rate and "max_kg" in rate]
        if len(cells) != len(set(cells)):
            raise ValidationError("two rates for the same distance and weight", "rates")


class CarrierSchema(StrictSchema):
    code = fields.String(required=True, validate=CODE)
    name = text(200, required=True)
    active = fields.Boolean(load_default=True)
    services = fields.List(fields.Nested(ServiceSchema), required=True,
                           validate=validate.Length(min=1, max=50))
    updated_at = fields.AwareDateTime(dump_only=True)

    @validates_schema(skip_on_field_errors=False)
    def unique_services(self, data: dict[str, Any], **kwargs: Any) -> None:
        codes = [service["code"] for service in data.get("services", []) if "code" in service]
        if len(codes) != len(set(codes)):
            raise ValidationError("two services with the same code", "services")


class CarrierListSchema(StrictSchema):
    items = fields.List(fields.Nested(CarrierSchema))


class CarrierPutSchema(CarrierSchema):
    """A whole carrier, as GET returns it: `code` may be sent if it is the path's, and the
    read-only `updated_at` is ignored, so a GET can be edited and PUT back."""

    code = fields.String(validate=CODE)

    @pre_load
    def drop_read_only(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict):
            data = {key: value for key, value in data.items() if key != "updated_at"}
        return data


@blp.route("", methods=["GET"])
@allow(*READERS, scope="global")
@_errors(401, 403)
@blp.response(200, CarrierListSchema)
def list_carriers() -> dict[str, Any]:
    """List every carrier with its services and rate cards."""
    return {"items": rate_cards.list_carriers(request_uow())}


@blp.route("/<key:code>", methods=["GET"])
@allow(*READERS, scope="global")
@_errors(401, 403, 404)
@blp.response(200, CarrierSchema)
def read_carrier(code: str) -> Carrier:
    """Read one carrier."""
    return rate_cards.get_carrier(request_uow(), code)


@blp.route("/<key:code>", methods=["PUT"])
@allow(*WRITERS, scope="global")
@command
@_errors(400, 401, 403, 413, 415, 422)
@blp.arguments(CarrierPutSchema())
@blp.response(200, CarrierSchema)
def replace_carrier(data: dict[str, Any], code: str) -> tuple[Carrier, int]:
    """Create a carrier or replace it whole; shipments already rated keep their choice."""
    try:
        CODE(code)
    except ValidationError as error:
        problems = field_errors([FieldProblem("code", str(error.messages[0]))], "path")
        raise ApiProblem(422, "validation_failed", "1 field(s) are invalid",
                         errors=problems) from error
    if data.get("code", code) != code:
        raise ApiProblem(422, "validation_failed", "1 field(s) are invalid", errors=[
            {"field": "code", "in": "body", "message": f"must be {code!r}, as in the path"}])
    carrier, created = rate_cards.replace_carrier(request_uow(), {**data, "code": code})
    return carrier, 201 if created else 200


def carriers_document(rows: list[Carrier]) -> dict[str, Any]:
    """Return carriers as the file `oms carriers import` reads."""
    return {"carriers": CarrierSchema(many=True, exclude=("updated_at",)).dump(rows)}


def shipped_carriers() -> list[dict[str, Any]]:
    """Return the carriers shipped with the service, checked like a PUT."""
    rows = adapters_carriers.shipped_carriers()
    loaded: list[dict[str, Any]] = CarrierSchema(many=True).load(rows)
    return loaded
