"""Logging: one line per event, JSON in production and readable in a terminal; no secret in any.

Two guards. Loggers that dump whole request bodies at DEBUG (slack_sdk's webhook client, which
carries the token reply) are held at INFO. And every secret known to the process (credentials,
and a token while it is being delivered) is replaced with a mask, whatever the level: a filter
masks the message and the exception text of each record, and the formatter masks the finished
line once more, so a secret in a traceback, a stack or an escaped JSON string is caught too.
`LOG_BODIES=1` lifts the first guard (the tests set it, so searching their logs tests the second).

`LOG_FORMAT` picks the format: `json` (one object per line: time, level, logger, message and the
context fields below), `text`, or `auto` (the default): text when stderr is a terminal, JSON
otherwise, which is what a container's log collector reads.

Context fields come from `bound(...)`, kept in a context variable, so they follow the work into
the tasks it starts: `http_request_id` (one per incoming HTTP request), `slack_user`,
`request_id` (the service-account request, `SA-n`), `step` (the job or saga step) and `job_id`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TextIO

from dotenv import dotenv_values

from bot.process.settings import SettingsError

MASK = "[redacted]"
# These log whole bodies at DEBUG; a token reply is such a body.
BODY_LOGGERS = ("slack_sdk.webhook", "slack_bolt.oauth")
# Chatty below INFO without telling an operator anything (aiosqlite logs every cursor call).
NOISY_LOGGERS = ("aiosqlite", "asyncio")
FORMATS = ("auto", "json", "text")
# The context fields, in the order a text line shows them.
CONTEXT_FIELDS = ("http_request_id", "slack_user", "request_id", "step", "job_id")

_EMPTY: Mapping[str, str] = MappingProxyType({})
_context: ContextVar[Mapping[str, str]] = ContextVar("sabot_log_context", default=_EMPTY)


def _spellings(secret: str) -> set[str]:
    """The secret as written, and as it looks inside JSON or escaped mrkdwn."""
    escaped = secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {secret, json.dumps(secret)[1:-1], escaped}


class SecretScrubber(logging.Filter):
    """Masks every registered secret in the formatted message of each record."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._longest_first: tuple[str, ...] = ()

    def add(self, secret: str) -> None:
        if len(secret) >= 6:  # a tiny "secret" would mask ordinary words
            self._secrets.update(_spellings(secret))
            self._sort()

    def discard(self, secret: str) -> None:
        self._secrets.difference_update(_spellings(secret))
        self._sort()

    def _sort(self) -> None:
        # Longest first: a secret's JSON spelling may contain its plain spelling.
        self._longest_first = tuple(sorted(self._secrets, key=len, reverse=True))

    def mask(self, text: str) -> str:
        for secret in self._longest_first:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        text = record.exc_text or ""
        record.msg, record.args = self.mask(message), None
        record.exc_text = self.mask(text) or None
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


# -- context --------------------------------------------------------------------------------


@contextmanager
def bound(**fields: object) -> Iterator[None]:
    """Add context fields to every line logged inside the block, and in tasks it starts."""
    values = {name: str(value) for name, value in fields.items() if value is not None}
    token = _context.set(MappingProxyType({**_context.get(), **values}))
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: object) -> None:
    """Add context fields for the rest of the current task (and the tasks it starts later).

    For a step that cannot wrap what follows in a block, such as a Bolt middleware: Bolt runs
    the listener after the middleware returns. An enclosing `bound` block undoes it.
    """
    values = {name: str(value) for name, value in fields.items() if value is not None}
    _context.set(MappingProxyType({**_context.get(), **values}))


# -- formats --------------------------------------------------------------------------------


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_context.get())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return scrubber.mask(json.dumps(entry, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [field=value ...]`, for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _context.get()
        if fields:
            shown = " ".join(f"{k}={fields[k]}" for k in CONTEXT_FIELDS if k in fields)
            head, newline, rest = line.partition("\n")  # after the message, before a traceback
            line = f"{head} [{shown}]{newline}{rest}"
        return scrubber.mask(line)


def log_format(stream: TextIO | None = None) -> str:
    """`json` or `text`, from LOG_FORMAT (`auto` decides by whether `stream` is a terminal)."""
    chosen = os.environ.get("LOG_FORMAT", "").strip().lower() or _dotenv_format() or "auto"
    if chosen not in FORMATS:
        raise SettingsError("setting LOG_FORMAT: must be one of auto, json, text")
    if chosen == "auto":
        stream = stream or sys.stderr
        return "text" if stream.isatty() else "json"
    return chosen


def _dotenv_format() -> str | None:
    """LOG_FORMAT from a `.env` in the working folder, as the other settings are read."""
    value = dotenv_values(".env").get("LOG_FORMAT") if os.path.isfile(".env") else None
    return value.strip().lower() if value else None


def adopt(*names: str) -> None:
    """Send these loggers' lines through the handler `configure` set up (its format, its
    masking) instead of handlers of their own: uvicorn installs its own when it starts, and an
    unhandled error's traceback would otherwise be written unmasked, as text."""
    root_handlers = logging.getLogger().handlers
    if not any(isinstance(h.formatter, JsonFormatter | TextFormatter) for h in root_handlers):
        return  # logging was not configured by `configure`: leave it as it is
    for name in names:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


def configure(
    level: str = "INFO",
    secrets: tuple[str, ...] = (),
    *,
    fmt: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Log to `stream` (stderr) at `level`, masking `secrets` (the credentials) everywhere.

    `fmt` is `json` or `text`; by default LOG_FORMAT decides (see the module's docstring).
    """
    for secret in secrets:
        scrubber.add(secret)
    stream = stream or sys.stderr
    chosen = fmt or log_format(stream)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    handler.addFilter(scrubber)
    handler.addFilter(drop_refused_bodies)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # LOG_BODIES=1 (the tests) lets the body loggers follow the root level too, so a search of
    # the log proves the masking; without it they never log a body, whatever LOG_LEVEL says.
    bodies = os.environ.get("LOG_BODIES", "").strip().lower() in ("1", "true", "yes")
    held = max(logging.INFO, root.level)
    for name in (*BODY_LOGGERS, *NOISY_LOGGERS):
        follow = bodies and name in BODY_LOGGERS
        logging.getLogger(name).setLevel(logging.NOTSET if follow else held)
