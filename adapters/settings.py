"""The service's settings, read from a mapping (Flask's config or the environment)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from engine.fulfilment.waves import WavePolicy
from engine.orders.holds import HoldSla

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "instance" / "oms.sqlite3"


@dataclass(frozen=True)
class Settings:
    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    redis_url: str | None = None  # None: jobs run inline, right after the commit
    queue_name: str = "oms"
    # A failed job is tried again after each of these delays, then given up.
    job_retry_seconds: str = "10,30,120"
    admin_api_key: str | None = None
    max_content_length: int = 1024 * 1024
    # Bulk routes (1,000 orders, events or rows per call) take bodies up to this size.
    max_bulk_content_length: int = 16 * 1024 * 1024
    idempotency_lease_seconds: int = 60
    idempotency_retention_hours: int = 24
    database_pool_size: int = 10
    # Stages whose drafts need a second analyst's approval before publish: "validation,..."
    rules_approval_stages: str = ""
    # Which partners are real systems over HTTP (the rest are embedded), as JSON:
    # {"wms": {"<location>": {"url": ..., "secrets": [...], "timeout": 5}},
    #  "carriers": {"<carrier>": {...}}, "finance": {"url": ..., "secrets": [...]}}
    partners: str = ""
    # Secrets partners sign their events with; two, comma-separated, during a rotation.
    wms_event_secrets: str = ""
    carrier_event_secrets: str = ""
    event_tolerance_seconds: int = 300
    # Webhook targets allowed although private, loopback or link-local: host names,
    # addresses or CIDR ranges, comma-separated ("hooks.internal,10.20.0.0/16,127.0.0.1").
    webhook_allowed_hosts: str = ""
    # Who starts the periodic jobs: "auto" (the serving process itself, in a background
    # thread, when there is no Redis; `oms scheduler` otherwise), "in_process" or "off".
    scheduler: str = "auto"
    # Periods overriding the schedule's, "jobs.webhooks.retry_due=5,..." (seconds).
    schedule_seconds: str = ""
    scheduler_tick_seconds: str = "5"
    # How long the KPIs of one query are kept per process before they are computed again
    # (0: every time); each answer says when it was computed.
    kpi_cache_seconds: int = 60
    # Signs the console's session cookies; without one, a random key is made once and kept
    # in instance/secret_key (set it when several hosts serve the same console).
    secret_key: str | None = None
    # A console session ends after this long without a request, or this long after sign-in.
    session_idle_minutes: int = 60
    session_max_hours: int = 12
    # Send the session cookie over HTTPS only (turn on behind TLS).
    session_cookie_secure: str = "false"
    # How long a hold may wait in its queue before it is overdue, in hours, per queue:
    # "default=24,vip-care=4,fraud=2" (a queue not named waits the default).
    hold_sla_hours: str = "default=24"
    # Waves (release to each warehouse, labels, billing runs): a wave is cut once its
    # oldest item has waited this many seconds, or once this many items wait, whichever
    # comes first. The period is ops' window to hold or cancel an order before its
    # warehouse has it; 0 sends each transaction's work at once.
    wave_seconds: int = 300
    wave_size: int = 500
    # The largest CSV file `POST /orders/imports` takes, in bytes (other bodies: the above).
    import_max_content_length: int = 32 * 1024 * 1024
    # Benchmarks: each process counts the SQL statements it sends and keeps the total in
    # <this directory>/<pid>, rewritten at most once a second (empty: off, nothing counted).
    statement_counts: str = ""

    @property
    def retry_seconds(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.job_retry_seconds.split(",") if part.strip())

    @property
    def schedule_overrides(self) -> dict[str, int]:
        pairs = (part.split("=", 1) for part in self.schedule_seconds.split(",") if part.strip())
        return {job.strip(): int(seconds) for job, seconds in pairs}

    @cached_property
    def hold_sla(self) -> HoldSla:
        """The SLA per hold queue, from `hold_sla_hours`.

        Raises:
            ValueError: a part is not `queue=hours` with positive hours.
        """
        hours: dict[str, float] = {}
        for part in self.hold_sla_hours.split(","):
            if not part.strip():
                continue
            queue, _, value = (piece.strip() for piece in part.partition("="))
            try:
                hours[queue] = float(value)
            except ValueError:
                hours[queue] = -1.0  # refused just below, with the others
            if not queue or not 0 < hours[queue] < 24 * 366:
                raise ValueError(f"OMS_HOLD_SLA_HOURS: {part.strip()!r} is not queue=hours "
                                 "(hours above 0, below a year)")
        default = hours.pop("default", HoldSla.default_hours)
        return HoldSla(default_hours=default, per_queue=hours)

    @property
    def wave_policy(self) -> WavePolicy:
        """When waves are cut (`wave_seconds`, `wave_size`).

        Raises:
            ValueError: a negative period, or a size below one.
        """
        if self.wave_seconds < 0 or self.wave_size < 1:
            raise ValueError(f"OMS_WAVE_SECONDS ({self.wave_seconds}) must be 0 or more and "
                             f"OMS_WAVE_SIZE ({self.wave_size}) 1 or more")
        return WavePolicy(self.wave_seconds, self.wave_size)

    def requires_approval(self, stage: str) -> bool:
        return stage in {name.strip() for name in self.rules_approval_stages.split(",")}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Settings:
        """Build settings from keys named like the fields in upper case (DATABASE_URL...)."""
        given = {}
        for name, field in cls.__dataclass_fields__.items():
            raw = values.get(name.upper())
            if raw is None or raw == "":
                continue
            # Flask's from_prefixed_env decodes JSON: "123" arrives as 123, also for keys.
            # and a JSON object as a dict, which we keep as JSON text.
            if isinstance(raw, dict | list):
                raw = json.dumps(raw)
            given[name] = int(raw) if field.type == "int" else str(raw)
        return cls(**given)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from OMS_* environment variables."""
        environ = os.environ if environ is None else environ
        return cls.from_mapping(
            {name.removeprefix("OMS_"): value for name, value in environ.items()
             if name.startswith("OMS_")}
        )
