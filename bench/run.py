"""One command: `.venv/bin/python -m bench.run` from the project root.

Measures the real `sabot serve` (SQLite, stand-ins on loopback, the Atlassian stand-in answering
after 2 s) against two baselines started in the same run, interleaved cell by cell: a raw ASGI
app under uvicorn (the floor) and a bare Bolt AsyncApp in its default configuration. The load
generator is a separate process. Then the Reveal overhead, the `list` first page with 10,000
accounts on SQLite and PostgreSQL, start-up, memory and import costs of sabot and of bare Bolt.
Prints a table and writes bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import compileall
import gc
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import listing
from bench.load import Cell, run_cell
from sandbox.bot_process import BotProcess, start_bot
from sandbox.people import (
    ALICE,
    APPROVALS,
    BOB,
    GENERAL,
    GOOD_FORM,
    reveal_offer,
    submit_request,
    token_replies,
)
from sandbox.runner import Sandbox, free_port, start_sandbox
from sandbox.slack_client import SlackSandbox

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("help", "request", "list", "click")
SERVERS = ("floor", "bolt", "bot")
SETTLE_SECONDS = 2.0  # pause after each bot cell, so baselines don't run under its backlog
# As `sabot serve` runs uvicorn (its own subclass of uvicorn's h11 protocol, bot/process/
# http_protocol.py): the same HTTP parser whatever else is installed.
UVICORN_ARGS = ("--log-level", "warning", "--http", "h11")
REQUESTER = "U0ALICE"  # sends the commands (load.body_for)
TRIGGER_SECONDS = 3.0  # Slack's trigger_id lifetime
BOT_ENV = {"LOG_LEVEL": "INFO", "SABOT_ADMINS": listing.ADMIN}
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
# What each import-cost row imports, in a fresh interpreter.
IMPORTS = {
    "bare Bolt: `slack_bolt` AsyncApp, its Starlette adapter, `uvicorn`": (
        "import slack_bolt.app.async_app, slack_bolt.adapter.starlette.async_handler, uvicorn"
    ),
    "SQLAlchemy asyncio + SQLModel + aiosqlite": (
        "import sqlalchemy.ext.asyncio, sqlmodel, aiosqlite"
    ),
    "alembic (migrations)": "import alembic.command, alembic.config",
    "pydantic-settings": "import pydantic_settings",
    "the libraries `sabot serve` stands on, alone: the three above, httpx, "
    "prometheus_client, the SQLite driver's dialect": (
        "import slack_bolt.app.async_app, slack_bolt.adapter.starlette.async_handler, uvicorn, "
        "sqlalchemy.ext.asyncio, sqlmodel, aiosqlite, sqlalchemy.dialects.sqlite.aiosqlite, "
        "pydantic_settings, httpx, prometheus_client"
    ),
    "`sabot serve`: `bot.cli.main` + `bot.process.server` (everything it needs), the "
    "collector off as `sabot` has it": "import gc; gc.disable(); import bot.cli.main, "
    "bot.process.server",
}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # as sandbox.bot_process.start_bot polls the bot: the same resolution
    raise RuntimeError(f"{url} did not become healthy")


@dataclass
class Server:
    url: str
    pid: int
    ready_seconds: float  # Popen to the first /healthz 200


@contextmanager
def uvicorn_app(target: str, env: dict[str, str], log: Path) -> Iterator[Server]:
    """`uvicorn target` in its own process, with the same uvicorn settings as `sabot serve`."""
    port = free_port()
    started = time.monotonic()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", target, "--port", str(port), *UVICORN_ARGS],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield Server(url, process.pid, time.monotonic() - started)
    finally:
        process.terminate()
        process.wait(timeout=20)


class RssWatch:
    """Sample a process's RSS every 50 ms in a thread; keep the peak."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except OSError:
                return

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


@contextmanager
def stand_ins_undisturbed() -> Iterator[None]:
    """No garbage collection in this process (the stand-ins) while a cell runs. They keep a
    record of every call (thousands of views a cell), and a full collection over them stalled
    every answer for tens of milliseconds: the server whose ack waits on a Slack call (sabot
    opens its form before the ack) then showed the stand-in's pauses, which Slack does not make.
    Collected between cells."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def pct(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def summarize(rounds: list[dict[str, Any]]) -> dict[str, float]:
    """Latency percentiles over every round's requests; throughput over their summed walls."""
    lat = sorted(x * 1000 for result in rounds for x in result["latencies"])
    return {
        "p50": statistics.median(lat),
        "p99": pct(lat, 0.99),
        "max": lat[-1],
        "rps": len(lat) / sum(float(result["wall"]) for result in rounds),
        "errors": float(sum(result["errors"] for result in rounds)),
        "n": float(len(lat)),
    }


