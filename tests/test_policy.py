"""The policy file: the example, broken files with their own clear errors, and its rules."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from workflows.policy import Policy
from workflows.policy_file import PolicyError, load_policy

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "policy.yml"

MINIMAL = """\
approval_channel: C0APPROVALS
approvers:
  default:
    users: [U0BOB, U0CAROL]
"""


WRITE_RULES = """\
    groups: [S0PLATFORM]
  scopes:
    write:jira-work:
      users: [U0CAROL, U0ALICE]
quorum:
  default: 1
  write: 2
"""


class Groups:
    """A Directory with fixed members."""

    def __init__(self, members: dict[str, set[str]]) -> None:
        self.groups = members
        self.fresh_lookups = 0

    async def members(self, group_id: str, *, fresh: bool = False) -> frozenset[str]:
        self.fresh_lookups += fresh
        return frozenset(self.groups[group_id])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yml"
    path.write_text(textwrap.dedent(text))
    return path


def test_the_example_is_valid_and_says_what_it_means() -> None:
    rules = load_policy(EXAMPLE)
    assert rules.quorum.default == 1 and rules.quorum.write == 2
    assert rules.pending.remind_after == timedelta(hours=4)
    assert rules.pending.expire_after == timedelta(hours=72)
    assert "read:issue:jira" in rules.offered_scopes(next(iter(rules.products)))
    assert rules.lifecycle.warn_days_before_expiry == [14, 3, 1]


BROKEN = [
    ("unknown key", MINIMAL + "quorom:\n  default: 2\n", ":5: quorom: unknown key 'quorom'"),
    (
        "nested unknown key",
        MINIMAL.replace("    users:", "    user:"),
        ":4: approvers.default.user: unknown key",
    ),
    ("a channel name", MINIMAL.replace("C0APPROVALS", "#approvals"), ":1: approval_channel"),
    ("a user name", MINIMAL.replace("U0BOB", "bob"), ":4: approvers.default.users.0"),
    (
        "a bad duration",
        MINIMAL + "pending:\n  expire_after: soon\n",
        ":6: pending.expire_after: a duration such as 90s",
    ),
    (
        "escalation without people",
        MINIMAL + "pending:\n  escalate_after: 1h\n",
        ":5: pending: escalate_after needs escalate_to",
    ),
    (
        "a scope of another product",
        MINIMAL + "products:\n  jira:\n    scopes: [write:confluence-content]\n",
        ":7: products.jira.scopes: 'write:confluence-content' is not a Jira scope",
    ),
    ("an unknown product", MINIMAL + "products:\n  bitbucket: {}\n", ":6: products.bitbucket"),
    ("a quorum of zero", MINIMAL + "quorum:\n  default: 0\n", ":6: quorum.default"),
    (
        "a lifetime past a year",
        MINIMAL + "products:\n  jira:\n    max_lifetime_days: 400\n",
        ":7: products.jira.max_lifetime_days",
    ),
    ("no approvers", "approval_channel: C0APPROVALS\n", "approvers: Field required"),
    # the line where the broken construct began, then where parsing gave up
    ("not YAML", MINIMAL + "quorum: [1\n", ":5: not valid YAML: while parsing a flow sequence"),
    ("empty", "", "the policy must be a mapping"),
]


@pytest.mark.parametrize(("case", "text", "expected"), BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_files_say_where_and_what(
    tmp_path: Path, case: str, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value), str(caught.value)


async def test_approvers_must_be_allowed_every_scope_and_never_the_requester(
    tmp_path: Path,
) -> None:
    rules = load_policy(write(tmp_path, MINIMAL + WRITE_RULES))
    policy = Policy(rules, Groups({"S0PLATFORM": {"U0DAVE", "U0ALICE"}}))
    read = await policy.eligibility("U0ALICE", ["jira"], ["read:jira-work"])
    assert read.approvers == {"U0BOB", "U0CAROL", "U0DAVE"} and read.quorum == 1
    write_ = await policy.eligibility("U0ALICE", ["jira"], ["read:jira-work", "write:jira-work"])
    assert write_.approvers == {"U0CAROL"} and write_.quorum == 2 and not write_.reachable


async def test_requesters_and_admins_from_groups(tmp_path: Path) -> None:
    rules = load_policy(
        write(tmp_path, MINIMAL + "requesters:\n  groups: [S0ENG]\nadmins:\n  users: [U0BOB]\n")
    )
    policy = Policy(rules, Groups({"S0ENG": {"U0ALICE"}}))
    assert await policy.may_request("U0ALICE") and not await policy.may_request("U0DAVE")
    assert await policy.is_admin("U0BOB") and not await policy.is_admin("U0ALICE")


def _sabot(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SABOT_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _explain(
    tmp_path: Path, requester: str, products: str, scopes: str
) -> subprocess.CompletedProcess[str]:
    return _sabot(
        "policy",
        "explain",
        "--file",
        str(EXAMPLE),
        "--requester",
        requester,
        "--products",
        products,
        "--scopes",
        scopes,
        cwd=tmp_path,
    )


def test_policy_check_command(tmp_path: Path) -> None:
    good = _sabot("policy", "check", str(EXAMPLE), cwd=tmp_path)
    assert good.returncode == 0 and "valid" in good.stdout
    bad = _sabot("policy", "check", str(write(tmp_path, MINIMAL + "typo: 1\n")), cwd=tmp_path)
    assert bad.returncode == 1 and "unknown key 'typo'" in bad.stderr


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        (
            "read:jira-work",
            [
                "read:jira-work: approved by U0BOB, U0CAROL",
                "who could approve (allowed every scope, not the requester): U0BOB, U0CAROL",
                "needs 1 distinct approval(s)",
            ],
        ),
        ("read:jira-work,write:jira-work", ["needs 2 distinct approval(s)"]),
    ],
)
def test_policy_explain_for_alice(tmp_path: Path, scopes: str, expected: list[str]) -> None:
    done = _explain(tmp_path, "U0ALICE", "jira", scopes)
    assert done.returncode == 0, done.stderr
    for line in expected:
        assert line in done.stdout


@pytest.mark.parametrize(
    ("requester", "products", "scopes", "refused"),
    [
        ("U0ALICE", "jira", "", "Choose at least one scope."),
        ("U0ALICE", "jira", "nosuch:scope", "Not a scope of the chosen products: nosuch:scope."),
        ("U0ALICE", "jirra", "read:jira-work", "Not offered: jirra."),
        ("alice", "jira", "read:jira-work", "--requester 'alice' is not a Slack user id"),
    ],
)
def test_policy_explain_refuses_what_the_request_form_would(
    tmp_path: Path, requester: str, products: str, scopes: str, refused: str
) -> None:
    done = _explain(tmp_path, requester, products, scopes)
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()  # one line, no traceback
    assert line.startswith("sabot: ") and refused in line


def test_policy_explain_when_the_requester_is_an_approver(tmp_path: Path) -> None:
    done = _explain(tmp_path, "U0BOB", "jira", "write:jira-work")
    assert "who could approve (allowed every scope, not the requester): U0CAROL" in done.stdout
    assert "NOT reachable" in done.stdout  # a quorum of 2 with one other approver


def test_policy_explain_names_groups_it_cannot_resolve(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "    groups: [S0PLATFORM]\n")
    done = _sabot(
        "policy",
        "explain",
        "--file",
        str(path),
        "--requester",
        "U0ALICE",
        "--products",
        "jira",
        "--scopes",
        "read:jira-work",
        cwd=tmp_path,
    )
    assert "members of S0PLATFORM" in done.stdout and "SLACK_BOT_TOKEN" in done.stdout


def test_serve_refuses_an_invalid_policy_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "typo: 1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SABOT_"))}
    env.update(
        SLACK_BOT_TOKEN="xoxb-x",
        SLACK_SIGNING_SECRET="s" * 10,
        ATLASSIAN_ORG_ID="o",
        ATLASSIAN_API_KEY="k" * 10,
        SABOT_POLICY=str(path),
    )
    done = subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"{path}:5: typo: unknown key 'typo'" in done.stderr
