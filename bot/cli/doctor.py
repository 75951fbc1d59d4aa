"""`sabot doctor`: a read-only check of a real deployment, one line per check.

It reads the settings `sabot serve` reads and asks Slack, Atlassian and the database what a
running bot would depend on, without changing anything: no message is posted, no account made,
no migration run, no SQLite file created, no socket kept open. Every check is bounded in time
(a service that does not answer is a failure, "no answer in N s", never a hang), and no line
holds a credential: each is masked with the secrets the settings carry, as the logs are.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.process import logs
from bot.process.settings import Settings
from workflows.catalog import Product
from workflows.policy import People, PolicyFile
from workflows.providers import atlassian_contract as contract
from workflows.providers.atlassian import AtlassianAdmin, AtlassianError
from workflows.retries import ONCE

DEFAULT_TIMEOUT_SECONDS = 10.0
# What Slack sends on every authenticated Web API answer: the scopes the token was granted.
SCOPES_HEADER = "x-oauth-scopes"
# Slack's answers to a token it does not take (any of them: the fix is the same).
BAD_TOKEN = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)
# The workspace `typeKey` a product's grant needs on the site (`jira-software`, as the grant).
SITE_TYPE_KEYS = {Product.JIRA: "jira-software", Product.CONFLUENCE: "confluence"}
TOKEN_PAGE = "the app's OAuth & Permissions page"


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"  # passes, but says what will fail soon
    FAIL = "FAIL"
    SKIP = "skip"  # could not be checked because a check it needs failed: not a pass

    @property
    def passed(self) -> bool:
        return self in (Status.OK, Status.WARN)


class Check(StrEnum):
    POLICY = "policy"
    DATABASE = "database"
    SCHEMA = "database schema"
    SLACK_TOKEN = "slack token"
    SLACK_SCOPES = "slack scopes"
    SLACK_CHANNEL = "slack channel"
    SLACK_PEOPLE = "slack people"
    SLACK_GROUPS = "slack groups"
    SLACK_APP_TOKEN = "slack app token"
    ATLASSIAN_KEY = "atlassian key"
    ATLASSIAN_ORG = "atlassian org"
    ATLASSIAN_KEY_SCOPE = "atlassian key scope"
    ATLASSIAN_ROUTES = "atlassian routes"
    ATLASSIAN_SITES = "atlassian sites"
    ATLASSIAN_PRODUCTS = "atlassian products"
    ATLASSIAN_QUOTA = "atlassian quota"


@dataclass(frozen=True)
class Finding:
    """What one check saw; `fix` says what to do when it did not pass (or soon will not)."""

    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Result:
    check: Check
    status: Status
    detail: str
    fix: str = ""
    timed_out: bool = False  # the service gave no answer within the bound

    def line(self) -> str:
        text = f"{self.status.value:<4} {self.check.value}: {self.detail}"
        return f"{text} — {self.fix}" if self.fix and self.status != Status.OK else text

    def as_json(self) -> dict[str, Any]:
        return {
            "check": self.check.value,
            "ok": self.status.passed,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix if self.status != Status.OK else "",
        }


class Problem(Exception):
    """A check failed: what is wrong and the fix."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail, self.fix = detail, fix


def passed(detail: str) -> Finding:
    return Finding(Status.OK, detail)


def skipped(check: Check, because: str, first: Check) -> Result:
    return Result(check, Status.SKIP, f"not checked: {because}", f"fix `{first.value}` first")


async def bounded(check: Check, work: Awaitable[Finding], seconds: float, late_fix: str) -> Result:
    """Run one check for at most `seconds`; a failure of any kind is a FAIL line."""
    try:
        async with asyncio.timeout(seconds):
            finding = await work
    except TimeoutError:
        return Result(check, Status.FAIL, f"no answer in {seconds:g} s", late_fix, True)
    except Problem as problem:
        return Result(check, Status.FAIL, problem.detail, problem.fix)
    except Exception as error:  # an answer no check expected: still one line, and the rest runs
        first = str(error).splitlines()[0] if str(error) else ""
        return Result(
            check,
            Status.FAIL,
            f"unexpected {type(error).__name__}: {first}"[:300],
            "run again with LOG_LEVEL=DEBUG to see the whole exchange",
        )
    return Result(check, finding.status, finding.detail, finding.fix)


def _listed(items: Iterable[str], most: int = 8) -> str:
    shown = list(items)
    more = f" and {len(shown) - most} more" if len(shown) > most else ""
    return ", ".join(shown[:most]) + more


