"""`/service-account discover` and `findings`: the three answers, then findings with buttons."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.slack.ids import ActionId, one_of_many
from bot.slack.views.text import SECTION_MAX, clip, escape
from workflows.discovery.findings import DiscoveryReport, PersonFinding
from workflows.models import Finding
from workflows.states import FindingState

TOP = 10  # findings shown; the rest are in `sabot discover` and `sabot findings`
LABELS_SHOWN = 5


@dataclass(frozen=True)
class Line:
    """One finding as a list shows it, whether just discovered or read back from the table."""

    account_id: str
    name: str
    email: str
    state: FindingState
    reasons: list[str]
    last_ui_activity: datetime | None
    billable: bool
    labels: list[str]
    request_id: int | None = None


def line_of_report(finding: PersonFinding) -> Line:
    p = finding.person
    return Line(
        p.account_id,
        p.name,
        p.email,
        finding.state,
        [r.value for r in finding.reasons],
        p.last_ui_activity,
        p.billable,
        [t.label for t in p.tokens],
    )


def line_of_row(row: Finding) -> Line:
    return Line(
        row.account_id,
        row.name or "",
        row.email or "",
        FindingState(row.state),
        list(row.reasons),
        row.last_ui_activity,
        row.billable,
        [str(t.get("label", "")) for t in row.tokens],
        row.request_id,
    )


def _text(line: Line) -> str:
    seen = line.last_ui_activity.date().isoformat() if line.last_ui_activity else "never"
    labels = ", ".join(f"`{escape(label[:60])}`" for label in line.labels[:LABELS_SHOWN])
    more = f" and {len(line.labels) - LABELS_SHOWN} more" if len(line.labels) > LABELS_SHOWN else ""
    request = f" · SA-{line.request_id}" if line.request_id else ""
    return clip(
        f"*{escape(line.name or line.account_id)}* {escape(line.email)} · "
        f"{line.state.value}{request}\n{', '.join(line.reasons)}\n"
        f"pages last viewed: {seen} · billable seat: {'yes' if line.billable else 'no'}"
        + (f" · tokens: {labels}{more}" if line.labels else ""),
        SECTION_MAX,
    )


def _buttons(line: Line, index: int) -> list[ButtonElement]:
    """Offer while it is open and there is a token to replace; dismiss until it has moved on."""
    buttons = []
    if line.state is FindingState.OPEN and line.labels:
        buttons.append(
            ButtonElement(
                text="Offer a service account",
                action_id=one_of_many(ActionId.FINDING_OFFER, index),
                value=line.account_id,
                style="primary",
            )
        )
    if line.state in (FindingState.OPEN, FindingState.OFFERED):
        buttons.append(
            ButtonElement(
                text="Dismiss",
                action_id=one_of_many(ActionId.FINDING_DISMISS, index),
                value=line.account_id,
            )
        )
    return buttons


def finding_blocks(lines: list[Line]) -> list[Block]:
    blocks: list[Block] = []
    for index, line in enumerate(lines):
        blocks.append(SectionBlock(text=_text(line)))
        buttons = _buttons(line, index)
        if buttons:
            blocks.append(ActionsBlock(elements=buttons))
    return blocks


def _more(rest: int, where: str) -> list[Block]:
    if rest <= 0:
        return []
    note = f"{rest} more findings: `{where}` lists them all."
    return [ContextBlock(elements=[MarkdownTextObject(text=note)])]


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
    blocks += finding_blocks([line_of_report(f) for f in report.findings[:TOP]])
    blocks += _more(len(report.findings) - TOP, "sabot discover --format csv")
    return headline, blocks


def findings_list(rows: list[Finding], state: FindingState | None) -> tuple[str, list[Block]]:
    """`/service-account findings [STATE]`: counts by state, then the findings themselves."""
    counts = Counter(FindingState(r.state) for r in rows)
    which = f" {state.value}" if state else ""
    if not rows:
        text = f"No{which} findings. `discover` looks for automation on people's accounts."
        return text, [SectionBlock(text=text)]
    tally = ", ".join(f"{counts[s]} {s.value}" for s in FindingState if counts[s])
    headline = f"{len(rows)}{which} findings: {tally}."
    blocks: list[Block] = [SectionBlock(text=f"*{headline}*")]
    blocks += finding_blocks([line_of_row(r) for r in rows[:TOP]])
    blocks += _more(len(rows) - TOP, "sabot findings --format csv")
    return headline, blocks
