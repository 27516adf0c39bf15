"""Program definitions: earn rules, point validity, pending points, tiers.

A program is written as a TOML table (``[[plugins.loyalty.programs]]`` in ``crmkit.toml``) or
as the same keys in JSON (``crmkit loyalty programs add --file``); :func:`parse_program`
checks every key and names the bad one. The parsed :class:`Program` is frozen; the services
keep one per program id and version.

The arithmetic lives here too, free of the database, so the property tests can drive it
directly: :meth:`Program.points_for` (what a purchase earns), :meth:`Program.expiry`
(when a lot expires), :meth:`Program.tier_for` (the tier a qualifying value reaches).
"""

from __future__ import annotations

import calendar
import datetime as dt
import decimal
import functools
import math
import zoneinfo
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import field, frozen

import crmkit

MULTIPLIER_KINDS = ("tier", "category", "store", "campaign", "birthday_month")
ROUNDINGS = ("none", "day", "week", "month", "year")
TIER_BASES = ("spend", "points")


def _error(where: str, message: str) -> crmkit.ValidationError:
    return crmkit.ValidationError([crmkit.FieldError(where, message)], "loyalty program")


def parse_decimal(value: object, where: str) -> decimal.Decimal:
    """A finite decimal number from a number or its text; a clear error otherwise."""
    if isinstance(value, bool):
        raise _error(where, f"must be a number, not {value!r}")
    try:
        number = decimal.Decimal(str(value).strip().replace(",", ""))
    except (decimal.InvalidOperation, ValueError):
        raise _error(where, f"must be a number, not {value!r}") from None
    if not number.is_finite():
        raise _error(where, f"must be a finite number, not {value!r}")
    return number


@frozen
class Multiplier:
    """Multiply the points of matching purchases (or, for ``category``, items) by ``factor``.

    ``kind``: ``tier`` (the member's tier is ``value``), ``category`` (an item's category),
    ``store``, ``campaign`` (the purchase happened in ``[start, end)``), ``birthday_month``
    (the purchase falls in the contact's birthday month)."""

    kind: str
    factor: decimal.Decimal
    value: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    name: str | None = None


@frozen
class Tier:
    """A tier reached at ``threshold`` of qualifying spend or points over the window."""

    name: str
    threshold: decimal.Decimal


REWARD_KINDS = ("fixed", "percent")


@frozen
class Reward:
    """A coupon the program gives or sells: ``fixed`` (``value`` off, in the program's first
    currency) or ``percent`` (``value`` % off), costing ``cost_points`` (0: free), valid
    ``valid_days`` from issue, at most ``per_customer_limit`` per contact (``None``: no
    limit). Each coupon is used once."""

    name: str
    kind: str
    value: decimal.Decimal
    cost_points: int = 0
    valid_days: int = 30
    per_customer_limit: int | None = None


@frozen
class PurchaseFacts:
    """What the earn rules look at: handed to the ``crmkit_loyalty_earn_rules`` hook."""

    program: str
    card_number: str
    contact_id: int
    amount: decimal.Decimal
    currency: str
    occurred_at: dt.datetime
    store: str | None
    items: tuple[Mapping[str, Any], ...]
    tier: str | None
    birthday: dt.date | None


@frozen
class EarnRule:
    """A plugin's answer to ``crmkit_loyalty_earn_rules``: multiply the purchase's points by
    ``factor`` and add ``bonus`` points; ``name`` says which rule (in the ledger note)."""

    name: str
    factor: decimal.Decimal = field(default=decimal.Decimal(1), converter=decimal.Decimal)
    bonus: int = 0


