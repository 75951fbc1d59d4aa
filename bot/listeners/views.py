"""Modal submissions: the request form and the deny reason."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.models.blocks import SectionBlock
from slack_sdk.models.views import View

from bot.ids import ActionId, BlockId, CallbackId
from bot.services import problem_text, services_of
from bot.views.request_modal import field_errors, submitted_modal
from bot.views.text import escape
from workflows import requests
from workflows.errors import FormInvalid, UserError
from workflows.validation import RequestForm


def _input(values: dict[str, Any], block: BlockId) -> dict[str, Any]:
    return (values.get(block.value) or {}).get(ActionId.INPUT.value) or {}


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
        await ack(response_action="update", view=_notice("Not sent", escape(problem_text(error))))
        return
    await ack(response_action="update", view=submitted_modal(request))


async def submit_denial(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
) -> None:
    """Deny with the reason typed; if the request moved on meanwhile, say so in the modal."""
    reason = _text((view.get("state") or {}).get("values") or {}, BlockId.DENY_REASON).strip()
    request_id = _metadata(view).get("request_id")
    if not reason:
        await ack(response_action="errors", errors={BlockId.DENY_REASON.value: "Give a reason."})
        return
    if not isinstance(request_id, int):
        await ack(response_action="update", view=_notice("Not denied", "Unknown request."))
        return
    try:
        await requests.decide(
            services_of(context).runtime,
            request_id,
            body["user"]["id"],
            requests.DENY,
            reason[:500],
        )
    except UserError as refused:
        await ack(response_action="errors", errors={BlockId.DENY_REASON.value: str(refused)})
        return
    await ack()


def register(app: AsyncApp) -> None:
    app.view(CallbackId.REQUEST.value)(submit_request)
    app.view(CallbackId.DENY.value)(submit_denial)