# -- policy -----------------------------------------------------------------------------------


def check_policy(settings: Settings) -> tuple[Result, PolicyFile | None]:
    """What `sabot policy check` says of the policy `sabot serve` would run with."""
    from bot.cli.policy import describe
    from bot.process.assembly import policy_rules
    from bot.process.settings import SettingsError
    from workflows.policy_file import PolicyError

    source = settings.sabot_policy or "the SABOT_* settings"
    fix = (
        f"correct {settings.sabot_policy}; `sabot policy check` shows each problem with its line"
        if settings.sabot_policy
        else "set SABOT_APPROVAL_CHANNEL and SABOT_APPROVERS, or SABOT_POLICY to a policy file"
    )
    try:
        rules = policy_rules(settings)
    except (PolicyError, SettingsError) as error:
        problems = str(error).splitlines()
        detail = f"{source} is not valid: " + "; ".join(problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        return Result(Check.POLICY, Status.FAIL, detail + more, fix), None
    return Result(Check.POLICY, Status.OK, f"{source}: valid. {describe(rules)}"), rules


def approvers_and_admins(rules: PolicyFile) -> dict[str, list[str]]:
    """Every user id the policy names to approve or administer -> where it names them."""
    named: dict[str, list[str]] = {}
    for role, people in _people(rules):
        if role != "requesters":
            for user in people.users:
                named.setdefault(user, []).append(role)
    return named


def user_groups(rules: PolicyFile) -> dict[str, list[str]]:
    """Every user group the policy names -> where it names it."""
    named: dict[str, list[str]] = {}
    for role, people in _people(rules):
        for group in people.groups:
            named.setdefault(group, []).append(role)
    return named


def _people(rules: PolicyFile) -> list[tuple[str, People]]:
    approvers = rules.approvers
    found = [("approvers.default", approvers.default)]
    found += [(f"approvers.products.{p.value}", rule) for p, rule in approvers.products.items()]
    found += [(f"approvers.scopes.{s}", rule) for s, rule in approvers.scopes.items()]
    found.append(("admins", rules.admins))
    if rules.pending.escalate_to is not None:
        found.append(("pending.escalate_to", rules.pending.escalate_to))
    if rules.requesters is not None:
        found.append(("requesters", rules.requesters))
    return found


# -- database ---------------------------------------------------------------------------------


def _read_only_url(url: str) -> str:
    """The async URL, opening an SQLite file read-only: the doctor never creates or changes it."""
    from workflows.db import async_url, sqlite_file

    path = sqlite_file(url)
    if path is None:
        return async_url(url)
    if not path.is_file():
        raise Problem(
            f"no SQLite file at {path}",
            "check DATABASE_URL, or create the schema with `sabot db upgrade`",
        )
    return f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true"


async def database_checks(settings: Settings, seconds: float) -> list[Result]:
    from sqlalchemy.ext.asyncio import create_async_engine

    reach_fix = "check DATABASE_URL, that the database server runs and that this host may reach it"
    try:
        url = _read_only_url(settings.database_url.get_secret_value())
    except (Problem, ValueError) as error:
        detail, fix = (
            (error.detail, error.fix) if isinstance(error, Problem) else (str(error), reach_fix)
        )
        failed = Result(Check.DATABASE, Status.FAIL, detail, fix)
        return [failed, skipped(Check.SCHEMA, "the database is not reachable", Check.DATABASE)]
    connect = {} if url.startswith("sqlite") else {"timeout": seconds}
    engine = create_async_engine(url, connect_args=connect)
    try:
        reached = await bounded(Check.DATABASE, _reach(engine), seconds, reach_fix)
        if not reached.status.passed:
            return [reached, skipped(Check.SCHEMA, "the database is not reachable", Check.DATABASE)]
        schema = await bounded(Check.SCHEMA, _schema(engine), seconds, reach_fix)
        return [reached, schema]
    finally:
        await engine.dispose()


async def _reach(engine: Any) -> Finding:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (DBAPIError, OSError) as error:
        raise Problem(
            f"cannot connect: {_db_reason(error)}",
            "check DATABASE_URL, that the database server runs and that this host may reach it",
        ) from None
    return passed(f"{engine.dialect.name} answers")


def _db_reason(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    return f"{type(original).__name__}: {str(original).splitlines()[0] if str(original) else ''}"


async def _schema(engine: Any) -> Finding:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from workflows.migrations import VERSIONS, shipped_head

    head = shipped_head()
    try:
        async with engine.connect() as conn:
            found = [
                r[0] for r in await conn.execute(text("SELECT version_num FROM alembic_version"))
            ]
    except DBAPIError:
        found = []
    if found == [head]:
        return passed(f"migrated to the newest schema ({head})")
    if not found:
        raise Problem(
            "no schema yet (no alembic_version table)",
            "run `sabot db upgrade` (or start `sabot serve`, which migrates)",
        )
    known = {path.name.split("_", 1)[0] for path in VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py")}
    if all(v in known for v in found):
        raise Problem(
            f"at revision {', '.join(found)}, behind the newest ({head})",
            "run `sabot db upgrade` (or start `sabot serve`, which migrates)",
        )
    raise Problem(
        f"at revision {', '.join(found)}, which this version of sabot does not know "
        f"(its newest is {head})",
        "run the sabot version that migrated this database, or a newer one",
    )


# -- Slack ------------------------------------------------------------------------------------


@dataclass
class SlackFacts:
    """What the token check learnt, for the checks after it."""

    bot_name: str = "sabot"
    granted: list[str] | None = None  # None: no x-oauth-scopes header came back


def slack_client(settings: Settings, seconds: float) -> AsyncWebClient:
    """No retries: a doctor reports what it sees, within its time bound."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return AsyncWebClient(
        token=token,
        base_url=settings.slack_api_url,
        timeout=math.ceil(seconds) + 1,  # the check's own bound ends it first
        retry_handlers=[],
    )


async def _slack(call: Awaitable[AsyncSlackResponse], url: str) -> AsyncSlackResponse:
    """The answer, or SlackApiError for `ok: false`; unreachable Slack is a Problem."""
    import aiohttp

    try:
        return await call
    except SlackApiError:
        raise
    except aiohttp.ClientError as error:
        raise Problem(
            f"cannot reach Slack at {url} ({type(error).__name__})",
            "check SLACK_API_URL (https://slack.com/api/) and this host's network",
        ) from None


def _slack_error(error: SlackApiError) -> str:
    return str(error.response.get("error") or "unknown error")


def _missing_scope(error: SlackApiError, method: str, wanted: str) -> Problem:
    needed = error.response.get("needed") or wanted
    return Problem(
        f"the bot token may not call {method} (missing_scope: needs {needed})",
        f"add {needed} under {TOKEN_PAGE}, Bot Token Scopes (app_manifest.yml lists every "
        "scope sabot needs), then reinstall the app to the workspace",
    )


async def slack_token(client: AsyncWebClient, url: str, facts: SlackFacts) -> Finding:
    try:
        answer = await _slack(client.auth_test(), url)
    except SlackApiError as error:
        code = _slack_error(error)
        fix = (
            f"set SLACK_BOT_TOKEN to the Bot User OAuth Token (xoxb-...) from {TOKEN_PAGE}; "
            "reinstall the app if it was uninstalled or the token revoked"
            if code in BAD_TOKEN
            else "see Slack's auth.test documentation for this error"
        )
        raise Problem(f"Slack refused SLACK_BOT_TOKEN ({code})", fix) from None
    facts.bot_name = str(answer.get("user") or facts.bot_name)
    header = answer.headers.get(SCOPES_HEADER)
    if header is not None:
        facts.granted = sorted(s.strip() for s in str(header).split(",") if s.strip())
    return passed(
        f"valid: bot @{facts.bot_name} ({answer.get('user_id')}) in {answer.get('team')} "
        f"({answer.get('team_id')})"
    )


async def slack_scopes(facts: SlackFacts) -> Finding:
    from bot.cli.manifest import ManifestError, bot_scopes

    try:
        wanted = bot_scopes()
    except ManifestError as error:
        raise Problem(str(error), "run from the checkout, or next to app_manifest.yml") from None
    if facts.granted is None:
        raise Problem(
            f"Slack's answer had no {SCOPES_HEADER} header, so the granted scopes are unknown",
            "check that SLACK_API_URL is Slack's Web API (https://slack.com/api/)",
        )
    missing = [scope for scope in wanted if scope not in facts.granted]
    if missing:
        raise Problem(
            f"the bot token lacks {', '.join(missing)} (granted: {', '.join(facts.granted)})",
            f"add them under {TOKEN_PAGE}, Bot Token Scopes (app_manifest.yml lists them), "
            "then reinstall the app to the workspace",
        )
    return passed(f"the granted scopes cover the manifest's {len(wanted)}: {', '.join(wanted)}")


async def slack_channel(
    client: AsyncWebClient, url: str, channel: str, facts: SlackFacts
) -> Finding:
    invite = f"invite the bot: /invite @{facts.bot_name} in the approvers' channel"
    try:
        answer = await _slack(client.conversations_info(channel=channel), url)
    except SlackApiError as error:
        code = _slack_error(error)
        if code == "missing_scope":
            raise _missing_scope(
                error, "conversations.info", "channels:read or groups:read"
            ) from None
        if code == "channel_not_found":
            raise Problem(
                f"{channel} not found: it does not exist, or it is private and the bot is "
                "not in it",
                f"{invite}, or set approval_channel (SABOT_APPROVAL_CHANNEL) to the channel's id "
                "(channel details, at the bottom)",
            ) from None
        raise Problem(f"Slack refused conversations.info for {channel} ({code})", invite) from None
    info = answer.get("channel") or {}
    name = f"#{info.get('name', channel)} ({channel})"
    if info.get("is_archived"):
        raise Problem(
            f"{name} is archived", "unarchive it, or name another channel in approval_channel"
        )
    if not info.get("is_member"):
        raise Problem(f"the bot is not a member of {name}", f"{invite} ({name})")
    kind = "private" if info.get("is_private") else "public"
    return passed(f"{name}, {kind}; the bot is a member")


async def slack_people(client: AsyncWebClient, url: str, named: dict[str, list[str]]) -> Finding:
    if not named:
        return passed("the policy names no user ids (user groups only)")
    problems: list[str] = []
    shown: list[str] = []
    for user, roles in named.items():
        where = ", ".join(roles)
        try:
            answer = await _slack(client.users_info(user=user), url)
        except SlackApiError as error:
            code = _slack_error(error)
            if code == "missing_scope":
                raise _missing_scope(error, "users.info", "users:read") from None
            problems.append(
                f"{user} ({where}) not found" if code == "user_not_found" else f"{user}: {code}"
            )
            continue
        info = answer.get("user") or {}
        if info.get("deleted"):
            problems.append(f"{user} @{info.get('name', '?')} ({where}) is deactivated")
        else:
            shown.append(f"{user} @{info.get('name', '?')}")
    if problems:
        raise Problem(
            "; ".join(problems),
            "replace or remove them in the policy file (SABOT_POLICY), or in SABOT_APPROVERS / "
            "SABOT_ADMINS",
        )
    return passed(f"{len(shown)} approvers and admins, all active: {_listed(shown)}")


async def slack_groups(client: AsyncWebClient, url: str, named: dict[str, list[str]]) -> Finding:
    if not named:
        return passed("the policy names no user groups")
    problems: list[str] = []
    shown: list[str] = []
    for group, roles in named.items():
        where = ", ".join(roles)
        try:
            answer = await _slack(client.usergroups_users_list(usergroup=group), url)
        except SlackApiError as error:
            code = _slack_error(error)
            if code == "missing_scope":
                raise _missing_scope(error, "usergroups.users.list", "usergroups:read") from None
            gone = code in ("no_such_subteam", "subteam_not_found")
            problems.append(f"{group} ({where}) " + ("does not exist" if gone else "unreadable"))
            problems[-1] += f" ({code})"
            continue
        members = answer.get("users") or []
        if not members:
            problems.append(f"{group} ({where}) has no members")
        else:
            shown.append(f"{group} ({len(members)} members)")
    if problems:
        raise Problem(
            "; ".join(problems),
            "fix the group ids in the policy file (a group's id is in its Slack URL, S...), "
            "and give each group its members",
        )
    return passed(f"readable: {_listed(shown)}")


async def slack_app_token(client: AsyncWebClient, url: str, settings: Settings) -> Finding:
    if settings.slack_app_token is None or not settings.slack_app_token.get_secret_value():
        return passed("SLACK_APP_TOKEN not set: HTTP mode (`sabot serve`), no Socket Mode")
    token = settings.slack_app_token.get_secret_value()
    make = (
        "make an app-level token with the connections:write scope (the app's Basic "
        "Information page, App-Level Tokens) and set SLACK_APP_TOKEN to it (xapp-...)"
    )
    try:
        # The URL it answers with is left unused: no socket is opened.
        await _slack(client.apps_connections_open(app_token=token), url)
    except SlackApiError as error:
        code = _slack_error(error)
        if code == "unknown_method":
            raise Problem(
                "the Slack at SLACK_API_URL does not know apps.connections.open "
                "(unknown_method), so Socket Mode cannot start",
                "point SLACK_API_URL at Slack's Web API (https://slack.com/api/), or unset "
                "SLACK_APP_TOKEN when serving over HTTP",
            ) from None
        if code == "not_allowed_token_type":
            raise Problem(
                "SLACK_APP_TOKEN is not an app-level token (not_allowed_token_type)", make
            ) from None
        if code in BAD_TOKEN:
            raise Problem(f"Slack refused SLACK_APP_TOKEN ({code})", make) from None
        raise Problem(
            f"apps.connections.open failed ({code})",
            "try again later (Slack's status page says whether Socket Mode is down)",
        ) from None
    return passed("accepted: Slack issues Socket Mode connections for it (none was opened)")


async def slack_checks(
    settings: Settings, rules: PolicyFile | None, seconds: float
) -> list[Result]:
    url = settings.slack_api_url
    late = f"check SLACK_API_URL ({url}) and this host's network; Slack may be down"
    after = [Check.SLACK_SCOPES, Check.SLACK_CHANNEL, Check.SLACK_PEOPLE, Check.SLACK_GROUPS]
    if settings.slack_bot_token is None or not settings.slack_bot_token.get_secret_value():
        unset = Result(
            Check.SLACK_TOKEN,
            Status.FAIL,
            "SLACK_BOT_TOKEN is not set",
            f"set it to the Bot User OAuth Token (xoxb-...) from {TOKEN_PAGE}",
        )
        rest = [skipped(c, "no bot token", Check.SLACK_TOKEN) for c in after]
        client = slack_client(settings, seconds)
        app = await bounded(
            Check.SLACK_APP_TOKEN, slack_app_token(client, url, settings), seconds, late
        )
        return [unset, *rest, app]
    client = slack_client(settings, seconds)
    facts = SlackFacts()
    token = await bounded(Check.SLACK_TOKEN, slack_token(client, url, facts), seconds, late)
    results = [token]
    if not token.status.passed:
        results += [skipped(c, "the bot token was not accepted", Check.SLACK_TOKEN) for c in after]
    else:
        results.append(await bounded(Check.SLACK_SCOPES, slack_scopes(facts), seconds, late))
        if rules is None:
            why = "the policy is not valid"
            results += [skipped(c, why, Check.POLICY) for c in after[1:]]
        else:
            channel = slack_channel(client, url, rules.approval_channel, facts)
            people = slack_people(client, url, approvers_and_admins(rules))
            groups = slack_groups(client, url, user_groups(rules))
            results.append(await bounded(Check.SLACK_CHANNEL, channel, seconds, late))
            results.append(await bounded(Check.SLACK_PEOPLE, people, seconds, late))
            results.append(await bounded(Check.SLACK_GROUPS, groups, seconds, late))
    if token.timed_out:  # the same Slack would keep the next one waiting
        results.append(skipped(Check.SLACK_APP_TOKEN, "Slack did not answer", Check.SLACK_TOKEN))
        return results
    socket = slack_app_token(client, url, settings)
    results.append(await bounded(Check.SLACK_APP_TOKEN, socket, seconds, late))
    return results


# -- Atlassian --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One Atlassian answer: its status, its JSON (2xx), and a readable reason (errors)."""

    status: int
    body: Any
    reason: str = ""
    page: bool = False  # an HTML page came back (an SSO or proxy wall)


class AtlassianProbe:
    """Sends contract routes once each, no retry, and keeps the status: the doctor has to tell
    a 401 from a 403 from a 404, where the bot's client turns each into a final reason."""

    def __init__(self, settings: Settings, seconds: float) -> None:
        assert settings.atlassian_api_key is not None
        self.base = settings.atlassian_api_url
        self._http = httpx.AsyncClient(
            base_url=self.base,
            timeout=seconds + 1,  # the check's own bound ends it first
            headers={
                "Authorization": f"Bearer {settings.atlassian_api_key.get_secret_value()}",
                "Accept": "application/json",
            },
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, route: contract.Route) -> Answer:
        try:
            response = await self._http.request(
                route.method, route.path, params=route.params or None, json=route.body
            )
        except httpx.TimeoutException:
            raise TimeoutError from None
        except httpx.TransportError as error:
            raise Problem(
                f"cannot reach Atlassian at {self.base} ({type(error).__name__})",
                "check ATLASSIAN_API_URL (https://api.atlassian.com) and this host's network",
            ) from None
        kind = response.headers.get("content-type", "")
        page = "html" in kind.lower() or response.text.lstrip().startswith("<")
        if 300 <= response.status_code < 400:
            return Answer(
                response.status_code,
                None,
                f"HTTP {response.status_code}, a redirect: a proxy or sign-in page is in the way",
            )
        if response.status_code >= 400 or page:
            reason = contract.error_text(response.status_code, kind, response.text)
            return Answer(
                response.status_code, None, f"HTTP {response.status_code}: {reason}", page
            )
        try:
            body = response.json() if response.content else {}
        except ValueError:
            return Answer(response.status_code, None, "an answer that is not JSON", True)
        return Answer(response.status_code, body)


@dataclass
class AtlassianFacts:
    documented: Answer | None = None  # the documented (API Access) list
    console: Answer | None = None  # the console list (an unscoped key only)
    workspaces: Answer | None = None
    cloud_id: str | None = None


ATLASSIAN_AFTER_KEY = (
    Check.ATLASSIAN_ORG,
    Check.ATLASSIAN_KEY_SCOPE,
    Check.ATLASSIAN_ROUTES,
    Check.ATLASSIAN_SITES,
    Check.ATLASSIAN_PRODUCTS,
    Check.ATLASSIAN_QUOTA,
)
NEW_KEY = (
    "create an organisation API key in admin.atlassian.com (Settings, API keys; a key lives "
    "at most a year) and set ATLASSIAN_API_KEY to it"
)


async def atlassian_key(probe: AtlassianProbe, org: str, facts: AtlassianFacts) -> Finding:
    documented, console = await asyncio.gather(
        probe.send(contract.access_list_accounts(org)), probe.send(contract.list_accounts(org))
    )
    facts.documented, facts.console = documented, console
    if 401 in (documented.status, console.status):
        raise Problem(f"Atlassian refused ATLASSIAN_API_KEY ({documented.reason})", NEW_KEY)
    if all(a.page or 300 <= a.status < 400 for a in (documented, console)):
        raise Problem(
            f"Atlassian answered with a page, not the API ({documented.reason})",
            "check ATLASSIAN_API_URL (https://api.atlassian.com); a proxy or SSO wall may be "
            "in the way",
        )
    return passed("accepted")


async def atlassian_org(probe: AtlassianProbe, org: str, facts: AtlassianFacts) -> Finding:
    answer = await probe.send(contract.find_sites(org))
    facts.workspaces = answer
    if answer.status == 404:
        raise Problem(
            f"organisation {org} not found ({answer.reason})",
            "set ATLASSIAN_ORG_ID to the id in admin.atlassian.com's address "
            "(admin.atlassian.com/o/<id>/...)",
        )
    if answer.status >= 300 or answer.page:
        raise Problem(
            f"the organisation's sites could not be read ({answer.reason})",
            "the key needs organisation admin rights; " + NEW_KEY,
        )
    return passed(f"organisation {org} answers")


async def atlassian_key_scope(facts: AtlassianFacts) -> Finding:
    documented, console = facts.documented, facts.console
    assert documented is not None and console is not None
    documented_ok = documented.status < 300 and not documented.page
    console_ok = console.status < 300 and not console.page
    if console_ok:
        return passed("no scopes: the console routes (grant, token mint) accept it")
    if console.status == 403 and not console.page and documented_ok:
        raise Problem(
            "the key is scoped: the console and /users routes answer 403 "
            f"({console.reason}) while the documented API Access routes answer; no documented "
            "route grants product access or mints a token",
            "create an organisation API key WITHOUT scopes (admin.atlassian.com, Settings, API "
            "keys) and set ATLASSIAN_API_KEY to it",
        )
    raise Problem(
        f"the console routes refuse the key ({console.reason})",
        "the key needs organisation admin rights and no scopes; " + NEW_KEY,
    )


async def atlassian_routes(admin: AtlassianAdmin) -> Finding:
    try:
        sets = await admin.route_sets()
    except AtlassianError as error:
        raise Problem(
            f"neither the documented nor the console list route answers ({error.reason})",
            "check ATLASSIAN_API_URL and ATLASSIAN_ORG_ID, and that the key is an organisation "
            "admin key",
        ) from None
    by_set: dict[str, list[str]] = {}
    for operation, chosen in sets.items():
        by_set.setdefault(chosen, []).append(operation)
    parts = [f"{name}: {', '.join(ops)}" for name, ops in sorted(by_set.items())]
    return passed("; ".join(parts))


async def atlassian_sites(settings: Settings, facts: AtlassianFacts) -> Finding:
    assert facts.workspaces is not None
    sites = contract.parse_site_ids(facts.workspaces.body or {})
    wanted = settings.atlassian_site_id
    if not sites:
        raise Problem(
            "the organisation has no Jira or Confluence site",
            "add a Jira or Confluence site to the organisation, or check ATLASSIAN_ORG_ID",
        )
    if wanted:
        if wanted not in sites:
            raise Problem(
                f"ATLASSIAN_SITE_ID {wanted} is not a site of the organisation "
                f"(its sites: {', '.join(sites)})",
                "set ATLASSIAN_SITE_ID to one of those cloud ids",
            )
        facts.cloud_id = wanted
        return passed(f"site {wanted} (ATLASSIAN_SITE_ID), of {len(sites)}")
    if len(sites) > 1:
        raise Problem(
            f"the organisation has {len(sites)} sites ({', '.join(sites)}) and ATLASSIAN_SITE_ID "
            "does not say which to use",
            "set ATLASSIAN_SITE_ID to the cloud id of the site to grant access to",
        )
    facts.cloud_id = sites[0]
    return passed(f"site {sites[0]}, the organisation's only one")


async def atlassian_products(rules: PolicyFile, facts: AtlassianFacts) -> Finding:
    assert facts.workspaces is not None and facts.cloud_id is not None
    there = contract.parse_site_products(facts.workspaces.body or {}).get(facts.cloud_id, set())
    missing = [p for p in rules.products if SITE_TYPE_KEYS[p] not in there]
    if missing:
        names = ", ".join(p.label for p in missing)
        raise Problem(
            f"site {facts.cloud_id} has no {names} (it has {', '.join(sorted(there)) or 'none'})",
            f"add {names} to the site in admin.atlassian.com (Products), or take "
            f"{', '.join(p.value for p in missing)} out of the policy's products",
        )
    offered = ", ".join(p.label for p in rules.products)
    return passed(f"site {facts.cloud_id} has {offered}, as the policy offers")


def quota_finding(used: int, limit: int) -> Finding:
    """Full is a failure; within a tenth of the limit (at least one account) a warning."""
    detail = f"{used} of {limit} service accounts in use"
    raise_it = (
        "delete accounts no longer used (`revoke NAME`), or raise the organisation's limit "
        "(Atlassian Guard Standard: 250, Enterprise: 1,000) and set "
        "ATLASSIAN_SERVICE_ACCOUNT_LIMIT (or service_account_limit in the policy file)"
    )
    if used >= limit:
        raise Problem(f"{detail}: the quota is full, new requests will fail", raise_it)
    if limit - used <= max(1, limit // 10):
        return Finding(Status.WARN, f"{detail}: nearly full ({limit - used} left)", raise_it)
    return passed(detail)


async def atlassian_quota(admin: AtlassianAdmin, limit: int) -> Finding:
    try:
        used = sum([1 async for a in admin.service_accounts() if a.status.lower() != "deleted"])
    except AtlassianError as error:
        raise Problem(
            f"the service accounts could not be listed ({error.reason})",
            "fix the checks above first",
        ) from None
    return quota_finding(used, limit)


async def atlassian_checks(
    settings: Settings, rules: PolicyFile | None, seconds: float
) -> list[Result]:
    org, key = settings.atlassian_org_id, settings.atlassian_api_key
    late = f"check ATLASSIAN_API_URL ({settings.atlassian_api_url}); Atlassian may be down"
    if not org or key is None or not key.get_secret_value():
        missing = "ATLASSIAN_ORG_ID" if not org else "ATLASSIAN_API_KEY"
        fix = NEW_KEY if org else "set ATLASSIAN_ORG_ID to the organisation's id"
        head = Result(Check.ATLASSIAN_KEY, Status.FAIL, f"{missing} is not set", fix)
        return [
            head,
            *(
                skipped(c, f"{missing} is not set", Check.ATLASSIAN_KEY)
                for c in ATLASSIAN_AFTER_KEY
            ),
        ]
    probe = AtlassianProbe(settings, seconds)
    admin = AtlassianAdmin(settings.atlassian_api_url, org, key, retries=ONCE, timeout=seconds + 1)
    try:
        return await _atlassian_in_order(settings, rules, seconds, late, probe, admin)
    finally:
        await asyncio.gather(probe.aclose(), admin.aclose())


async def _atlassian_in_order(
    settings: Settings,
    rules: PolicyFile | None,
    seconds: float,
    late: str,
    probe: AtlassianProbe,
    admin: AtlassianAdmin,
) -> list[Result]:
    org = str(settings.atlassian_org_id)
    facts = AtlassianFacts()
    key = await bounded(Check.ATLASSIAN_KEY, atlassian_key(probe, org, facts), seconds, late)
    if not key.status.passed:
        why = "Atlassian did not answer" if key.timed_out else "the key was not accepted"
        return [key, *(skipped(c, why, Check.ATLASSIAN_KEY) for c in ATLASSIAN_AFTER_KEY)]
    found = await bounded(Check.ATLASSIAN_ORG, atlassian_org(probe, org, facts), seconds, late)
    if not found.status.passed:
        why = "the organisation did not resolve"
        rest = [skipped(c, why, Check.ATLASSIAN_ORG) for c in ATLASSIAN_AFTER_KEY[1:]]
        return [key, found, *rest]
    results = [key, found]
    results.append(
        await bounded(Check.ATLASSIAN_KEY_SCOPE, atlassian_key_scope(facts), seconds, late)
    )
    results.append(await bounded(Check.ATLASSIAN_ROUTES, atlassian_routes(admin), seconds, late))
    sites = atlassian_sites(settings, facts)
    results.append(await bounded(Check.ATLASSIAN_SITES, sites, seconds, late))
    if facts.cloud_id is None:
        results.append(skipped(Check.ATLASSIAN_PRODUCTS, "no site chosen", Check.ATLASSIAN_SITES))
    elif rules is None:
        results.append(skipped(Check.ATLASSIAN_PRODUCTS, "the policy is not valid", Check.POLICY))
    else:
        products = atlassian_products(rules, facts)
        results.append(await bounded(Check.ATLASSIAN_PRODUCTS, products, seconds, late))
    if rules is None:
        results.append(skipped(Check.ATLASSIAN_QUOTA, "the policy is not valid", Check.POLICY))
    else:
        limit = rules.service_account_limit or settings.atlassian_service_account_limit
        quota = atlassian_quota(admin, limit)
        results.append(await bounded(Check.ATLASSIAN_QUOTA, quota, seconds, late))
    return results


# -- the whole run ----------------------------------------------------------------------------


async def diagnose(settings: Settings, seconds: float = DEFAULT_TIMEOUT_SECONDS) -> list[Result]:
    """Every check, in a fixed order; Slack, Atlassian and the database are asked at once."""
    policy, rules = check_policy(settings)
    database, slack, atlassian = await asyncio.gather(
        database_checks(settings, seconds),
        slack_checks(settings, rules, seconds),
        atlassian_checks(settings, rules, seconds),
    )
    return [policy, *database, *slack, *atlassian]


def summary(results: list[Result], seconds: float) -> dict[str, Any]:
    counts = {status.value: 0 for status in Status}
    for result in results:
        counts[result.status.value] += 1
    return {
        "ok": all(r.status.passed for r in results),
        "checks": len(results),
        "passed": counts["ok"] + counts["warn"],
        "failed": counts["FAIL"],
        "skipped": counts["skip"],
        "warnings": counts["warn"],
        "seconds": round(seconds, 1),
    }


def render(results: list[Result], fmt: str, seconds: float) -> str:
    total = summary(results, seconds)
    if fmt == "json":
        text = json.dumps({"checks": [r.as_json() for r in results], "summary": total}, indent=2)
    else:
        verdict = (
            "all checks passed"
            if total["ok"]
            else f"{total['failed']} failed, {total['skipped']} not checked"
        )
        warned = f", {total['warnings']} warning(s)" if total["warnings"] else ""
        lines = [r.line() for r in results]
        text = "\n".join(
            [*lines, f"{total['passed']} of {total['checks']} passed{warned}: {verdict}"]
        )
    return logs.scrubber.mask(text)  # no line may carry a credential, whatever it quotes


def run(settings: Settings, fmt: str, seconds: float) -> int:
    started = time.monotonic()
    results = asyncio.run(diagnose(settings, seconds))
    print(render(results, fmt, time.monotonic() - started))
    return 0 if all(r.status.passed for r in results) else 1
