"""An event-loop probe for `sabot serve`, loaded by Python at start-up when this folder is on
PYTHONPATH and SABOT_LOOP_PROBE names a report file (see bench/profile.py). It changes nothing
otherwise.

It records what holds the event loop: every callback (a task's step) that runs longer than
5 ms, by the coroutine of its task; every garbage collection, by generation; and, from a
watchdog thread, the main thread's stack whenever one callback has run for more than 20 ms.
SIGUSR2 writes the report, with the tasks still pending and where each waits.
"""

from __future__ import annotations

import os

REPORT = os.environ.get("SABOT_LOOP_PROBE")

if REPORT:
    import asyncio
    import asyncio.events
    import collections
    import gc
    import signal
    import sys
    import threading
    import time
    import traceback
    from typing import Any

    SLOW, STALL = 0.005, 0.020
    slow_steps: collections.Counter[str] = collections.Counter()
    slow_seconds: collections.Counter[str] = collections.Counter()
    stalls: collections.Counter[str] = collections.Counter()
    collections_by_generation: dict[int, list[float]] = collections.defaultdict(list)
    running: dict[str, float | None] = {"since": None}
    gc_started: dict[str, float] = {}
    _run = asyncio.events.Handle._run

    def _name(handle: Any) -> str:
        callback = handle._callback
        task = getattr(callback, "__self__", None)
        if isinstance(task, asyncio.Task):
            coro = task.get_coro()
            return str(getattr(coro, "__qualname__", coro))
        return str(getattr(callback, "__qualname__", callback))

    def _timed_run(self: Any) -> None:
        started = running["since"] = time.perf_counter()
        try:
            _run(self)
        finally:
            running["since"] = None
            took = time.perf_counter() - started
            if took > SLOW:
                name = _name(self)
                slow_steps[name] += 1
                slow_seconds[name] += took

    asyncio.events.Handle._run = _timed_run  # type: ignore[method-assign]

    def _on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started["at"] = time.perf_counter()
        elif "at" in gc_started:
            took = time.perf_counter() - gc_started.pop("at")
            collections_by_generation[info["generation"]].append(took)

    gc.callbacks.append(_on_gc)
    main_thread = threading.main_thread().ident

    def _watch() -> None:
        while True:
            time.sleep(0.002)
            since = running["since"]
            if since is None or time.perf_counter() - since < STALL:
                continue
            frame = sys._current_frames().get(main_thread or 0)
            if frame is not None:
                stack = traceback.extract_stack(frame)[-12:]
                stalls[
                    " <- ".join(
                        f"{f.name} ({_short(f.filename)}:{f.lineno})" for f in reversed(stack)
                    )
                ] += 1

    def _short(path: str) -> str:
        for marker in ("site-packages/", "/lib/python3"):
            if marker in path:
                return path.split(marker, 1)[1]
        return os.path.relpath(path)

    def _waiting(task: asyncio.Task[Any]) -> str:
        coro: Any = task.get_coro()
        path = []
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
            if frame is not None:
                path.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        return " > ".join(path[-5:])

    def _report(*_: object) -> None:
        lines = ["# loop probe", "", "callbacks over 5 ms, by task coroutine: count, seconds"]
        lines += [f"{n:7d} {slow_seconds[k]:8.3f}  {k}" for k, n in slow_steps.most_common(15)]
        lines += ["", "garbage collections: generation, count, total ms, max ms"]
        for generation, took in sorted(collections_by_generation.items()):
            lines.append(
                f"  gen{generation} {len(took):6d} {sum(took) * 1000:9.1f} {max(took) * 1000:8.1f}"
            )
        lines.append(f"objects the collector tracks now: {len(gc.get_objects())}")
        loop = asyncio.events._get_running_loop()
        tasks = asyncio.all_tasks(loop) if loop is not None else set()
        lines += ["", f"pending tasks: {len(tasks)}, where they wait:"]
        waits = collections.Counter(_waiting(t) for t in tasks)
        lines += [f"{n:7d}  {k}" for k, n in waits.most_common(10)]
        total = sum(stalls.values())
        lines += ["", f"main thread inside one callback for over 20 ms: {total} samples (2 ms)"]
        lines += [f"{n:7d}  {k}\n" for k, n in stalls.most_common(10)]
        with open(REPORT, "w") as out:
            out.write("\n".join(lines) + "\n")

    threading.Thread(target=_watch, daemon=True, name="loop-probe").start()
    signal.signal(signal.SIGUSR2, _report)
