"""Slack request signing (v0 scheme), as Slack computes it for requests it sends to apps."""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_HEADER = "X-Slack-Signature"


def sign(secret: str, timestamp: int | str, body: bytes | str) -> str:
    """Return `v0=` + hex HMAC-SHA256(secret, `v0:{timestamp}:{body}`)."""
    raw = body.encode() if isinstance(body, str) else body
    base = b"v0:" + str(timestamp).encode() + b":" + raw
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return f"v0={digest}"


def signed_headers(
    secret: str, body: bytes | str, timestamp: int | str | None = None
) -> dict[str, str]:
    """Return the two headers Slack adds to a request, signed for `body` at `timestamp` (now)."""
    ts = str(int(time.time())) if timestamp is None else str(timestamp)
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, ts, body)}
