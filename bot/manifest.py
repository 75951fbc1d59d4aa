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
    for candidate in (Path(__file__).resolve().parent.parent / FILE_NAME, Path.cwd() / FILE_NAME):
        if candidate.is_file():
            return candidate
    raise ManifestError(f"no {FILE_NAME} found: give its path with --file")


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
