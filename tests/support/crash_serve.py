"""`sabot serve` that kills itself (SIGKILL) right after one function returns.

Test-only fault injection: production code has no crash hook; this entry point wraps the named
function before the server starts.
Usage: python -m tests.support.crash_serve MODULE:FUNCTION serve ...
"""

from __future__ import annotations

import functools
import importlib
import os
import signal
import sys
from typing import Any


def _crash_after(target: str) -> None:
    module_name, _, attribute = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *path, name = attribute.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)

    @functools.wraps(original)
    async def crashing(*args: Any, **kwargs: Any) -> Any:
        result = await original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: as a power cut
        return result

    setattr(owner, name, crashing)


if __name__ == "__main__":
    _crash_after(sys.argv[1])
    from bot.cli.main import main

    main(sys.argv[2:])
