"""One modal submission as a listener needs it, and the decorator for the small modals that
ask one thing (a reason, a person) and act on it.

    @on_answer(BlockId.DENY_REASON, "Give a reason.")
    async def submit_denial(answer: Submission) -> None:
        await decisions.decide(answer.runtime, answer.request_id, answer.user, ...)

An empty answer, or a known refusal, is shown on the field and the modal stays open; otherwise
the modal closes. The work runs before the ack: Slack shows a refusal only in the ack.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext

from bot.slack.ids import BlockId
from bot.slack.services import Services, services_of
from workflows.errors import UserError
from workflows.runtime import Runtime

ANSWER_MAX = 500


@dataclass
class Submission:
    services: Services
    body: dict[str, Any]
    view: dict[str, Any]

    @property
    def runtime(self) -> Runtime:
        return self.services.runtime

    @property
    def user(self) -> str:
        return str(self.body["user"]["id"])

    @property
    def values(self) -> dict[str, Any]:
        return (self.view.get("state") or {}).get("values") or {}

    def input(self, block: BlockId) -> dict[str, Any]:
        # Each input's element carries its block's id as action_id: unique in the view.
        return (self.values.get(block.value) or {}).get(block.value) or {}

    def text(self, block: BlockId) -> str:
        return str(self.input(block).get("value") or "")

    def chosen(self, block: BlockId) -> list[str]:
        return [str(o.get("value")) for o in self.input(block).get("selected_options") or []]

    def answer(self, block: BlockId) -> str:
        """What was typed or picked in a one-question modal, trimmed."""
        given = self.input(block)
        picked = given.get("selected_user")
        return str(picked or given.get("value") or "").strip()[:ANSWER_MAX]

    @property
    def metadata(self) -> dict[str, Any]:
        """What the modal was opened with (forgeable only by Slack: it is ours)."""
        try:
            data = json.loads(self.view.get("private_metadata") or "{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def request_id(self) -> int:
        given = self.metadata.get("request_id")
        return given if isinstance(given, int) else 0


Answered = Callable[[Submission], Coroutine[Any, Any, None]]


def on_answer(block: BlockId, missing: str) -> Callable[[Answered], Any]:
    """A view listener for a modal that asks one thing in `block`."""

    def make(work: Answered) -> Any:
        async def listener(
            ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
        ) -> None:
            answer = Submission(services_of(context), body, view)
            if not answer.answer(block):
                await ack(response_action="errors", errors={block.value: missing})
                return
            try:
                await work(answer)
            except UserError as refused:
                # A plain-text field error cannot show a mention: the id shows as @U... instead.
                text = re.sub(r"<@(\w+)>", r"@\1", str(refused))
                await ack(response_action="errors", errors={block.value: text})
                return
            await ack()

        listener.__name__, listener.__doc__ = work.__name__, work.__doc__
        listener.__qualname__ = work.__qualname__
        return listener

    return make
