"""Which warehouse, carrier and finance system each call goes to, by configuration.

`OMS_PARTNERS` (JSON) names the partners that are real systems over HTTP; every other
location, carrier or the finance system is embedded:

    {"wms": {"SP-CENTRO": {"url": "https://wms.example/api", "secrets": ["s1"],
                           "timeout": 5}},
     "carriers": {"JADLOG": {"url": "https://api.jadlog.example", "secrets": ["s2"]}},
     "finance": {"url": "https://erp.example/oms", "secrets": ["s3"], "timeout": 10}}

A warehouse or carrier given "event_secrets" signs its events with them, and may then
only speak of its own groups or parcels (one with event_secrets and no url stays
embedded for our calls). OMS_WMS_EVENT_SECRETS / OMS_CARRIER_EVENT_SECRETS are shared
secrets that may speak for any.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from adapters.embedded import EmbeddedCarrier, EmbeddedLedger, EmbeddedWarehouse
from adapters.http_partners import (
    HttpCarrierGateway,
    HttpFinance,
    HttpWarehouse,
    SignedClient,
)
from engine.ports import CarrierGateway, Finance, Warehouse


@dataclass(frozen=True)
class Endpoint:
    """A partner: its API (url, the secrets we sign calls with, a timeout), and the
    secrets it signs its events with, which let it speak for itself only."""

    url: str | None
    secrets: tuple[str, ...]
    timeout: float = 5.0
    event_secrets: tuple[str, ...] = ()

    @classmethod
    def of(cls, where: str, raw: Any) -> Endpoint:
        if not isinstance(raw, dict) or not isinstance(raw.get("url", ""), str):
            raise ValueError(f"OMS_PARTNERS {where}: an object with a url is required")
        lists = {name: raw.get(name, []) for name in ("secrets", "event_secrets")}
        for name, value in lists.items():
            if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
                raise ValueError(f"OMS_PARTNERS {where}: {name} is a list of strings")
        if not raw.get("url") and not lists["event_secrets"]:
            raise ValueError(f"OMS_PARTNERS {where}: give a url, event_secrets, or both")
        return cls(raw.get("url") or None, tuple(lists["secrets"]),
                   float(raw.get("timeout", 5.0)), tuple(lists["event_secrets"]))

    def client(self, system: str) -> SignedClient:
        assert self.url is not None
        return SignedClient(system, self.url, self.secrets, self.timeout)


class Partners:
    """Hands out the partner for a location, a carrier, or the books."""

    def __init__(self, config: str, session_factory: Callable[[], Session]) -> None:
        raw = json.loads(config) if config else {}
        if not isinstance(raw, dict):
            raise ValueError("OMS_PARTNERS is a JSON object")
        self._wms = {code: Endpoint.of(f"wms.{code}", value)
                     for code, value in raw.get("wms", {}).items()}
        self._carriers = {code: Endpoint.of(f"carriers.{code}", value)
                          for code, value in raw.get("carriers", {}).items()}
        self._finance = Endpoint.of("finance", raw["finance"]) if "finance" in raw else None
        self._session_factory = session_factory

    def warehouse(self, location_code: str) -> Warehouse:
        endpoint = self._wms.get(location_code)
        if endpoint is None or endpoint.url is None:
            return EmbeddedWarehouse(location_code)
        return HttpWarehouse(endpoint.client(f"wms {location_code}"))

    def carrier(self, carrier_code: str) -> CarrierGateway:
        endpoint = self._carriers.get(carrier_code)
        if endpoint is None or endpoint.url is None:
            return EmbeddedCarrier(carrier_code, self._session_factory)
        return HttpCarrierGateway(endpoint.client(f"carrier {carrier_code}"))

    def carriers_over_http(self) -> set[str]:
        """The carriers with an API of their own (the embedded ones cannot be asked)."""
        return {code for code, endpoint in self._carriers.items() if endpoint.url}

    def event_secrets(self, kind: str) -> dict[str, tuple[str, ...]]:
        """Per location ("wms") or carrier ("carrier"), the secrets its events carry."""
        endpoints = self._wms if kind == "wms" else self._carriers
        return {code: e.event_secrets for code, e in endpoints.items() if e.event_secrets}

    def finance(self) -> Finance:
        if self._finance is None:
            return EmbeddedLedger(self._session_factory)
        return HttpFinance(self._finance.client("finance"))
