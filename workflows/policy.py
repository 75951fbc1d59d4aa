"""The approval policy: who may ask, who must approve, how many, and for how long.

Read from a YAML file (`SABOT_POLICY`, see examples/policy.yml) or, without one, formed from the
environment settings. Unknown keys are errors: a typo must not silently drop a rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workflows.catalog import (
    DEFAULT_LIFETIME_DAYS,
    MAX_LIFETIME_DAYS,
    SCOPES_BY_NAME,
    Product,
    scopes_for,
)
from workflows.errors import NotAllowed

USER_ID = r"^[UW][A-Z0-9]{2,}$"
GROUP_ID = r"^S[A-Z0-9]{2,}$"
CHANNEL_ID = r"^[CG][A-Z0-9]{2,}$"
GRANULAR_SCOPE = re.compile(
    r"^(read|write|delete|manage)(:[a-z0-9.-]+)+:(?P<product>jira|confluence)$"
)
DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

UserId = Annotated[str, Field(pattern=USER_ID)]
GroupId = Annotated[str, Field(pattern=GROUP_ID)]


def parse_duration(value: Any) -> timedelta:
    """`90s`, `15m`, `4h`, `7d` (or a number of seconds); never negative."""
    if isinstance(value, timedelta):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = timedelta(seconds=value)
    else:
        match = DURATION.match(str(value))
        if not match:
            raise ValueError("a duration such as 90s, 15m, 4h or 7d")
        moment = timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    if moment < timedelta(0):
        raise ValueError("a duration cannot be negative")
    return moment


Duration = Annotated[timedelta, Field(json_schema_extra={"format": "duration"})]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class People(Strict):
    """Slack users and/or user groups."""

    users: list[UserId] = Field(default_factory=list)
    groups: list[GroupId] = Field(default_factory=list)

    def is_empty(self) -> bool:
        return not self.users and not self.groups


class Approvers(Strict):
    default: People
    products: dict[Product, People] = Field(default_factory=dict)
    scopes: dict[str, People] = Field(default_factory=dict)


class Quorum(Strict):
    default: int = Field(default=1, ge=1, le=10)
    write: int | None = Field(default=None, ge=1, le=10)  # when any write scope is asked for

    @model_validator(mode="after")
    def _write_at_least_default(self) -> Quorum:
        # Write scopes are the riskier ones: fewer approvals for them would be a trap.
        if self.write is not None and self.write < self.default:
            raise ValueError(
                f"quorum.write: {self.write} is below quorum.default ({self.default}); "
                "write scopes need at least as many approvals"
            )
        return self


class ProductOffer(Strict):
    scopes: list[str] | None = None  # None: the product's classic scopes
    max_lifetime_days: int = Field(default=MAX_LIFETIME_DAYS, ge=1, le=MAX_LIFETIME_DAYS)


class Names(Strict):
    pattern: str = r"^[a-z0-9][a-z0-9-]{2,39}$"
    prefix: str = ""
    suffix: str = ""

    @field_validator("prefix")
    @classmethod
    def _prefix_starts_a_name(cls, value: str) -> str:
        if value and not re.match(r"^[a-z0-9][a-z0-9-]*$", value):
            raise ValueError("a prefix is lower-case letters, digits and dashes, and starts a name")
        return value

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from None
        return value


class Pending(Strict):
    expire_after: Duration = timedelta(days=7)
    remind_after: Duration | None = None
    escalate_after: Duration | None = None
    escalate_to: People | None = None

    @field_validator("expire_after", "remind_after", "escalate_after", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _escalation_has_people(self) -> Pending:
        if self.escalate_after is not None and (
            self.escalate_to is None or self.escalate_to.is_empty()
        ):
            raise ValueError("escalate_after needs escalate_to (users or groups)")
        return self


class BreakGlass(Strict):
    enabled: bool = False


class Lifecycle(Strict):
    warn_days_before_expiry: list[Annotated[int, Field(ge=1, le=MAX_LIFETIME_DAYS)]] = Field(
        default_factory=lambda: [14, 3, 1]
    )
    rotation_grace: Duration = timedelta(hours=24)
    # The daily idle check: a token unused (or never used) this many days gets its owner a
    # Keep / Revoke question...
    idle_token_days: int = Field(default=30, ge=1, le=3650)
    # ...and an account none of whose tokens was used this long (or that has had no live
    # token this long) is proposed for deletion to its owner and the admins.
    idle_account_days: int = Field(default=90, ge=1, le=3650)

    @field_validator("rotation_grace", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)


class Discovery(Strict):
    """`sabot discover`: when a human account's token looks like automation."""

    # A token used within this many days counts as in use...
    recent_token_days: int = Field(default=7, ge=1, le=365)
    # ...while the person has not used a product's pages for this many days (or ever).
    ui_idle_days: int = Field(default=30, ge=1, le=3650)


