"""The analysts' API: rule set versions per stage, checks, publish, rollback, diff, dry run."""

from __future__ import annotations

from functools import partial
from typing import Any

from flask import url_for
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate, validates_schema
from marshmallow import ValidationError as SchemaError

from api.access import allow, current_actor
from api.orders import draft_from
from api.problems import document_errors
from api.schemas import OrderInSchema, StrictSchema, reasonable_time, text, version_number
from api.transactions import command, request_uow
from api.wiring import services
from engine.decisions import rulesets, trials
from engine.record import RuleSetVersion
from engine.status import RuleSetState
from rules.stages import STAGES

blp = Blueprint("rules", __name__, url_prefix="/rules",
                description="Rule sets: versions, checks, publish, rollback, dry run")
_document_errors = partial(document_errors, blp)

READERS = ("analyst", "ops", "channel")  # a channel simulates over its own orders
STAGE = "/<string:stage>"
VERSION = STAGE + "/versions/<int(min=1, max=2147483647):version>"


class DraftSchema(StrictSchema):
    document = fields.Dict(required=True, metadata={
        "description": "The rule set: {\"rules\": [{\"name\", \"conditions\", \"actions\"}]}"})
    comment = text(500, required=True)


class DocumentSchema(StrictSchema):
    document = fields.Dict(required=True)


class CommentSchema(StrictSchema):
    comment = text(500, required=True)


class DiffQuerySchema(StrictSchema):
    from_ = version_number(data_key="from", required=True)
    to = version_number(required=True)


class DryRunSchema(StrictSchema):
    version = version_number(metadata={"description": "a stored version (default: published)"})
    document = fields.Dict(metadata={"description": "or a rule set not stored yet"})
    order_id = fields.Integer(validate=validate.Range(min=1, max=2**63 - 1),
                              metadata={"description": "an existing order"})
    order = fields.Nested(OrderInSchema, metadata={"description": "or an order as posted"})

    OPENAPI_RULES = {
        "description": "Give at most one of `version` and `document` (neither: the published "
                       "version), and exactly one of `order_id` and `order`; otherwise 422.",
        "allOf": [{"not": {"required": ["version", "document"]}},
                  {"oneOf": [{"required": ["order_id"]}, {"required": ["order"]}]}],
    }

    @validates_schema
    def one_of_each(self, data: dict[str, Any], **kwargs: Any) -> None:
        problems: dict[str, list[str]] = {}
        if "version" in data and "document" in data:
            problems["document"] = ["give a version or a document, not both"]
        if ("order_id" in data) == ("order" in data):
            problems["order_id"] = ["give exactly one of order_id and order"]
        if problems:
            raise SchemaError(problems)


class VersionSchema(Schema):
    stage = fields.String()
    version = fields.Integer()
    state = fields.String(metadata={"enum": [state.value for state in RuleSetState]})
    comment = fields.String()
    author = fields.String()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()
    published_at = fields.AwareDateTime(allow_none=True)
    published_by = fields.String(allow_none=True)
    approved_at = fields.AwareDateTime(allow_none=True)
    approved_by = fields.String(allow_none=True)


class RuleWarningSchema(Schema):
    field = fields.String(metadata={"description": "document plus a JSON pointer"})
    message = fields.String()


class VersionDetailSchema(VersionSchema):
    document = fields.Dict()
    warnings = fields.List(fields.Nested(RuleWarningSchema), metadata={
        "description": "what to look at although the checks pass: in a first-match stage, "
                       "rules that overlap (only the earlier acts), each with its pointer"})

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        if attr == "warnings" and isinstance(obj, RuleSetVersion):
            return rulesets.warnings_of(obj.stage, obj.document)
        return super().get_attribute(obj, attr, default)


class VersionListSchema(Schema):
    items = fields.List(fields.Nested(VersionSchema))


class StageSchema(Schema):
    name = fields.String()
    description = fields.String()
    stop_on_first_trigger = fields.Boolean()
    published_version = fields.Integer(allow_none=True)


class StageListSchema(Schema):
    items = fields.List(fields.Nested(StageSchema))


class ChangeSchema(Schema):
    rule = fields.String()
    change = fields.String(metadata={"enum": ["added", "removed", "changed"]})
    before = fields.Dict(allow_none=True)
    after = fields.Dict(allow_none=True)


class FieldChangeSchema(Schema):
    path = fields.String(metadata={"description": "JSON pointer into the newer version "
                                                  "(the older one for a removed rule)"})
    change = fields.String(metadata={"enum": ["added", "removed", "changed", "moved"]})
    before = fields.Raw(allow_none=True)
    after = fields.Raw(allow_none=True)
    rule = fields.String(allow_none=True)


