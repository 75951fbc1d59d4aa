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


def _duplicate_keys(path: Path, node: yaml.Node | None) -> list[str]:
    """Every key given twice in one mapping: YAML keeps the later silently, so a rule written
    twice (an approvers list, a quorum) would lose one of its copies unseen."""
    found: list[str] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            line = key.start_mark.line + 1
            name = str(key.value)
            if name in first:
                found.append(
                    f"{path}:{line}: duplicate key {name!r} (first at line {first[name]}); "
                    "YAML would keep only this one"
                )
            else:
                first[name] = line
            found += _duplicate_keys(path, value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found += _duplicate_keys(path, item)
    return found


def _syntax_error(path: Path, error: yaml.YAMLError) -> str:
    """Where the broken construct began (PyYAML's context mark) as the line to look at, and
    where parsing gave up."""
    problem = getattr(error, "problem", None) or str(error)
    mark, context = getattr(error, "problem_mark", None), getattr(error, "context_mark", None)
    if context is not None:
        gave_up = f" at line {mark.line + 1}" if mark is not None else ""
        return (
            f"{path}:{context.line + 1}: not valid YAML: {getattr(error, 'context', '')} "
            f"that begins here: {problem}{gave_up}"
        )
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    return f"{where}: not valid YAML: {problem}"


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
    if named:
        path = tuple(named.group(1).split("."))
        if path[: len(location)] == tuple(str(part) for part in location):
            location, message = path, named.group(2)
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
        raise PolicyError(_syntax_error(path, error)) from None
    problems = _duplicate_keys(path, node)
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: the policy must be a mapping of keys (it is empty or a list)")
    try:
        rules = PolicyFile.model_validate(data)
    except ValidationError as error:
        lines = _key_lines(node) if node is not None else {}
        problems += _problems(path, error, lines)
    if problems:
        raise PolicyError("\n".join(problems))
    return rules