def _default_offer() -> dict[Product, ProductOffer]:
    return {product: ProductOffer() for product in Product}


class PolicyFile(Strict):
    """The file's shape. Every key is optional except whom to ask and where."""

    approval_channel: Annotated[str, Field(pattern=CHANNEL_ID)]
    approvers: Approvers
    quorum: Quorum = Quorum()
    requesters: People | None = None  # None: everyone may ask
    admins: People = People()
    products: dict[Product, ProductOffer] = Field(default_factory=_default_offer)
    default_lifetime_days: int = Field(default=DEFAULT_LIFETIME_DAYS, ge=1, le=MAX_LIFETIME_DAYS)
    names: Names = Names()
    pending: Pending = Pending()
    break_glass: BreakGlass = BreakGlass()
    notify_approvers_by_dm: bool = False
    lifecycle: Lifecycle = Lifecycle()
    discovery: Discovery = Discovery()
    # The organisation's service-account quota at Atlassian, which no API reports: 5 free,
    # 250 with Atlassian Guard Standard, 1,000 on Enterprise. Unset: the setting
    # ATLASSIAN_SERVICE_ACCOUNT_LIMIT (default 5). The form, Home and `sabot doctor` count
    # against it, and a request past it is refused at submit.
    service_account_limit: int | None = Field(default=None, ge=1, le=1000)

    @model_validator(mode="after")
    def _consistent(self) -> PolicyFile:
        if not self.products:
            raise ValueError("products: offer at least one product")
        for product, offer in self.products.items():
            _fits_the_form(product, offer.scopes or [])
            for scope in offer.scopes or []:
                if not scope_belongs(scope, product):
                    raise ValueError(
                        f"products.{product.value}.scopes: {scope!r} is not a {product.label} scope"
                    )
        for scope in self.approvers.scopes:
            if not any(scope in self.offered_scopes(p) for p in self.products):
                raise ValueError(f"approvers.scopes: {scope!r} is not offered by any product")
        if self.approvers.default.is_empty():
            raise ValueError("approvers.default: name at least one user or group")
        return self

    def offered_scopes(self, product: Product) -> list[str]:
        offer = self.products.get(product)
        if offer is None:
            return []
        return (
            list(offer.scopes)
            if offer.scopes is not None
            else [s.name for s in scopes_for(product)]
        )


# The request form lists a product's scopes as one group of a Slack select: Slack refuses a
# group of more than 100 options, or an option whose text is longer than 75 characters.
FORM_SCOPES_MAX, FORM_SCOPE_TEXT_MAX = 100, 75


def _fits_the_form(product: Product, scopes: list[str]) -> None:
    where = f"products.{product.value}.scopes"
    if len(scopes) > FORM_SCOPES_MAX:
        raise ValueError(
            f"{where}: {len(scopes)} scopes, but the request form can list at most "
            f"{FORM_SCOPES_MAX} for one product (Slack's limit on a select's options); "
            "offer the ones your teams need"
        )
    long = [s for s in scopes if len(s) > FORM_SCOPE_TEXT_MAX]
    if long:
        raise ValueError(
            f"{where}: {long[0]!r} is longer than {FORM_SCOPE_TEXT_MAX} characters, the most "
            "Slack shows in a select option"
        )
    twice = sorted({s for s in scopes if scopes.count(s) > 1})
    if twice:
        raise ValueError(f"{where}: {twice[0]!r} is listed twice")


def scope_belongs(scope: str, product: Product) -> bool:
    """A classic scope of that product, or a granular one ending in `:jira`/`:confluence`."""
    classic = SCOPES_BY_NAME.get(scope)
    if classic is not None:
        return classic.product == product
    match = GRANULAR_SCOPE.match(scope)
    return match is not None and match.group("product") == product.value


def is_write(scope: str) -> bool:
    return scope.startswith(("write:", "delete:", "manage:"))


class Directory(Protocol):
    """Who is in a user group, who has left, who has an email (Slack's usergroups.users.list,
    users.info, users.lookupByEmail)."""

    async def members(self, group_id: str, *, fresh: bool = False) -> frozenset[str]: ...

    async def is_deactivated(self, user_id: str) -> bool: ...

    async def user_by_email(self, email: str) -> str | None:
        """The Slack user with this email, or None."""
        ...


