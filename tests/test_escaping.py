"""User text is echoed as typed: it can neither ping anyone nor forge a link."""

from __future__ import annotations

import json

from bot.slack.views.request_messages import approval_message, requester_card
from bot.slack.views.text import escape
from sandbox.people import markup
from workflows.models import ServiceAccountRequest
from workflows.ports import RequestSnapshot

HOSTILE = "<!channel> <@U0BOSS> <https://evil.example|click> & <!subteam^S1>"


def test_escape_order_and_characters() -> None:
    assert escape("a & <b> &amp;") == "a &amp; &lt;b&gt; &amp;amp;"
    assert "<" not in escape(HOSTILE) and ">" not in escape(HOSTILE)


def _snapshot(**changes: object) -> RequestSnapshot:
    request = ServiceAccountRequest(
        id=7,
        name="ci-bot",
        justification=HOSTILE,
        products=["jira"],
        scopes=["read:jira-work"],
        lifetime_days=90,
        requester_id="U0ALICE",
        status="pending",
    )
    for key, value in changes.items():
        setattr(request, key, value)
    return RequestSnapshot(request)


def test_messages_never_carry_user_text_unescaped() -> None:
    for render in (approval_message, requester_card):
        for snap in (
            _snapshot(),
            _snapshot(status="denied", status_reason=HOSTILE, decided_by="U0BOB"),
        ):
            text, blocks = render(snap)
            parsed = "\n".join([text, *markup([b.to_dict() for b in blocks])])
            for forged in ("<!channel>", "<https://evil", "<!subteam", "<@U0BOSS>"):
                assert forged not in parsed
            if snap.request.status_reason:
                assert "&lt;!channel&gt;" in parsed
            # the justification is shown, as plain text, exactly as typed
            as_typed = {"type": "plain_text", "text": HOSTILE, "emoji": False}
            assert any(b.to_dict().get("text") == as_typed for b in blocks)


def test_requester_mention_is_kept_as_a_mention() -> None:
    _, blocks = approval_message(_snapshot())
    assert "<@U0ALICE>" in json.dumps([b.to_dict() for b in blocks])
