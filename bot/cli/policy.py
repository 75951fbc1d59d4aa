"""`sabot policy check` and `sabot policy explain`."""

from __future__ import annotations

import sys

from bot.process.assembly import policy_rules
from bot.process.settings import USER_ID, Settings
from bot.slack.directory import SlackDirectory
from bot.slack.slack_api import web_client
from workflows.policy import People, Policy, PolicyFile
from workflows.policy_file import PolicyError, load_policy
from workflows.request.validation import check_products, check_scopes


def check(path: str | None) -> int:
    if not path:
        print("sabot: name a policy file, or set SABOT_POLICY", file=sys.stderr)
        return 2
    try:
        rules = load_policy(path)
    except PolicyError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"{path}: valid. {describe(rules)}")
    return 0


def describe(rules: PolicyFile) -> str:
    """The policy in one line: channel, products and quorum (`policy check`, `doctor`)."""
    products = ", ".join(p.value for p in rules.products)
    return (
        f"Channel {rules.approval_channel}; products {products}; quorum {rules.quorum.default}"
        + (f" ({rules.quorum.write} for write scopes)" if rules.quorum.write else "")
    )


def _who(rule: People) -> str:
    parts = [*rule.users, *(f"members of {g}" for g in rule.groups)]
    return ", ".join(parts) or "nobody"


async def explain(
    settings: Settings, requester: str, products: str, scopes: str, path: str | None
) -> int:
    """Print who may approve such a request and how many approvals it needs."""
    rules = load_policy(path) if path else policy_rules(settings)
    chosen = [p.strip() for p in products.split(",") if p.strip()]
    asked = [s.strip() for s in scopes.split(",") if s.strip()]
    client = web_client(settings) if settings.slack_bot_token else None
    policy = Policy(rules, SlackDirectory(client) if client else None)
    # What the request form would refuse, refused the same way: the explanation is of a request
    # that could be made.
    offer = policy.offer
    wanted, problem = check_products(chosen, offer)
    problem = problem or check_scopes(asked, wanted, offer)
    if not USER_ID.match(requester):
        problem = problem or f"--requester {requester!r} is not a Slack user id (U0123ABCD)"
    if problem:
        print(f"sabot: {problem}", file=sys.stderr)
        return 2
    print(f"A request by {requester} for {', '.join(chosen)} with {', '.join(asked)}:")
    try:
        if not await policy.may_request(requester):
            print(f"  {requester} may NOT ask: not among the policy's requesters")
    except LookupError:
        print("  (requesters include user groups: set SLACK_BOT_TOKEN to check them)")
    for scope, rule in zip(asked, policy.approver_rules(chosen, asked), strict=True):
        print(f"  {scope}: approved by {_who(rule)}")
    try:
        eligible = await policy.eligibility(requester, chosen, asked)
    except LookupError as missing:
        print(f"  (cannot name everyone: {missing}; set SLACK_BOT_TOKEN to resolve groups)")
        print(f"  needs {policy.quorum_for(asked)} distinct approval(s)")
        return 0
    names = ", ".join(sorted(eligible.approvers)) or "nobody"
    print(f"  who could approve (allowed every scope, not the requester): {names}")
    print(
        f"  needs {eligible.quorum} distinct approval(s)"
        + ("" if eligible.reachable else ": NOT reachable, the request would be refused")
    )
    return 0