class DiffSchema(Schema):
    stage = fields.String()
    from_ = fields.Integer(data_key="from")
    to = fields.Integer()
    changes = fields.List(fields.Nested(ChangeSchema))
    fields_ = fields.List(fields.Nested(FieldChangeSchema), data_key="fields", metadata={
        "description": "every changed field, down to the value "
                       "(/rules/5/conditions/all/1/value: 2000 -> 1500)"})


class AuditEntrySchema(Schema):
    version = fields.Integer()
    action = fields.String()
    actor = fields.String()
    comment = fields.String(allow_none=True)
    occurred_at = fields.AwareDateTime()


class HistorySchema(Schema):
    items = fields.List(fields.Nested(AuditEntrySchema))


class EditorSchema(Schema):
    variables = fields.List(fields.Dict(), metadata={
        "description": "name, label, field_type and options of each variable"})
    variable_type_operators = fields.Dict(metadata={
        "description": "per field type: each operator's name, label and input_type"})
    actions = fields.List(fields.Dict(), metadata={"description": "name, label and params"})
    stop_on_first_trigger = fields.Boolean()


class TestRunSchema(Schema):
    tests = fields.Integer()
    passed = fields.Boolean()
    failures = fields.List(fields.Dict())


class CheckResultSchema(Schema):
    valid = fields.Boolean()
    warnings = fields.List(fields.Nested(RuleWarningSchema))


class DryRunResultSchema(Schema):
    stage = fields.String()
    version = fields.Integer(allow_none=True)
    outcome = fields.String()
    decision = fields.Dict()
    facts = fields.Dict()
    trace = fields.List(fields.Dict())


@blp.route("", methods=["GET"])
@allow(*READERS, scope="global")
@_document_errors(401, 403)
@blp.response(200, StageListSchema)
def list_stages() -> dict[str, Any]:
    """List the decision stages and the version each one runs now."""
    uow = request_uow()
    items = []
    for name, stage in STAGES.items():
        published = rulesets.published_version(uow, name)
        items.append({"name": name, "description": stage.description,
                      "stop_on_first_trigger": stage.stop_on_first_trigger,
                      "published_version": published.version if published else None})
    return {"items": items}


@blp.route(STAGE + "/schema", methods=["GET"])
@allow(*READERS, scope="global")
@_document_errors(401, 403, 404)
@blp.response(200, EditorSchema)
def stage_schema(stage: str) -> dict[str, Any]:
    """Return what a rule of this stage may use: variables, operators per type, actions."""
    schema: dict[str, Any] = rulesets.stage_named(stage).schema()
    return schema


@blp.route(STAGE + "/versions", methods=["GET"])
@allow(*READERS, scope="global")
@_document_errors(401, 403, 404)
@blp.response(200, VersionListSchema)
def list_versions(stage: str) -> dict[str, Any]:
    """List a stage's versions, newest first."""
    return {"items": rulesets.list_versions(request_uow(), stage)}


@blp.route(STAGE + "/versions", methods=["POST"])
@allow("analyst", scope="global")
@command
@_document_errors(400, 401, 403, 404, 413, 415)
@blp.arguments(DraftSchema())
@blp.response(201, VersionDetailSchema)
def create_draft(data: dict[str, Any],
                 stage: str) -> tuple[RuleSetVersion, int, dict[str, str]]:
    """Save a rule set as a new draft version; a set that fails its checks is refused (422)
    with the JSON pointer of every bad node, and nothing is stored."""
    draft = rulesets.create_draft(request_uow(), current_actor(), stage, data["document"],
                                  data["comment"])
    return draft, 201, {"Location": url_for("rules.get_version", stage=stage,
                                            version=draft.version)}


@blp.route(VERSION, methods=["GET"])
@allow(*READERS, scope="global")
@_document_errors(401, 403, 404)
@blp.response(200, VersionDetailSchema)
def get_version(stage: str, version: int) -> RuleSetVersion:
    """Read one version with its rules."""
    return rulesets.get_version(request_uow(), stage, version)


@blp.route(VERSION, methods=["PUT"])
@allow("analyst", scope="global")
@command
@_document_errors(400, 401, 403, 404, 409, 413, 415)
@blp.arguments(DraftSchema())
@blp.response(200, VersionDetailSchema)
def update_draft(data: dict[str, Any], stage: str, version: int) -> RuleSetVersion:
    """Replace the rules of a draft (published and retired versions never change)."""
    return rulesets.update_draft(request_uow(), current_actor(), stage, version,
                                 data["document"], data["comment"])


@blp.route(STAGE + "/validate", methods=["POST"])
@allow(*READERS, scope="global")
@_document_errors(400, 401, 403, 404, 413, 415)
@blp.arguments(DocumentSchema())
@blp.response(200, CheckResultSchema)
def validate_document(data: dict[str, Any], stage: str) -> dict[str, Any]:
    """Check a rule set without storing it: 200 when it passes, else 422 with every problem."""
    rulesets.check_document(stage, data["document"])
    return {"valid": True, "warnings": rulesets.warnings_of(stage, data["document"])}