def cell_size(concurrency: int, quick: bool) -> tuple[int, int]:
    total = {1: 300, 10: 600, 50: 1000}.get(concurrency, 1200)
    if quick:
        total //= 3
    return total, max(20, 2 * concurrency)


# -- request: the modal ----------------------------------------------------------------------


def issue_triggers(sandbox: Sandbox, count: int) -> tuple[str, ...]:
    """trigger_ids the Slack stand-in will accept once each, as if it had sent the commands.
    Issued before the cell, so their lifetime is lifted for the run and checked here instead
    (`modal_summary`: how many modals opened more than 3 s after their command was sent)."""
    sandbox.slack.trigger_ttl_seconds = 3600.0
    return tuple(sandbox.slack.issue_trigger(REQUESTER) for _ in range(count))


def modal_summary(sandbox: Sandbox, sent: dict[str, float], wait: float) -> dict[str, float]:
    """From each `request` sent to its views.open at the Slack stand-in: opened, failed,
    missing (none within `wait` s after the cell), p50/p99/max ms, and how many took longer than
    a real trigger_id lives."""
    deadline = time.monotonic() + wait
    while True:
        seen = {
            str(call["args"].get("trigger_id")): call
            for call in list(sandbox.slack.calls)
            if call["method"] == "views.open" and call["args"].get("trigger_id") in sent
        }
        if len(seen) >= len(sent) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    opened = sorted(
        (float(call["at"]) - sent[trigger]) * 1000 for trigger, call in seen.items() if call["ok"]
    )
    return {
        "n": float(len(sent)),
        "opened": float(len(opened)),
        "failed": float(sum(1 for call in seen.values() if not call["ok"])),
        "missing": float(len(sent) - len(seen)),
        "p50": statistics.median(opened) if opened else float("nan"),
        "p99": pct(opened, 0.99) if opened else float("nan"),
        "max": opened[-1] if opened else float("nan"),
        "late": float(sum(1 for ms in opened if ms > TRIGGER_SECONDS * 1000)),
    }


# -- list, click: the answer -------------------------------------------------------------------

ANSWERED = ("list", "click")  # the bot answers these at the response_url after the ack


def answer_summary(sink: str, asked: dict[str, float], wait: float) -> dict[str, float]:
    """From each measured command to its answer arriving at the sink (the floor), after
    waiting up to `wait` s for the last one: answered, p50/p99/max ms, and how long after the
    cell's end the last answer came (the follow-up work still queued when the acks were done)."""
    ended = time.time()
    deadline = time.monotonic() + wait
    while True:
        arrived: dict[str, float] = httpx.get(
            f"{sink}/_arrivals", params={"prefix": "/response/bench-"}, timeout=10
        ).json()
        got = {path: arrived[path] for path in asked if path in arrived}
        if len(got) >= len(asked) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    took = sorted((at - asked[path]) * 1000 for path, at in got.items())
    return {
        "n": float(len(asked)),
        "answered": float(len(took)),
        "p50": statistics.median(took) if took else float("nan"),
        "p99": pct(took, 0.99) if took else float("nan"),
        "max": took[-1] if took else float("nan"),
        "drained": (max(got.values()) - ended) * 1000 if got else float("nan"),
    }


# -- Reveal ----------------------------------------------------------------------------------


def reveal_flows(sandbox: Sandbox, flows: int) -> list[float]:
    """Click to token (ms): from just before the Reveal click is sent to the Slack stand-in's
    record of the ephemeral response_url post carrying the token. Stand-ins answer at once."""
    sandbox.atlassian.answer_delay_seconds = 0.0
    with SlackSandbox(sandbox.slack_url) as slack:
        slack.reset()
        return [_one_reveal(slack, f"bench-reveal-{i}") for i in range(flows)]


