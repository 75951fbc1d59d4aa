"""What every listener may need, handed to it through Bolt's `context`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.context.async_context import AsyncBoltContext

from bot.process import logs
from bot.process.background import Background
from bot.process.settings import Settings
from bot.slack.views.request_modal import RequestForms
from bot.slack.views.text import escape
from workflows.errors import UserError
from workflows.runtime import Runtime

log = logging.getLogger(__name__)

Say = Callable[[str], Awaitable[Any]]


@dataclass
class Services:
    settings: Settings
    runtime: Runtime
    background: Background
    forms: RequestForms = field(default_factory=RequestForms)


def services_of(context: AsyncBoltContext) -> Services:
    """The services, for a listener (Bolt verified the request before calling it); from here
    on every line logged names the Slack user it answers. `bind`, not a block: Bolt runs the
    rest of the listener in the same task, whose end undoes it (over HTTP the block around the
    whole request, bot.process.server.RequestScope; over Socket Mode the listener's own task)."""
    logs.bind(slack_user=context.user_id)
    services: Services = context["services"]
    return services


def reference_id() -> str:
    return uuid.uuid4().hex[:8].upper()


def problem_text(error: Exception) -> str:
    """A known error's own words; an unknown one becomes a reference id, detail in the log."""
    if isinstance(error, UserError):
        return error.shown(escape)
    ref = reference_id()
    log.error("unexpected error (ref %s)", ref, exc_info=error)
    return f"Something went wrong on my side (reference `{ref}`). An admin can look it up."


async def answering_errors(work: Awaitable[Any], say: Say) -> None:
    """Run follow-up work; tell the person what went wrong, if anything did."""
    try:
        await work
    except Exception as error:
        text = problem_text(error)
        try:
            await say(text)
        except Exception:
            log.warning("could not tell the user: %s", text)
