"""Discovery at scale: `sabot discover` over 10,000 people and 30,000 API tokens.

The Atlassian stand-in runs in this process (a thread) with its directory seeded in-process:
8,900 people active in the UI whose tokens are in use, 1,000 who never open a product page but
whose tokens were used yesterday (flagged: shared credentials), and 100 named "Build Bot N"
(flagged: bot-like, billable). The real CLI, `python -m bot discover --format json`, runs as
its own process against it with a fresh SQLite database; its progress line (stderr) is echoed
as it comes. Target: under 60 s.

    .venv/bin/python -m bench.discover [--people 10000 --tokens 30000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandbox.runner import Sandbox, start_sandbox

TARGET_S = 60.0


def seed(sandbox: Sandbox, people: int, tokens: int) -> dict[str, int]:
    """Three groups in the proportions of the module's docstring, tokens spread evenly."""
    state, directory = sandbox.atlassian, sandbox.atlassian.directory
    idle, bots = people // 10, people // 100
    active = people - idle - bots
    per = tokens / people
    directory.seed(state, active, round(active * per), ui_days_ago=2, token_days_ago=3)
    directory.seed(
        state, idle, round(idle * per), prefix="Quiet", ui_days_ago=None, token_days_ago=1
    )
    made = round(active * per) + round(idle * per)
    directory.seed(state, bots, tokens - made, prefix="Build Bot", ui_days_ago=2, token_days_ago=20)
    return {
        "people": len(directory.people),
        "tokens": len(directory.tokens),
        "expected": idle + bots,
    }


def environment(sandbox: Sandbox, database_url: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SABOT_", "ATLASSIAN_"))
    }
    return {**env, **sandbox.bot_env(), "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}


def run(people: int, tokens: int) -> int:
    sandbox = start_sandbox()
    try:
        seeded = seed(sandbox, people, tokens)
        print(f"seeded {seeded['people']} people, {seeded['tokens']} tokens", flush=True)
        with tempfile.TemporaryDirectory() as folder:
            env = environment(sandbox, f"sqlite:///{Path(folder) / 'bench.db'}")
            subprocess.run(
                [sys.executable, "-m", "bot", "db", "upgrade"],
                env=env,
                check=True,
                capture_output=True,
            )
            report_path = Path(folder) / "report.json"
            started = time.monotonic()
            with report_path.open("w") as out:  # a file: a full stdout pipe would stall it
                process = subprocess.Popen(
                    [sys.executable, "-m", "bot", "discover", "--format", "json"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                assert process.stderr is not None
                for line in process.stderr:  # the progress line, as the operator sees it
                    print(f"  {line.rstrip()}", flush=True)
                process.wait()
            output = report_path.read_text()
            seconds = time.monotonic() - started
        report = json.loads(output)
        summary = report["summary"]
        calls = sandbox.atlassian.calls
        print(
            f"discover: {seconds:.1f} s wall (target < {TARGET_S:.0f} s), "
            f"exit {process.returncode}; {summary['accounts']} accounts, "
            f"{summary['tokens']} tokens, {summary['seats']} seats, "
            f"{summary['flagged']} flagged (expected {seeded['expected']}); "
            f"{len(calls)} Atlassian requests ({len(calls) / seconds:.0f}/s)"
        )
        ok = seconds < TARGET_S and summary["flagged"] == seeded["expected"]
        return 0 if ok else 1
    finally:
        sandbox.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--tokens", type=int, default=30_000)
    args = parser.parse_args()
    sys.exit(run(args.people, args.tokens))


if __name__ == "__main__":
    main()
