"""Who or what causes a change: an API key, a user, or a system job."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    type: str  # "api_key", "user" or "system"
    id: str
    role: str
    channel: str | None = None  # set for integration keys: they act for one channel only
    api_key_id: int | None = None
    speaks_for: str | None = None  # a partner's signed events: its one location or carrier

    @property
    def label(self) -> str:
        return f"{self.type}:{self.id}"


def system_actor(job: str) -> Actor:
    """Return the actor for work the service does by itself, named after the job."""
    return Actor(type="system", id=job, role="admin")
