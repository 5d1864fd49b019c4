"""Errors the engine raises: each has a stable machine `code` and carries its data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar


@dataclass(frozen=True)
class FieldProblem:
    """One offending field: a slash-separated path into the request and what is wrong."""

    field: str
    message: str


class OmsError(Exception):
    """Base of every error the engine raises on purpose."""

    code = "oms_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


T = TypeVar("T")


def one_of_batch(results: Sequence[T | OmsError]) -> T:
    """The result of a batch of one (a single command run through its batch function), or
    its error raised."""
    [result] = results
    if isinstance(result, OmsError):
        raise result
    return result


class NotFoundError(OmsError):
    code = "not_found"

    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key!s} does not exist")
        self.kind = kind
        self.key = key


class InputValidationError(OmsError):
    """The request is well-formed but some fields are wrong."""

    code = "validation_failed"

    def __init__(self, problems: Sequence[FieldProblem], detail: str | None = None) -> None:
        super().__init__(detail or f"{len(problems)} field(s) are invalid")
        self.problems = list(problems)


class UnknownReferencesError(InputValidationError):
    """The order names a customer or SKUs that are not in the record."""

    code = "unknown_references"

    def __init__(self, customer_id: str | None, skus: Sequence[str],
                 problems: Sequence[FieldProblem]) -> None:
        parts = []
        if customer_id is not None:
            parts.append(f"customer {customer_id}")
        if skus:
            parts.append("SKU(s) " + ", ".join(skus))
        super().__init__(problems, "unknown " + " and ".join(parts))
        self.customer_id = customer_id
        self.skus = list(skus)


class InvalidTransitionError(OmsError):
    code = "invalid_transition"

    def __init__(self, current: str, target: str, held_from: str | None = None) -> None:
        where = f"{current!r} (held at {held_from!r})" if held_from else repr(current)
        super().__init__(f"an order in status {where} cannot move to {target!r}")
        self.current = current
        self.target = target
        self.held_from = held_from


class NotOnHoldError(OmsError):
    """A hold can only be released from an order that is on hold."""

    code = "not_on_hold"

    def __init__(self, order_id: int, current: str) -> None:
        super().__init__(f"order {order_id} is {current!r}, not on hold")
        self.current = current


class HoldResolvedError(OmsError):
    """A hold that is already resolved (released, or closed by a cancel) cannot be released."""

    code = "hold_resolved"

    def __init__(self, hold_id: int, resolution: str | None) -> None:
        super().__init__(f"hold {hold_id} is already resolved ({resolution or 'closed'})")
        self.resolution = resolution


class DuplicateOrderError(OmsError):
    """The channel already sent an order with this reference."""

    code = "duplicate_order"

    def __init__(self, channel: str, channel_order_ref: str, order_id: int) -> None:
        super().__init__(
            f"channel {channel!r} already sent order reference {channel_order_ref!r}: "
            f"order {order_id}"
        )
        self.channel = channel
        self.channel_order_ref = channel_order_ref
        self.order_id = order_id


class EventIdReusedError(InputValidationError):
    """A partner sent an event id it already used for a different event."""

    code = "event_id_reused"

    def __init__(self, source: str, event_id: str) -> None:
        super().__init__([FieldProblem("event_id", f"{event_id!r} was already used for "
                                                   "a different event")],
                         f"{source} event id {event_id!r} was already used with a different "
                         "payload; send a new id for a new event")
        self.source = source
        self.event_id = event_id


class AlreadyExistsError(OmsError):
    code = "already_exists"

    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key!s} already exists")
        self.kind = kind
        self.key = key


class ForbiddenError(OmsError):
    code = "forbidden"


class SignInRefusedError(OmsError):
    """A sign-in was refused: unknown name, wrong password, a disabled account (not told
    apart), or too many failures in a row (`retry_after` says how long to wait)."""

    code = "sign_in_refused"

    def __init__(self, retry_after: timedelta | None = None) -> None:
        super().__init__("too many failed sign-ins: try again later" if retry_after
                         else "the username or password is wrong")
        self.retry_after = retry_after


class RuleSetInvalidError(InputValidationError):
    """A rule set failed its checks; each problem's field is the JSON pointer of its node."""

    code = "rule_set_invalid"


class RuleSetStateError(OmsError):
    """The version is not in a state that allows this (e.g. editing a published version)."""

    code = "rule_set_state"

    def __init__(self, stage: str, version: int, state: str, wanted: str) -> None:
        super().__init__(f"{stage} version {version} is {state}; {wanted}")
        self.stage, self.version, self.state = stage, version, state


class RuleSetTestsFailedError(InputValidationError):
    """A version's own test cases fail: it is not published."""

    code = "rule_set_tests_failed"


class ApprovalError(OmsError):
    """Publishing this stage needs a second analyst's approval, which is missing or invalid."""

    code = "approval_required"


class StageNotRunnableError(OmsError):
    """The stage decides events, not orders, so it cannot be dry-run or simulated on one."""

    code = "stage_not_runnable"


class InsufficientStockError(OmsError):
    """A change would take a stock level below what is reserved (or below zero)."""

    code = "insufficient_stock"

    def __init__(self, sku: str, location_code: str, on_hand: int, reserved: int,
                 wanted: int) -> None:
        super().__init__(
            f"{sku} at {location_code} has {on_hand} on hand of which {reserved} reserved "
            f"for orders; it cannot become {wanted}")
        self.sku, self.location_code = sku, location_code
        self.on_hand, self.reserved = on_hand, reserved


class NotReadyError(OmsError):
    """The event refers to work we have not recorded yet (a release or shipment on its
    way): the sender should send it again shortly; nothing was recorded."""

    code = "not_ready_yet"


class ExternalSystemError(OmsError):
    """A system we do not control failed us; `retryable` says whether trying again may help."""

    code = "external_system_error"
    retryable = True

    def __init__(self, system: str, detail: str) -> None:
        super().__init__(f"{system}: {detail}")
        self.system = system


class ExternalTimeoutError(ExternalSystemError):
    """The system did not answer in time: the call may or may not have taken effect."""

    code = "external_timeout"


class ExternalRejectedError(ExternalSystemError):
    """The system refused the request itself (a 4xx): sending it again will not help."""

    code = "external_rejected"
    retryable = False


class ExternalResponseError(ExternalSystemError):
    """The system answered with something we cannot use (a 5xx, or a malformed body)."""

    code = "external_bad_response"