def _one_reveal(slack: SlackSandbox, name: str) -> float:
    submit_request(slack, {**GOOD_FORM, "name": {"name": name}})
    ask = slack.wait_for(
        lambda: [
            m
            for m in slack.messages(APPROVALS)
            if name in str(m) and "request_approve" in str(m.get("blocks"))
        ],
        what="the approval request",
    )[-1]
    slack.click(BOB, APPROVALS, ask["ts"], "request_approve")
    offer = slack.wait_for(
        lambda: (o := reveal_offer(slack)) and name in str(o) and o, what="the Reveal offer"
    )
    before = len(token_replies(slack))
    clicked = time.time()
    slack.click(ALICE, GENERAL, offer["ts"], "token_reveal")
    reply = slack.wait_for(
        lambda: token_replies(slack)[before:], what="the token reply", interval=0.01
    )[0]
    return (float(reply["at"]) - clicked) * 1000


# -- imports ---------------------------------------------------------------------------------

_IMPORT_PROBE = """
import time
started = time.perf_counter()
{statement}
took = time.perf_counter() - started
rss = [l for l in open("/proc/self/status") if l.startswith("VmRSS:")][0].split()[1]
print(took * 1000, int(rss) / 1024)
"""


def import_cost(statement: str, runs: int = 3) -> tuple[float, float]:
    """Median wall ms of `statement` in a fresh interpreter, and the RSS (MB) after it."""
    took, rss = [], []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _IMPORT_PROBE.format(statement=statement)],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        took.append(float(out[0]))
        rss.append(float(out[1]))
    return statistics.median(took), statistics.median(rss)


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Run:
    args: argparse.Namespace
    results: dict[tuple[int, str, str], dict[str, float]]
    modals: dict[tuple[int, str], dict[str, float]]
    answers: dict[tuple[int, str], dict[str, float]]
    listing: dict[str, dict[str, str]]
    startup: dict[str, dict[str, str]]
    imports: dict[str, tuple[float, float]]
    extra: dict[str, str]
    load: str = "?"  # the load average when the run began
    # (clients, request): the lowest and highest of the rounds' own p99 ratios, bot/bolt
    spread: dict[tuple[int, str], tuple[float, float]] = field(default_factory=dict)


def ack_cells(
    run: Run, sandbox: Sandbox, urls: dict[str, str], floor: str, loadgen: Any, levels: list[int]
) -> None:
    for concurrency in levels:
        for kind in run.args.kinds.split(","):
            results: dict[str, list[dict[str, Any]]] = {server: [] for server in SERVERS}
            answers: list[dict[str, float]] = []
            for turn in range(1, run.args.rounds + 1):
                for server in SERVERS:  # interleaved: floor, bolt, bot, then again
                    result = ack_cell(run, sandbox, urls[server], floor, loadgen, concurrency, kind)
                    results[server].append(result)
                    line = f"c={concurrency:<3} {kind:<7} {server:<5} round {turn}: "
                    line += summary_line(summarize([result]))
                    if kind == "request" and server != "floor":
                        m = modal_summary(sandbox, result["sent"], wait=30.0)
                        line += (
                            f" | modal p50={m['p50']:.0f} p99={m['p99']:.0f} ms "
                            f"opened={m['opened']:.0f}/{m['n']:.0f} late={m['late']:.0f}"
                        )
                    if kind in ANSWERED and server == "bot":  # waits until the answers are in
                        answers.append(answer_summary(floor, result["asked"], wait=30.0))
                        a = answers[-1]
                        line += (
                            f" | answer p50={a['p50']:.0f} p99={a['p99']:.0f} ms "
                            f"answered={a['answered']:.0f}/{a['n']:.0f}"
                        )
                    print(line, flush=True)
                    if server == "bot":  # let the rest of its work (audits, jobs) settle
                        time.sleep(SETTLE_SECONDS)
            pool_rounds(run, sandbox, floor, (concurrency, kind), results, answers)


def ack_cell(
    run: Run, sandbox: Sandbox, url: str, floor: str, loadgen: Any, concurrency: int, kind: str
) -> dict[str, Any]:
    """One round of one cell against one server, in the load generator's process."""
    total, warmup = cell_size(concurrency, run.args.quick)
    modal = kind == "request" and url != floor
    triggers = issue_triggers(sandbox, warmup + total) if modal else ()
    secret = sandbox.slack.signing_secret
    cell = Cell(url, kind, concurrency, total, warmup, secret, floor, triggers)
    with stand_ins_undisturbed():
        result: dict[str, Any] = loadgen.apply(run_cell, (cell,))
    return result


