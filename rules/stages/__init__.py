"""The decision stages, in the order an order meets them."""

from __future__ import annotations

from typing import Any

from rules.stage import Stage
from rules.stages.carrier import CARRIER
from rules.stages.exceptions import EXCEPTIONS
from rules.stages.sourcing import SOURCING
from rules.stages.validation import VALIDATION

STAGES: dict[str, Stage[Any]] = {
    stage.name: stage for stage in (VALIDATION, SOURCING, CARRIER, EXCEPTIONS)}
