"""The names of the users and teams that records point at (``owner_id``, ``team_id``), read
for a whole page in one statement: a page shows owners and teams by name, not number, without
a query per row.

Users' and teams' names are open to every user (see :mod:`crmkit.services.users`); what a
page may show is decided by the records: a caller passes only ids it read off records the
actor may see, so a field rule hiding ``owner_id`` hides the owner's name with it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from attrs import frozen
from sqlalchemy import bindparam, func, literal, select, union_all

from crmkit.entities.organisation import Team, User

if TYPE_CHECKING:
    from crmkit.services.operation import Operation

#: Most ids one statement looks up (a page of records has far fewer).
MAX_IDS = 1000


@frozen
class Names:
    """User id → display name (the username when it has none), team id → team name."""

    users: Mapping[int, str]
    teams: Mapping[int, str]


@functools.cache
def _names_statement() -> Any:
    """The one statement :func:`names_of` runs, built once: its ids are expanding parameters.
    Building it per call (and SQLAlchemy computing its cache key each time) cost four times
    what running it does (bench/desk_bench.py --profile)."""
    shown = func.coalesce(func.nullif(User.display_name, ""), User.username)
    return union_all(
        select(literal("u").label("kind"), User.id, shown.label("name")).where(
            User.id.in_(bindparam("user_ids", expanding=True))
        ),
        select(literal("t").label("kind"), Team.id, Team.name.label("name")).where(
            Team.id.in_(bindparam("team_ids", expanding=True))
        ),
    )


def names_of(op: Operation, *, users: Iterable[object] = (), teams: Iterable[object] = ()) -> Names:
    """The names of the users and teams with these ids (ids of no user or team, and values
    that are not ids, are left out), in one statement of ``op``'s transaction."""
    user_ids = sorted({i for i in users if isinstance(i, int) and not isinstance(i, bool)})
    team_ids = sorted({i for i in teams if isinstance(i, int) and not isinstance(i, bool)})
    found: dict[str, dict[int, str]] = {"u": {}, "t": {}}
    if user_ids or team_ids:
        ids = {"user_ids": user_ids[:MAX_IDS], "team_ids": team_ids[:MAX_IDS]}
        for kind, record_id, name in op.session.execute(_names_statement(), ids):
            found[kind][int(record_id)] = str(name)
    return Names(users=found["u"], teams=found["t"])
