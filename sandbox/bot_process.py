"""`sabot serve`, `sabot socket` and `sabot worker` as their own processes, pointed at the
stand-ins: what the end-to-end tests and the benchmark run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from sandbox.runner import Sandbox, free_port

# Bots run with the settings a user ships with: every timing, lease and retry setting at its
# default (a caller changes one only where that setting is what it tests). What is set here is
# logging: every logger at DEBUG, the ones that dump whole bodies (the token reply) included,
# so a search of the log for secrets proves the masking, not merely that nothing was logged.
DEBUG_LOGGING = {"LOG_LEVEL": "DEBUG", "LOG_BODIES": "1"}

# The settings that carry credentials.
CREDENTIAL_SETTINGS = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "ATLASSIAN_API_KEY",
)
START_SECONDS = 30


@dataclass
class BotProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    database_url: str
    # (setting, value) of the credentials it was started with
    credentials: tuple[tuple[str, str], ...] = ()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# Each is called with every bot started here and its stand-ins (the tests' secret sweep
# registers one, to search whatever the bot could have written or sent).
ON_START: list[Callable[[BotProcess, Sandbox], None]] = []


def _started(bot: BotProcess, sandbox: Sandbox) -> None:
    for hook in ON_START:
        hook(bot, sandbox)


def bot_environment(
    sandbox: Sandbox, database_url: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """This process's environment without our settings, plus the stand-ins' and the DEBUG
    logging; every other setting at its shipped default."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SABOT_", "ATLASSIAN_"))
    }
    return {
        **env,
        **sandbox.bot_env(),
        **DEBUG_LOGGING,
        "DATABASE_URL": database_url,
        **(extra or {}),
    }


def credentials_of(env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple((k, env[k]) for k in CREDENTIAL_SETTINGS if env.get(k))


def start_bot(
    sandbox: Sandbox,
    database_url: str,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> BotProcess:
    """`sabot serve` as its own process, pointed at the stand-ins; returns once healthy."""
    env = bot_environment(sandbox, database_url, extra_env)
    for _ in range(3):  # another process may take the chosen port before the bot binds it
        bot = _launch(env, database_url, log_path, args)
        if bot is not None:
            break
    else:
        raise RuntimeError(f"no free port for sabot serve:\n{log_path.read_text()}")
    sandbox.slack.bot_url = bot.url
    _started(bot, sandbox)
    return bot


def _launch(
    env: dict[str, str], database_url: str, log_path: Path, args: tuple[str, ...]
) -> BotProcess | None:
    """Start and wait until healthy; None when the port was taken meanwhile."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--port", str(port), *args],
        cwd=log_path.parent,
        env=env,
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )
    bot = BotProcess(
        f"http://127.0.0.1:{port}", process, log_path, database_url, credentials_of(env)
    )
    deadline = time.monotonic() + START_SECONDS
    while True:
        if process.poll() is not None:
            if "address already in use" in bot.log():
                return None
            raise RuntimeError(f"sabot serve exited {process.returncode}:\n{bot.log()}")
        try:
            if httpx.get(f"{bot.url}/healthz", timeout=1).status_code == 200:
                return bot
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            bot.stop()
            raise RuntimeError(f"sabot serve did not become healthy:\n{bot.log()}")
        time.sleep(0.05)


def start_socket_bot(
    sandbox: Sandbox,
    database_url: str,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
    *,
    connected: bool = True,
) -> BotProcess:
    """`sabot socket` as its own process with the stand-ins' app-level token; returns once it
    says it is connected (or at once with `connected=False`). Slack then delivers over the
    socket: the same drivers work as for `sabot serve`."""
    env = bot_environment(
        sandbox, database_url, {"SLACK_APP_TOKEN": sandbox.slack.app_token, **(extra_env or {})}
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "socket"],
        cwd=log_path.parent,
        env=env,
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )
    bot = BotProcess("", process, log_path, database_url, credentials_of(env))
    _started(bot, sandbox)
    deadline = time.monotonic() + START_SECONDS
    while connected and "sabot connected over Socket Mode" not in bot.log():
        if not bot.running() or time.monotonic() > deadline:
            bot.stop()
            raise RuntimeError(f"sabot socket did not connect:\n{bot.log()}")
        time.sleep(0.05)
    return bot


def start_worker(
    sandbox: Sandbox, database_url: str, log_path: Path, extra_env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """`sabot worker` as its own process; returns once it says it is running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "worker"],
        cwd=log_path.parent,
        env=bot_environment(sandbox, database_url, extra_env),
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + START_SECONDS
    while "sabot worker running" not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"sabot worker did not start:\n{log_path.read_text()}")
        time.sleep(0.05)
    return process
