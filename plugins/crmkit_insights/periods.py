"""Periods as people write them: ``2026``, ``2026-Q2``, ``2026-03``, ``2026-03-01..2026-05-31``,
``last-90d``, ``last-12m``; each becomes a half-open UTC range ``[start, end)``."""

from __future__ import annotations

import datetime as dt
import re

from attrs import frozen

import crmkit

_YEAR = re.compile(r"(\d{4})")
_QUARTER = re.compile(r"(\d{4})-[Qq]([1-4])")
_MONTH = re.compile(r"(\d{4})-(\d{1,2})")
_RANGE = re.compile(r"(\d{4}-\d{1,2}-\d{1,2})\.\.(\d{4}-\d{1,2}-\d{1,2})")
_LAST = re.compile(r"last-(\d{1,5})([dm])")
#: The forms a period may take, for error messages and --help.
FORMS = "2026, 2026-Q2, 2026-03, 2026-03-01..2026-05-31, last-90d or last-12m"


@frozen
class Period:
    """A half-open time range ``[start, end)`` in UTC and the text it was read from."""

    start: dt.datetime
    end: dt.datetime
    label: str

    def as_dict(self) -> dict[str, str]:
        """JSON-ready: the label and both ends as ISO 8601."""
        return {"label": self.label, "start": self.start.isoformat(), "end": self.end.isoformat()}


def _bad(text: str, why: str) -> crmkit.ValidationError:
    return crmkit.ValidationError(
        [crmkit.FieldError("period", f"{text[:60]!r} {why} (use {FORMS})")]
    )


def _day(year: int, month: int, day: int = 1) -> dt.datetime:
    return dt.datetime(year, month, day, tzinfo=dt.UTC)


def _add_months(moment: dt.datetime, months: int) -> dt.datetime:
    index = moment.year * 12 + moment.month - 1 + months
    return moment.replace(year=index // 12, month=index % 12 + 1, day=1)


def parse_period(text: str | None, *, now: dt.datetime | None = None) -> Period:
    """Read a period (``None`` or empty: the current calendar year). A malformed or empty
    range is a :class:`crmkit.ValidationError` on ``period`` naming the accepted forms."""
    now = now or crmkit.utcnow()
    raw = (text or "").strip()
    if not raw:
        raw = str(now.year)
    try:
        if match := _YEAR.fullmatch(raw):
            year = int(match[1])
            return Period(_day(year, 1), _day(year + 1, 1), raw)
        if match := _QUARTER.fullmatch(raw):
            start = _day(int(match[1]), 3 * int(match[2]) - 2)
            return Period(start, _add_months(start, 3), raw)
        if match := _MONTH.fullmatch(raw):
            start = _day(int(match[1]), int(match[2]))
            return Period(start, _add_months(start, 1), raw)
        if match := _RANGE.fullmatch(raw):
            first = dt.date.fromisoformat(_iso(match[1]))
            last = dt.date.fromisoformat(_iso(match[2]))
            if last < first:
                raise _bad(raw, "ends before it starts")
            start = _day(first.year, first.month, first.day)
            return Period(start, start + dt.timedelta(days=(last - first).days + 1), raw)
        if match := _LAST.fullmatch(raw):
            count = int(match[1])
            if count < 1:
                raise _bad(raw, "is empty")
            if match[2] == "d":
                return Period(now - dt.timedelta(days=count), now, raw)
            return Period(_add_months(now, -count).replace(day=min(now.day, 28)), now, raw)
    except (ValueError, OverflowError):
        raise _bad(raw, "is not a date") from None
    raise _bad(raw, "is not a period")


def _iso(text: str) -> str:
    year, month, day = text.split("-")
    return f"{year}-{int(month):02d}-{int(day):02d}"


def parse_moment(text: str | None, field: str = "as_of") -> dt.datetime | None:
    """A date or timezone-aware time (``2026-06-30``, ``2026-06-30T18:00+08:00``), or
    ``None`` for none; a date means the end of that day (UTC)."""
    if text is None or not text.strip():
        return None
    raw = text.strip()
    try:
        if len(raw) <= 10:
            day = dt.date.fromisoformat(_iso(raw))
            return _day(day.year, day.month, day.day) + dt.timedelta(days=1)
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise crmkit.ValidationError(
            [crmkit.FieldError(field, f"{raw[:60]!r} is not a date (use 2026-06-30)")]
        ) from None
    if moment.tzinfo is None:
        raise crmkit.ValidationError(
            [crmkit.FieldError(field, "needs a time zone (e.g. 2026-06-30T18:00+08:00)")]
        )
    return moment.astimezone(dt.UTC)
