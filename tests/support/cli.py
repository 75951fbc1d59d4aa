"""`sabot` commands as their own process, as cron or an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sandbox.runner import Sandbox


def sabot(
    database_url: str, cwd: Path, *args: str, sandbox: Sandbox | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `sabot ARGS` as its own process, as cron or an operator would; with `sandbox`,
    pointed at the stand-ins."""
    return run_sabot(database_url, cwd, args, sandbox.bot_env() if sandbox else {})


def run_sabot(
    database_url: str, cwd: Path, args: tuple[str, ...], settings: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SABOT_", "ATLASSIAN_"))
    }
    env.update({"LOG_LEVEL": "WARNING", "DATABASE_URL": database_url})
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
