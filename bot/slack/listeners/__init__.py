"""Listeners grouped by kind; each group registers itself."""

from __future__ import annotations

from slack_bolt.app.async_app import AsyncApp

from bot.slack.listeners import actions, commands, events, findings, idle, views


def register_listeners(app: AsyncApp, command_name: str) -> None:
    commands.register(app, command_name)
    actions.register(app)
    idle.register(app)
    findings.register(app)
    views.register(app)
    events.register(app)
