"""HMAC-SHA256 signatures over a timestamp and a body: what we send and what we accept.

A signed message carries two headers:

    X-OMS-Timestamp: 1795340000                 (Unix seconds, when it was signed)
    X-OMS-Signature: v1=<hex>[,v1=<hex>]        (HMAC-SHA256 of b"<timestamp>." + body)

During a secret rotation the sender may sign with both secrets and the receiver accepts
either, so neither side has to switch at the same instant.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

TIMESTAMP_HEADER = "X-OMS-Timestamp"
SIGNATURE_HEADER = "X-OMS-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    """The message is not signed, signed with another secret, or too old or too new."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Return the hex HMAC-SHA256 of `<timestamp>.<body>` under the secret."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secrets: Sequence[str], body: bytes, now: float | None = None) -> dict[str, str]:
    """Return the headers that sign `body` with every given secret."""
    timestamp = int(time.time() if now is None else now)
    value = ",".join(f"v1={signature(secret, timestamp, body)}" for secret in secrets)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: value}


def verify(secrets: Sequence[str], headers: Mapping[str, str], body: bytes,
           tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> None:
    """Accept a message signed by any of `secrets` within `tolerance` seconds of now.

    Raises:
        SignatureError: the headers are missing or malformed, the timestamp is out of
            tolerance (a replay), or no signature matches (a tampered body or wrong secret).
    """
    raw_timestamp = headers.get(TIMESTAMP_HEADER)
    raw_signatures = headers.get(SIGNATURE_HEADER)
    if not raw_timestamp or not raw_signatures:
        raise SignatureError("missing_signature")
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        raise SignatureError("malformed_timestamp") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("stale_timestamp")
    offered = [part.strip().removeprefix("v1=") for part in raw_signatures.split(",")
               if part.strip().startswith("v1=")]
    expected = [signature(secret, timestamp, body) for secret in secrets if secret]
    if not any(hmac.compare_digest(mine, theirs) for mine in expected for theirs in offered):
        raise SignatureError("bad_signature")