def pool_rounds(
    run: Run,
    sandbox: Sandbox,
    floor: str,
    key: tuple[int, str],
    results: dict[str, list[dict[str, Any]]],
    answers: list[dict[str, float]],
) -> None:
    """Each server's figures from every round's requests together; the spread of the rounds'
    own p99 ratios says how far one round's figure could be trusted."""
    concurrency, kind = key
    for server, rounds in results.items():
        run.results[(concurrency, kind, server)] = summarize(rounds)
    ratios = [
        summarize([bot])["p99"] / summarize([bolt])["p99"]
        for bot, bolt in zip(results["bot"], results["bolt"], strict=True)
    ]
    run.spread[key] = (min(ratios), max(ratios))
    if kind == "request":
        for server in ("bolt", "bot"):
            sent = {k: v for r in results[server] for k, v in r["sent"].items()}
            run.modals[(concurrency, server)] = modal_summary(sandbox, sent, wait=0.0)
    if answers:
        asked = {k: v for r in results["bot"] for k, v in r["asked"].items()}
        pooled = answer_summary(floor, asked, wait=0.0)
        pooled["drained"] = max(a["drained"] for a in answers)
        run.answers[key] = pooled


def summary_line(summary: dict[str, Any]) -> str:
    return (
        f"p50={summary['p50']:.2f} p99={summary['p99']:.2f} max={summary['max']:.1f} ms "
        f"{summary['rps']:.0f} req/s errors={summary['errors']:.0f}"
    )


def list_cells(run: Run, sandbox: Sandbox, bot: BotProcess, engine: str, count: int) -> None:
    """Seed `count` accounts into `bot`'s database, then time the first page both ways."""
    seeded = listing.seed(bot.database_url, count)
    in_process = listing.first_page_in_process(bot.database_url)
    end_to_end = listing.first_page_end_to_end(sandbox)
    run.listing[engine] = {
        "seeded": f"{seeded:.1f} s",
        "in_process": in_process.summary(),
        "end_to_end": end_to_end.summary(),
    }
    print(f"list {engine}: {run.listing[engine]}", flush=True)


