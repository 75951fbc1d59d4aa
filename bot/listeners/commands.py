"""The slash command: one small function per subcommand, chosen from a table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient

from bot.command_args import list_filter, name_and_flags
from bot.replies import open_request_form, rotate_and_tell
from bot.services import Services, answering_errors, problem_text, services_of
from bot.views import accounts as views
from bot.views import discovery as discovery_view
from bot.views.help import unknown_subcommand, usage
from workflows import accounts, discovery, requests
from workflows.errors import UserError


@dataclass
class Call:
    """One slash command as the subcommands need it."""

    ack: AsyncAck
    command: dict[str, Any]
    words: list[str]
    services: Services
    respond: AsyncRespond
    client: AsyncWebClient

    @property
    def user(self) -> str:
        return str(self.command["user_id"])

    @property
    def name(self) -> str:
        return str(self.command.get("command") or self.services.settings.sabot_command)

    def later(self, work: Coroutine[Any, Any, Any], *, urgent: bool = False) -> None:
        """Run after the acknowledgement; answer errors ephemerally. `urgent` (a modal to open:
        its trigger_id lives 3 s) skips the queue of follow-ups."""
        self.services.background.spawn(answering_errors(work, self.respond), urgent=urgent)

    async def show(self, text: str, blocks: Sequence[Block]) -> None:
        shown = [b.to_dict() for b in blocks] or None
        await self.respond(text=text, blocks=shown, response_type="ephemeral")


async def _help(call: Call) -> None:
    await call.ack(text=usage(call.name))


async def _request(call: Call) -> None:
    await call.ack()
    # trigger_id lives 3 seconds: open the modal right after the ack, before anything slow.
    form = open_request_form(
        call.services, call.client, call.command["trigger_id"], call.command.get("channel_id")
    )
    call.later(form, urgent=True)


async def _cancel(call: Call) -> None:
    if len(call.words) != 1:
        raise UserError(f"Usage: `{call.name} cancel SA-12`")
    request_id = requests.parse_short_id(call.words[0])
    await call.ack()

    async def work() -> None:
        request = await requests.cancel(call.services.runtime, request_id, call.user)
        await call.respond(f"{request.short_id} is cancelled.")

    call.later(work())


async def _retry(call: Call) -> None:
    if len(call.words) != 1:
        raise UserError(f"Usage: `{call.name} retry SA-12`")
    request_id = requests.parse_short_id(call.words[0])
    await call.ack()

    async def work() -> None:
        request = await requests.retry(call.services.runtime, request_id, call.user)
        await call.respond(f"Provisioning {request.short_id} (`{request.name}`) again.")

    call.later(work())


async def _list(call: Call) -> None:
    flt = list_filter(call.words)
    await call.ack()

    async def work() -> None:
        page = await accounts.list_accounts(call.services.runtime, call.user, flt)
        await call.show(*views.account_list(page, flt))

    call.later(work())


async def _show(call: Call) -> None:
    name, _ = name_and_flags(call.words, "show")
    await call.ack()

    async def work() -> None:
        await call.show(
            *views.account_details(await accounts.details(call.services.runtime, name, call.user))
        )

    call.later(work())


async def _audit(call: Call) -> None:
    name, _ = name_and_flags(call.words, "audit")
    await call.ack()

    async def work() -> None:
        await call.show(
            *views.account_audit(await accounts.details(call.services.runtime, name, call.user))
        )

    call.later(work())


async def _rotate(call: Call) -> None:
    name, flags = name_and_flags(call.words, "rotate", ("--now",))
    await call.ack()
    call.later(rotate_and_tell(call.services, name, call.user, call.show, "--now" in flags))


async def _token(call: Call) -> None:
    name, _ = name_and_flags(call.words, "token")
    await call.ack()
    call.later(rotate_and_tell(call.services, name, call.user, call.show, False))


async def _confirming(call: Call, action: str) -> None:
    name, _ = name_and_flags(call.words, action)
    await call.ack()

    async def work() -> None:
        # Unknown names and wrong rights get their one line now, not a prompt that fails later.
        row = await accounts.check_allowed(call.services.runtime, name, call.user, action)
        await call.show(*views.confirm(action, row))

    call.later(work())


async def _revoke(call: Call) -> None:
    await _confirming(call, "revoke")


async def _delete(call: Call) -> None:
    await _confirming(call, "delete")


async def _discover(call: Call) -> None:
    if call.words:
        raise UserError(f"Usage: `{call.name} discover` (admins)")
    await call.ack()

    async def work() -> None:
        report = await discovery.discover_for(call.services.runtime, call.user)
        await call.show(*discovery_view.discovery_summary(report))

    call.later(work())


SUBCOMMANDS: dict[str, Callable[[Call], Awaitable[None]]] = {
    "help": _help,
    "request": _request,
    "cancel": _cancel,
    "retry": _retry,
    "list": _list,
    "show": _show,
    "audit": _audit,
    "rotate": _rotate,
    "token": _token,
    "revoke": _revoke,
    "delete": _delete,
    "discover": _discover,
}


async def service_account(
    ack: AsyncAck,
    command: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    context: AsyncBoltContext,
) -> None:
    """`/service-account SUBCOMMAND ...`: help with nothing, a clear line for a bad word."""
    words = (command.get("text") or "").split()
    subcommand = words[0].lower() if words else "help"
    call = Call(ack, command, words[1:], services_of(context), respond, client)
    run = SUBCOMMANDS.get(subcommand)
    if run is None:
        await ack(text=unknown_subcommand(call.name, subcommand))
        return
    try:
        await run(call)
    except UserError as bad:  # malformed words: one line, before anything happened
        await ack(text=problem_text(bad))


def register(app: AsyncApp, command_name: str) -> None:
    app.command(command_name)(service_account)
