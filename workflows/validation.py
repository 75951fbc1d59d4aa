"""The rules a request must meet before anyone is asked to approve it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from workflows.catalog import MAX_LIFETIME_DAYS, MIN_LIFETIME_DAYS, SCOPES_BY_NAME, Product

NAME_PATTERN = re.compile(r"^[a-z0-9-]{3,40}$")
JUSTIFICATION_MIN, JUSTIFICATION_MAX = 10, 500


@dataclass(frozen=True)
class RequestForm:
    """What the requester typed, as raw as it came in."""

    name: str
    justification: str
    products: list[str]
    scopes: list[str]
    lifetime_days: str


@dataclass(frozen=True)
class ValidRequest:
    name: str
    justification: str
    products: list[Product]
    scopes: list[str]
    lifetime_days: int


def check_name(name: str) -> str | None:
    if not NAME_PATTERN.match(name):
        return "Use 3 to 40 lower-case letters, digits and dashes."
    return None


def check_justification(text: str) -> str | None:
    if not JUSTIFICATION_MIN <= len(text) <= JUSTIFICATION_MAX:
        return f"Say what it is for in {JUSTIFICATION_MIN} to {JUSTIFICATION_MAX} characters."
    return None


def check_products(names: list[str]) -> tuple[list[Product], str | None]:
    known = {p.value for p in Product}
    if not names:
        return [], "Choose at least one product."
    unknown = [n for n in names if n not in known]
    if unknown:
        return [], f"Unknown product: {', '.join(unknown)}."
    return [Product(n) for n in dict.fromkeys(names)], None


def check_scopes(scopes: list[str], products: list[Product]) -> str | None:
    if not scopes:
        return "Choose at least one scope."
    unknown = [s for s in scopes if s not in SCOPES_BY_NAME]
    if unknown:
        return f"Unknown scope: {', '.join(unknown)}."
    outside = [s for s in scopes if SCOPES_BY_NAME[s].product not in products]
    if outside:
        return f"Not a scope of the chosen products: {', '.join(outside)}."
    return None


def check_lifetime(raw: str) -> tuple[int, str | None]:
    problem = f"Give a whole number of days from {MIN_LIFETIME_DAYS} to {MAX_LIFETIME_DAYS}."
    try:
        days = int(raw.strip())
    except (ValueError, AttributeError):
        return 0, problem
    if not MIN_LIFETIME_DAYS <= days <= MAX_LIFETIME_DAYS:
        return 0, problem
    return days, None


def validate(form: RequestForm) -> tuple[ValidRequest | None, dict[str, str]]:
    """The clean request, or the problem with each field (keys are the form's field names)."""
    name, justification = form.name.strip(), form.justification.strip()
    products, products_error = check_products(form.products)
    lifetime, lifetime_error = check_lifetime(form.lifetime_days)
    errors = {
        "name": check_name(name),
        "justification": check_justification(justification),
        "products": products_error,
        "scopes": None if products_error else check_scopes(form.scopes, products),
        "lifetime_days": lifetime_error,
    }
    problems = {field: message for field, message in errors.items() if message}
    if problems:
        return None, problems
    scopes = list(dict.fromkeys(form.scopes))
    return ValidRequest(name, justification, products, scopes, lifetime), {}