def error_lines(bot: BotProcess) -> list[str]:
    return [line for line in bot.log().splitlines() if '"level": "error"' in line.lower()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", default="1,10,50,200")
    parser.add_argument("--quick", action="store_true", help="a third of the requests per cell")
    parser.add_argument("--kinds", default=",".join(KINDS), help="the request kinds to send")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="run each cell this many times, floor, bolt and bot in turn; the table pools "
        "every round's requests (default %(default)s)",
    )
    parser.add_argument("--reveal-flows", type=int, default=20)
    parser.add_argument("--accounts", type=int, default=10_000, help="for the `list` cell")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG,
        help="a server to create a throwaway database on (default: TEST_DATABASE_URL, else "
        "%(default)s); the PostgreSQL `list` cell is skipped if it does not answer",
    )
    args = parser.parse_args()
    # sabot's own bytecode, as the image has it (deploy/Dockerfile: pip compiles it): a checkout
    # run with PYTHONDONTWRITEBYTECODE would compile every module at each start.
    compileall.compile_dir(ROOT / "bot", quiet=2)
    compileall.compile_dir(ROOT / "workflows", quiet=2)
    levels = [int(c) for c in args.concurrency.split(",")]
    run = Run(args, {}, {}, {}, {}, {}, {}, {}, " / ".join(f"{x:.2f}" for x in os.getloadavg()))

    sandbox = start_sandbox()
    env = dict(sandbox.bot_env())
    ctx = multiprocessing.get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="sabot-bench-") as tmp,
        uvicorn_app("bench.floor:app", {}, Path(tmp) / "floor.log") as floor,
        uvicorn_app("bench.bare_bolt:app", env, Path(tmp) / "bolt.log") as bolt,
        ctx.Pool(1) as loadgen,
    ):
        loadgen.apply(time.sleep, (0.0,))  # its process has started: not during the bot's start
        started = time.monotonic()
        bot = start_bot(
            sandbox, f"sqlite:///{tmp}/sabot.db", Path(tmp) / "sabot.log", extra_env=BOT_ENV
        )
        errors: list[str] = []
        try:
            ready = time.monotonic() - started
            # After start-up (which looks up the site at Atlassian with a 2 s timeout): from here
            # on any provisioning is slow, and must not leak into acknowledgements.
            sandbox.atlassian.answer_delay_seconds = 2.0
            time.sleep(2.0)
            run.startup["`sabot serve` (SQLite, new file: schema made)"] = {
                "ready": f"{ready * 1000:.0f} ms",
                "rss": f"{rss_mb(bot.process.pid):.1f} MB",
            }
            run.startup["bare Bolt (`uvicorn bench.bare_bolt:app`)"] = {
                "ready": f"{bolt.ready_seconds * 1000:.0f} ms",
                "rss": f"{rss_mb(bolt.pid):.1f} MB",
            }
            run.startup["floor (`uvicorn bench.floor:app`)"] = {
                "ready": f"{floor.ready_seconds * 1000:.0f} ms",
                "rss": f"{rss_mb(floor.pid):.1f} MB",
            }
            urls = {"floor": floor.url, "bolt": bolt.url, "bot": bot.url}
            watch = RssWatch(bot.process.pid)
            try:
                for concurrency in levels:
                    ack_cells(run, sandbox, urls, floor.url, loadgen, [concurrency])
                    run.extra[f"Peak RSS of `sabot serve` up to the {concurrency}-client cells"] = (
                        f"{watch.peak:.1f} MB"
                    )
            finally:
                watch.stop()
            sandbox.slack.trigger_ttl_seconds = TRIGGER_SECONDS
            if args.reveal_flows:
                time.sleep(3.0)  # let follow-up work from the load cells drain
                overheads = sorted(reveal_flows(sandbox, args.reveal_flows))
                run.extra[f"Reveal click to token delivered (median of {len(overheads)} flows)"] = (
                    f"{statistics.median(overheads):.1f} ms (min {overheads[0]:.1f}, "
                    f"max {overheads[-1]:.1f})"
                )
            if args.accounts:
                list_cells(run, sandbox, bot, "SQLite", args.accounts)
        finally:
            bot.stop()
            errors += error_lines(bot)
        if args.accounts:
            errors += postgres_list(run, sandbox, Path(tmp), args.postgres, args.accounts)
        run.extra["Error lines in the bots' logs during the run"] = str(len(errors))
        for line in errors[:5]:
            print("bot log:", line[:400], file=sys.stderr)
    sandbox.stop()
    for label, statement in IMPORTS.items():
        run.imports[label] = import_cost(statement)

    table = render(run)
    print("\n" + table)
    (ROOT / "bench" / "RESULTS.md").write_text(table)
    return 0


def postgres_list(run: Run, sandbox: Sandbox, tmp: Path, admin_url: str, count: int) -> list[str]:
    """The `list` cell on a throwaway PostgreSQL database, served by a second `sabot serve`."""
    if not listing.postgres_answers(admin_url):
        run.listing["PostgreSQL"] = {"skipped": f"no PostgreSQL answered at {admin_url}"}
        return []
    sandbox.atlassian.answer_delay_seconds = 0.0
    with listing.postgres_database(admin_url) as url:
        listing.seed(url, count)  # migrates first, so the bot below starts on a ready schema
        started = time.monotonic()
        bot = start_bot(sandbox, url, tmp / "sabot-pg.log", extra_env=BOT_ENV)
        ready = time.monotonic() - started
        try:
            run.startup["`sabot serve` (PostgreSQL, schema up to date)"] = {
                "ready": f"{ready * 1000:.0f} ms",
                "rss": "",
            }
            time.sleep(2.0)
            run.startup["`sabot serve` (PostgreSQL, schema up to date)"]["rss"] = (
                f"{rss_mb(bot.process.pid):.1f} MB"
            )
            run.listing["PostgreSQL"] = {
                "seeded": "",
                "in_process": listing.first_page_in_process(url).summary(),
                "end_to_end": listing.first_page_end_to_end(sandbox).summary(),
            }
            print(f"list PostgreSQL: {run.listing['PostgreSQL']}", flush=True)
        finally:
            bot.stop()
        return error_lines(bot)