@frozen
class Program:
    """A parsed program. Build it with :func:`parse_program`."""

    name: str
    rates: Mapping[str, decimal.Decimal]
    multipliers: tuple[Multiplier, ...] = ()
    validity_months: int = 0
    validity_days: int = 0
    round_to: str = "none"
    timezone: str = "Asia/Shanghai"
    pending_days: int = 0
    allow_negative: bool = False
    tiers: tuple[Tier, ...] = ()
    tier_basis: str = "spend"
    tier_window_months: int = 12
    tier_grace_days: int = 0
    card_prefix: str = "88"
    rewards: tuple[Reward, ...] = ()

    @functools.cached_property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The program's time zone (validity rounds to its days and months)."""
        return zoneinfo.ZoneInfo(self.timezone)

    @functools.cached_property
    def category_factors(self) -> Mapping[str | None, decimal.Decimal]:
        """The category multipliers as a lookup (built once per program, not per purchase;
        read only)."""
        return {m.value: m.factor for m in self.multipliers if m.kind == "category"}

    @property
    def expires(self) -> bool:
        """Whether points expire at all."""
        return bool(self.validity_months or self.validity_days)

    def check_currency(self, currency: str) -> str:
        """The currency code upper-cased; a ``ValidationError`` if the program does not
        take it."""
        code = currency.strip().upper()
        if code not in self.rates:
            raise crmkit.ValidationError(
                [
                    crmkit.FieldError(
                        "currency",
                        f"program {self.name!r} does not take {currency!r};"
                        f" it takes {', '.join(self.rates)}",
                    )
                ],
                "purchase",
            )
        return code

    def points_for(self, facts: PurchaseFacts, extra: Sequence[EarnRule] = ()) -> int:
        """The points a purchase earns: the currency's rate per unit, per item times its
        category's factor (or on the amount when there are no items), times every matching
        purchase-wide factor (tier, store, campaign, birthday month) and every plugin rule's
        factor, rounded down, plus the plugin rules' bonuses. Never below zero."""
        return self.points_of(
            facts.amount,
            facts.currency,
            facts.items,
            occurred_at=facts.occurred_at,
            store=facts.store,
            tier=facts.tier,
            birthday=facts.birthday,
            extra=extra,
        )

    def points_of(
        self,
        amount: decimal.Decimal,
        currency: str,
        items: Sequence[Mapping[str, Any]],
        *,
        occurred_at: dt.datetime,
        store: str | None,
        tier: str | None,
        birthday: dt.date | None,
        extra: Sequence[EarnRule] = (),
    ) -> int:
        """:meth:`points_for` of a purchase given as plain values (an import computes a
        million of them and builds no :class:`PurchaseFacts` when no plugin rule needs
        one)."""
        rate = self.rates[currency]
        categories = self.category_factors
        if items and categories:
            base = decimal.Decimal(0)
            for item in items:
                factor = categories.get(item.get("category"), decimal.Decimal(1))
                base += decimal.Decimal(str(item["amount"])) * factor
        else:
            base = amount
        total = base * rate
        for multiplier in self.multipliers:
            if (
                (multiplier.kind == "tier" and tier == multiplier.value)
                or (multiplier.kind == "store" and store == multiplier.value)
                or (
                    multiplier.kind == "campaign"
                    and (multiplier.start is None or occurred_at >= multiplier.start)
                    and (multiplier.end is None or occurred_at < multiplier.end)
                )
                or (
                    multiplier.kind == "birthday_month"
                    and birthday is not None
                    and birthday.month == occurred_at.astimezone(self.zone).month
                )
            ):
                total *= multiplier.factor
        bonus = 0
        for rule in extra:
            total *= rule.factor
            bonus += rule.bonus
        return max(0, math.floor(total) + bonus)

    def expiry(self, earned_at: dt.datetime) -> dt.datetime | None:
        """When points earned at ``earned_at`` expire: ``validity_months`` and
        ``validity_days`` later, then rounded up to the end of that day, week (Sunday),
        month or year in the program's time zone (``round_to``); ``None`` when they never
        expire. The result is the first instant they are gone (midnight after the day)."""
        if not self.expires:
            return None
        local = earned_at.astimezone(self.zone)
        month_index = local.month - 1 + self.validity_months
        year, month = local.year + month_index // 12, month_index % 12 + 1
        day = min(local.day, calendar.monthrange(year, month)[1])
        due = local.replace(year=year, month=month, day=day) + dt.timedelta(days=self.validity_days)
        if self.round_to == "none":
            return due.astimezone(dt.UTC)
        day_end = dt.datetime.combine(due.date(), dt.time(), tzinfo=self.zone)
        if self.round_to == "day":
            end = day_end + dt.timedelta(days=1)
        elif self.round_to == "week":
            end = day_end + dt.timedelta(days=7 - due.weekday())
        elif self.round_to == "month":
            last = calendar.monthrange(due.year, due.month)[1]
            end = day_end.replace(day=last) + dt.timedelta(days=1)
        else:
            end = day_end.replace(year=due.year + 1, month=1, day=1)
        return end.astimezone(dt.UTC)

    def available(self, earned_at: dt.datetime) -> dt.datetime:
        """When points earned at ``earned_at`` become spendable (after the return window)."""
        return earned_at + dt.timedelta(days=self.pending_days)

    def tier_for(self, qualifying: decimal.Decimal) -> str | None:
        """The highest tier whose threshold ``qualifying`` reaches (``None``: none)."""
        reached = None
        for tier in self.tiers:
            if qualifying >= tier.threshold:
                reached = tier.name
        return reached

    def tier_rank(self, name: str | None) -> int:
        """0 for no tier, 1 for the lowest, ..."""
        for index, tier in enumerate(self.tiers):
            if tier.name == name:
                return index + 1
        return 0

    def window_start(self, now: dt.datetime) -> dt.datetime:
        """The start of the rolling tier window ending at ``now``."""
        local = now.astimezone(self.zone)
        month_index = local.month - 1 - self.tier_window_months
        year, month = local.year + month_index // 12, month_index % 12 + 1
        day = min(local.day, calendar.monthrange(year, month)[1])
        return local.replace(year=year, month=month, day=day).astimezone(dt.UTC)

    def describe(self) -> dict[str, Any]:
        """The definition as JSON-ready values (what is stored and shown)."""
        return {
            "name": self.name,
            "rates": {code: str(rate) for code, rate in self.rates.items()},
            "multipliers": [
                {
                    key: value
                    for key, value in {
                        "when": m.kind,
                        "factor": str(m.factor),
                        "value": m.value,
                        "start": m.start.isoformat() if m.start else None,
                        "end": m.end.isoformat() if m.end else None,
                        "name": m.name,
                    }.items()
                    if value is not None
                }
                for m in self.multipliers
            ],
            "validity": {
                "months": self.validity_months,
                "days": self.validity_days,
                "round_to": self.round_to,
            },
            "timezone": self.timezone,
            "pending_days": self.pending_days,
            "allow_negative": self.allow_negative,
            "tiers": [{"name": t.name, "threshold": str(t.threshold)} for t in self.tiers],
            "tier_basis": self.tier_basis,
            "tier_window_months": self.tier_window_months,
            "tier_grace_days": self.tier_grace_days,
            "card_prefix": self.card_prefix,
            "rewards": [
                {
                    "name": r.name,
                    "kind": r.kind,
                    "value": str(r.value),
                    "cost_points": r.cost_points,
                    "valid_days": r.valid_days,
                    "per_customer_limit": r.per_customer_limit,
                }
                for r in self.rewards
            ],
        }

    def reward(self, name: str) -> Reward:
        """The reward called ``name``; a clear error listing the program's rewards."""
        for reward in self.rewards:
            if reward.name == name:
                return reward
        known = ", ".join(r.name for r in self.rewards) or "none"
        raise crmkit.NotFoundError("reward", f"{name!r} in program {self.name!r} (known: {known})")


