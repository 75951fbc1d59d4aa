"""Making user-supplied text safe to echo in mrkdwn."""

from __future__ import annotations

import re
from datetime import datetime

from workflows.validation import without_format_characters

PLAIN_TEXT_MAX = 3000


def escape(text: str) -> str:
    """Escape mrkdwn's control characters (`&` first), so `<!channel>` or `<url|label>` typed by
    a user is shown as typed and can neither ping anyone nor forge a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """Undo Slack's escaping of a slash command's text (`should_escape`), `&` last."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def mention(user_id: str) -> str:
    return f"<@{user_id}>"


def when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def as_typed(text: str, limit: int = PLAIN_TEXT_MAX) -> str:
    """A person's free text for a plain_text object: invisible format characters (bidi
    overrides...) dropped and every run of white space, line breaks included, made one space,
    so it reads as one paragraph of theirs and nothing else."""
    return clip(re.sub(r"\s+", " ", without_format_characters(text)).strip() or "-", limit)