@blp.route(VERSION + "/publish", methods=["POST"])
@allow("analyst", scope="global")
@command
@_document_errors(400, 401, 403, 404, 409, 415)
@blp.arguments(CommentSchema())
@blp.response(200, VersionDetailSchema)
def publish(data: dict[str, Any], stage: str, version: int) -> RuleSetVersion:
    """Publish a draft: from the next order on, it decides; the previous version retires.

    Its own test cases must pass; stages listed in OMS_RULES_APPROVAL_STAGES also need a
    second analyst's approval.
    """
    return rulesets.publish(request_uow(), current_actor(), stage, version, data["comment"],
                            services().settings.requires_approval(stage))


@blp.route(VERSION + "/approve", methods=["POST"])
@allow("analyst", scope="global")
@command
@_document_errors(400, 401, 403, 404, 409, 415)
@blp.arguments(CommentSchema())
@blp.response(200, VersionDetailSchema)
def approve(data: dict[str, Any], stage: str, version: int) -> RuleSetVersion:
    """Approve a draft for publishing (by an analyst who did not write or change it)."""
    return rulesets.approve(request_uow(), current_actor(), stage, version, data["comment"])


@blp.route(VERSION + "/tests", methods=["GET"])
@allow(*READERS, scope="global")
@_document_errors(401, 403, 404)
@blp.response(200, TestRunSchema)
def run_tests(stage: str, version: int) -> dict[str, Any]:
    """Run a version's own test cases (publishing runs them too and refuses on failure)."""
    found = rulesets.get_version(request_uow(), stage, version)
    failures = rulesets.test_failures(found)
    return {"tests": len(found.document.get("tests", [])), "passed": not failures,
            "failures": [{"field": f.field, "message": f.message} for f in failures]}


@blp.route(VERSION + "/rollback", methods=["POST"])
@allow("analyst", scope="global")
@command
@_document_errors(400, 401, 403, 404, 409, 415)
@blp.arguments(CommentSchema())
@blp.response(200, VersionDetailSchema)
def rollback(data: dict[str, Any], stage: str, version: int) -> RuleSetVersion:
    """Publish again a version that was published before."""
    return rulesets.rollback(request_uow(), current_actor(), stage, version, data["comment"])


@blp.route(VERSION + "/discard", methods=["POST"])
@allow("analyst", scope="global")
@command
@_document_errors(400, 401, 403, 404, 409, 415)
@blp.arguments(CommentSchema())
@blp.response(200, VersionDetailSchema)
def discard(data: dict[str, Any], stage: str, version: int) -> RuleSetVersion:
    """Discard a draft: it stays in the history, is never published and no longer changes."""
    return rulesets.discard(request_uow(), current_actor(), stage, version, data["comment"])


@blp.route(STAGE + "/diff", methods=["GET"])
@allow(*READERS, scope="global")
@_document_errors(401, 403, 404, 422)
@blp.arguments(DiffQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, DiffSchema)
def diff(query: dict[str, Any], stage: str) -> dict[str, Any]:
    """Show the rules added, removed or changed between two versions."""
    uow = request_uow()
    changes, fields_ = rulesets.diff(uow, stage, query["from_"], query["to"])
    return {"stage": stage, "from_": query["from_"], "to": query["to"], "changes": changes,
            "fields_": fields_}


@blp.route(STAGE + "/history", methods=["GET"])
@allow(*READERS, scope="global")
@_document_errors(401, 403, 404)
@blp.response(200, HistorySchema)
def history(stage: str) -> dict[str, Any]:
    """Show the stage's audit trail: every draft, change, publish and rollback, and by whom."""
    return {"items": rulesets.history(request_uow(), stage)}


@blp.route(STAGE + "/dry-run", methods=["POST"])
@allow(*READERS, scope="order_in_body")
@_document_errors(400, 401, 403, 404, 413, 415)
@blp.arguments(DryRunSchema())
@blp.response(200, DryRunResultSchema)
def dry_run(data: dict[str, Any], stage: str) -> dict[str, Any]:
    """Decide one order by a version or an unsaved rule set, and change nothing.

    The order is an existing one (`order_id`) or one as it would be posted (`order`).
    """
    draft = draft_from(data["order"]) if "order" in data else None
    result = trials.dry_run(request_uow(), current_actor(), stage,
                              version=data.get("version"), document=data.get("document"),
                              order_id=data.get("order_id"), draft=draft)
    return result


