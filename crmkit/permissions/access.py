"""What one actor may do: the permissions they hold with their scopes, their field rules, and
the teams their scopes reach. Read once per operation (from the per-process
:class:`AccessCache` when it is current); every check reads from it."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from attrs import field, frozen
from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    bindparam,
    case,
    cast,
    false,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler

from crmkit.entities.organisation import Team, User
from crmkit.errors import PermissionDenied
from crmkit.permissions.models import (
    AccessStamp,
    FieldAccess,
    FieldRule,
    RoleGrant,
    Scope,
    UserRole,
)


def subtree(parents: Mapping[int, int | None], root: int) -> frozenset[int]:
    """``root`` and every team below it, given each team's parent."""
    children: dict[int, list[int]] = {}
    for team_id, parent_id in parents.items():
        if parent_id is not None:
            children.setdefault(parent_id, []).append(team_id)
    found = {root}
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return frozenset(found)


@frozen
class Access:
    """The permissions of one actor. ``unrestricted`` is the system (no actor) or an admin."""

    user_id: int | None
    username: str
    unrestricted: bool
    team_id: int | None = None
    grants: Mapping[str, Scope] = field(factory=dict)
    field_rules: Mapping[str, Mapping[str, FieldAccess]] = field(factory=dict)
    team_ids: frozenset[int] = frozenset()  # the actor's own team
    subtree_ids: frozenset[int] = frozenset()  # the actor's team and all teams below it
    team_count: int = 0  # teams in the whole tree (for :meth:`share`)
    #: statements built from this access (``crmkit.services.queries.visible``), kept with
    #: it: an access cached across operations reuses them, and SQLAlchemy's cache key of a
    #: statement object is computed once
    statements: dict[Any, Any] = field(factory=dict, eq=False, repr=False, init=False)

    def scope(self, permission: str) -> Scope | None:
        """The widest scope the actor holds ``permission`` with, or ``None``."""
        if self.unrestricted:
            return Scope.ALL
        return self.grants.get(permission)

    def require(self, permission: str) -> Scope:
        """The scope of ``permission``; ``PermissionDenied`` naming it if the actor lacks it."""
        scope = self.scope(permission)
        if scope is None:
            raise PermissionDenied(f"{self.username} lacks the permission {permission}")
        return scope

    def condition(
        self, model: Any, scope: Scope, *, unindexed: bool = False
    ) -> ColumnElement[bool] | None:
        """The SQL condition selecting the records of ``model`` within ``scope`` (``None``
        for all). Owned records are always within the actor's scope.

        With ``unindexed`` the owner and team columns are written ``owner_id + 0`` and
        ``team_id + 0``: the same condition, which SQLite cannot answer from the owner and
        team indexes, so it walks the index of the list's sort order instead and stops after
        one page (see ``RecordService.list`` and docs/decisions.md)."""
        if scope is Scope.ALL or self.unrestricted:
            return None
        if self.user_id is None:
            return false()
        return _scope_condition(model, self.user_id, self.teams(scope), unindexed)

    def teams(self, scope: Scope) -> frozenset[int]:
        """The teams whose records ``scope`` reaches besides the actor's own records: the
        actor's team (``team``), its whole subtree (``subtree``), none for ``own`` (and for
        ``all``, which is not a set of teams)."""
        if scope is Scope.TEAM:
            return self.team_ids
        if scope is Scope.SUBTREE:
            return self.subtree_ids
        return frozenset()

    def share(self, scope: Scope) -> float:
        """A cheap estimate of the share of the records ``scope`` reaches: 1.0 for all, else
        the share of the team tree's teams it covers (0.0 for own records only). It knows
        nothing about how the records are spread over the teams; it only decides between
        two plans that both return the right rows (``RecordService.list``)."""
        if scope is Scope.ALL or self.unrestricted:
            return 1.0
        if scope is Scope.OWN or not self.team_count:
            return 0.0
        return min(1.0, len(self.teams(scope)) / self.team_count)

    def covers(self, scope: Scope, owner_id: int | None, team_id: int | None) -> bool:
        """Whether a record with this owner and team lies within ``scope`` (the Python twin
        of :meth:`condition`, for records about to be written)."""
        if scope is Scope.ALL or self.unrestricted:
            return True
        if owner_id is not None and owner_id == self.user_id:
            return True
        if scope is Scope.OWN:
            return False
        return team_id is not None and team_id in self.teams(scope)

    def covers_team(self, scope: Scope, team_id: int | None) -> bool:
        """Whether the actor may put a record in team ``team_id`` under ``scope``: no team,
        their own team, or a team ``scope`` reaches (any team for ``all``). Owning a record
        does not let one file it under another team: :meth:`covers` alone would say yes to
        any team for a record the actor owns."""
        if scope is Scope.ALL or self.unrestricted or team_id is None:
            return True
        return team_id in self.team_ids or team_id in self.teams(scope)

    def field_access(self, entity: str, name: str) -> FieldAccess | None:
        """``hidden``, ``read_only`` or ``None`` (full access) for a field."""
        if self.unrestricted:
            return None
        return self.field_rules.get(entity, {}).get(name)

    def hidden_fields(self, entity: str) -> frozenset[str]:
        """The fields of ``entity`` the actor may not see."""
        rules = self.field_rules.get(entity, {})
        return frozenset(name for name, access in rules.items() if access is FieldAccess.HIDDEN)

    def check_writable(self, entity: str, names: Iterable[str]) -> None:
        """Refuse a write to a hidden or read-only field, naming it."""
        for name in names:
            access = self.field_access(entity, name)
            if access is not None:
                raise PermissionDenied(
                    f"{self.username} may not change {entity}.{name} ({access.value} for"
                    " their roles)"
                )