@dataclass(frozen=True)
class Offer:
    """What the request form offers and the rules its answers must meet."""

    scopes: dict[Product, list[str]]
    max_lifetime_days: dict[Product, int]
    default_lifetime_days: int
    names: Names

    @staticmethod
    def default_pattern() -> str:
        return str(Names.model_fields["pattern"].default)

    def name_hint(self) -> str:
        parts = [
            "Use 3 to 40 lower-case letters, digits and dashes, starting with a letter or digit"
        ]
        if self.names.prefix:
            parts.append(f"starting with `{self.names.prefix}`")
        if self.names.suffix:
            parts.append(f"ending with `{self.names.suffix}`")
        return ", ".join(parts) + "."


@dataclass(frozen=True)
class Eligibility:
    """Who may approve one request, and how many approvals it needs."""

    approvers: frozenset[str]
    quorum: int

    @property
    def reachable(self) -> bool:
        return len(self.approvers) >= self.quorum


class Policy:
    """The policy file, with its user groups resolved through a Directory."""

    def __init__(self, rules: PolicyFile, directory: Directory | None = None) -> None:
        self.rules = rules
        self.directory = directory

    @classmethod
    def from_settings(cls, approvers: list[str], admins: list[str], channel: str) -> Policy:
        """Without a policy file: the settings' approvers, quorum 1, every product."""
        return cls(
            PolicyFile(
                approval_channel=channel,
                approvers=Approvers(default=People(users=approvers)),
                admins=People(users=admins),
            )
        )

    @property
    def approval_channel(self) -> str:
        return self.rules.approval_channel

    @property
    def offer(self) -> Offer:
        rules = self.rules
        return Offer(
            scopes={p: rules.offered_scopes(p) for p in rules.products},
            max_lifetime_days={p: o.max_lifetime_days for p, o in rules.products.items()},
            default_lifetime_days=rules.default_lifetime_days,
            names=rules.names,
        )

    def quorum_for(self, scopes: list[str]) -> int:
        write = self.rules.quorum.write
        if write is not None and any(is_write(s) for s in scopes):
            return write
        return self.rules.quorum.default

    def approver_rules(self, products: list[str], scopes: list[str]) -> list[People]:
        """The rule each asked scope falls under: its own, else its product's, else default."""
        rules = self.rules.approvers
        chosen: list[People] = []
        for scope in scopes or ["-"]:
            product = next(
                (p for p in Product if p.value in products and scope_belongs(scope, p)), None
            )
            rule = rules.scopes.get(scope) or (rules.products.get(product) if product else None)
            chosen.append(rule or rules.default)
        return chosen

    async def people(self, rule: People, *, fresh: bool = False) -> frozenset[str]:
        found = set(rule.users)
        for group in rule.groups:
            if self.directory is None:
                raise LookupError(f"user group {group} needs Slack to resolve it")
            found |= await self.directory.members(group, fresh=fresh)
        return frozenset(found)

    async def eligibility(
        self, requester: str, products: list[str], scopes: list[str], *, fresh: bool = False
    ) -> Eligibility:
        """An approver must be allowed every scope asked for; never the requester."""
        allowed: frozenset[str] | None = None
        for rule in self.approver_rules(products, scopes):
            people = await self.people(rule, fresh=fresh)
            allowed = people if allowed is None else allowed & people
        return Eligibility(frozenset(allowed or ()) - {requester}, self.quorum_for(scopes))

    async def may_request(self, user: str) -> bool:
        if self.rules.requesters is None:
            return True
        return user in await self.people(self.rules.requesters)

    async def is_admin(self, user: str) -> bool:
        return user in await self.people(self.rules.admins)

    async def token_lifetime(
        self, owner: str, products: list[str], scopes: list[str], lifetime_days: int
    ) -> int:
        """The lifetime in days a new token of an existing account gets under today's policy.

        An account was approved under the policy of its day; every token minted later meets
        today's: its owner must still be allowed to hold one, every scope must still be offered,
        and the lifetime is capped at today's maximum. NotAllowed says what no longer holds.
        """
        if not await self.may_request(owner):
            raise NotAllowed(
                f"the policy no longer lets <@{owner}> hold service accounts; "
                "an admin can reassign the account or revoke it"
            )
        offer = self.offer
        offered = {p.value: p for p in offer.scopes}
        gone = [p for p in products if p not in offered]
        if gone:
            raise NotAllowed(
                f"the policy no longer offers {', '.join(gone)}; ask for a new account "
                "with what is offered today"
            )
        chosen = [offered[p] for p in products]
        allowed = {scope for product in chosen for scope in offer.scopes[product]}
        withdrawn = [s for s in scopes if s not in allowed]
        if withdrawn:
            raise NotAllowed(
                f"the policy no longer allows the scope{'s' if len(withdrawn) > 1 else ''} "
                f"{', '.join(withdrawn)}; ask for a new account with the scopes offered today"
            )
        return min([lifetime_days, *(offer.max_lifetime_days[p] for p in chosen)])
