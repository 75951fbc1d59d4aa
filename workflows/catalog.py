"""What can be asked for: products and the token scopes each one offers.

The classic scopes come from Atlassian's list for service-account tokens; a later policy file may
offer granular ones too, so everything here is data, not code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Product(StrEnum):
    JIRA = "jira"
    CONFLUENCE = "confluence"

    @property
    def label(self) -> str:
        return {Product.JIRA: "Jira", Product.CONFLUENCE: "Confluence"}[self]


@dataclass(frozen=True)
class Scope:
    name: str
    product: Product
    description: str


CLASSIC_SCOPES: tuple[Scope, ...] = (
    Scope("read:jira-work", Product.JIRA, "Read issues, projects and boards"),
    Scope("write:jira-work", Product.JIRA, "Create and edit issues, comments, worklogs"),
    Scope("read:jira-user", Product.JIRA, "Read user information"),
    Scope("read:confluence-content.all", Product.CONFLUENCE, "Read all content"),
    Scope("write:confluence-content", Product.CONFLUENCE, "Create and edit pages and blogs"),
    Scope("read:confluence-space.summary", Product.CONFLUENCE, "Read space summaries"),
    Scope("read:confluence-user", Product.CONFLUENCE, "Read user information"),
)

SCOPES_BY_NAME: dict[str, Scope] = {scope.name: scope for scope in CLASSIC_SCOPES}

MIN_LIFETIME_DAYS = 1
MAX_LIFETIME_DAYS = 365  # Atlassian refuses token expiry beyond a year
DEFAULT_LIFETIME_DAYS = 90


def scopes_for(product: Product) -> list[Scope]:
    """The scopes a token may carry for one product."""
    return [scope for scope in CLASSIC_SCOPES if scope.product == product]
