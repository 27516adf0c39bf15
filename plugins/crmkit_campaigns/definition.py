"""A campaign's definition, checked when it is saved: its steps, their templates and its
schedule window.

Steps (in order; positions count from 1):

* ``first``: the first mail, sent when the campaign starts (inside the window);
* ``follow_up``: ``after_days`` after the previous mail of the sequence, unless the contact
  replied (always: a reply stops the sequence) or, with ``unless = "click"``, clicked a link
  of the campaign;
* ``thank_you``: ``on = "purchase"`` (the loyalty plugin's ``points.earned``) or
  ``on = "form"`` (a form submission, core ``lead.captured``, matched by e-mail): sent once
  after the contact bought or filled in a form while in the campaign.

Each step has ``subject`` and ``body`` templates per language (``{zh = "...", en = "..."}``,
the default language required). Templates are Jinja2 in a sandbox; the names they may use are
the contact's fields (``full_name``, ``title``, ``email``, custom fields ...), ``campaign``,
``unsubscribe_url`` and the function ``track(url)`` (a click-counting link). A template naming
anything else, or not parsing, is refused when the campaign is saved, naming the step, the
part, the language and the unknown name.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from attrs import frozen
from jinja2 import StrictUndefined, Template, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment

import crmkit

KINDS = ("first", "follow_up", "thank_you")
UNLESS = ("reply", "click")
TRIGGERS = ("purchase", "form")
#: Names every template may use besides the contact's fields.
EXTRA_NAMES = frozenset({"campaign", "unsubscribe_url", "track"})
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_STEPS = 20
MAX_TEMPLATE = 100_000

ENVIRONMENT = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


@frozen
class Step:
    """One checked step (see the module docstring)."""

    position: int
    kind: str
    subject: Mapping[str, str]
    body: Mapping[str, str]
    after_days: float = 0.0
    unless: str = "reply"
    on: str = ""

    def as_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "kind": self.kind,
            "subject": dict(self.subject),
            "body": dict(self.body),
            "after_days": self.after_days,
            "unless": self.unless,
            "on": self.on,
        }


def to_minute(value: dt.time) -> dt.time:
    """A time of day at minute resolution (the resolution windows are stored and kept in)."""
    return value.replace(second=0, microsecond=0, tzinfo=None)


@frozen
class Window:
    """When mails may go out: on ``days`` from the minute ``start`` through the minute
    ``end``, both included (wall clock in ``timezone``). The empty window is always open.

    Windows have minute resolution, as they are stored (``HH:MM``): seconds given are
    dropped, and ``end = "23:59"`` includes the whole last minute of the day."""

    days: tuple[str, ...] = DAYS
    start: dt.time = attrs.field(default=dt.time(0, 0), converter=to_minute)
    end: dt.time = attrs.field(default=dt.time(23, 59), converter=to_minute)
    timezone: str = "Asia/Shanghai"

    def is_open(self, now: dt.datetime) -> bool:
        """Whether ``now`` is inside the window (its minute between start and end)."""
        local = now.astimezone(zoneinfo.ZoneInfo(self.timezone))
        if DAYS[local.weekday()] not in self.days:
            return False
        return self.start <= to_minute(local.time()) <= self.end

    def as_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "days": list(self.days),
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M"),
            "timezone": self.timezone,
        }


def _error(field: str, message: str) -> crmkit.ValidationError:
    return crmkit.ValidationError([crmkit.FieldError(field, message)], "campaign")


def template_names(crm: crmkit.CRM) -> frozenset[str]:
    """Every name a template may use: contact fields, custom fields and the extras."""
    contact = crm.entity("contact")
    names = {name for name in contact.columns if name != "custom"}
    return frozenset(names | set(crm.custom_fields["contact"]) | EXTRA_NAMES)


def check_template(text: str, known: frozenset[str], where: str) -> None:
    """Refuse a template that does not parse or names something unknown."""
    if len(text) > MAX_TEMPLATE:
        raise _error(where, f"is longer than {MAX_TEMPLATE} characters")
    try:
        parsed = ENVIRONMENT.parse(text)
    except TemplateError as error:
        raise _error(where, f"does not parse: {error}") from None
    unknown = sorted(meta.find_undeclared_variables(parsed) - known)
    if unknown:
        raise _error(
            where,
            f"names unknown variable(s) {', '.join(unknown)}; known: contact fields,"
            " campaign, unsubscribe_url, track(url)",
        )


def _templates(
    raw: Any, known: frozenset[str], where: str, languages: Iterable[str], default: str
) -> dict[str, str]:
    if isinstance(raw, str):
        raw = {default: raw}
    if not isinstance(raw, Mapping) or not raw:
        raise _error(where, "give a template per language: {zh = '...', en = '...'}")
    allowed = tuple(languages)
    templates: dict[str, str] = {}
    for language, text in raw.items():
        if language not in allowed:
            raise _error(f"{where}.{language}", f"languages are {', '.join(allowed)}")
        if not isinstance(text, str) or (where.endswith("subject") and not text.strip()):
            raise _error(f"{where}.{language}", "must be a non-empty text")
        check_template(text, known, f"{where}.{language}")
        templates[str(language)] = text
    if default not in templates:
        raise _error(where, f"needs a template in the default language {default!r}")
    return templates


def parse_steps(
    crm: crmkit.CRM, raw: Any, *, languages: Iterable[str], default_language: str
) -> list[Step]:
    """The checked steps of a definition (``ValidationError`` naming the problem)."""
    if not isinstance(raw, list) or not raw:
        raise _error("steps", "give at least the first mail: [{kind = 'first', ...}]")
    if len(raw) > MAX_STEPS:
        raise _error("steps", f"at most {MAX_STEPS} steps")
    known = template_names(crm)
    languages = tuple(languages)
    steps: list[Step] = []
    triggers: set[str] = set()
    for position, item in enumerate(raw, start=1):
        where = f"steps[{position}]"
        if not isinstance(item, Mapping):
            raise _error(where, "must be a table of kind, subject, body ...")
        unknown = sorted(set(item) - {"kind", "subject", "body", "after_days", "unless", "on"})
        if unknown:
            raise _error(where, f"unknown key(s) {', '.join(map(str, unknown))}")
        kind = item.get("kind")
        if kind not in KINDS:
            raise _error(f"{where}.kind", f"must be one of {', '.join(KINDS)}")
        if (kind == "first") != (position == 1):
            raise _error(f"{where}.kind", "the first step, and only it, is kind = 'first'")
        after = item.get("after_days", 0)
        if kind == "follow_up":
            if (
                isinstance(after, bool)
                or not isinstance(after, int | float)
                or not 0 < after <= 365
            ):
                raise _error(f"{where}.after_days", "a follow-up needs 0 < after_days <= 365")
        elif after:
            raise _error(f"{where}.after_days", "only follow-ups wait after_days")
        unless = item.get("unless", "reply")
        if unless not in UNLESS or (unless != "reply" and kind != "follow_up"):
            raise _error(f"{where}.unless", f"a follow-up's unless is one of {', '.join(UNLESS)}")
        on = item.get("on", "")
        if kind == "thank_you":
            if on not in TRIGGERS:
                raise _error(f"{where}.on", f"a thank-you is on one of {', '.join(TRIGGERS)}")
            if on in triggers:
                raise _error(f"{where}.on", f"a second thank-you on {on}")
            triggers.add(on)
        elif on:
            raise _error(f"{where}.on", "only thank-you steps have on")
        steps.append(
            Step(
                position=position,
                kind=kind,
                subject=_templates(
                    item.get("subject"), known, f"{where}.subject", languages, default_language
                ),
                body=_templates(
                    item.get("body"), known, f"{where}.body", languages, default_language
                ),
                after_days=float(after),
                unless=unless,
                on=on,
            )
        )
    return steps


def load_steps(stored: list[dict[str, Any]]) -> list[Step]:
    """Steps as stored (already checked)."""
    return [
        Step(
            position=position,
            kind=item["kind"],
            subject=item["subject"],
            body=item["body"],
            after_days=float(item.get("after_days") or 0),
            unless=item.get("unless") or "reply",
            on=item.get("on") or "",
        )
        for position, item in enumerate(stored, start=1)
    ]


def _time(value: Any, where: str) -> dt.time:
    try:
        return dt.time.fromisoformat(str(value))
    except ValueError:
        raise _error(where, f"{value!r} is not a time of day (HH:MM)") from None


def parse_window(raw: Any, default_timezone: str) -> Window:
    """The checked schedule window (``{}``/``None``: always open)."""
    if raw is None or raw == {}:
        return Window(timezone=default_timezone)
    if not isinstance(raw, Mapping):
        raise _error("window", "give {days = ['mon', ...], start = '09:00', end = '18:00'}")
    unknown = sorted(set(raw) - {"days", "start", "end", "timezone"})
    if unknown:
        raise _error("window", f"unknown key(s) {', '.join(map(str, unknown))}")
    days = raw.get("days", list(DAYS))
    if isinstance(days, str):
        days = [day.strip() for day in days.split(",")]
    if not isinstance(days, list) or not days or any(day not in DAYS for day in days):
        raise _error("window.days", f"a list of {', '.join(DAYS)}")
    name = str(raw.get("timezone", default_timezone))
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _error("window.timezone", f"unknown time zone {name!r}") from None
    start = to_minute(_time(raw.get("start", "00:00"), "window.start"))
    end = to_minute(_time(raw.get("end", "23:59"), "window.end"))
    if end <= start:
        raise _error("window.end", "must be after start")
    return Window(days=tuple(days), start=start, end=end, timezone=name)


def load_window(stored: Mapping[str, Any], default_timezone: str) -> Window:
    """The window as stored (already checked; ``{}``: always open)."""
    return Window(
        days=tuple(stored.get("days") or DAYS),
        start=dt.time.fromisoformat(stored.get("start") or "00:00"),
        end=dt.time.fromisoformat(stored.get("end") or "23:59"),
        timezone=stored.get("timezone") or default_timezone,
    )


@functools.lru_cache(maxsize=512)
def compiled(template: str) -> Template:
    """A checked template, compiled once (a campaign renders each one thousands of times)."""
    return ENVIRONMENT.from_string(template)


def render(template: str, context: Mapping[str, Any]) -> str:
    """Render a checked template in the sandbox."""
    return compiled(template).render(dict(context))