SYSTEM = Access(user_id=None, username="system", unrestricted=True)


@functools.lru_cache(maxsize=256)
def _scope_condition(
    model: Any, user_id: int, teams: frozenset[int], unindexed: bool
) -> ColumnElement[bool]:
    """``owner_id = :me OR team_id IN (:teams)`` (only the first part without teams), built
    once per actor and tree: the same user reads the same scope operation after operation,
    and building the expression cost as much as running a narrow page's SQL. Expressions are
    immutable; the values are bound parameters in the SQL either way."""
    owner_id, team_id = model.owner_id, model.team_id
    if unindexed:
        owner_id, team_id = owner_id + literal_column("0"), team_id + literal_column("0")
    own: ColumnElement[bool] = owner_id == user_id
    if not teams:
        return own
    return or_(own, team_id.in_(sorted(teams)))


def _access_query() -> Any:
    """Everything :func:`load_access` needs in one statement (one round trip): rows tagged
    ``u`` (the user: team, active/admin flags, name), ``r`` (a role), ``g`` (a role's grant),
    ``f`` (a role's field rule), ``t`` (a team of the user's subtree, by a recursive CTE
    over ``teams.parent_id``), ``n`` (how many teams there are) and ``s`` (the access stamp
    the rest was read at: one statement, one snapshot). The user's id is the parameter
    ``user_id``."""
    user_id = bindparam("user_id", type_=Integer)
    users, roles = User.__table__, UserRole.__table__
    grants, rules, teams = RoleGrant.__table__, FieldRule.__table__, Team.__table__
    stamp = AccessStamp.__table__
    no_int, no_text = cast(null(), Integer), cast(null(), String)
    # an admin's rights do not depend on the tree: no subtree rows for them
    home = (
        select(users.c.team_id)
        .where(users.c.id == user_id, users.c.is_admin == false())
        .scalar_subquery()
    )
    tree = select(teams.c.id).where(teams.c.id == home).cte("subtree", recursive=True)
    # UNION (not UNION ALL): ends even if the tree ever held a cycle
    tree = tree.union(select(teams.c.id).where(teams.c.parent_id == tree.c.id))
    mine = select(roles.c.role_id).where(roles.c.user_id == user_id)
    one: ColumnElement[int] = literal_column("1")
    two: ColumnElement[int] = literal_column("2")
    zero: ColumnElement[int] = literal_column("0")
    flags = case((users.c.is_active, one), else_=zero) + case((users.c.is_admin, two), else_=zero)
    return union_all(
        select(
            literal_column("'u'").label("kind"),
            users.c.team_id.label("n1"),
            flags.label("n2"),
            users.c.username.label("s1"),
            no_text.label("s2"),
            no_text.label("s3"),
        ).where(users.c.id == user_id),
        select(literal_column("'r'"), roles.c.role_id, no_int, no_text, no_text, no_text).where(
            roles.c.user_id == user_id
        ),
        select(
            literal_column("'g'"),
            grants.c.role_id,
            no_int,
            grants.c.permission,
            grants.c.scope,
            no_text,
        ).where(grants.c.role_id.in_(mine)),
        select(
            literal_column("'f'"),
            rules.c.role_id,
            no_int,
            rules.c.entity,
            rules.c.field,
            rules.c.access,
        ).where(rules.c.role_id.in_(mine)),
        select(literal_column("'t'"), tree.c.id, no_int, no_text, no_text, no_text),
        select(literal_column("'n'"), func.count(teams.c.id), no_int, no_text, no_text, no_text),
        select(literal_column("'s'"), stamp.c.version, no_int, no_text, no_text, no_text),
    )


