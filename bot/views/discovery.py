"""`/service-account discover`'s answer: the three answers, then the top findings."""

from __future__ import annotations

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock

from bot.views.text import SECTION_MAX, clip, escape
from workflows.discovery import DiscoveryReport, PersonFinding

TOP = 10  # findings shown; the rest are in `sabot discover`


def _finding(finding: PersonFinding) -> SectionBlock:
    p = finding.person
    seen = p.last_ui_activity.date().isoformat() if p.last_ui_activity else "never"
    labels = ", ".join(f"`{escape(t.label[:60])}`" for t in p.tokens[:5])
    more = f" and {len(p.tokens) - 5} more" if len(p.tokens) > 5 else ""
    text = (
        f"*{escape(p.name or p.account_id)}* {escape(p.email)} · {finding.state.value}\n"
        f"{', '.join(r.value for r in finding.reasons)}\n"
        f"pages last viewed: {seen} · billable seat: {'yes' if p.billable else 'no'}"
        + (f" · tokens: {labels}{more}" if p.tokens else "")
    )
    return SectionBlock(text=clip(text, SECTION_MAX))


def discovery_summary(report: DiscoveryReport) -> tuple[str, list[Block]]:
    s = report.summary()
    headline = (
        f"Discovery read {s['accounts']} accounts, {s['tokens']} API tokens and "
        f"{s['seats']} billable seats: {s['flagged']} people flagged."
    )
    answers = (
        f"*{headline}*\n"
        f"1. Shared credentials: {s['shared_credentials']} people with a token used in "
        f"{s['recent_token_days']} days and no product page viewed in {s['ui_idle_days']}.\n"
        f"2. Scripts as people: {s['bot_like_identities']} bot-like names, emails or labels.\n"
        f"3. Seats on fake people: {s['billable_bot_seats']} billable bot-like identities."
    )
    blocks: list[Block] = [SectionBlock(text=answers)]
    blocks += [_finding(f) for f in report.findings[:TOP]]
    if len(report.findings) > TOP:
        rest = len(report.findings) - TOP
        note = f"{rest} more findings: `sabot discover --format csv` lists them all."
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=note)]))
    return headline, blocks
