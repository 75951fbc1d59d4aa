"""Block Kit as Slack checks it: every documented limit, refused with Slack's own wording.

Slack answers a message it will not show with `invalid_blocks` and a view with
`invalid_arguments`, each with `response_metadata.messages` such as
`[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]`. The stand-in
gives the same answers, so a payload the real Slack refuses never passes a test here.

Limits from Slack's Block Kit reference (blocks, block elements, composition objects, views).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
ID_MAX = 255

TEXT_TYPES = ("plain_text", "mrkdwn")
SELECTS = (
    "static_select",
    "multi_static_select",
    "external_select",
    "multi_external_select",
    "users_select",
    "multi_users_select",
    "conversations_select",
    "multi_conversations_select",
    "channels_select",
    "multi_channels_select",
)
# Most options each element may hold (overflow also needs at least 2).
OPTIONS_MAX = {"checkboxes": 10, "radio_buttons": 10, "overflow": 5}
OPTIONS_DEFAULT_MAX = 100


@dataclass
class Check:
    """One payload's walk: the problems found, and the ids seen so far (unique per payload)."""

    problems: list[str] = field(default_factory=list)
    block_ids: set[str] = field(default_factory=set)
    action_ids: set[str] = field(default_factory=set)

    def fail(self, message: str, at: str) -> None:
        self.problems.append(f"{message} [json-pointer:{at}]")

    def longest(self, value: Any, limit: int, at: str) -> None:
        if len(str(value)) > limit:
            self.fail(f"must be less than {limit + 1} characters", at)

    def text(
        self, obj: Any, at: str, limit: int, *, plain: bool = False, required: bool = True
    ) -> None:
        """A text object: its type (`plain_text` only where Slack says so), present, bounded."""
        if obj is None:
            if required:
                self.fail("must provide an object", at)
            return
        if not isinstance(obj, dict):
            self.fail("must provide an object", at)
            return
        allowed = ("plain_text",) if plain else TEXT_TYPES
        if obj.get("type") not in allowed:
            self.fail(f"must be a valid enum value: {', '.join(allowed)}", f"{at}/type")
        body = obj.get("text")
        if not isinstance(body, str) or not body:
            self.fail("must be more than 0 characters", f"{at}/text")
            return
        self.longest(body, limit, f"{at}/text")

    def block_id(self, value: Any, at: str) -> None:
        if value is None:
            return
        if not isinstance(value, str) or not value:
            self.fail("must be a non-empty string", at)
        elif len(value) > ID_MAX:
            self.fail(f"must be less than {ID_MAX + 1} characters", at)
        elif value in self.block_ids:
            self.fail(f"duplicate block_id {value!r}", at)
        else:
            self.block_ids.add(value)

    def action_id(self, value: Any, at: str) -> None:
        if value is None:
            return
        if not isinstance(value, str) or not value:
            self.fail("must be a non-empty string", at)
        elif len(value) > ID_MAX:
            self.fail(f"must be less than {ID_MAX + 1} characters", at)
        elif value in self.action_ids:
            self.fail(f"duplicate action_id {value!r}", at)
        else:
            self.action_ids.add(value)


# -- composition objects ----------------------------------------------------------------------


def _confirm(check: Check, obj: Any, at: str) -> None:
    if obj is None:
        return
    if not isinstance(obj, dict):
        check.fail("must provide an object", at)
        return
    check.text(obj.get("title"), f"{at}/title", 100, plain=True)
    check.text(obj.get("text"), f"{at}/text", 300, plain=True)
    check.text(obj.get("confirm"), f"{at}/confirm", 30, plain=True)
    check.text(obj.get("deny"), f"{at}/deny", 30, plain=True)


def _option(check: Check, obj: Any, at: str, *, plain: bool) -> None:
    if not isinstance(obj, dict):
        check.fail("must provide an object", at)
        return
    check.text(obj.get("text"), f"{at}/text", 75, plain=plain)
    if "value" in obj:
        check.longest(obj["value"], 150, f"{at}/value")
    check.text(obj.get("description"), f"{at}/description", 75, plain=plain, required=False)


def _options(check: Check, items: Any, at: str, kind: str, *, plain: bool) -> None:
    if not isinstance(items, list):
        check.fail("must provide an array", at)
        return
    most = OPTIONS_MAX.get(kind, OPTIONS_DEFAULT_MAX)
    if len(items) > most:
        check.fail(f"must provide no more than {most} items", at)
    if kind == "overflow" and len(items) < 2:
        check.fail("must provide at least 2 items", at)
    for i, item in enumerate(items):
        _option(check, item, f"{at}/{i}", plain=plain)


