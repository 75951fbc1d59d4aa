"""Reading the policy file, with errors that name the file, the line and what is wrong."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from workflows.policy import PolicyFile

Location = tuple[str | int, ...]


class PolicyError(Exception):
    """The policy file is unusable; str() is one line per problem, each with file and line."""


def _key_lines(node: yaml.Node, path: Location = ()) -> dict[Location, int]:
    """Line number (1-based) of every key and list item, by its path in the document."""
    lines: dict[Location, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            here = (*path, str(key.value))
            lines[here] = key.start_mark.line + 1
            lines.update(_key_lines(value, here))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            here = (*path, index)
            lines[here] = item.start_mark.line + 1
            lines.update(_key_lines(item, here))
    return lines


def _line_of(location: Location, lines: dict[Location, int]) -> int | None:
    for end in range(len(location), 0, -1):
        if location[:end] in lines:
            return lines[location[:end]]
    return None


def _describe(error: Any) -> tuple[Location, str]:
    location: Location = tuple(part for part in error["loc"] if part != "[key]")
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return location, f"unknown key {location[-1]!r} (a typo would silently drop a rule)"
    named = re.match(r"^([\w.]+): (.*)$", message)  # model checks name their own path
    if not location and named:
        location = tuple(named.group(1).split("."))
        message = named.group(2)
    return location, message


def _problems(path: Path, error: ValidationError, lines: dict[Location, int]) -> list[str]:
    out = []
    for problem in error.errors(include_input=False, include_url=False):
        location, message = _describe(problem)
        line = _line_of(location, lines)
        where = f"{path}:{line}" if line else str(path)
        dotted = ".".join(str(part) for part in location)
        out.append(f"{where}: {dotted + ': ' if dotted else ''}{message}")
    return out


def load_policy(path: Path | str) -> PolicyFile:
    """Parse and validate a policy file, or raise PolicyError saying where and what."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise PolicyError(f"{path}: cannot read the policy file ({error.strerror})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise PolicyError(f"{where}: not valid YAML: {getattr(error, 'problem', error)}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: the policy must be a mapping of keys (it is empty or a list)")
    try:
        return PolicyFile.model_validate(data)
    except ValidationError as error:
        lines = _key_lines(node) if node is not None else {}
        raise PolicyError("\n".join(_problems(path, error, lines))) from None