_COMPILED: dict[tuple[int, str, str, str], SQLCompiler] = {}


def run_compiled(session: Session, build: Any, params: Mapping[str, Any]) -> Any:
    """Run the statement ``build()`` returns with ``params`` on the session's connection.
    The statement is built and compiled once per dialect and sent as SQL text: for the
    small statements every request runs (the access, the access stamp, the bearer token),
    building and compiling them each time cost more than running them."""
    if session.autoflush and (session.new or session.dirty or session.deleted):
        session.flush()  # pending changes first, as any ORM query would
    connection = session.connection()
    dialect = connection.dialect
    key = (id(build), dialect.name, dialect.driver, dialect.paramstyle)
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = build().compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        _COMPILED[key] = compiled
    values: Any = compiled.construct_params(dict(params))
    if compiled.positiontup is not None:
        return connection.exec_driver_sql(
            compiled.string, tuple(values[name] for name in compiled.positiontup)
        )
    return connection.exec_driver_sql(compiled.string, values)


def stamp_query() -> Any:
    """The access stamp alone (``None`` from a database without the row)."""
    return select(AccessStamp.__table__.c.version).where(AccessStamp.__table__.c.id == 1)


def read_stamp(session: Session) -> int | None:
    """The current access stamp, in the session's transaction."""
    value = run_compiled(session, stamp_query, {}).scalar()
    return None if value is None else int(value)


def load_access(session: Session, user: User | None) -> Access:
    """Read the actor's roles, grants, field rules and team subtree from the database, in
    one statement.

    The user row itself is read again too: the ``User`` object a caller passes may be older
    than a deactivation or a team move, and must not carry yesterday's rights. Nothing is
    cached here (see :class:`AccessCache` for the cache operations use), so a deactivation,
    a role or grant change or a team move is seen by the very next call."""
    return load_access_and_stamp(session, user)[0]


