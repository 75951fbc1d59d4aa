"""Reading the words after the slash command: names, flags, mentions as Slack sends them."""

from __future__ import annotations

import re
from datetime import timedelta

from bot.slack.views.text import unescape
from workflows.account.accounts import AccountFilter
from workflows.errors import UserError

# With should_escape, Slack sends a mention as <@U123|name>; people may also type a bare id.
MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
DAYS = re.compile(r"^(\d{1,4})d?$")
STATUSES = ("active", "revoked", "deleted", "failed")
PRODUCTS = ("jira", "confluence")


class BadArguments(UserError):
    """The command's words do not parse; the message says what is expected."""


def user_ref(word: str, flag: str) -> str:
    match = MENTION.match(word)
    if match:
        return match.group(1)
    if USER_ID.match(word):
        return word
    raise BadArguments(f"{flag} takes @someone or a user id such as U0123ABCD.")


def _value(words: list[str], index: int, flag: str) -> str:
    if index + 1 >= len(words):
        raise BadArguments(f"{flag} needs a value.")
    return words[index + 1]


def _choice(value: str, flag: str, choices: tuple[str, ...]) -> str:
    if value.lower() not in choices:
        raise BadArguments(f"{flag} is one of {', '.join(choices)}.")
    return value.lower()


def list_filter(words: list[str]) -> AccountFilter:
    """`--owner @x --product jira --status active --expiring 14d free text`."""
    owner = product = status = None
    expiring: timedelta | None = None
    text: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--owner":
            owner = user_ref(_value(words, index, word), word)
        elif word == "--product":
            product = _choice(_value(words, index, word), word, PRODUCTS)
        elif word == "--status":
            status = _choice(_value(words, index, word), word, STATUSES)
        elif word == "--expiring":
            days = DAYS.match(_value(words, index, word))
            if not days:
                raise BadArguments("--expiring takes a number of days, such as 14d.")
            expiring = timedelta(days=int(days.group(1)))
        elif word.startswith("--"):
            raise BadArguments(
                "Unknown flag {}; use --owner, --product, --status or --expiring.",
                unescape(word)[:30],
            )
        else:
            text.append(unescape(word))
            index += 1
            continue
        index += 2
    return AccountFilter(owner, product, status, expiring, " ".join(text)[:100] or None)


def name_and_flags(
    words: list[str], command: str, flags: tuple[str, ...] = ()
) -> tuple[str, set[str]]:
    """`rotate my-bot --now`: one account (its name, or its request id `SA-12`), and only
    the flags this command knows."""
    given = {w for w in words if w.startswith("--")}
    unknown = given - set(flags)
    names = [w for w in words if not w.startswith("--")]
    if unknown:
        raise BadArguments(f"Unknown flag {{}} for {command}.", unescape(sorted(unknown)[0])[:30])
    if len(names) != 1:
        usage = f"{command} NAME" + "".join(f" [{f}]" for f in flags)
        raise BadArguments(f"Usage: {usage}")
    return unescape(names[0])[:60], given