class SimulationSchema(StrictSchema):
    version = version_number(metadata={"description": "the candidate: a stored version"})
    document = fields.Dict(metadata={"description": "or a rule set not stored yet"})
    last = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=2000),
                          metadata={"description": "how many of the latest orders (in the "
                                                   "window, when one is given)"})
    created_from = fields.AwareDateTime(validate=reasonable_time, metadata={
        "description": "only orders received at or after this time"})
    created_to = fields.AwareDateTime(validate=reasonable_time, metadata={
        "description": "only orders received before this time"})

    OPENAPI_RULES = {
        "description": "Give exactly one of `version` and `document`; `created_to` must be "
                       "after `created_from`; otherwise 422.",
        "oneOf": [{"required": ["version"]}, {"required": ["document"]}],
    }

    @validates_schema
    def one_candidate(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("version" in data) == ("document" in data):
            raise SchemaError("give exactly one of version and document", "version")

    @validates_schema
    def window_in_order(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("created_from") and data.get("created_to") and (
                data["created_from"] >= data["created_to"]):
            raise SchemaError("must be after created_from", "created_to")


class SimulationResultSchema(Schema):
    stage = fields.String()
    baseline_version = fields.Integer()
    candidate_version = fields.Integer(allow_none=True)
    window = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True),
                         metadata={"description": "the time window asked for, if any"})
    orders = fields.Integer()
    changed = fields.Integer()
    by_change = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "counts per change of outcome, e.g. validated->on_hold"})
    by_location = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "sourcing: counts per change of shipping locations, e.g. WH-A->WH-B "
                       "(the 20 most frequent)"})
    estimated_shipping_cost = fields.Dict(keys=fields.String(), values=fields.String(),
                                          metadata={"description": "sourcing: before, after "
                                                    "and change over the changed orders"})
    by_carrier = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "carrier: counts per change of service, e.g. CORREIOS/PAC->TOTAL/"
                       "STANDARD (the 20 most frequent)"})
    shipping_cost = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "carrier: before, after and change over the changed orders"})
    examples = fields.List(fields.Dict())


@blp.route(STAGE + "/simulate", methods=["POST"])
@allow(*READERS, scope="list")
@_document_errors(400, 401, 403, 404, 413, 415)
@blp.arguments(SimulationSchema())
@blp.response(200, SimulationResultSchema)
def simulate(data: dict[str, Any], stage: str) -> dict[str, Any]:
    """Compare a candidate with the published rules over the latest orders: what would change.

    Validation decides each order with the facts and time of its capture; sourcing sources
    each afresh against today's stock; carrier selection rates each order's shipments again.
    Optionally only orders received in a window. Nothing is written or reserved.
    """
    result: dict[str, Any] = trials.simulate(
        request_uow(), current_actor(), stage, version=data.get("version"),
        document=data.get("document"), last=data["last"],
        window=(data.get("created_from"), data.get("created_to")))
    return result


class SimulationJobRequestSchema(SimulationSchema):
    last = fields.Integer(load_default=10_000, validate=validate.Range(min=1, max=50_000),
                          metadata={"description": "how many of the latest orders"})


class SimulationJobSchema(Schema):
    id = fields.Integer()
    stage = fields.String()
    state = fields.String(metadata={"enum": ["queued", "done", "failed"]})
    candidate_version = fields.Integer(allow_none=True)
    last = fields.Integer()
    created_from = fields.AwareDateTime(allow_none=True)
    created_to = fields.AwareDateTime(allow_none=True)
    requested_by = fields.String()
    created_at = fields.AwareDateTime()
    finished_at = fields.AwareDateTime(allow_none=True)
    error = fields.String(allow_none=True)
    result = fields.Nested(SimulationResultSchema, allow_none=True)


SIMULATION = STAGE + "/simulations/<int(min=1, max=2147483647):simulation_id>"


@blp.route(STAGE + "/simulations", methods=["POST"])
@allow(*READERS, scope="list")
@command
@_document_errors(400, 401, 403, 404, 409, 413, 415)
@blp.arguments(SimulationJobRequestSchema())
@blp.response(202, SimulationJobSchema, description="Queued; poll its Location")
def start_simulation(data: dict[str, Any],
                     stage: str) -> tuple[Any, int, dict[str, str]]:
    """Simulate over up to 50,000 orders as a background job (RQ, or inline without Redis)."""
    simulation = trials.request_simulation(
        request_uow(), current_actor(), stage, version=data.get("version"),
        document=data.get("document"), last=data["last"],
        window=(data.get("created_from"), data.get("created_to")))
    return simulation, 202, {"Location": url_for("rules.get_simulation", stage=stage,
                                                 simulation_id=simulation.id)}


@blp.route(SIMULATION, methods=["GET"])
@allow(*READERS, scope="simulation")
@_document_errors(401, 403, 404)
@blp.response(200, SimulationJobSchema)
def get_simulation(stage: str, simulation_id: int) -> Any:
    """Read a simulation job: queued, done (with its result) or failed (with the reason)."""
    return trials.get_simulation(request_uow(), current_actor(), stage, simulation_id)
