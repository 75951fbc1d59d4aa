"""Usage text for the slash command."""

from __future__ import annotations

from functools import cache

from bot.slack.views.text import escape, unescape


@cache  # one command name per process: built once
def usage(command: str) -> str:
    return (
        f"*{command}* hands out Atlassian Cloud service accounts with an approval step.\n"
        f"• `{command} request`: ask for a service account (opens a form)\n"
        f"• `{command} cancel SA-12`: withdraw a request nobody has decided yet\n"
        f"• `{command} list [--owner @x] [--product jira] [--status active] [--expiring 14d]`: "
        "your accounts (admins: everyone's)\n"
        f"• `{command} show NAME`, `{command} audit NAME`: an account's details and history "
        "(NAME, or its request id such as SA-12 where a name is shared)\n"
        f"• `{command} rotate NAME [--now]`, `{command} token NAME`: a new token for the owner\n"
        f"• `{command} revoke NAME`: revoke every token (asks to confirm)\n"
        f"• admins: `{command} delete NAME`, `{command} retry SA-12` (provision a failed "
        f"request again), `{command} discover` (automation running on people's accounts, each "
        f"with Offer a service account / Dismiss), `{command} findings [STATE]` (where each "
        "finding stands: open, offered, migrated, human_token_revoked, dismissed)\n"
        f"• `{command} help`: this text\n"
        "Approvers decide in the approvals channel; once approved, you get a *Reveal token* "
        "button in your direct messages with me."
    )


def unknown_subcommand(command: str, word: str) -> str:
    return f"Unknown subcommand `{escape(unescape(word)[:50])}`.\n{usage(command)}"
