"""`sabot manifest --url https://bot.company.com`: app_manifest.yml with the real public URL.

app_manifest.yml stays the one source: this only replaces its placeholder base URL.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

PLACEHOLDER = "https://bot.example.com"
FILE_NAME = "app_manifest.yml"


class ManifestError(Exception):
    """The URL or the manifest file is unusable; the message says how, in one line."""


def base_url(url: str) -> str:
    """`url` as a base URL (`https://host[:port]`), or ManifestError."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port  # raises on a port that is not a number
    except ValueError:
        raise ManifestError(f"--url {url!r} is not a URL") from None
    if parts.scheme != "https":
        raise ManifestError(f"--url must start with https:// (Slack calls only HTTPS), not {url!r}")
    if not parts.hostname or parts.username or parts.password:
        raise ManifestError(f"--url needs a host name and nothing before it: {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ManifestError(
            f"--url is the base URL only, without a path: {url!r} "
            "(Slack is sent to <url>/slack/events)"
        )
    host = parts.hostname if port is None else f"{parts.hostname}:{port}"
    return f"https://{host}"


def find_manifest() -> Path:
    """The checkout's app_manifest.yml, else the one in the working folder (the image's)."""
    for candidate in (Path(__file__).resolve().parents[2] / FILE_NAME, Path.cwd() / FILE_NAME):
        if candidate.is_file():
            return candidate
    raise ManifestError(f"no {FILE_NAME} found: give its path with --file")


def bot_scopes(path: Path | None = None) -> list[str]:
    """The bot token scopes the manifest asks for (`oauth_config.scopes.bot`), in its order."""
    import yaml  # only here: `sabot manifest` itself is a text replacement

    source = path or find_manifest()
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ManifestError(f"cannot read {source}: {error}") from None
    scopes = ((data or {}).get("oauth_config") or {}).get("scopes") or {}
    found = scopes.get("bot") if isinstance(scopes, dict) else None
    if not isinstance(found, list) or not all(isinstance(s, str) for s in found):
        raise ManifestError(f"{source} lists no oauth_config.scopes.bot")
    return list(found)


def render(url: str, path: Path | None = None) -> str:
    """The manifest with every `https://bot.example.com` replaced by the base of `url`."""
    base = base_url(url)
    source = path or find_manifest()
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise ManifestError(f"cannot read {source}: {error.strerror}") from None
    if PLACEHOLDER not in text:
        raise ManifestError(f"{source} has no {PLACEHOLDER} to replace")
    return text.replace(PLACEHOLDER, base)


SOCKET_MODE_HEADER = (
    "# Slack app manifest for sabot in Socket Mode (`sabot socket`): Slack reaches the app over\n"
    "# the WebSocket it opens, so there is no request URL. Give it an app-level token with the\n"
    "# connections:write scope (Basic Information > App-Level Tokens) as SLACK_APP_TOKEN.\n"
)


def render_socket_mode(path: Path | None = None) -> str:
    """The manifest for Socket Mode: `socket_mode_enabled: true` and no request URL anywhere
    (Slack sends a Socket Mode app nothing over HTTP)."""
    source = path or find_manifest()
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise ManifestError(f"cannot read {source}: {error.strerror}") from None
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)  # the header tells how to fill in the URL
    kept = [line for line in lines if not _is_request_url(line)]
    out = SOCKET_MODE_HEADER + "".join(kept)
    if "socket_mode_enabled: false" not in out:
        raise ManifestError(f"{source} has no `socket_mode_enabled: false` to turn on")
    out = out.replace("socket_mode_enabled: false", "socket_mode_enabled: true")
    if PLACEHOLDER in out:
        raise ManifestError(f"{source} uses {PLACEHOLDER} outside a url or request_url")
    return out


def _is_request_url(line: str) -> bool:
    key, _, value = line.strip().partition(":")
    return key in ("url", "request_url") and value.strip().startswith(PLACEHOLDER)
