"""The slack tier's bot: the app `sabot serve` runs (`bot.process.server.create_server`: the
project's own assembly, the Bolt AsyncApp with its listeners, the in-process worker), served by
uvicorn on a thread of the test's own process, on SQLite, against the stand-ins on theirs.

Slack's requests reach it over loopback signed as Slack signs them, as bolt-python's own
scenario tests drive an app against a Web API stand-in on a thread; what differs from the e2e
tier is only that no process is started, so a test costs the flow, not an interpreter start."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import pytest
import uvicorn

import bot.process.server
from bot.process import logs
from bot.process.assembly import policy_rules
from bot.process.http_protocol import header_bounded
from bot.process.settings import SERVE_NEEDS, Settings, load_settings
from sandbox.bot_process import DEBUG_LOGGING, credentials_of
from sandbox.runner import Sandbox, listening_socket

START_SECONDS = 30
# Loggers whose set-up sabot changes at start (levels, handlers): put back after each test.
TOUCHED_LOGGERS = ("", *logs.BODY_LOGGERS, *logs.NOISY_LOGGERS, "uvicorn", "uvicorn.access")


@dataclass
class InProcessBot:
    url: str
    log_path: Path
    database_url: str
    credentials: tuple[tuple[str, str], ...]
    server: uvicorn.Server
    thread: threading.Thread

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        """As SIGTERM stops `sabot serve`: uvicorn drains, then the app's shutdown closes the
        worker, the Slack and Atlassian clients and the database."""
        self.server.should_exit = True
        self.thread.join(timeout=START_SECONDS)


@contextmanager
def serve_in_process(
    sandbox: Sandbox,
    database_url: str,
    log_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra_env: dict[str, str] | None = None,
) -> Iterator[InProcessBot]:
    """The bot configured as `sabot serve` is, from the environment (the stand-ins', DEBUG
    logging, every other setting at its default); returns once it answers."""
    env = {**sandbox.bot_env(), **DEBUG_LOGGING, "DATABASE_URL": database_url, **(extra_env or {})}
    for name in list(os.environ):
        if name.startswith(("SLACK_", "SABOT_", "ATLASSIAN_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(log_path.parent)  # sabot reads a .env in its working folder: none here
    # gc.freeze() after start-up keeps what is alive then for the life of the process: here
    # that would be every earlier test's leftovers.
    monkeypatch.setattr(bot.process.server, "settle_heap", lambda: None)
    with log_path.open("a") as log_file, _logging_put_back():
        settings = _settings(log_file)
        running = _start(settings, database_url, log_path, credentials_of(env))
        try:
            yield running
        finally:
            running.stop()
            for _, secret in running.credentials:
                logs.scrubber.discard(secret)


def _settings(log_file: TextIO) -> Settings:
    """As `sabot serve` reads them (bot.cli.main), with its log going to the bot's own file."""
    settings = load_settings()
    settings.require(*SERVE_NEEDS)
    policy_rules(settings)
    logs.configure(settings.log_level, settings.credentials(), stream=log_file)
    return settings


def _start(
    settings: Settings,
    database_url: str,
    log_path: Path,
    credentials: tuple[tuple[str, str], ...],
) -> InProcessBot:
    sock = listening_socket()
    config = uvicorn.Config(
        bot.process.server.create_server(settings),
        log_level="warning",
        timeout_graceful_shutdown=20,
        http=header_bounded(settings.http_read_timeout_seconds),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=asyncio.run, args=(server.serve(sockets=[sock]),), daemon=True, name="sabot"
    )
    # The bot's log is what its own thread logs: the stand-ins and the test log elsewhere.
    for handler in logging.getLogger().handlers:
        handler.addFilter(lambda record: record.thread == thread.ident)
    thread.start()
    running = InProcessBot(
        f"http://127.0.0.1:{sock.getsockname()[1]}",
        log_path,
        database_url,
        credentials,
        server,
        thread,
    )
    deadline = time.monotonic() + START_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            running.stop()
            raise RuntimeError(f"the in-process bot did not start:\n{running.log()}")
        time.sleep(0.01)
    return running


@contextmanager
def _logging_put_back() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in TOUCHED_LOGGERS]
    saved = [(logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    try:
        yield
    finally:
        for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
            logger.handlers[:], logger.propagate = handlers, propagate
            logger.setLevel(level)
