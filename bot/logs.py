"""Logging: one readable line per event, and no secret in any line.

Two guards. Loggers that dump whole request bodies at DEBUG (slack_sdk's webhook client, which
carries the token reply) are held at INFO. And a filter on every handler replaces any known
secret (credentials, and a token while it is being delivered) with a mask, whatever the level.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

MASK = "[redacted]"
# These log whole bodies at DEBUG; a token reply is such a body.
BODY_LOGGERS = ("slack_sdk.webhook", "slack_bolt.oauth")
# Chatty below INFO without telling an operator anything (aiosqlite logs every cursor call).
NOISY_LOGGERS = ("aiosqlite", "asyncio")


def _spellings(secret: str) -> set[str]:
    """The secret as written, and as it looks inside JSON or escaped mrkdwn."""
    escaped = secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {secret, json.dumps(secret)[1:-1], escaped}


class SecretScrubber(logging.Filter):
    """Masks every registered secret in the formatted message of each record."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add(self, secret: str) -> None:
        if len(secret) >= 6:  # a tiny "secret" would mask ordinary words
            self._secrets.update(_spellings(secret))

    def discard(self, secret: str) -> None:
        self._secrets.difference_update(_spellings(secret))

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        text = record.exc_text or ""
        for secret in self._secrets:
            message = message.replace(secret, MASK)
            text = text.replace(secret, MASK)
        record.msg, record.args, record.exc_text = message, None, text or None
        return True


scrubber = SecretScrubber()


def drop_refused_bodies(record: logging.LogRecord) -> bool:
    """Bolt logs the whole body of a request whose signature fails, at INFO, and resets its
    loggers' levels when an app is built; so the line is dropped at the handler. The server logs
    its own line without the body."""
    return not record.name.endswith("RequestVerification")


@contextmanager
def secret_in_flight(secret: str) -> Iterator[None]:
    """Mask `secret` in logs while it exists in this process."""
    scrubber.add(secret)
    try:
        yield
    finally:
        scrubber.discard(secret)


def configure(level: str = "INFO", secrets: tuple[str, ...] = ()) -> None:
    """Log to stderr at `level`, masking `secrets` (the credentials) wherever they appear."""
    for secret in secrets:
        scrubber.add(secret)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(scrubber)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in (*BODY_LOGGERS, *NOISY_LOGGERS):
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
    handler.addFilter(drop_refused_bodies)
