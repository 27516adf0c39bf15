"""Per-domain send limits: campaign mails per recipient domain per minute and per day.

Large mailbox providers throttle or junk a sender that mails too many of their users at
once, so a campaign hands the message queue at most ``per_domain_per_minute`` and
``per_domain_per_day`` mails per recipient domain (``[plugins.campaigns]``; one domain may
have its own pair in ``domain_limits``). The counters are one row per domain (the current
minute's and the current day's count) in ``campaign_domain_counters``; the rows of a batch
are locked while it is counted (``FOR UPDATE`` on PostgreSQL; SQLite's write lock), so two
workers never overshoot together. The day is the settings' ``timezone`` day.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

import crmkit
from crmkit_campaigns.models import DomainCounter


def day_start(now: dt.datetime, timezone: str) -> dt.datetime:
    """The start (in UTC) of ``now``'s day in ``timezone``."""
    zone = zoneinfo.ZoneInfo(timezone)
    local = now.astimezone(zone)
    midnight = dt.datetime.combine(local.date(), dt.time(0), tzinfo=zone)
    return midnight.astimezone(dt.UTC)


def limits_of(settings: Mapping[str, Any], domain: str) -> tuple[int, int]:
    """``(per_minute, per_day)`` for ``domain``."""
    own = (settings.get("domain_limits") or {}).get(domain) or {}
    return (
        int(own.get("per_minute", settings["per_domain_per_minute"])),
        int(own.get("per_day", settings["per_domain_per_day"])),
    )


def take(
    op: crmkit.Operation,
    wanted: Mapping[str, int],
    now: dt.datetime,
    settings: Mapping[str, Any],
) -> dict[str, int]:
    """Reserve up to ``wanted[domain]`` sends per domain; how many each domain got."""
    if not wanted:
        return {}
    session = op.session
    minute = now.replace(second=0, microsecond=0)
    day = day_start(now, settings["timezone"])
    postgres = session.get_bind().dialect.name == "postgresql"
    maker: Any = postgresql_insert if postgres else sqlite_insert
    domains = sorted(wanted)
    session.execute(
        maker(DomainCounter)
        .values(
            [
                {
                    "domain": domain,
                    "minute_start": minute,
                    "minute_count": 0,
                    "day_start": day,
                    "day_count": 0,
                }
                for domain in domains
            ]
        )
        .on_conflict_do_nothing(index_elements=["domain"])
    )
    query = select(
        DomainCounter.domain,
        DomainCounter.minute_start,
        DomainCounter.minute_count,
        DomainCounter.day_start,
        DomainCounter.day_count,
    ).where(DomainCounter.domain.in_(domains))
    if postgres:
        query = query.with_for_update()
    granted: dict[str, int] = {}
    changes = []
    for row in session.execute(query):
        minute_count = row.minute_count if row.minute_start >= minute else 0
        day_count = row.day_count if row.day_start >= day else 0
        per_minute, per_day = limits_of(settings, row.domain)
        allowed = max(0, min(wanted[row.domain], per_minute - minute_count, per_day - day_count))
        granted[row.domain] = allowed
        changes.append(
            {
                "key": row.domain,
                "new_minute": minute,
                "new_minute_count": minute_count + allowed,
                "new_day": day,
                "new_day_count": day_count + allowed,
            }
        )
    table: Any = DomainCounter.__table__
    session.connection().execute(
        update(table)
        .where(table.c.domain == bindparam("key"))
        .values(
            minute_start=bindparam("new_minute"),
            minute_count=bindparam("new_minute_count"),
            day_start=bindparam("new_day"),
            day_count=bindparam("new_day_count"),
        ),
        changes,
    )
    return granted
