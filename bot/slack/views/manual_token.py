"""The admins' message when Atlassian refuses to mint a token: make it by hand, for the owner.

No documented route mints a service-account token; the console's own route may refuse. The
account exists with its access, so an admin creates the token in admin.atlassian.com.
"""

from __future__ import annotations

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.slack.views.text import clip, escape, mention
from bot.slack.views.token_delivery import GATEWAY
from workflows.catalog import Product
from workflows.ports import ManualToken
from workflows.providers.atlassian_contract import MANUAL_TOKEN_STEPS

FIELD_MAX = 2000  # Slack's limit on one section field


def console_path(manual: ManualToken) -> str:
    """admin.atlassian.com → Directory → Service accounts → the account → Credentials → ..."""
    account = f"{manual.account_name} ({manual.email})" if manual.email else manual.account_name
    return " → ".join(step.format(account=account) for step in MANUAL_TOKEN_STEPS)


def manual_token_request(manual: ManualToken) -> tuple[str, list[Block]]:
    """What to click, with the name, scopes and expiry the policy would have used."""
    owner = mention(manual.owner_id)
    name = escape(manual.account_name)
    products = ", ".join(Product(p).label for p in manual.products)
    gateways = ", ".join(
        f"`{GATEWAY.format(product=p, cloud=manual.cloud_id)}/...`" for p in manual.products
    )
    fields = [
        f"*Token name*\n`{escape(manual.label)}`",
        f"*Expires on*\n{manual.expires_at:%Y-%m-%d}",
        f"*Give it to*\n{owner}, the owner",
        f"*Products*\n{products}",
        clip(f"*Scopes*\n{escape(', '.join(manual.scopes))}", FIELD_MAX),
    ]
    blocks: list[Block] = [
        HeaderBlock(text=clip(f"Make a token by hand: {manual.request_short_id}", 150)),
        SectionBlock(
            text=clip(
                f":wrench: sabot could not make the API token of `{name}` "
                f"({manual.request_short_id}) for {owner}: {escape(manual.reason)}. The account "
                "exists and has its product access; please create the token by hand:",
                3000,
            )
        ),
        SectionBlock(text=clip(f"*{escape(console_path(manual))}*", 3000)),
        SectionBlock(fields=[MarkdownTextObject(text=f) for f in fields]),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=clip(
                        f"Give it to {owner} privately (a DM, never a channel): it is shown "
                        "once. It works only through the Atlassian API gateway "
                        f"({gateways}), as Basic auth `email:token` or a Bearer token. "
                        "Use the token name above: it ties the token to this request in "
                        "Atlassian's list.",
                        3000,
                    )
                )
            ]
        ),
    ]
    text = (
        f"Make the API token of {name} ({manual.request_short_id}) by hand for {owner}: "
        f"{escape(console_path(manual))}"
    )
    return text, blocks
