"""Configuration from the environment or a `.env` file in the working folder.

Every command asks only for what it uses (`require`), and a bad setting stops start-up with one
line that names it and never echoes a secret's value.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from workflows.retries import SHIPPED, FailurePolicy

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")

CommaList = Annotated[list[str], NoDecode]
DATABASES = ("sqlite", "postgresql", "postgres")  # as workflows.db.async_url takes them
DATABASE_FORM = "use sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it, without its value."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    sabot_command: str = "/service-account"
    sabot_policy: str | None = None  # a policy file; without one the SABOT_* settings below
    sabot_approval_channel: str | None = None
    sabot_approvers: CommaList = Field(default_factory=list)
    sabot_admins: CommaList = Field(default_factory=list)
    atlassian_api_url: str = "https://api.atlassian.com"
    atlassian_org_id: str | None = None
    atlassian_api_key: SecretStr | None = None
    atlassian_site_id: str | None = None
    # The organisation's service-account quota, which no API reports: 5 free, 250 with
    # Atlassian Guard Standard, 1,000 on Enterprise. A policy's service_account_limit wins.
    atlassian_service_account_limit: int = Field(default=5, ge=1, le=1000)
    # A SecretStr: a PostgreSQL URL carries its password.
    database_url: SecretStr = SecretStr("sqlite:///sabot.db")
    log_level: str = "INFO"

    # Timings: real defaults, small values in tests so the same logic runs fast. The retries'
    # defaults, and why, are in workflows/retries.py (`failure_policy` below).
    atlassian_timeout_seconds: float = Field(default=15.0, gt=0)
    atlassian_retry_attempts: int = Field(default=SHIPPED.atlassian_request.attempts, ge=1, le=20)
    atlassian_retry_base_seconds: float = Field(default=SHIPPED.atlassian_request.backoff, ge=0)
    atlassian_retry_max_seconds: float = Field(default=SHIPPED.atlassian_request.cap, ge=0)
    atlassian_propagation_attempts: int = Field(default=SHIPPED.grant_access.attempts, ge=1, le=20)
    atlassian_propagation_base_seconds: float = Field(default=SHIPPED.grant_access.backoff, ge=0)
    # Retries after the first try, not tries.
    slack_retry_attempts: int = Field(default=SHIPPED.slack_ratelimited.attempts - 1, ge=0, le=10)
    slack_retry_max_wait_seconds: float = Field(default=SHIPPED.slack_ratelimited.cap, ge=0)
    # A request to /slack/events must arrive whole within this (headers, then body): Slack sends
    # each at once, so a slower one is a client holding a connection open.
    http_read_timeout_seconds: float = Field(default=10.0, gt=0)
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    # A running job's lease, renewed every third of it while the job runs: a process that dies
    # (SIGKILL, power cut) leaves its jobs to any worker within this, not minutes later.
    job_lease_seconds: float = Field(default=15.0, ge=3)
    # On SIGTERM a job in hand gets this long to finish, then is handed back to the queue
    # (below Kubernetes' 30 s terminationGracePeriodSeconds, with uvicorn's drain before it).
    worker_shutdown_grace_seconds: float = Field(default=8.0, ge=0)
    # `sabot worker` serves its own per-process metrics here (0: none).
    worker_metrics_port: int = Field(default=9300, ge=0, le=65535)
    owner_check_interval_seconds: float = Field(default=86400.0, gt=0)
    reconcile_interval_seconds: float = Field(default=86400.0, gt=0)

    @field_validator("sabot_approvers", "sabot_admins", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("sabot_approvers", "sabot_admins")
    @classmethod
    def _user_ids(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not USER_ID.match(v)]
        if bad:
            raise ValueError(f"not Slack user ids: {', '.join(bad)}")
        return value

    @field_validator("sabot_approval_channel")
    @classmethod
    def _channel_id(cls, value: str | None) -> str | None:
        if value is not None and not CHANNEL_ID.match(value):
            raise ValueError("must be a channel id such as C0123ABCD, not a channel name")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr) -> SecretStr:
        # The messages never repeat the URL: it may hold a password.
        try:
            backend = make_url(value.get_secret_value()).get_backend_name()
        except ArgumentError:
            raise ValueError(f"is not a database URL: {DATABASE_FORM}") from None
        if backend not in DATABASES:
            raise ValueError(f"{backend} is not supported: {DATABASE_FORM}")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value.upper()

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        # slack_sdk joins method names with urljoin: without the final "/" the last path
        # segment would be replaced.
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("atlassian_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    def credentials(self) -> tuple[str, ...]:
        """Every secret value set, for the log filter to mask."""
        secrets = (
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.atlassian_api_key,
        )
        values = [s.get_secret_value() for s in secrets if s is not None]
        url = self.database_url.get_secret_value()
        password = make_url(url).password if "://" in url else None
        return tuple(values + ([str(password)] if password else []))

    def failure_policy(self) -> FailurePolicy:
        """The shipped failure policy with the numbers these settings change."""
        return replace(
            SHIPPED,
            atlassian_request=replace(
                SHIPPED.atlassian_request,
                attempts=self.atlassian_retry_attempts,
                backoff=self.atlassian_retry_base_seconds,
                cap=self.atlassian_retry_max_seconds,
            ),
            grant_access=replace(
                SHIPPED.grant_access,
                attempts=self.atlassian_propagation_attempts,
                backoff=self.atlassian_propagation_base_seconds,
            ),
            slack_ratelimited=replace(
                SHIPPED.slack_ratelimited,
                attempts=self.slack_retry_attempts + 1,
                cap=self.slack_retry_max_wait_seconds,
            ),
        )

    def require(self, *names: str) -> None:
        """Stop with one line naming every missing setting among `names`."""
        missing = [n.upper() for n in names if _unset(getattr(self, n))]
        if missing:
            raise SettingsError(
                f"missing setting{'s' if len(missing) > 1 else ''}: {', '.join(missing)}"
            )


def _unset(value: object) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value in (None, "", [])


SERVE_NEEDS = ("slack_bot_token", "slack_signing_secret", "atlassian_org_id", "atlassian_api_key")
SOCKET_NEEDS = ("slack_bot_token", "slack_app_token", "atlassian_org_id", "atlassian_api_key")
WORKER_NEEDS = ("slack_bot_token", "atlassian_org_id", "atlassian_api_key")
# Without SABOT_POLICY, the approvers and their channel come from these settings.
POLICY_NEEDS = ("sabot_approval_channel", "sabot_approvers")


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning pydantic's report into one line per bad setting."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        lines = []
        for problem in error.errors(include_input=False, include_url=False):
            name = str(problem["loc"][0]).upper() if problem["loc"] else "settings"
            lines.append(f"setting {name}: {problem['msg']}")
        raise SettingsError("; ".join(lines)) from None