def _option_groups(check: Check, groups: Any, at: str) -> None:
    if not isinstance(groups, list):
        check.fail("must provide an array", at)
        return
    if len(groups) > OPTIONS_DEFAULT_MAX:
        check.fail(f"must provide no more than {OPTIONS_DEFAULT_MAX} items", at)
    for i, group in enumerate(groups):
        where = f"{at}/{i}"
        if not isinstance(group, dict):
            check.fail("must provide an object", where)
            continue
        check.text(group.get("label"), f"{where}/label", 75, plain=True)
        _options(check, group.get("options"), f"{where}/options", "option_group", plain=True)


# -- elements ---------------------------------------------------------------------------------


def _button(check: Check, el: JSON, at: str) -> None:
    check.text(el.get("text"), f"{at}/text", 75, plain=True)
    if "value" in el:
        check.longest(el["value"], 2000, f"{at}/value")
    if "url" in el:
        check.longest(el["url"], 3000, f"{at}/url")
    if el.get("style") not in (None, "primary", "danger"):
        check.fail("must be a valid enum value", f"{at}/style")


def _select(check: Check, el: JSON, at: str) -> None:
    check.text(el.get("placeholder"), f"{at}/placeholder", 150, plain=True, required=False)
    kind = el["type"]
    if kind in ("static_select", "multi_static_select"):
        has_options, has_groups = "options" in el, "option_groups" in el
        if has_options == has_groups:
            check.fail("must provide exactly one of options or option_groups", at)
        if has_options:
            _options(check, el["options"], f"{at}/options", kind, plain=True)
        if has_groups:
            _option_groups(check, el["option_groups"], f"{at}/option_groups")


def _choices(check: Check, el: JSON, at: str) -> None:
    """checkboxes, radio_buttons, overflow: their option text may be mrkdwn (not overflow's)."""
    kind = el["type"]
    _options(check, el.get("options"), f"{at}/options", kind, plain=kind == "overflow")


def _text_input(check: Check, el: JSON, at: str) -> None:
    check.text(el.get("placeholder"), f"{at}/placeholder", 150, plain=True, required=False)
    if "initial_value" in el:
        check.longest(el["initial_value"], 3000, f"{at}/initial_value")
    top = el.get("max_length")
    if top is not None and (not isinstance(top, int) or not 1 <= top <= 3000):
        check.fail("must be between 1 and 3000", f"{at}/max_length")


def _image(check: Check, el: JSON, at: str) -> None:
    check.longest(el.get("alt_text", ""), 2000, f"{at}/alt_text")


ELEMENTS: dict[str, Callable[[Check, JSON, str], None]] = {
    "button": _button,
    **dict.fromkeys(SELECTS, _select),
    **dict.fromkeys(("checkboxes", "radio_buttons", "overflow"), _choices),
    "plain_text_input": _text_input,
    "number_input": _text_input,
    "email_text_input": _text_input,
    "url_text_input": _text_input,
    "datepicker": _text_input,
    "timepicker": _text_input,
    "image": _image,
}


def element(check: Check, el: Any, at: str) -> None:
    if not isinstance(el, dict) or not isinstance(el.get("type"), str):
        check.fail("missing required field: type", at)
        return
    kind = el["type"]
    if kind not in ELEMENTS:
        check.fail(f"unsupported type {kind!r}", f"{at}/type")
        return
    if kind != "image":
        check.action_id(el.get("action_id"), f"{at}/action_id")
    _confirm(check, el.get("confirm"), f"{at}/confirm")
    ELEMENTS[kind](check, el, at)


# -- blocks -----------------------------------------------------------------------------------


def _section(check: Check, block: JSON, at: str) -> None:
    text, fields = block.get("text"), block.get("fields")
    if text is None and fields is None:
        check.fail("must provide text or fields", at)
    check.text(text, f"{at}/text", 3000, required=False)
    if fields is not None:
        if not isinstance(fields, list):
            check.fail("must provide an array", f"{at}/fields")
        else:
            if len(fields) > 10:
                check.fail("must provide no more than 10 items", f"{at}/fields")
            for i, item in enumerate(fields):
                check.text(item, f"{at}/fields/{i}", 2000)
    if block.get("accessory") is not None:
        element(check, block["accessory"], f"{at}/accessory")


def _header(check: Check, block: JSON, at: str) -> None:
    check.text(block.get("text"), f"{at}/text", 150, plain=True)


