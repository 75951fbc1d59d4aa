"""Profile one benchmark cell: `.venv/bin/python -m bench.profile list --clients 10`.

Starts the stand-ins, the floor (as the `response_url` sink) and `sabot serve` as the benchmark
does, with the event-loop probe of bench/probe loaded into the bot; sends one cell of signed
requests; prints the probe's report (callbacks that held the loop, garbage collections, pending
tasks, stacks of long stalls). With `--py-spy FILE` it also records the bot with py-spy (not a
dependency of the project: `pip install py-spy` into the venv first) as a speedscope profile,
or as collapsed stacks when FILE ends in `.txt`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bench.load import Cell, run_cell
from bench.run import (
    BOT_ENV,
    ROOT,
    issue_triggers,
    modal_summary,
    stand_ins_undisturbed,
    summarize,
    uvicorn_app,
)
from sandbox.bot_process import start_bot
from sandbox.runner import start_sandbox


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=("help", "request", "list", "click"))
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--py-spy", metavar="FILE", help="also record the bot with py-spy")
    args = parser.parse_args()

    sandbox = start_sandbox()
    ctx = multiprocessing.get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="sabot-profile-") as tmp,
        uvicorn_app("bench.floor:app", {}, Path(tmp) / "floor.log") as floor,
        ctx.Pool(1) as loadgen,
    ):
        report = Path(tmp) / "probe.txt"
        paths = [str(ROOT / "bench" / "probe"), os.environ.get("PYTHONPATH", "")]
        probe = {
            "PYTHONPATH": os.pathsep.join(filter(None, paths)),
            "SABOT_LOOP_PROBE": str(report),
        }
        bot = start_bot(
            sandbox, f"sqlite:///{tmp}/sabot.db", Path(tmp) / "sabot.log", {**BOT_ENV, **probe}
        )
        spy = None
        try:
            sandbox.atlassian.answer_delay_seconds = 2.0
            if args.py_spy:
                spy = _py_spy(bot.process.pid, args.py_spy)
            warmup = max(20, 2 * args.clients)
            triggers = (
                issue_triggers(sandbox, warmup + args.requests) if args.kind == "request" else ()
            )
            cell = Cell(
                bot.url,
                args.kind,
                args.clients,
                args.requests,
                warmup,
                sandbox.slack.signing_secret,
                floor.url,
                triggers,
            )
            with stand_ins_undisturbed():
                result = loadgen.apply(run_cell, (cell,))
            summary = summarize([result])
            print(
                f"{args.kind} at {args.clients} clients: ack p50 {summary['p50']:.2f} ms, "
                f"p99 {summary['p99']:.2f} ms, max {summary['max']:.1f} ms, "
                f"{summary['rps']:.0f} req/s, non-200 {summary['errors']:.0f}"
            )
            if triggers:
                print(f"modals: {modal_summary(sandbox, result['sent'], wait=10.0)}")
            bot.process.send_signal(signal.SIGUSR2)
            time.sleep(0.5)
            print(report.read_text() if report.exists() else "(no probe report)")
        finally:
            bot.stop()
            if spy is not None:  # it writes its profile when the bot has gone
                if spy.poll() is None:
                    spy.send_signal(signal.SIGINT)
                spy.wait(timeout=120)
                print(f"py-spy profile in {args.py_spy}")
    sandbox.stop()
    return 0


def _py_spy(pid: int, out: str) -> subprocess.Popen[bytes]:
    exe = shutil.which("py-spy") or str(Path(ROOT / ".venv" / "bin" / "py-spy"))
    fmt = "raw" if out.endswith(".txt") else "speedscope"
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--output", out, "--format", fmt, "--rate", "250"],
        stdout=subprocess.DEVNULL,
    )


if __name__ == "__main__":
    raise SystemExit(main())
