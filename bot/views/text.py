"""Making user-supplied text safe to echo in mrkdwn."""

from __future__ import annotations

from datetime import datetime


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
