"""Making user-supplied text safe to echo in mrkdwn."""

from __future__ import annotations

from datetime import datetime


def escape(text: str) -> str:
    """Escape mrkdwn's control characters (`&` first), so `<!channel>` or `<url|label>` typed by
    a user is shown as typed and can neither ping anyone nor forge a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(user_id: str) -> str:
    return f"<@{user_id}>"


def when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
