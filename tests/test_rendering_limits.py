"""Whatever policy `policy check` accepts, and whatever a person types, what the bot renders
stays within Slack's Block Kit limits, as the Slack stand-in checks them (`sandbox.block_kit`).

The end-to-end version of one wide policy is in test_slack_limits.py; this one covers the space
of policies and requests in process, where thousands of cases take seconds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.slack.views.accounts import account_details, orphan_alert
from bot.slack.views.discovery import findings_list
from bot.slack.views.home import home_view
from bot.slack.views.replacement import confirm_message, offer_message
from bot.slack.views.request_messages import approval_message, break_glass_alert, requester_card
from bot.slack.views.request_modal import RequestForms, request_modal
from sandbox.block_kit import MAX_VIEW_BLOCKS, block_problems, view_problems
from workflows.account.accounts import AccountDetails, AccountPage, AccountRow
from workflows.account.home import Home
from workflows.discovery.replacement import Prefill, offered_products, suggested_name
from workflows.models import Decision, Finding, ServiceAccount, ServiceAccountRequest
from workflows.policy import FORM_SCOPE_TEXT_MAX, FORM_SCOPES_MAX, Policy, PolicyFile
from workflows.ports import Replacement, RequestSnapshot
from workflows.request.quota import Usage
from workflows.request.validation import JUSTIFICATION_MAX
from workflows.states import FindingState

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 12, 3, tzinfo=UTC)
# The characters that grow most when escaped for mrkdwn (& becomes &amp;), and some that do not.
KEYS = ("jira-software", "jira-servicedesk", "confluence", "statuspage")
HOSTILE = st.text(alphabet="&<>ab *_~`\n", min_size=0, max_size=JUSTIFICATION_MAX)


@st.composite
def granular_scopes(draw: Any, product: str) -> list[str]:
    """Up to the most the form can list, each up to the longest an option may show."""
    count = draw(st.integers(1, FORM_SCOPES_MAX))
    width = draw(st.integers(len(f"read:x-000:{product}"), FORM_SCOPE_TEXT_MAX))
    stem = "x" * (width - len(f"read:-000:{product}"))
    return [f"read:{stem}-{i:03d}:{product}" for i in range(count)]


@st.composite
def policies(draw: Any) -> Policy:
    rules = PolicyFile.model_validate(
        {
            "approval_channel": "C0APPROVALS",
            "approvers": {"default": {"users": ["U0BOB", "U0CAROL"]}},
            "admins": {"users": ["U0CAROL"]},
            "products": {
                "jira": {"scopes": draw(granular_scopes("jira"))},
                "confluence": {"scopes": draw(granular_scopes("confluence"))},
            },
            "names": {"prefix": draw(st.sampled_from(["", "svc-", "a" * 30]))},
        }
    )
    return Policy(rules)


def _request(policy: Policy, draw: Any) -> ServiceAccountRequest:
    offered = {p.value: scopes for p, scopes in policy.offer.scopes.items()}
    products = draw(st.sampled_from([["jira"], ["confluence"], ["jira", "confluence"]]))
    scopes = [s for p in products for s in offered[p]]
    return ServiceAccountRequest(
        id=draw(st.integers(1, 10**9)),
        name=draw(st.sampled_from(["ci-bot", "x" * 40, "a-b-c"])),
        justification=draw(HOSTILE) or "-",
        products=products,
        scopes=scopes,
        lifetime_days=365,
        requester_id="U0ALICE",
        status=draw(st.sampled_from(["pending", "denied", "failed", "active", "revoked"])),
        status_reason=draw(HOSTILE),
        decided_by="U0BOB",
        updated_at=NOW,
    )


def _snapshot(request: ServiceAccountRequest, reason: str) -> RequestSnapshot:
    decisions = [
        Decision(request_id=request.id, approver_id="U0CAROL", verdict="break_glass", reason=reason)
    ]
    account = ServiceAccount(
        request_id=request.id,
        name=request.name,
        owner_id="U0ALICE",
        email=f"{request.name}@serviceaccount.atlassian.com",
        reveal_status="ready",
    )
    return RequestSnapshot(request, decisions, account, quorum=10, break_glass_allowed=True)


def _messages(snap: RequestSnapshot) -> list[tuple[str, list[Any]]]:
    return [
        approval_message(snap),
        requester_card(snap),
        break_glass_alert(snap),
        account_details(AccountDetails(snap)),
        orphan_alert(snap),
    ]


def _home(snap: RequestSnapshot) -> Home:
    r = snap.request
    rows = [
        AccountRow(r.id + i, r.name, "U0ALICE", r.products, "active", NOW, orphaned=True)
        for i in range(10)
    ]
    many = [r.model_copy(update={"id": r.id + i}) for i in range(40)]
    return Home(AccountPage(rows, 0, 10), many[:20], waiting_for_me=many)


@PROPERTY
@given(data=st.data(), policy=policies())
def test_every_accepted_policy_and_any_typed_text_render_within_slacks_limits(
    data: st.DataObject, policy: Policy
) -> None:
    modal = request_modal("C0GENERAL", policy.offer).to_dict()
    assert view_problems(modal, "modal") == []
    seats = Usage(data.draw(st.integers(1, 1000)), data.draw(st.integers(0, 999)), NOW, 3, 1)
    channel = data.draw(st.sampled_from(["C0GENERAL", None]))
    forms = RequestForms()  # built once per policy, the rest added to a copy: the same JSON
    for line in (None, seats):
        assert forms.form(policy, channel, line) == (
            request_modal(channel, policy.offer, line).to_dict()
        )

    request = _request(policy, data.draw)
    snap = _snapshot(request, data.draw(HOSTILE))
    for text, blocks in _messages(snap):
        rendered = [b.to_dict() for b in blocks]
        assert block_problems(rendered) == [], text
        assert len(text) <= 3000

    home = home_view(_home(snap)).to_dict()
    assert view_problems(home, "home") == []
    assert len(home["blocks"]) <= MAX_VIEW_BLOCKS


LABELS = st.text(alphabet="&<>ab _-.`*\n", min_size=0, max_size=255)


@PROPERTY
@given(data=st.data(), policy=policies())
def test_findings_and_replacement_messages_render_within_slacks_limits(
    data: st.DataObject, policy: Policy
) -> None:
    """Labels, names and emails come from Atlassian as anyone typed them."""
    label, name = data.draw(LABELS), data.draw(LABELS)
    email = data.draw(st.text(alphabet="&<>a@.", max_size=320))
    prefill = Prefill(
        "5b10ac8d82e05b22cc7d" * 6,
        suggested_name(label, policy.offer),
        offered_products(data.draw(st.lists(st.sampled_from(KEYS))), policy.offer),
        f"Replaces the API token '{label}' on my own account ({email})"[:JUSTIFICATION_MAX],
    )
    modal = request_modal(None, policy.offer, None, prefill).to_dict()
    assert view_problems(modal, "modal") == []

    offer = Replacement("a" * 128, "U0ALICE", email, name, label, "U0CAROL", ["x" * 40] * 5)
    done = Replacement(**{**offer.__dict__, "request_ref": "SA-1", "service_account": "x" * 40})
    for text, blocks in [offer_message(offer), *(confirm_message(done, a) for a in (True, False))]:
        assert block_problems([b.to_dict() for b in blocks]) == [], text

    rows = [
        Finding(
            account_id=f"{i:0128d}",
            email=email,
            name=name,
            reasons=["bot_like_token_label"] * 5,
            tokens=[{"label": label, "id": str(i)} for _ in range(50)],
            state=data.draw(st.sampled_from(list(FindingState))).value,
            request_id=i,
            first_seen_at=NOW,
            last_seen_at=NOW,
            updated_at=NOW,
        )
        for i in range(data.draw(st.integers(0, 40)))
    ]
    text, blocks = findings_list(rows, None)
    assert block_problems([b.to_dict() for b in blocks]) == [], text
