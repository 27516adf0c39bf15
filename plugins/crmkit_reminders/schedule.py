"""When a reminder is due: wall-clock times in a time zone, RFC 5545 recurrence rules
(python-dateutil) and their next occurrence in UTC.

Occurrences are computed as wall-clock times in the owner's zone and only then turned into
UTC, so "every day at 09:00" stays at 09:00 local across daylight-saving changes. A wall time
that does not exist (skipped by a DST change) is moved forward by the gap; an ambiguous one
takes its first instance.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from dateutil import rrule as dateutil_rrule

import crmkit

#: Accepted forms of ``--at``.
AT_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")


def zone(name: str, field: str = "timezone") -> zoneinfo.ZoneInfo:
    """The IANA time zone ``name``; a clear error naming the field when unknown."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise crmkit.ValidationError(
            [crmkit.FieldError(field, f"unknown time zone {name!r} (use e.g. Asia/Shanghai)")]
        ) from None


def parse_local(text: str, field: str = "at") -> dt.datetime:
    """A naive wall-clock time from ``2026-12-08 10:00`` (or ISO with ``T``)."""
    for pattern in AT_FORMATS:
        try:
            return dt.datetime.strptime(text.strip(), pattern)
        except ValueError:
            continue
    raise crmkit.ValidationError(
        [crmkit.FieldError(field, f"{text!r} is not a time like 2026-12-08 10:00")]
    )


def to_utc(local: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """The UTC instant of wall time ``local`` in ``tz`` (DST gap: moved forward)."""
    # PEP 495: fold=0 reads a wall time in a gap with the offset before the change, so
    # 02:30 on a spring-forward night comes out as 03:30, and an ambiguous one as the first
    return local.replace(tzinfo=tz, fold=0).astimezone(dt.UTC)


def check_rrule(rule: str, start: dt.datetime) -> dateutil_rrule.rrule:
    """The parsed rule (``FREQ=WEEKLY;BYDAY=MO`` or with an ``RRULE:`` prefix); a clear
    error naming the field when it does not parse."""
    text = rule.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    if not text or "\n" in text or "DTSTART" in text.upper():
        raise crmkit.ValidationError(
            [crmkit.FieldError("every", "give one RRULE such as FREQ=WEEKLY;BYDAY=MO")]
        )
    try:
        parsed = dateutil_rrule.rrulestr(text, dtstart=start)
    except (ValueError, TypeError) as error:
        raise crmkit.ValidationError(
            [crmkit.FieldError("every", f"not a valid RFC 5545 RRULE {rule!r}: {error}")]
        ) from None
    assert isinstance(parsed, dateutil_rrule.rrule)
    return parsed


def next_occurrence(
    start: dt.datetime, tz: zoneinfo.ZoneInfo, rule: str | None, after: dt.datetime | None
) -> dt.datetime | None:
    """The first occurrence (UTC) strictly after ``after`` (UTC; ``None``: the first one),
    or ``None`` when the rule has no more."""
    if rule is None:
        first = to_utc(start, tz)
        return first if after is None or first > after else None
    parsed = check_rrule(rule, start)
    if after is None:
        local = start if start in parsed else parsed.after(start, inc=False)
    else:
        # step back a day of wall time: a DST shift may put the local "after" past the
        # occurrence whose UTC instant is still later than ``after``
        local_after = after.astimezone(tz).replace(tzinfo=None) - dt.timedelta(days=1)
        local = parsed.after(local_after, inc=False)
        while local is not None and to_utc(local, tz) <= after:
            local = parsed.after(local, inc=False)
    return None if local is None else to_utc(local, tz)
