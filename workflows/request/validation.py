"""The rules a request must meet before anyone is asked to approve it."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from workflows.catalog import MIN_LIFETIME_DAYS, Product
from workflows.policy import Offer

JUSTIFICATION_MIN, JUSTIFICATION_MAX = 10, 500
# A name starts with a letter or digit (`--now` or `---` would read as flags), and never looks
# like a request id (`sa-12`), which every account command also accepts.
NAME = re.compile(r"[a-z0-9][a-z0-9-]{2,39}")
SHORT_ID = re.compile(r"sa-(\d{1,12})", re.IGNORECASE)


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


def check_name(name: str, offer: Offer) -> str | None:
    rules = offer.names
    if SHORT_ID.fullmatch(name):
        return f"`{name}` reads as a request id; choose another name."
    fits = (
        NAME.fullmatch(name)
        and re.search(rules.pattern, name)
        and name.startswith(rules.prefix)
        and name.endswith(rules.suffix)
    )
    if fits:
        return None
    custom = (
        "" if rules.pattern == Offer.default_pattern() else f" It must match `{rules.pattern}`."
    )
    return offer.name_hint() + custom


def without_format_characters(text: str) -> str:
    """Drop invisible format characters (Unicode's Cf: bidi overrides and isolates, zero-width
    joiners...): they can make a text read differently from what it is."""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def check_justification(text: str) -> str | None:
    if not JUSTIFICATION_MIN <= len(text) <= JUSTIFICATION_MAX:
        return f"Say what it is for in {JUSTIFICATION_MIN} to {JUSTIFICATION_MAX} characters."
    return None


def check_products(names: list[str], offer: Offer) -> tuple[list[Product], str | None]:
    if not names:
        return [], "Choose at least one product."
    offered = {p.value for p in offer.scopes}
    unknown = [n for n in names if n not in offered]
    if unknown:
        return [], f"Not offered: {', '.join(unknown)}."
    return [Product(n) for n in dict.fromkeys(names)], None


def check_scopes(scopes: list[str], products: list[Product], offer: Offer) -> str | None:
    if not scopes:
        return "Choose at least one scope."
    allowed = {scope for product in products for scope in offer.scopes[product]}
    outside = [s for s in scopes if s not in allowed]
    if outside:
        return f"Not a scope of the chosen products: {', '.join(outside)}."
    return None


def check_lifetime(raw: str, products: list[Product], offer: Offer) -> tuple[int, str | None]:
    longest = min(
        (offer.max_lifetime_days[p] for p in products),
        default=max(offer.max_lifetime_days.values()),
    )
    problem = f"Give a whole number of days from {MIN_LIFETIME_DAYS} to {longest}."
    try:
        days = int(raw.strip())
    except (ValueError, AttributeError):
        return 0, problem
    if not MIN_LIFETIME_DAYS <= days <= longest:
        return 0, problem
    return days, None


def validate(form: RequestForm, offer: Offer) -> tuple[ValidRequest | None, dict[str, str]]:
    """The clean request, or the problem with each field (keys are the form's field names)."""
    name = form.name.strip()
    justification = without_format_characters(form.justification).strip()
    products, products_error = check_products(form.products, offer)
    lifetime, lifetime_error = check_lifetime(form.lifetime_days, products, offer)
    errors = {
        "name": check_name(name, offer),
        "justification": check_justification(justification),
        "products": products_error,
        "scopes": None if products_error else check_scopes(form.scopes, products, offer),
        "lifetime_days": lifetime_error,
    }
    problems = {field: message for field, message in errors.items() if message}
    if problems:
        return None, problems
    scopes = list(dict.fromkeys(form.scopes))
    return ValidRequest(name, justification, products, scopes, lifetime), {}
