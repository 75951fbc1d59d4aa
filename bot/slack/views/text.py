"""Making user-supplied text safe to echo in mrkdwn."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from workflows.request.validation import without_format_characters

PLAIN_TEXT_MAX = 3000
# Slack's limits on text in blocks: a section's text, and each of its fields.
SECTION_MAX, FIELD_MAX = 3000, 2000


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


def listed(items: Sequence[str], room: int, where_all: str) -> str:
    """`items` escaped and comma-separated in at most `room` characters: as many as fit, then
    how many more and where the whole list is (`where_all`), so a long policy never makes a
    message Slack refuses."""
    shown = [escape(i) for i in items]
    whole = ", ".join(shown)
    if len(whole) <= room:
        return whole
    kept: list[str] = []
    for index, item in enumerate(shown):
        rest = len(shown) - index
        tail = f" and {rest} more; {where_all}"
        if len(", ".join([*kept, item])) + len(f" and {rest - 1} more; {where_all}") > room:
            return (", ".join(kept) + tail).lstrip()
        kept.append(item)
    return ", ".join(kept)  # not reached: the whole list would have fitted


def chunks(items: Sequence[str], room: int) -> list[str]:
    """`items` escaped, one per line, in as few texts of at most `room` characters as can be."""
    out: list[str] = []
    for item in (clip(escape(i), room) for i in items):
        if out and len(out[-1]) + 1 + len(item) <= room:
            out[-1] += "\n" + item
        else:
            out.append(item)
    return out
