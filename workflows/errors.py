"""Errors a person can cause. The Slack edge shows their message as it is and nothing changes.

Anything else is a fault of the system: the edge logs it and shows a reference id.
"""

from __future__ import annotations

from collections.abc import Callable


class UserError(Exception):
    """Something the person asked for cannot be done; the message says why, in plain words.

    What the person typed goes in `typed`, one value per `{}` of the message: each edge shows
    it in its own way (Slack escapes it, so a typed `<!channel>` is text, not a ping)."""

    def __init__(self, message: str, *typed: str) -> None:
        self.template = message
        self.typed = tuple(t if len(t) <= 80 else t[:79] + "…" for t in typed)
        super().__init__(message.format(*self.typed) if typed else message)

    def shown(self, quote: Callable[[str], str]) -> str:
        """The message with each typed value passed through `quote`."""
        return self.template.format(*map(quote, self.typed)) if self.typed else self.template


class NotAllowed(UserError):
    """The person may not do this."""


class NotFound(UserError):
    """No such request or account."""


class Conflict(UserError):
    """The thing already moved on (decided, revealed, cancelled...)."""


class FormInvalid(UserError):
    """Submitted form values are wrong; `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors
