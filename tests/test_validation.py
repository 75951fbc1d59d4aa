"""The request form's rules."""

from __future__ import annotations

import pytest

from workflows.policy import Policy
from workflows.request.validation import RequestForm
from workflows.request.validation import validate as validate_with

OFFER = Policy.from_settings(["U0BOB"], [], "C0APPROVALS").offer


def validate(form: RequestForm) -> tuple[object, dict[str, str]]:
    return validate_with(form, OFFER)


def form(**changes: object) -> RequestForm:
    values: dict[str, object] = {
        "name": "ci-release-bot",
        "justification": "Publishes release notes from CI",
        "products": ["jira"],
        "scopes": ["read:jira-work"],
        "lifetime_days": "90",
    }
    values.update(changes)
    return RequestForm(**values)  # type: ignore[arg-type]


def test_a_good_form_is_clean() -> None:
    clean, errors = validate(form())
    assert errors == {}
    assert clean is not None and clean.lifetime_days == 90 and clean.products == ["jira"]


@pytest.mark.parametrize(
    "name", ["ab", "a" * 41, "CI-bot", "ci_bot", "ci bot", "", "ci.bot", "é-bot"]
)
def test_bad_names(name: str) -> None:
    assert "name" in validate(form(name=name))[1]


@pytest.mark.parametrize("name", ["abc", "a" * 40, "ci-2-bot", "123"])
def test_good_names(name: str) -> None:
    assert validate(form(name=name))[1] == {}


@pytest.mark.parametrize("text", ["too short", "x" * 501, "  padded  "])
def test_justification_length(text: str) -> None:
    assert "justification" in validate(form(justification=text))[1]


@pytest.mark.parametrize("days", ["0", "366", "-1", "1.5", "ninety", ""])
def test_lifetime_out_of_range(days: str) -> None:
    assert "lifetime_days" in validate(form(lifetime_days=days))[1]


@pytest.mark.parametrize("days", ["1", "365", " 30 "])
def test_lifetime_in_range(days: str) -> None:
    assert validate(form(lifetime_days=days))[1] == {}


def test_scopes_must_belong_to_a_chosen_product() -> None:
    errors = validate(form(products=["jira"], scopes=["write:confluence-content"]))[1]
    assert "write:confluence-content" in errors["scopes"]


def test_at_least_one_scope_and_one_product() -> None:
    assert "scopes" in validate(form(scopes=[]))[1]
    assert "products" in validate(form(products=[]))[1]


def test_unknown_values_are_refused() -> None:
    assert "products" in validate(form(products=["bitbucket"]))[1]
    assert "scopes" in validate(form(scopes=["admin:everything"]))[1]


def test_every_field_reported_at_once() -> None:
    errors = validate(RequestForm("X", "", [], [], "0"))[1]
    assert set(errors) == {"name", "justification", "products", "lifetime_days"}