def render(run: Run) -> str:
    args = run.args
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    levels = [int(c) for c in args.concurrency.split(",")]
    lines = [
        "# sabot benchmark results",
        "",
        f"Measured {when} on {platform.node()}: {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {run.load} (1 / 5 / 15 min) when it "
        f"began; `python -m bench.run"
        f"{' --quick' if args.quick else ''} --concurrency {args.concurrency} "
        f"--rounds {args.rounds}`.",
        "",
        "## Acknowledgement latency (ms), throughput (req/s)",
        "",
        f"Each cell ran {args.rounds} times, floor, bare Bolt and sabot in turn; a row pools "
        "every round's requests. *p99 bot/bolt, by round* is the lowest and highest of the "
        "rounds' own ratios: how far the figure of one round could be off.",
        "",
        "| clients | request | server | n | p50 | p99 | max | req/s | non-200 |"
        " p50 bot/bolt | p99 bot/bolt | p99 bot/bolt, by round | p50 bot/floor | p99 bot/floor |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for concurrency in levels:
        for kind in KINDS:
            for server in SERVERS:
                r = run.results.get((concurrency, kind, server))
                if r is None:
                    continue
                ratios = ["", "", "", "", ""]
                if server == "bot":
                    b = run.results[(concurrency, kind, "bolt")]
                    f = run.results[(concurrency, kind, "floor")]
                    low, high = run.spread[(concurrency, kind)]
                    ratios = [
                        f"{r['p50'] / b['p50']:.2f}",
                        f"{r['p99'] / b['p99']:.2f}",
                        f"{low:.2f} to {high:.2f}",
                        f"{r['p50'] / f['p50']:.1f}",
                        f"{r['p99'] / f['p99']:.1f}",
                    ]
                lines.append(
                    f"| {concurrency} | {kind} | {server} | {r['n']:.0f} | {r['p50']:.2f} "
                    f"| {r['p99']:.2f} | {r['max']:.1f} | {r['rps']:.0f} | {r['errors']:.0f} | "
                    + " | ".join(ratios)
                    + " |"
                )
    if run.modals:
        lines += [
            "",
            "## `request`: command sent to modal opened (ms)",
            "",
            "From the load generator writing the command to the Slack stand-in recording the",
            "`views.open` with its trigger_id (both wall clocks of this machine).",
            "",
            "| clients | server | opened | failed | missing | p50 | p99 | max | over 3 s |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for (concurrency, server), m in sorted(run.modals.items()):
            lines.append(
                f"| {concurrency} | {server} | {m['opened']:.0f}/{m['n']:.0f} | {m['failed']:.0f} "
                f"| {m['missing']:.0f} | {m['p50']:.1f} | {m['p99']:.1f} | {m['max']:.1f} "
                f"| {m['late']:.0f} |"
            )
    if run.answers:
        lines += [
            "",
            "## `list`, `click`: command sent to its answer at the response_url (ms)",
            "",
            "sabot's answer (the page, the refusal) posted to the `response_url` after the ack, as",
            "received by the floor; bare Bolt only acknowledges. The next cell starts once every",
            "answer is in; *drained* is how long after the cell's last ack the last answer came.",
            "",
            "| clients | request | answered | p50 | p99 | max | drained |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        for (concurrency, kind), a in sorted(run.answers.items()):
            lines.append(
                f"| {concurrency} | {kind} | {a['answered']:.0f}/{a['n']:.0f} | {a['p50']:.1f} "
                f"| {a['p99']:.1f} | {a['max']:.1f} | {a['drained']:.0f} |"
            )
    if run.listing:
        lines += [
            "",
            f"## `list`: first page with {args.accounts:,} accounts, as an admin",
            "",
            "| database | in process: query + Block Kit page | end to end: command to the page "
            "at its response_url | seeding |",
            "|---|---|---|---|",
        ]
        for engine, cells in run.listing.items():
            if "skipped" in cells:
                lines.append(f"| {engine} | {cells['skipped']} | | |")
                continue
            lines.append(
                f"| {engine} | {cells['in_process']} | {cells['end_to_end']} | {cells['seeded']} |"
            )
    lines += [
        "",
        "## Start-up and memory",
        "",
        "| process | start to /healthz 200 | idle RSS (2 s after ready) |",
        "|---|---:|---:|",
    ]
    lines += [f"| {k} | {v['ready']} | {v['rss']} |" for k, v in run.startup.items()]
    if run.imports:
        lines += [
            "",
            "Imports alone, each in a fresh interpreter (median of 3):",
            "",
            "| imports | wall | RSS after |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {label} | {ms:.0f} ms | {rss:.1f} MB |" for label, (ms, rss) in run.imports.items()
        ]
    lines += ["", "## Other figures", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in run.extra.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
