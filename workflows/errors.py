"""Errors a person can cause. The Slack edge shows their message as it is and nothing changes.

Anything else is a fault of the system: the edge logs it and shows a reference id.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the person asked for cannot be done; the message says why, in plain words."""


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