def load_access_and_stamp(session: Session, user: User | None) -> tuple[Access, int | None]:
    """:func:`load_access` and the access stamp it was read at (one statement)."""
    if user is None:
        return SYSTEM, None
    found = False
    active = admin = False
    team_id: int | None = None
    username = user.username
    role_ids: list[int] = []
    grant_rows: list[tuple[str, str]] = []
    rule_rows: list[tuple[int, str, str, str]] = []
    subtree_ids: set[int] = set()
    team_count = 0
    stamp: int | None = None
    rows = run_compiled(session, _access_query, {"user_id": user.id})
    for kind, n1, n2, s1, s2, s3 in rows:
        if kind == "u":
            found, team_id, username = True, n1, s1
            active, admin = bool(n2 & 1), bool(n2 & 2)
        elif kind == "r":
            role_ids.append(n1)
        elif kind == "g":
            grant_rows.append((s1, s2))
        elif kind == "f":
            rule_rows.append((n1, s1, s2, s3))
        elif kind == "t":
            subtree_ids.add(n1)
        elif kind == "s":
            stamp = None if n1 is None else int(n1)
        else:
            team_count = int(n1 or 0)
    if not found or not active:
        raise PermissionDenied(f"user {user.username!r} is deactivated or no longer exists")
    if admin:
        admin_access = Access(
            user_id=user.id, username=username, unrestricted=True, team_id=team_id
        )
        return admin_access, stamp
    grants: dict[str, Scope] = {}
    for permission, scope_name in grant_rows:
        scope = Scope(scope_name)
        if permission not in grants or scope.rank > grants[permission].rank:
            grants[permission] = scope
    rules_by_role: dict[int, dict[tuple[str, str], FieldAccess]] = {rid: {} for rid in role_ids}
    for role_id, entity, name, access in rule_rows:
        rules_by_role[role_id][(entity, name)] = FieldAccess(access)
    field_rules: dict[str, dict[str, FieldAccess]] = {}
    mentioned = {key for rules in rules_by_role.values() for key in rules}
    for entity, name in mentioned:
        # Roles add up: a field stays restricted only if every role of the user restricts it,
        # and then as little as the most lenient of them says.
        accesses = [rules.get((entity, name)) for rules in rules_by_role.values()]
        if any(access is None for access in accesses):
            continue
        lenient = FieldAccess.READ_ONLY if FieldAccess.READ_ONLY in accesses else FieldAccess.HIDDEN
        field_rules.setdefault(entity, {})[name] = lenient
    result = Access(
        user_id=user.id,
        username=username,
        unrestricted=False,
        team_id=team_id,
        grants=grants,
        field_rules=field_rules,
        team_ids=frozenset({team_id}) if team_id is not None else frozenset(),
        subtree_ids=frozenset(subtree_ids) if team_id is not None else frozenset(),
        team_count=team_count,
    )
    return result, stamp


class AccessCache:
    """Each user's :class:`Access`, kept per process and checked against the access stamp
    (``access_stamp.version``, bumped by database triggers in the same transaction as any
    change to roles, grants, field rules, the team tree, or a user's team, flags or name).

    An operation reads the stamp (one tiny statement, or none when the bearer-token check
    already read it) and uses the cached access only if it was loaded at that very stamp;
    otherwise it reloads. So a change made by any process, through crmkit or in plain SQL,
    is seen by the next operation that starts after it committed. Only read-only operations
    store entries: a write operation may see its own uncommitted changes, which must never
    outlive a rollback in a cache."""

    def __init__(self, limit: int = 10_000) -> None:
        self._entries: dict[int, tuple[int, Access]] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def access(
        self, session: Session, user: User | None, stamp: int | None, *, store: bool
    ) -> Access:
        """The access of ``user`` as of the session's transaction. ``stamp`` is the access
        stamp already read in this transaction (``None``: read it here when needed)."""
        if user is None:
            return SYSTEM
        entry = self._entries.get(user.id)
        if entry is not None:
            if stamp is None:
                stamp = read_stamp(session)
            if stamp is not None and entry[0] == stamp:
                return entry[1]
        access, loaded = load_access_and_stamp(session, user)
        if store and loaded is not None:
            with self._lock:
                if len(self._entries) >= self._limit:
                    self._entries.clear()
                self._entries[user.id] = (loaded, access)
        return access

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()
