"""One button click as a listener needs it, and the decorator that makes a listener of it.

A listener is then the domain call and its answer:

    @on_click
    async def approve(click: Click) -> None:
        await decisions.decide(click.runtime, click.request_id, click.user, Verdict.APPROVE)

`on_click` acks at once (Slack wants it within 3 s) and runs the work after the ack (a modal
to open goes first: `opens_modal`), answers a known error in the clicker's words and an unknown
one with a reference id, and refreshes the Home tab when the click came from there. A group of
listeners goes to Bolt as one (`register_buttons`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.kwargs_injection.async_args import AsyncArgs
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.replies import publish_home
from bot.slack.services import Services, answering_errors, services_of
from workflows.errors import NotFound
from workflows.ports import ReplyTarget
from workflows.runtime import Runtime

REF_MAX = 60  # an account name or SA-12 in a button's value
ACCOUNT_ID_MAX = 128  # an Atlassian account id


def _digits(value: str, what: str) -> int:
    """Values are forgeable: one that is not an id is just 'not found'."""
    if not value.isdigit() or len(value) > 12:
        raise NotFound(f"That button does not point at a {what} I know.")
    return int(value)


@dataclass
class Click:
    """Follow-up work of one button click, answered to the clicker alone."""

    services: Services
    body: dict[str, Any]
    action: dict[str, Any]
    respond: AsyncRespond | None
    client: AsyncWebClient

    @property
    def runtime(self) -> Runtime:
        return self.services.runtime

    @property
    def user(self) -> str:
        return str(self.body["user"]["id"])

    @property
    def value(self) -> str:
        return str(self.action.get("value") or "")

    @property
    def ref(self) -> str:
        """An account name or request id the button carries."""
        return self.value[:REF_MAX]

    @property
    def request_id(self) -> int:
        return _digits(self.value, "request")

    @property
    def token_id(self) -> int:
        return _digits(self.value, "token")

    @property
    def account_id(self) -> str:
        if not self.value or len(self.value) > ACCOUNT_ID_MAX:
            raise NotFound("That button does not point at a finding I know.")
        return self.value

    @property
    def target(self) -> ReplyTarget:
        """Where an ephemeral answer to this click goes (a token, for Reveal)."""
        return ReplyTarget(
            user_id=self.user,
            channel_id=(self.body.get("channel") or {}).get("id"),
            response_url=self.body.get("response_url"),
        )

    @property
    def from_home(self) -> bool:
        container = self.body.get("container") or {}
        return (
            container.get("type") == "view" and (self.body.get("view") or {}).get("type") == "home"
        )

    async def say(self, text: str) -> None:
        await self.show(text, ())

    async def show(self, text: str, blocks: Sequence[Block]) -> None:
        shown = [b.to_dict() for b in blocks] or None
        if self.body.get("response_url") and self.respond is not None:
            await self.respond(
                text=text, blocks=shown, response_type="ephemeral", replace_original=False
            )
        else:  # a click in the Home tab has no response_url: answer in our DM
            await self.client.chat_postMessage(channel=self.user, text=text, blocks=shown)

    async def replace(self, text: str, blocks: Sequence[Block] = ()) -> None:
        """The clicked message becomes the answer (its buttons go with it)."""
        assert self.respond is not None
        shown = [b.to_dict() for b in blocks] or None
        await self.respond(text=text, blocks=shown, replace_original=True)

    async def delete(self) -> None:
        """The clicked message goes (a Cancel on a confirm step)."""
        assert self.respond is not None
        await self.respond(delete_original=True)

    async def open(self, view: View) -> None:
        await self.client.views_open(trigger_id=self.body["trigger_id"], view=view)

    def later(self, work: Coroutine[Any, Any, Any]) -> None:
        """After the ack."""
        self.services.background.spawn(self._then_home(work))

    async def open_modal(self, work: Coroutine[Any, Any, Any]) -> None:
        """Now, the ack waiting for it (a modal to open: its trigger_id lives 3 s). Opening a
        form changes nothing the Home tab shows: no refresh."""
        await self.services.background.open_modal(answering_errors(work, self.say))

    async def _then_home(self, work: Coroutine[Any, Any, Any]) -> None:
        await answering_errors(work, self.say)
        if self.from_home:
            await answering_errors(publish_home(self.services, self.client, self.user), self.say)


ClickWork = Callable[[Click], Coroutine[Any, Any, None]]
Listener = Callable[[AsyncArgs], Awaitable[None]]


def _action(args: AsyncArgs) -> dict[str, Any]:
    assert args.action is not None  # Bolt has it for every block_actions request
    return args.action


def on_click(work: ClickWork | None = None, *, opens_modal: bool = False) -> Any:
    """`@on_click` or `@on_click(opens_modal=True)` (the work opens a modal: its trigger_id
    lives 3 s, so it runs before the ack, `Background.open_modal`). The listener Bolt calls
    takes Bolt's `args` (every argument it has); `work` takes the click."""

    def make(work: ClickWork) -> Listener:
        async def listener(args: AsyncArgs) -> None:
            services = services_of(args.context)
            click = Click(services, args.body, _action(args), args.respond, args.client)
            if opens_modal:
                await click.open_modal(work(click))
                await args.ack()
            else:
                await args.ack()
                click.later(work(click))

        listener.__name__, listener.__doc__ = work.__name__, work.__doc__
        listener.__qualname__ = work.__qualname__
        return listener

    return make(work) if work is not None else make


def register_buttons(
    app: AsyncApp, buttons: Sequence[tuple[str | re.Pattern[str], Listener]]
) -> None:
    """A group's buttons as one Bolt listener, which finds the clicked one's listener by its
    action id (an id, or a pattern of ids: `ids.routes`). Bolt tries its listeners one after
    another and builds every argument for each try, about 10 us each here: with a Bolt listener
    per button, a click on the last of 21 paid for 20 misses before its own listener ran."""
    named = {f"button{n}": listener for n, (_, listener) in enumerate(buttons)}
    patterns = (i.pattern if isinstance(i, re.Pattern) else f"^{re.escape(i)}$" for i, _ in buttons)
    either = re.compile("|".join(f"(?P<button{n}>{p})" for n, p in enumerate(patterns)))

    async def clicked(args: AsyncArgs) -> None:
        match = either.search(_action(args)["action_id"])
        assert match is not None  # Bolt calls this only for what `either` matches
        name = next(group for group, found in match.groupdict().items() if found is not None)
        await named[name](args)

    app.action(either)(clicked)