def _context(check: Check, block: JSON, at: str) -> None:
    items = block.get("elements")
    if not isinstance(items, list) or not items:
        check.fail("must provide at least 1 item", f"{at}/elements")
        return
    if len(items) > 10:
        check.fail("must provide no more than 10 items", f"{at}/elements")
    for i, item in enumerate(items):
        where = f"{at}/elements/{i}"
        if isinstance(item, dict) and item.get("type") == "image":
            _image(check, item, where)
        else:
            check.text(item, where, 3000)


def _actions(check: Check, block: JSON, at: str) -> None:
    items = block.get("elements")
    if not isinstance(items, list) or not items:
        check.fail("must provide at least 1 item", f"{at}/elements")
        return
    if len(items) > 25:
        check.fail("must provide no more than 25 items", f"{at}/elements")
    for i, item in enumerate(items):
        element(check, item, f"{at}/elements/{i}")


def _input(check: Check, block: JSON, at: str) -> None:
    check.text(block.get("label"), f"{at}/label", 2000, plain=True)
    check.text(block.get("hint"), f"{at}/hint", 2000, plain=True, required=False)
    if not isinstance(block.get("element"), dict):
        check.fail("must provide an object", f"{at}/element")
        return
    element(check, block["element"], f"{at}/element")


def _divider(check: Check, block: JSON, at: str) -> None:
    """Nothing inside to check."""


BLOCKS: dict[str, Callable[[Check, JSON, str], None]] = {
    "section": _section,
    "header": _header,
    "context": _context,
    "actions": _actions,
    "input": _input,
    "divider": _divider,
    "image": _image,
}


def block(check: Check, item: Any, at: str) -> None:
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        check.fail("missing required field: type", at)
        return
    kind = item["type"]
    if kind not in BLOCKS:
        check.fail(f"unsupported type {kind!r}", f"{at}/type")
        return
    check.block_id(item.get("block_id"), f"{at}/block_id")
    BLOCKS[kind](check, item, at)


def blocks_into(check: Check, blocks: Any, limit: int, at: str) -> None:
    if not isinstance(blocks, list):
        check.fail("must provide an array", at)
        return
    if len(blocks) > limit:
        check.fail(f"no more than {limit} items allowed", at)
        return
    for i, item in enumerate(blocks):
        block(check, item, f"{at}/{i}")


def block_problems(blocks: Any, limit: int = MAX_MESSAGE_BLOCKS) -> list[str]:
    """Everything Slack would refuse in a message's blocks (empty when valid)."""
    check = Check()
    blocks_into(check, blocks, limit, "/blocks")
    return check.problems


def view_problems(view: JSON, kind: str) -> list[str]:
    """Everything Slack would refuse in a modal or Home view (empty when valid)."""
    check = Check()
    if view.get("type") != kind:
        check.fail(f"must be {kind!r}", "/view/type")
        return check.problems
    blocks_into(check, view.get("blocks", []), MAX_VIEW_BLOCKS, "/view/blocks")
    if kind == "modal":
        check.text(view.get("title"), "/view/title", 24, plain=True)
        for key in ("submit", "close"):
            check.text(view.get(key), f"/view/{key}", 24, plain=True, required=False)
        items = view["blocks"] if isinstance(view.get("blocks"), list) else []
        has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in items)
        if has_input and not view.get("submit"):
            check.fail("a view with input blocks needs submit", "/view/submit")
    check.longest(view.get("private_metadata", ""), 3000, "/view/private_metadata")
    check.longest(view.get("callback_id", ""), ID_MAX, "/view/callback_id")
    check.longest(view.get("external_id", ""), ID_MAX, "/view/external_id")
    return check.problems


def block_elements(item: JSON) -> list[JSON]:
    """The interactive elements of a block (actions elements, accessory, input element)."""
    kind = item.get("type")
    if kind == "actions":
        return [e for e in item.get("elements") or [] if isinstance(e, dict)]
    if kind == "section" and isinstance(item.get("accessory"), dict):
        return [item["accessory"]]
    if kind == "input" and isinstance(item.get("element"), dict):
        return [item["element"]]
    return []


def with_generated_ids(blocks: list[JSON]) -> list[JSON]:
    """Copy `blocks`, giving ids to blocks and elements that lack them, as Slack does. (They
    came as JSON: a JSON round trip copies them in a fifth of deepcopy's time, which the
    benchmark's stand-in spent on every modal.)"""
    out: list[JSON] = json.loads(json.dumps(blocks))
    for item in out:
        item.setdefault("block_id", secrets.token_urlsafe(3))
        for el in block_elements(item):
            if el.get("type") not in ("image",):
                el.setdefault("action_id", secrets.token_urlsafe(3))
    return out
