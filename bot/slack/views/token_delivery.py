"""The one message that holds a token: ephemeral, to the requester who clicked Reveal."""

from __future__ import annotations

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock

from bot.slack.views.text import escape, when
from workflows.ports import TokenDelivery

GATEWAY = "https://api.atlassian.com/ex/{product}/{cloud}"


def token_message(delivery: TokenDelivery) -> tuple[str, list[Block]]:
    """Email, token, expiry and how to call the API with them (through the gateway only)."""
    token = escape(delivery.token.get_secret_value())
    email = escape(delivery.email)
    gateways = "\n".join(
        f"• {p.title()}: `{GATEWAY.format(product=p, cloud=delivery.cloud_id)}/...`"
        for p in delivery.products
    )
    product = delivery.products[0] if delivery.products else "jira"
    # `read -rs` keeps the token out of the shell's history; the double quotes let the shell
    # expand $TOKEN (single quotes would send the six letters "$TOKEN").
    path = "/rest/api/3/myself" if product == "jira" else "/wiki/rest/api/space"
    example = (
        "read -rs TOKEN  # paste the token, then Enter\n"
        f'curl -u "{email}:$TOKEN" {GATEWAY.format(product=product, cloud=delivery.cloud_id)}{path}'
    )
    blocks: list[Block] = [
        SectionBlock(
            text=f":key: *API token for `{escape(delivery.account_name)}`* "
            f"({delivery.request_short_id}). Copy it now: it is shown only "
            "this once, only to you, and is not stored anywhere."
        ),
        SectionBlock(text=f"*Account email*\n`{email}`\n*Token*\n```{token}```"),
        SectionBlock(
            text=f"*Expires* {when(delivery.expires_at)}\n*Use it through the "
            f"Atlassian API gateway* (not `*.atlassian.net`):\n{gateways}\n"
            f"```{example}```\nBasic auth with `email:token`, or "
            "`Authorization: Bearer &lt;token&gt;`."
        ),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"Token label `{escape(delivery.label)}`. Lost it? Ask for a new one; "
                    "this one cannot be shown again."
                )
            ]
        ),
    ]
    return f"API token for {escape(delivery.account_name)} (shown once)", blocks
