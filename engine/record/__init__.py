"""The record: every table, one module per feature, re-exported here for importers."""

from engine.record.access import ApiKey
from engine.record.base import (
    COORDINATE,
    NAMING,
    Base,
    ExactDecimal,
    Timestamped,
    UtcDateTime,
    utcnow,
)
from engine.record.carriers import Carrier, CarrierRate, CarrierService
from engine.record.catalog import Customer, Location, PostalArea, Product
from engine.record.decisions import (
    OrderDecision,
    RuleSetEvent,
    RuleSetVersion,
    Simulation,
)
from engine.record.finance import LEDGER_ACCOUNTS, JournalEntry, JournalLine, OrderReturn
from engine.record.fulfilment import (
    OPEN_GROUP_STATUSES,
    ExternalEffect,
    FulfilmentGroup,
    FulfilmentLine,
    InboundEvent,
    Shipment,
    ShipmentLine,
)
from engine.record.infrastructure import IdempotencyRecord, OutboxMessage, ReferenceVersion
from engine.record.inventory import ExpectedSupply, StockLevel, StockMovement
from engine.record.orders import (
    QUANTITY_CHECKS,
    Hold,
    HoldComment,
    Order,
    OrderEvent,
    OrderLine,
)
from engine.record.people import User
from engine.record.transfers import OrderImport, OrderImportEntry
from engine.record.webhooks import WebhookDelivery, WebhookSubscription

__all__ = [
    "ApiKey",
    "Base",
    "COORDINATE",
    "Carrier",
    "CarrierRate",
    "CarrierService",
    "Customer",
    "ExactDecimal",
    "ExpectedSupply",
    "ExternalEffect",
    "FulfilmentGroup",
    "FulfilmentLine",
    "Hold",
    "HoldComment",
    "IdempotencyRecord",
    "InboundEvent",
    "JournalEntry",
    "JournalLine",
    "LEDGER_ACCOUNTS",
    "Location",
    "NAMING",
    "OPEN_GROUP_STATUSES",
    "Order",
    "OrderDecision",
    "OrderEvent",
    "OrderImport",
    "OrderImportEntry",
    "OrderLine",
    "OrderReturn",
    "OutboxMessage",
    "PostalArea",
    "Product",
    "QUANTITY_CHECKS",
    "ReferenceVersion",
    "RuleSetEvent",
    "RuleSetVersion",
    "Shipment",
    "ShipmentLine",
    "Simulation",
    "StockLevel",
    "StockMovement",
    "Timestamped",
    "User",
    "UtcDateTime",
    "WebhookDelivery",
    "WebhookSubscription",
    "utcnow",
]
