"""The slash command: one small function per subcommand, chosen from a table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.command_args import list_filter, name_and_flags
from bot.slack.replies import open_request_form, rotate_and_tell
from bot.slack.services import Services, answering_errors, problem_text, services_of
from bot.slack.views import accounts as views
from bot.slack.views import discovery as discovery_view
from bot.slack.views.help import unknown_subcommand, usage
from workflows.account import accounts
from workflows.account.accounts import AccountFilter
from workflows.discovery import findings
from workflows.errors import UserError
from workflows.request import requests
from workflows.runtime import Runtime
from workflows.states import FindingState


@dataclass
class Call:
    """One slash command as the subcommands need it."""

    ack: AsyncAck
    command: dict[str, Any]
    words: list[str]
    services: Services
    respond: AsyncRespond
    client: AsyncWebClient

    subcommand: str = "help"

    @property
    def user(self) -> str:
        return str(self.command["user_id"])

    @property
    def runtime(self) -> Runtime:
        return self.services.runtime

    @property
    def name(self) -> str:
        return str(self.command.get("command") or self.services.settings.sabot_command)

    def later(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run after the acknowledgement; answer errors ephemerally."""
        self.services.background.spawn(answering_errors(work, self.respond))

    async def open_modal(self, work: Coroutine[Any, Any, Any]) -> None:
        """Now, the ack waiting for it (a modal to open: its trigger_id lives 3 s)."""
        await self.services.background.open_modal(answering_errors(work, self.respond))

    async def show(self, text: str, blocks: Sequence[Block]) -> None:
        shown = [b.to_dict() for b in blocks] or None
        await self.respond(text=text, blocks=shown, response_type="ephemeral")


Subcommand = Callable[[Call], Awaitable[None]]
T = TypeVar("T")


def subcommand(
    parse: Callable[[Call], T], *, opens_modal: bool = False
) -> Callable[[Callable[[Call, T], Coroutine[Any, Any, None]]], Subcommand]:
    """`parse` checks the words before the ack (a bad word is the ack's one line, nothing
    else happens); the work runs after it, its errors answered ephemerally. `opens_modal`: the
    work runs before the ack (`Background.open_modal`), as its trigger_id lives 3 s."""

    def make(work: Callable[[Call, T], Coroutine[Any, Any, None]]) -> Subcommand:
        async def run(call: Call) -> None:
            parsed = parse(call)
            if opens_modal:
                await call.open_modal(work(call, parsed))
                await call.ack()
            else:
                await call.ack()
                call.later(work(call, parsed))

        return run

    return make


def _nothing(call: Call) -> None:
    if call.words:
        raise UserError(f"Usage: `{call.name} {call.subcommand}` (admins)")


def _ignored(call: Call) -> None:
    return None


def _request_id(call: Call) -> int:
    if len(call.words) != 1:
        raise UserError(f"Usage: `{call.name} {call.subcommand} SA-12`")
    return requests.parse_short_id(call.words[0])


def _account(call: Call) -> str:
    return name_and_flags(call.words, call.subcommand)[0]


def _account_and_now(call: Call) -> tuple[str, bool]:
    name, flags = name_and_flags(call.words, call.subcommand, ("--now",))
    return name, "--now" in flags


def _finding_state(call: Call) -> FindingState | None:
    if len(call.words) > 1:
        raise UserError(f"Usage: `{call.name} findings [STATE]` (admins)")
    return findings.parse_state(call.words[0]) if call.words else None


async def _help(call: Call) -> None:
    await call.ack(text=usage(call.name))


@subcommand(_ignored, opens_modal=True)
async def _request(call: Call, _: None) -> None:
    channel = call.command.get("channel_id")
    await open_request_form(call.services, call.client, call.command["trigger_id"], channel)


@subcommand(_request_id)
async def _cancel(call: Call, request_id: int) -> None:
    request = await requests.cancel(call.runtime, request_id, call.user)
    await call.respond(f"{request.short_id} is cancelled.")


@subcommand(_request_id)
async def _retry(call: Call, request_id: int) -> None:
    request = await requests.retry(call.runtime, request_id, call.user)
    await call.respond(f"Provisioning {request.short_id} (`{request.name}`) again.")


@subcommand(lambda call: list_filter(call.words))
async def _list(call: Call, flt: AccountFilter) -> None:
    page = await accounts.list_accounts(call.runtime, call.user, flt)
    await call.show(*views.account_list(page, flt))


@subcommand(_account)
async def _show(call: Call, name: str) -> None:
    await call.show(*views.account_details(await accounts.details(call.runtime, name, call.user)))


@subcommand(_account)
async def _audit(call: Call, name: str) -> None:
    await call.show(*views.account_audit(await accounts.details(call.runtime, name, call.user)))


@subcommand(_account_and_now)
async def _rotate(call: Call, given: tuple[str, bool]) -> None:
    await rotate_and_tell(call.services, given[0], call.user, call.show, given[1])


@subcommand(_account)
async def _token(call: Call, name: str) -> None:
    await rotate_and_tell(call.services, name, call.user, call.show, False)


@subcommand(_account)
async def _confirming(call: Call, name: str) -> None:
    """revoke and delete: unknown names and wrong rights get their one line now, not a
    prompt that fails later."""
    row = await accounts.check_allowed(call.runtime, name, call.user, call.subcommand)
    await call.show(*views.confirm(call.subcommand, row))


@subcommand(_nothing)
async def _discover(call: Call, _: None) -> None:
    report = await findings.discover_for(call.runtime, call.user)
    await call.show(*discovery_view.discovery_summary(report))


@subcommand(_finding_state)
async def _findings(call: Call, state: FindingState | None) -> None:
    rows = await findings.findings_for(call.runtime, call.user, state)
    await call.show(*discovery_view.findings_list(rows, state))


SUBCOMMANDS: dict[str, Subcommand] = {
    "help": _help,
    "request": _request,
    "cancel": _cancel,
    "retry": _retry,
    "list": _list,
    "show": _show,
    "audit": _audit,
    "rotate": _rotate,
    "token": _token,
    "revoke": _confirming,
    "delete": _confirming,
    "discover": _discover,
    "findings": _findings,
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
    word = words[0].lower() if words else "help"
    call = Call(ack, command, words[1:], services_of(context), respond, client, word)
    run = SUBCOMMANDS.get(word)
    if run is None:
        await ack(text=unknown_subcommand(call.name, word))
        return
    try:
        await run(call)
    except UserError as bad:  # malformed words: one line, before anything happened
        await ack(text=problem_text(bad))


def register(app: AsyncApp, command_name: str) -> None:
    app.command(command_name)(service_account)
