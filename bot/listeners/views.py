"""Modal submissions: the request form and the deny reason."""

from __future__ import annotations

import json
import re
from collections.abc import Coroutine
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.models.blocks import SectionBlock
from slack_sdk.models.views import View

from bot.ids import BlockId, CallbackId
from bot.services import problem_text, services_of
from bot.views.request_modal import field_errors, submitted_modal
from workflows import accounts, decisions, requests
from workflows.errors import FormInvalid, UserError
from workflows.validation import RequestForm


def _input(values: dict[str, Any], block: BlockId) -> dict[str, Any]:
    # Each input's element carries its block's id as action_id: unique in the view, as Slack asks.
    return (values.get(block.value) or {}).get(block.value) or {}


def _text(values: dict[str, Any], block: BlockId) -> str:
    return str(_input(values, block).get("value") or "")


def _chosen(values: dict[str, Any], block: BlockId) -> list[str]:
    return [str(o.get("value")) for o in _input(values, block).get("selected_options") or []]


def form_of(view: dict[str, Any]) -> RequestForm:
    values = (view.get("state") or {}).get("values") or {}
    return RequestForm(
        name=_text(values, BlockId.NAME),
        justification=_text(values, BlockId.JUSTIFICATION),
        products=_chosen(values, BlockId.PRODUCTS),
        scopes=_chosen(values, BlockId.SCOPES),
        lifetime_days=_text(values, BlockId.LIFETIME),
    )


def _metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _notice(title: str, text: str) -> View:
    return View(type="modal", title=title, close="Close", blocks=[SectionBlock(text=text)])


async def submit_request(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
) -> None:
    """Validate in the modal; a valid request is stored and the modal says so."""
    channel = _metadata(view).get("channel")
    try:
        request = await requests.submit(
            services_of(context).runtime,
            body["user"]["id"],
            form_of(view),
            channel if isinstance(channel, str) else None,
        )
    except FormInvalid as invalid:
        await ack(response_action="errors", errors=field_errors(invalid.errors))
        return
    except Exception as error:
        await ack(response_action="update", view=_notice("Not sent", problem_text(error)))
        return
    await ack(response_action="update", view=submitted_modal(request))


def _reason_and_request(view: dict[str, Any], block: BlockId) -> tuple[str, int | None]:
    reason = _text((view.get("state") or {}).get("values") or {}, block).strip()
    request_id = _metadata(view).get("request_id")
    return reason[:500], request_id if isinstance(request_id, int) else None


async def submit_denial(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
) -> None:
    """Deny with the reason typed; if the request moved on meanwhile, say so in the modal."""
    reason, request_id = _reason_and_request(view, BlockId.DENY_REASON)
    work = (
        decisions.decide(
            services_of(context).runtime,
            request_id or 0,
            body["user"]["id"],
            decisions.DENY,
            reason,
        )
        if reason and request_id
        else None
    )
    await _decide_in_modal(ack, work, BlockId.DENY_REASON, "Give a reason.")


async def submit_break_glass(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
) -> None:
    reason, request_id = _reason_and_request(view, BlockId.BREAK_GLASS_REASON)
    work = (
        decisions.break_glass(
            services_of(context).runtime, request_id or 0, body["user"]["id"], reason
        )
        if reason and request_id
        else None
    )
    await _decide_in_modal(ack, work, BlockId.BREAK_GLASS_REASON, "Say why this cannot wait.")


async def _decide_in_modal(
    ack: AsyncAck, work: Coroutine[Any, Any, object] | None, block: BlockId, missing: str
) -> None:
    if work is None:
        await ack(response_action="errors", errors={block.value: missing})
        return
    try:
        await work
    except UserError as refused:
        # A plain-text field error cannot show a mention: show the id as @U... instead.
        text = re.sub(r"<@(\w+)>", r"@\1", str(refused))
        await ack(response_action="errors", errors={block.value: text})
        return
    await ack()


async def submit_reassign(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
) -> None:
    values = (view.get("state") or {}).get("values") or {}
    new_owner = str(_input(values, BlockId.NEW_OWNER).get("selected_user") or "")
    metadata = _metadata(view)
    ref = str(metadata.get("ref") or metadata.get("name") or "")[:60]
    work = accounts.reassign(services_of(context).runtime, ref, body["user"]["id"], new_owner)
    await _decide_in_modal(ack, work if new_owner else None, BlockId.NEW_OWNER, "Pick someone.")


def register(app: AsyncApp) -> None:
    app.view(CallbackId.REASSIGN.value)(submit_reassign)
    app.view(CallbackId.REQUEST.value)(submit_request)
    app.view(CallbackId.DENY.value)(submit_denial)
    app.view(CallbackId.BREAK_GLASS.value)(submit_break_glass)
