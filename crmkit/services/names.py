"""The names of the users and teams that records point at (``owner_id``, ``team_id``), read
for a whole page in one statement: a page shows owners and teams by name, not number, without
a query per row.

Users' and teams' names are open to every user (see :mod:`crmkit.services.users`); what a
page may show is decided by the records: a caller passes only ids it read off records the
actor may see, so a field rule hiding ``owner_id`` hides the owner's name with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from attrs import frozen
from sqlalchemy import func, literal, select, union_all

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


def names_of(op: Operation, *, users: Iterable[object] = (), teams: Iterable[object] = ()) -> Names:
    """The names of the users and teams with these ids (ids of no user or team, and values
    that are not ids, are left out), in one statement of ``op``'s transaction."""
    user_ids = sorted({i for i in users if isinstance(i, int) and not isinstance(i, bool)})
    team_ids = sorted({i for i in teams if isinstance(i, int) and not isinstance(i, bool)})
    user_ids, team_ids = user_ids[:MAX_IDS], team_ids[:MAX_IDS]
    parts = []
    if user_ids:
        shown = func.coalesce(func.nullif(User.display_name, ""), User.username)
        parts.append(
            select(literal("u").label("kind"), User.id, shown.label("name")).where(
                User.id.in_(user_ids)
            )
        )
    if team_ids:
        parts.append(
            select(literal("t").label("kind"), Team.id, Team.name.label("name")).where(
                Team.id.in_(team_ids)
            )
        )
    found: dict[str, dict[int, str]] = {"u": {}, "t": {}}
    if parts:
        statement = parts[0] if len(parts) == 1 else union_all(*parts)
        for kind, record_id, name in op.session.execute(statement):
            found[kind][int(record_id)] = str(name)
    return Names(users=found["u"], teams=found["t"])
