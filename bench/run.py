"""One command: `.venv/bin/python -m bench.run` from the project root.

Measures the real `sabot serve` (SQLite, stand-ins on loopback, the Atlassian stand-in answering
after 2 s) against two baselines started in the same run, interleaved cell by cell: a raw ASGI
app under uvicorn (the floor) and a bare Bolt AsyncApp in its default configuration. The load
generator is a separate process. Prints a table and writes bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
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
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.load import Cell, run_cell
from sandbox.runner import Sandbox, free_port, start_sandbox
from sandbox.slack_client import SlackSandbox
from tests.conftest import start_bot

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("help", "list", "click")
SERVERS = ("floor", "bolt", "bot")
SETTLE_SECONDS = 2.0  # pause after each bot cell, so baselines don't run under its backlog
WARNINGS = ("--log-level", "warning")  # as `sabot serve` runs uvicorn


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
        time.sleep(0.02)
    raise RuntimeError(f"{url} did not become healthy")


@contextmanager
def uvicorn_app(target: str, env: dict[str, str], log: Path) -> Iterator[str]:
    """`uvicorn target` in its own process, with the same uvicorn settings as `sabot serve`."""
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", target, "--port", str(port), *WARNINGS],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url
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


def pct(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def summarize(result: dict[str, object]) -> dict[str, float]:
    lat = sorted(x * 1000 for x in result["latencies"])  # type: ignore[attr-defined]
    return {
        "p50": statistics.median(lat),
        "p99": pct(lat, 0.99),
        "max": lat[-1],
        "rps": len(lat) / float(result["wall"]),  # type: ignore[arg-type]
        "errors": float(result["errors"]),  # type: ignore[arg-type]
        "n": float(len(lat)),
    }


def cell_size(concurrency: int, quick: bool) -> tuple[int, int]:
    total = {1: 300, 10: 600, 50: 1000}.get(concurrency, 1200)
    if quick:
        total //= 3
    return total, max(20, 2 * concurrency)


def reveal_flows(sandbox: Sandbox, flows: int) -> list[float]:
    """Click to token (ms): from just before the Reveal click is sent to the Slack stand-in's
    record of the ephemeral response_url post carrying the token. Stand-ins answer at once."""
    from sandbox.slack_client import SlackSandbox

    sandbox.atlassian.answer_delay_seconds = 0.0
    with SlackSandbox(sandbox.slack_url) as slack:
        slack.reset()
        return [_one_reveal(slack, f"bench-reveal-{i}") for i in range(flows)]


def _one_reveal(slack: SlackSandbox, name: str) -> float:
    from tests.test_end_to_end import (
        ALICE,
        APPROVALS,
        BOB,
        GENERAL,
        GOOD_FORM,
        reveal_offer,
        submit_request,
        token_replies,
    )

    submit_request(slack, {**GOOD_FORM, "name": {"value": name}})
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", default="1,10,50,200")
    parser.add_argument("--quick", action="store_true", help="a third of the requests per cell")
    parser.add_argument("--reveal-flows", type=int, default=20)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    sandbox = start_sandbox()
    secret = sandbox.slack.signing_secret
    env = {k: v for k, v in sandbox.bot_env().items()}
    ctx = multiprocessing.get_context("spawn")
    results: dict[tuple[int, str, str], dict[str, float]] = {}
    extra: dict[str, str] = {}
    with (
        tempfile.TemporaryDirectory(prefix="sabot-bench-") as tmp,
        uvicorn_app("bench.floor:app", {}, Path(tmp) / "floor.log") as floor,
        uvicorn_app("bench.bare_bolt:app", env, Path(tmp) / "bolt.log") as bolt,
        ctx.Pool(1) as loadgen,
    ):
        started = time.monotonic()
        bot = start_bot(
            sandbox,
            f"sqlite:///{tmp}/sabot.db",
            Path(tmp) / "sabot.log",
            extra_env={"LOG_LEVEL": "INFO"},
        )
        try:
            ready = time.monotonic() - started
            # After start-up (which looks up the site at Atlassian with a 2 s timeout): from here
            # on any provisioning is slow, and must not leak into acknowledgements.
            sandbox.atlassian.answer_delay_seconds = 2.0
            time.sleep(2.0)
            extra["Start-up to ready (process start to /healthz 200, SQLite, migrations)"] = (
                f"{ready * 1000:.0f} ms"
            )
            extra["Idle RSS of `sabot serve` (2 s after ready)"] = (
                f"{rss_mb(bot.process.pid):.1f} MB"
            )
            urls = {"floor": floor, "bolt": bolt, "bot": bot.url}
            watch = RssWatch(bot.process.pid)
            try:
                for concurrency in levels:
                    total, warmup = cell_size(concurrency, args.quick)
                    for kind in KINDS:
                        for server in SERVERS:  # interleaved: floor, bolt, bot per cell
                            cell = Cell(
                                urls[server], kind, concurrency, total, warmup, secret, floor
                            )
                            summary = summarize(loadgen.apply(run_cell, (cell,)))
                            results[(concurrency, kind, server)] = summary
                            if server == "bot":  # let its follow-up work drain a little
                                time.sleep(SETTLE_SECONDS)
                            print(
                                f"c={concurrency:<3} {kind:<5} {server:<5} "
                                f"p50={summary['p50']:.2f} p99={summary['p99']:.2f} "
                                f"max={summary['max']:.1f} ms {summary['rps']:.0f} req/s "
                                f"errors={summary['errors']:.0f}",
                                flush=True,
                            )
                    peak = watch.peak
                    extra[f"Peak RSS of `sabot serve` up to the {concurrency}-client cells"] = (
                        f"{peak:.1f} MB"
                    )
            finally:
                watch.stop()
            if args.reveal_flows:
                time.sleep(3.0)  # let follow-up work from the load cells drain
                overheads = sorted(reveal_flows(sandbox, args.reveal_flows))
                extra[f"Reveal click to token delivered (median of {len(overheads)} flows)"] = (
                    f"{statistics.median(overheads):.1f} ms (min {overheads[0]:.1f}, "
                    f"max {overheads[-1]:.1f})"
                )
        finally:
            bot.stop()
        log_errors = [line for line in bot.log().splitlines() if '"level": "error"' in line.lower()]
        extra["Error lines in the bot's log during the run"] = str(len(log_errors))
        for line in log_errors[:5]:
            print("bot log:", line[:400], file=sys.stderr)
    sandbox.stop()

    table = render(results, levels, extra, args)
    print("\n" + table)
    (ROOT / "bench" / "RESULTS.md").write_text(table)
    return 0


def render(
    results: dict[tuple[int, str, str], dict[str, float]],
    levels: list[int],
    extra: dict[str, str],
    args: argparse.Namespace,
) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# sabot benchmark results",
        "",
        f"Measured {when} on {platform.node()}: {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; `python -m bench.run"
        f"{' --quick' if args.quick else ''} --concurrency {args.concurrency}`.",
        "",
        "## Acknowledgement latency (ms), throughput (req/s)",
        "",
        "| clients | request | server | n | p50 | p99 | max | req/s | non-200 |"
        " p50 bot/bolt | p99 bot/bolt | p50 bot/floor | p99 bot/floor |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for concurrency in levels:
        for kind in KINDS:
            for server in SERVERS:
                r = results.get((concurrency, kind, server))
                if r is None:
                    continue
                ratios = ["", "", "", ""]
                if server == "bot":
                    b = results[(concurrency, kind, "bolt")]
                    f = results[(concurrency, kind, "floor")]
                    ratios = [
                        f"{r['p50'] / b['p50']:.2f}",
                        f"{r['p99'] / b['p99']:.2f}",
                        f"{r['p50'] / f['p50']:.1f}",
                        f"{r['p99'] / f['p99']:.1f}",
                    ]
                lines.append(
                    f"| {concurrency} | {kind} | {server} | {r['n']:.0f} | {r['p50']:.2f} "
                    f"| {r['p99']:.2f} | {r['max']:.1f} | {r['rps']:.0f} | {r['errors']:.0f} | "
                    + " | ".join(ratios)
                    + " |"
                )
    lines += ["", "## Other figures", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