KNOWN_KEYS = {
    "name",
    "rates",
    "currency",
    "points_per_unit",
    "multipliers",
    "validity",
    "timezone",
    "pending_days",
    "allow_negative",
    "tiers",
    "tier_basis",
    "tier_window_months",
    "tier_grace_days",
    "card_prefix",
    "rewards",
}


def _int(data: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _error(f"{where}.{key}", f"must be a whole number >= 0, not {value!r}")
    return value


def _time(value: Any, where: str, zone: zoneinfo.ZoneInfo) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time())
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value))
        except ValueError:
            raise _error(where, f"must be a date or date-time, not {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(dt.UTC)


def parse_program(data: Mapping[str, Any]) -> Program:
    """Check a program definition and build a :class:`Program`; every mistake is a
    ``crmkit.ValidationError`` naming the key."""
    if not isinstance(data, Mapping):
        raise _error("program", "must be a table of keys")
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        raise _error(unknown[0], f"unknown key; known: {', '.join(sorted(KNOWN_KEYS))}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise _error("name", "a program needs a name (up to 64 characters)")
    name = name.strip()
    where = f"programs.{name}"
    rates: dict[str, decimal.Decimal] = {}
    if "rates" in data:
        if not isinstance(data["rates"], Mapping) or not data["rates"]:
            raise _error(f"{where}.rates", "must map currency codes to points per unit")
        for code, rate in data["rates"].items():
            rates[str(code).strip().upper()] = parse_decimal(rate, f"{where}.rates.{code}")
    else:
        code = str(data.get("currency", "CNY")).strip().upper()
        rates[code] = parse_decimal(data.get("points_per_unit", 1), f"{where}.points_per_unit")
    for code, rate in rates.items():
        if len(code) != 3 or not code.isalpha():
            raise _error(f"{where}.rates", f"{code!r} is not a three-letter currency code")
        if rate < 0:
            raise _error(f"{where}.rates.{code}", "must not be negative")
    timezone = str(data.get("timezone", "Asia/Shanghai"))
    try:
        zone = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _error(f"{where}.timezone", f"unknown time zone {timezone!r}") from None
    multipliers = []
    for index, raw in enumerate(data.get("multipliers") or []):
        at = f"{where}.multipliers[{index}]"
        if not isinstance(raw, Mapping):
            raise _error(at, "must be a table")
        kind = raw.get("when")
        if kind not in MULTIPLIER_KINDS:
            raise _error(f"{at}.when", f"must be one of {', '.join(MULTIPLIER_KINDS)}")
        factor = parse_decimal(raw.get("factor"), f"{at}.factor")
        if factor < 0:
            raise _error(f"{at}.factor", "must not be negative")
        value = raw.get("value")
        if kind in ("tier", "category", "store") and not value:
            raise _error(f"{at}.value", f"a {kind} multiplier names its {kind}")
        start, end = (
            _time(raw.get("start"), f"{at}.start", zone),
            _time(raw.get("end"), f"{at}.end", zone),
        )
        if kind == "campaign" and start is None and end is None:
            raise _error(at, "a campaign multiplier needs a start or an end")
        if start and end and end <= start:
            raise _error(f"{at}.end", "must be after start")
        multipliers.append(
            Multiplier(
                kind,
                factor,
                str(value) if value is not None else None,
                start,
                end,
                str(raw["name"]) if raw.get("name") else None,
            )
        )
    validity = data.get("validity") or {}
    if not isinstance(validity, Mapping):
        raise _error(f"{where}.validity", "must be a table: {months = 12, round_to = 'month'}")
    round_to = validity.get("round_to", "none")
    if round_to not in ROUNDINGS:
        raise _error(f"{where}.validity.round_to", f"must be one of {', '.join(ROUNDINGS)}")
    tiers = []
    for index, raw in enumerate(data.get("tiers") or []):
        at = f"{where}.tiers[{index}]"
        if not isinstance(raw, Mapping) or not raw.get("name"):
            raise _error(at, "a tier is a table with a name and a threshold")
        tiers.append(Tier(str(raw["name"]), parse_decimal(raw.get("threshold"), f"{at}.threshold")))
    if [t.threshold for t in tiers] != sorted({t.threshold for t in tiers}):
        raise _error(f"{where}.tiers", "thresholds must rise from the first tier to the last")
    if len({t.name for t in tiers}) != len(tiers):
        raise _error(f"{where}.tiers", "tier names must differ")
    for multiplier in multipliers:
        if multiplier.kind == "tier" and multiplier.value not in {t.name for t in tiers}:
            raise _error(f"{where}.multipliers", f"unknown tier {multiplier.value!r}")
    basis = data.get("tier_basis", "spend")
    if basis not in TIER_BASES:
        raise _error(f"{where}.tier_basis", f"must be one of {', '.join(TIER_BASES)}")
    if basis == "spend" and tiers and len(rates) > 1:
        raise _error(
            f"{where}.tier_basis",
            "spend cannot add up several currencies: use tier_basis = 'points'",
        )
    prefix = str(data.get("card_prefix", "88"))
    if not prefix.isdigit() or not 1 <= len(prefix) <= 8:
        raise _error(f"{where}.card_prefix", "must be 1 to 8 digits")
    allow_negative = data.get("allow_negative", False)
    if not isinstance(allow_negative, bool):
        raise _error(f"{where}.allow_negative", "must be true or false")
    rewards = []
    for index, raw in enumerate(data.get("rewards") or []):
        at = f"{where}.rewards[{index}]"
        if not isinstance(raw, Mapping) or not raw.get("name"):
            raise _error(at, "a reward is a table with a name, a kind and a value")
        if raw.get("kind") not in REWARD_KINDS:
            raise _error(f"{at}.kind", f"must be one of {', '.join(REWARD_KINDS)}")
        value = parse_decimal(raw.get("value"), f"{at}.value")
        if value <= 0 or (raw["kind"] == "percent" and value > 100):
            raise _error(f"{at}.value", "must be above 0 (and at most 100 for a percentage)")
        limit = raw.get("per_customer_limit")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise _error(f"{at}.per_customer_limit", "must be a whole number >= 1 or absent")
        rewards.append(
            Reward(
                str(raw["name"]),
                str(raw["kind"]),
                value,
                _int(raw, "cost_points", 0, at),
                _int(raw, "valid_days", 30, at) or 30,
                limit,
            )
        )
    if len({r.name for r in rewards}) != len(rewards):
        raise _error(f"{where}.rewards", "reward names must differ")
    return Program(
        name=name,
        rewards=tuple(rewards),
        rates=rates,
        multipliers=tuple(multipliers),
        validity_months=_int(validity, "months", 0, f"{where}.validity"),
        validity_days=_int(validity, "days", 0, f"{where}.validity"),
        round_to=round_to,
        timezone=timezone,
        pending_days=_int(data, "pending_days", 0, where),
        allow_negative=allow_negative,
        tiers=tuple(tiers),
        tier_basis=basis,
        tier_window_months=_int(data, "tier_window_months", 12, where) or 12,
        tier_grace_days=_int(data, "tier_grace_days", 0, where),
        card_prefix=prefix,
    )
