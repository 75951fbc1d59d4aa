"""Measured outcomes of the reliability scenarios (issue 5), for `docs/reliability.md`.

A scenario test calls `record(...)` with what it *measured* (counted at the stand-ins and in the
database) before it asserts on it. Outside a report run `record` does nothing; `make reliability`
(`python -m tests.support.reliability`) runs the whole suite with `SABOT_RELIABILITY_LOG` set,
then renders the JSON lines it collected into the Markdown table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "docs" / "reliability.md"
LOG_VARIABLE = "SABOT_RELIABILITY_LOG"


def record(
    scenario: str,
    driven: str,
    *,
    runs: int,
    duplicates: int,
    lost: int,
    engine: str = "",
    note: str = "",
) -> None:
    """Append one measured outcome. `runs`: repetitions driven; `duplicates`: accounts, tokens,
    decisions or deliveries beyond the one expected; `lost`: requests or data that ended in no
    recoverable state."""
    path = os.environ.get(LOG_VARIABLE)
    if not path:
        return
    line = {
        "scenario": scenario,
        "driven": driven,
        "engine": engine,
        "runs": runs,
        "duplicates": duplicates,
        "lost": lost,
        "note": note,
    }
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(line) + "\n")


def engine_of(database_url: str) -> str:
    return "PostgreSQL" if database_url.startswith("postgresql") else "SQLite"


def render(lines: list[dict[str, object]], *, command: str, outcome: str) -> str:
    """Rows with the same scenario and engine are summed (a parametrised test records once per
    case)."""
    merged: dict[tuple[str, str], dict[str, object]] = {}
    totals: dict[tuple[str, str], dict[str, int]] = defaultdict(
        lambda: {"runs": 0, "duplicates": 0, "lost": 0}
    )
    for line in lines:
        key = (str(line["scenario"]), str(line["engine"]))
        merged.setdefault(key, line)
        for field in ("runs", "duplicates", "lost"):
            totals[key][field] += int(str(line[field]))
    rows = [
        "| scenario | how it is driven | engine | runs | duplicates found | data lost | note |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for key, line in merged.items():
        t = totals[key]
        rows.append(
            f"| {key[0]} | {line['driven']} | {key[1] or 'n/a'} | {t['runs']} "
            f"| {t['duplicates']} | {t['lost']} | {line['note']} |"
        )
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return "\n".join(
        [
            "# Reliability report",
            "",
            f"Generated {stamp} by `{command}` on this machine ({os.cpu_count()} cores).",
            f"pytest outcome of the run: {outcome}.",
            "",
            "Every figure is counted by the test itself, at the Slack and Atlassian stand-ins and",
            "in the database, before the test asserts on it. Each scenario runs real `sabot`",
            "processes over HTTP, signed as Slack signs, against the stand-ins in `sandbox/`.",
            "",
            *rows,
            "",
        ]
    )


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "outcomes.jsonl"
        # PostgreSQL as .ci/run sets it up; the multi-process scenarios need it.
        env = {"TEST_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test", **os.environ}
        env[LOG_VARIABLE] = str(log)
        # The whole suite, not only the scenario files: the secret sweep covers every test.
        print("running the whole test suite (about 12 minutes on 2 cores)", flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
            cwd=ROOT,
            env=env,
        )
        lines = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    outcome = "all passed" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(render(lines, command="make reliability", outcome=outcome))
    print(f"wrote {REPORT.relative_to(ROOT)}: {len(lines)} outcomes; pytest {outcome}")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
