"""Settings: one clear line per bad setting, never a secret's value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from bot.process.settings import SERVE_NEEDS, Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent
SECRET = "xoxb-very-secret-value-123"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith(("SLACK_", "SABOT_", "ATLASSIAN_", "DATABASE_")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no .env of the developer's


def test_defaults() -> None:
    settings = load_settings()
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.sabot_command == "/service-account"
    assert settings.atlassian_api_url == "https://api.atlassian.com"
    assert settings.database_url.get_secret_value() == "sqlite:///sabot.db"


def test_comma_lists_and_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SABOT_APPROVERS", "U0BOB, U0CAROL,")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api")
    settings = load_settings()
    assert settings.sabot_approvers == ["U0BOB", "U0CAROL"]
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"


def test_dotenv_in_the_working_folder_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SABOT_APPROVAL_CHANNEL=C0APPROVALS\n")
    assert load_settings().sabot_approval_channel == "C0APPROVALS"


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("SABOT_APPROVERS", "bob", "SABOT_APPROVERS"),
        ("SABOT_APPROVAL_CHANNEL", "#approvals", "SABOT_APPROVAL_CHANNEL"),
        ("SLACK_API_URL", "slack.com/api", "SLACK_API_URL"),
        ("ATLASSIAN_RETRY_ATTEMPTS", "many", "ATLASSIAN_RETRY_ATTEMPTS"),
        ("DATABASE_URL", "nonsense", "DATABASE_URL: Value error, is not a database URL"),
        ("DATABASE_URL", "mysql://sabot@db/sabot", "DATABASE_URL: Value error, mysql is not"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL: Value error, must be one of DEBUG"),
    ],
)
def test_malformed_settings_name_themselves(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, named: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match=named):
        load_settings()


def test_missing_settings_are_listed_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", SECRET)
    with pytest.raises(SettingsError) as caught:
        load_settings().require(*SERVE_NEEDS)
    assert "SLACK_SIGNING_SECRET" in str(caught.value)
    assert "SLACK_BOT_TOKEN" not in str(caught.value) and SECRET not in str(caught.value)


CREDENTIALS = {  # each distinct, none a part of another
    "SLACK_BOT_TOKEN": SECRET,
    "SLACK_SIGNING_SECRET": "8f14e45fceea167a5a36dedd4bea2543",
    "SLACK_APP_TOKEN": "xapp-1-A0SABOT-app-level",
    "ATLASSIAN_API_KEY": "ATCTT3xFfGN0-org-api-key",
}


def test_secrets_never_show_in_repr_or_str(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    shown = {
        "repr": repr(settings),
        "str": str(settings),
        "format": f"{settings}",
        "model_dump": repr(settings.model_dump()),
        "model_dump_json": settings.model_dump_json(),
        "fields": repr(list(settings)),
    }
    # every credential is a SecretStr, none shows anywhere, and each is still there to use
    secret_fields = {
        n for n, f in Settings.model_fields.items() if f.annotation == SecretStr | None
    }
    assert {k.lower() for k in CREDENTIALS} == secret_fields
    for how, text in shown.items():
        assert not [k for k, v in CREDENTIALS.items() if v in text], how
    assert set(CREDENTIALS.values()) <= set(settings.credentials())


def test_the_database_password_never_shows_in_repr_or_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://sabot:db-password-123@db/sabot")
    settings = Settings()
    assert "db-password-123" in settings.credentials()  # masked in the logs already
    assert "db-password-123" not in repr(settings) + settings.model_dump_json()


def test_a_refused_database_url_never_shows_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://sabot:hunter2-db-secret@db/sabot")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert "DATABASE_URL" in str(refused.value) and "hunter2" not in str(refused.value)


def test_a_port_out_of_range_is_refused_before_anything_starts(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--port", "99999"],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "argument --port: '99999' is not a port (0 to 65535)" in done.stderr
    assert not (tmp_path / "sabot.db").exists()  # no database made for a server never to run


def test_serve_without_settings_stops_with_one_line(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SABOT_", "ATLASSIAN_"))
    }
    env["SLACK_BOT_TOKEN"] = SECRET
    env["SABOT_APPROVERS"] = "not-a-user"
    done = subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "SABOT_APPROVERS" in done.stderr and SECRET not in done.stderr


def test_every_command_has_help() -> None:
    for command in (
        [],
        ["serve"],
        ["worker"],
        ["socket"],
        ["db", "upgrade"],
        ["sandbox"],
        ["demo"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "bot", *command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0 and "usage: sabot" in done.stdout


def test_manifest_declares_what_the_app_uses() -> None:
    manifest = yaml.safe_load((ROOT / "app_manifest.yml").read_text())
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/service-account" and command["should_escape"] is True
    assert command["url"].endswith("/slack/events")
    assert manifest["settings"]["interactivity"]["request_url"].endswith("/slack/events")
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True
    assert {"commands", "chat:write", "im:write", "usergroups:read"} <= set(
        manifest["oauth_config"]["scopes"]["bot"]
    )
