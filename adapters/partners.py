"""Which warehouse, carrier and finance system each call goes to, by configuration.

`OMS_PARTNERS` (JSON) names the partners that are real systems over HTTP; every other
location, carrier or the finance system is embedded:

    {"wms": {"SP-CENTRO": {"url": "https://wms.example/api", "secrets": ["s1"],
                           "timeout": 5}},
     "carriers": {"JADLOG": {"url": "https://api.jadlog.example", "secrets": ["s2"]}},
     "finance": {"url": "https://erp.example/oms", "secrets": ["s3"], "timeout": 10}}
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
    url: str
    secrets: tuple[str, ...]
    timeout: float = 5.0

    @classmethod
    def of(cls, where: str, raw: Any) -> Endpoint:
        if not isinstance(raw, dict) or not isinstance(raw.get("url"), str):
            raise ValueError(f"OMS_PARTNERS {where}: an object with a url is required")
        secrets = raw.get("secrets", [])
        if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
            raise ValueError(f"OMS_PARTNERS {where}: secrets is a list of strings")
        return cls(raw["url"], tuple(secrets), float(raw.get("timeout", 5.0)))

    def client(self, system: str) -> SignedClient:
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
        if endpoint is None:
            return EmbeddedWarehouse(location_code)
        return HttpWarehouse(endpoint.client(f"wms {location_code}"))

    def carrier(self, carrier_code: str) -> CarrierGateway:
        endpoint = self._carriers.get(carrier_code)
        if endpoint is None:
            return EmbeddedCarrier(carrier_code, self._session_factory)
        return HttpCarrierGateway(endpoint.client(f"carrier {carrier_code}"))

    def carriers_over_http(self) -> set[str]:
        """The carriers with an API of their own (the embedded ones cannot be asked)."""
        return set(self._carriers)

    def finance(self) -> Finance:
        if self._finance is None:
            return EmbeddedLedger(self._session_factory)
        return HttpFinance(self._finance.client("finance"))
