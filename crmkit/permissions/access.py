"""What one actor may do: the permissions they hold with their scopes, their field rules, and
the teams their scopes reach. Loaded once per operation; every check reads from it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from attrs import field, frozen
from sqlalchemy import ColumnElement, false, or_, select
from sqlalchemy.orm import Session

from crmkit.entities.organisation import Team, User
from crmkit.errors import PermissionDenied
from crmkit.permissions.models import FieldAccess, FieldRule, RoleGrant, Scope, UserRole


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

    def condition(self, model: Any, scope: Scope) -> ColumnElement[bool] | None:
        """The SQL condition selecting the records of ``model`` within ``scope`` (``None``
        for all). Owned records are always within the actor's scope."""
        if scope is Scope.ALL or self.unrestricted:
            return None
        if self.user_id is None:
            return false()
        own = model.owner_id == self.user_id
        if scope is Scope.OWN:
            return own  # type: ignore[no-any-return]
        teams = self.team_ids if scope is Scope.TEAM else self.subtree_ids
        if not teams:
            return own  # type: ignore[no-any-return]
        return or_(own, model.team_id.in_(sorted(teams)))

    def covers(self, scope: Scope, owner_id: int | None, team_id: int | None) -> bool:
        """Whether a record with this owner and team lies within ``scope`` (the Python twin
        of :meth:`condition`, for records about to be written)."""
        if scope is Scope.ALL or self.unrestricted:
            return True
        if owner_id is not None and owner_id == self.user_id:
            return True
        if scope is Scope.OWN:
            return False
        teams = self.team_ids if scope is Scope.TEAM else self.subtree_ids
        return team_id is not None and team_id in teams

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


def load_access(session: Session, user: User | None) -> Access:
    """Read the actor's roles, grants, field rules and team tree from the database.

    The user row itself is read again too: the ``User`` object a caller passes may be older
    than a deactivation or a team move, and must not carry yesterday's rights."""
    if user is None:
        return SYSTEM
    current = session.get(User, user.id, populate_existing=True)
    if current is None or not current.is_active:
        raise PermissionDenied(f"user {user.username!r} is deactivated or no longer exists")
    user = current
    if user.is_admin:
        return Access(
            user_id=user.id, username=user.username, unrestricted=True, team_id=user.team_id
        )
    role_ids = list(session.scalars(select(UserRole.role_id).where(UserRole.user_id == user.id)))
    grants: dict[str, Scope] = {}
    for permission, scope_name in session.execute(
        select(RoleGrant.permission, RoleGrant.scope).where(RoleGrant.role_id.in_(role_ids))
    ):
        scope = Scope(scope_name)
        if permission not in grants or scope.rank > grants[permission].rank:
            grants[permission] = scope
    rules_by_role: dict[int, dict[tuple[str, str], FieldAccess]] = {rid: {} for rid in role_ids}
    for rule in session.scalars(select(FieldRule).where(FieldRule.role_id.in_(role_ids))):
        rules_by_role[rule.role_id][(rule.entity, rule.field)] = FieldAccess(rule.access)
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
    team_ids: frozenset[int] = frozenset()
    subtree_ids: frozenset[int] = frozenset()
    if user.team_id is not None:
        parents = dict(session.execute(select(Team.id, Team.parent_id)).all())
        team_ids = frozenset({user.team_id})
        subtree_ids = subtree(parents, user.team_id)
    return Access(
        user_id=user.id,
        username=user.username,
        unrestricted=False,
        team_id=user.team_id,
        grants=grants,
        field_rules=field_rules,
        team_ids=team_ids,
        subtree_ids=subtree_ids,
    )
