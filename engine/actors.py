"""Who or what causes a change: an API key, a partner's signature, a person, or a system job."""

from __future__ import annotations

from dataclasses import dataclass

# Integration keys, each bound to what it works for; people's roles see everything.
CHANNEL, WAREHOUSE, CARRIER = "channel", "warehouse", "carrier"
INTEGRATION_KINDS = (CHANNEL, WAREHOUSE, CARRIER)
PEOPLE_ROLES = ("analyst", "ops", "admin")
ROLES = INTEGRATION_KINDS + PEOPLE_ROLES
PERSON = "user"  # the actor type of a person signed in to the console
EVERY = "*"  # a warehouse or carrier integration that speaks for every location or carrier


@dataclass(frozen=True)
class Actor:
    type: str  # "api_key", "partner" (a signed event), "user" or "system"
    id: str
    role: str  # one of ROLES
    channel: str | None = None  # a channel integration: the one channel it acts for
    api_key_id: int | None = None
    # A warehouse integration: its location codes; a carrier integration: its carrier codes.
    scope: frozenset[str] = frozenset()
    # A person may hold several of PEOPLE_ROLES; `role` is then the highest of them.
    roles: frozenset[str] = frozenset()

    def holds(self, role: str) -> bool:
        """Tell whether this actor may act as `role` (admin may act as every role)."""
        return self.role == "admin" or role == self.role or role in self.roles

    @property
    def label(self) -> str:
        return f"{self.type}:{self.id}"


def system_actor(job: str) -> Actor:
    """Return the actor for work the service does by itself, named after the job."""
    return Actor(type="system", id=job, role="admin")
