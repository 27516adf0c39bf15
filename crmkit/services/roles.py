"""Roles: named bundles of scoped permission grants and field rules, held by users.

Four roles are built in (``admin``, ``manager``, ``sales_rep``, ``read_only``; see
:data:`crmkit.permissions.catalogue.BUILTIN_ROLES`), created by ``crm.upgrade()`` and, where
missing, on first use; integrators define their own. Every change here is a permission
change: it is audited as sensitive (admins hear of it in their inbox) and emits a ``role.*``
event."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from attrs import frozen
from sqlalchemy import delete, select

from crmkit.entities.organisation import Role, User
from crmkit.errors import CRMError, FieldError, ValidationError
from crmkit.permissions.audit import flag_sensitive
from crmkit.permissions.catalogue import BUILTIN_ROLES, all_permissions
from crmkit.permissions.models import FieldAccess, FieldRule, RoleGrant, Scope, UserRole
from crmkit.services.users import (
    ADMIN_ROLE,
    UnknownNameError,
    find_user,
    refuse_losing_last_admin,
)

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.services.operation import Operation

#: Columns no field rule may name: they identify a record or are kept by the system.
UNRULED_FIELDS = frozenset({"id", "custom", "deleted_at"})


@frozen
class GrantInfo:
    """A permission a role grants, with its record scope."""

    permission: str
    scope: Scope


@frozen
class FieldRuleInfo:
    """A field a role hides or makes read-only."""

    entity: str
    field: str
    access: FieldAccess


@frozen
class RoleInfo:
    """A role with its grants, field rules and the users holding it."""

    id: int
    name: str
    description: str
    is_builtin: bool
    grants: tuple[GrantInfo, ...]
    field_rules: tuple[FieldRuleInfo, ...]
    holders: tuple[str, ...]


# -- functions working inside an operation (shared with the user service) ---------------------


def known_permissions(crm: CRM) -> list[str]:
    """Every permission a role may grant: those of every entity, the administrative ones,
    and those enabled plugins declare (``crmkit_permissions``)."""
    declared = [name for group in crm.host.call("crmkit_permissions") for name in group]
    own = [name for name, entity in crm.entities.items() if entity.parent is None]
    return all_permissions(own, declared)


def seed_builtin_roles(op: Operation, *, announce: bool = True) -> dict[str, list[str]]:
    """Create each built-in role that does not exist yet, with its grants, and give the
    ``admin`` role every known permission it lacks (plugin permissions appear when plugins
    are enabled). Returns what changed: ``{"created": [...], "admin_granted": [...]}``;
    nothing is audited when nothing changed. ``announce=False`` (used by ``crm.upgrade()``,
    an install step like a migration) skips the audit entry and the events."""
    existing = {role.name: role for role in op.session.scalars(select(Role))}
    created: list[str] = []
    for name, (description, grants) in BUILTIN_ROLES.items():
        if name in existing:
            continue
        role = Role(name=name, description=description, is_builtin=True)
        op.session.add(role)
        op.session.flush()
        op.session.add_all(
            RoleGrant(role_id=role.id, permission=permission, scope=scope.value)
            for permission, scope in grants.items()
        )
        existing[name] = role
        created.append(name)
    op.session.flush()
    admin = existing[ADMIN_ROLE]
    held = set(
        op.session.scalars(select(RoleGrant.permission).where(RoleGrant.role_id == admin.id))
    )
    missing = [p for p in known_permissions(op.crm) if p not in held]
    op.session.add_all(
        RoleGrant(role_id=admin.id, permission=permission, scope=Scope.ALL.value)
        for permission in missing
    )
    op.session.flush()
    changed = {"created": created, "admin_granted": missing}
    if announce and (created or missing):
        parts = [f"built-in roles created: {', '.join(created)}"] if created else []
        if missing:
            parts.append(f"admin role granted {len(missing)} new permission(s)")
        flag_sensitive(op, "role.seed", entity="role", detail="; ".join(parts), facts=changed)
        op.emit("role.seeded", changed, record_type="role")
    return changed


def find_role(op: Operation, name: str) -> Role:
    """The role called ``name``; a built-in role is created (with the others) on first
    use. An unknown name is an error suggesting close ones."""
    role = op.session.scalar(select(Role).where(Role.name == name))
    if role is None and name in BUILTIN_ROLES:
        seed_builtin_roles(op)
        role = op.session.scalar(select(Role).where(Role.name == name))
    if role is None:
        known = {*op.session.scalars(select(Role.name)), *BUILTIN_ROLES}
        raise UnknownNameError("role", name, sorted(known))
    return role


def assign_role_in(op: Operation, user: User, role: Role, *, audit: bool = True) -> bool:
    """Give ``user`` the role (``False`` if they hold it already). With ``audit`` the
    change is audited as sensitive and ``role.assigned`` is emitted."""
    if op.session.get(UserRole, (user.id, role.id)) is not None:
        return False
    op.session.add(UserRole(user_id=user.id, role_id=role.id))
    op.session.flush()
    if audit:
        flag_sensitive(
            op,
            "role.assign",
            entity="role",
            record_id=role.id,
            detail=f"role {role.name!r} assigned to {user.username!r}",
            facts={"role": role.name, "username": user.username, "holds": [False, True]},
        )
        op.emit(
            "role.assigned",
            {"role": role.name, "username": user.username},
            record_type="role",
            record_id=role.id,
        )
    return True


# -- the service -------------------------------------------------------------------------------


class RoleService:
    """Create, change, assign and list roles. Changes need ``role:manage``."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def permissions(self) -> list[str]:
        """Every permission a role may grant, sorted."""
        return known_permissions(self.crm)

    def ensure_builtin_roles(self, *, actor: User | None = None) -> dict[str, list[str]]:
        """Create the built-in roles that are missing and top up ``admin`` with every
        permission (safe to call again: a second call changes nothing). Returns what
        changed."""
        with self.crm.transaction(actor) as op:
            op.access.require("role:manage")
            return seed_builtin_roles(op)

    def create(self, name: str, description: str = "", *, actor: User | None = None) -> Role:
        """Create a role with no grants yet (add them with :meth:`grant`)."""
        name = name.strip()
        if not name or any(char.isspace() for char in name):
            raise ValidationError(
                [FieldError("name", "is required and may not contain spaces")], "role"
            )
        with self.crm.transaction(actor) as op:
            op.access.require("role:manage")
            seed_builtin_roles(op)
            if op.session.scalar(select(Role.id).where(Role.name == name)):
                raise ValidationError([FieldError("name", f"role {name!r} exists")], "role")
            role = Role(name=name, description=description, is_builtin=False)
            op.session.add(role)
            op.session.flush()
            flag_sensitive(
                op,
                "role.create",
                entity="role",
                record_id=role.id,
                detail=f"role {name!r} created",
                facts={"role": name, "description": [None, description]},
            )
            op.emit(
                "role.created",
                {"role": name, "description": description},
                record_type="role",
                record_id=role.id,
            )
            return role

    def delete(self, name: str, *, actor: User | None = None) -> None:
        """Delete a role of your own. Refused for built-in roles and for roles active users
        still hold (the error names them)."""
        with self.crm.transaction(actor) as op:
            op.access.require("role:manage")
            role = find_role(op, name)
            if role.is_builtin:
                raise CRMError(f"role {name!r} is built in and cannot be deleted")
            holders = list(
                op.session.scalars(
                    select(User.username)
                    .join(UserRole, UserRole.user_id == User.id)
                    .where(UserRole.role_id == role.id, User.is_active)
                    .order_by(User.username)
                )
            )
            if holders:
                raise CRMError(
                    f"role {name!r} is still held by {', '.join(holders)}: unassign it first"
                    f" (crmkit roles unassign USER {name})"
                )
            grants = _grants(op, role.id)
            for table in (UserRole, RoleGrant, FieldRule):
                op.session.execute(delete(table).where(table.role_id == role.id))
            op.session.delete(role)
            op.session.flush()
            flag_sensitive(
                op,
                "role.delete",
                entity="role",
                record_id=role.id,
                detail=f"role {name!r} deleted",
                facts={"role": name, "grants": [grants, None]},
            )
            op.emit("role.deleted", {"role": name}, record_type="role", record_id=role.id)

    def list(self, *, actor: User | None = None) -> list[RoleInfo]:
        """Every role (built-in ones first, then by name) with grants, rules and holders."""
        with self.crm.transaction(actor, write=False) as op:
            roles = op.session.scalars(select(Role).order_by(Role.is_builtin.desc(), Role.name))
            return [_info(op, role) for role in roles]

    def get(self, name: str, *, actor: User | None = None) -> RoleInfo:
        """One role with its grants, field rules and holders."""
        with self.crm.transaction(actor, write=False) as op:
            role = op.session.scalar(select(Role).where(Role.name == name))
            if role is None:
                known = list(op.session.scalars(select(Role.name)))
                raise UnknownNameError("role", name, known)
            return _info(op, role)

    def grant(
        self,
        role: str,
        permission: str,
        scope: Scope | str | None = None,
        *,
        actor: User | None = None,
    ) -> GrantInfo:
        """Grant ``permission`` with ``scope`` (own, team, subtree or all; by default
        ``own`` for record permissions and ``all`` for the rest). Granting a permission the
        role holds replaces its scope. The ``admin`` role always holds everything and cannot
        be changed."""
        with self.crm.transaction(actor) as op:
            op.access.require("role:manage")
            target = find_role(op, role)
            _refuse_admin(target, "grant to")
            self._check_permission(permission)
            chosen = _scope(scope) if scope is not None else self._default_scope(permission)
            grant = op.session.scalar(
                select(RoleGrant).where(
                    RoleGrant.role_id == target.id, RoleGrant.permission == permission
                )
            )
            before = Scope(grant.scope) if grant is not None else None
            if before is chosen:
                return GrantInfo(permission, chosen)
            if grant is None:
                op.session.add(
                    RoleGrant(role_id=target.id, permission=permission, scope=chosen.value)
                )
            else:
                grant.scope = chosen.value
            op.session.flush()
            flag_sensitive(
                op,
                "role.grant",
                entity="role",
                record_id=target.id,
                detail=f"role {target.name!r} granted {permission} with scope {chosen.value}"
                + (f" (was {before.value})" if before is not None else ""),
                facts={"role": target.name, "permission": permission, "scope": [before, chosen]},
            )
            op.emit(
                "role.granted",
                {
                    "role": target.name,
                    "permission": permission,
                    "scope": chosen,
                    "previous_scope": before,
                },
                record_type="role",
                record_id=target.id,
            )
            return GrantInfo(permission, chosen)

    def revoke(self, role: str, permission: str, *, actor: User | None = None) -> None:
        """Take ``permission`` away from the role; an error if the role does not grant it."""
        with self.crm.transaction(actor) as op:
            op.access.require("role:manage")
            target = find_role(op, role)
            _refuse_admin(target, "revoke from")
            self._check_permission(permission)
            grant = op.session.scalar(
                select(RoleGrant).where(
                    RoleGrant.role_id == target.id, RoleGrant.permission == permission
                )
            )
            if grant is None:
                raise CRMError(f"role {target.name!r} does not grant {permission}")
            before = Scope(grant.scope)
            op.session.delete(grant)
            op.session.flush()
            flag_sensitive(
                op,
                "role.revoke",
                entity="role",
                record_id=target.id,
                detail=f"role {target.name!r} no longer grants {permission}",
                facts={"role": target.name, "permission": permission, "scope": [before, None]},
            )
            op.emit(
                "role.revoked",
                {"role": target.name, "permission": permission, "previous_scope": before},
                record_type="role",
                record_id=target.id,
            )

    def set_field_rule(
        self,
        role: str,
        entity: str,
        field: str,
        access: FieldAccess | str,
        *,
        actor: User | None = None,
    ) -> FieldRuleInfo:
        """Hide a field from the role, or make it read-only. A user with several roles is
        restricted only if every one of them restricts the field."""
        with self.crm.transaction(actor) as op:
            op.access.require("role:manage")
            target = find_role(op, role)
            self._check_field(entity, field)
            chosen = _access(access)
            rule = _field_rule(op, target.id, entity, field)
            before = FieldAccess(rule.access) if rule is not None else None
            if before is chosen:
                return FieldRuleInfo(entity, field, chosen)
            if rule is None:
                op.session.add(
                    FieldRule(role_id=target.id, entity=entity, field=field, access=chosen.value)
                )
            else:
                rule.access = chosen.value
            op.session.flush()
            flag_sensitive(
                op,
                "role.field_rule",
                entity="role",
                record_id=target.id,
                detail=f"role {target.name!r}: {entity}.{field} is {chosen.value}",
                facts={
                    "role": target.name,
                    "field": f"{entity}.{field}",
                    "access": [before, chosen],
                },
            )
            op.emit(
                "role.field_rule_set",
                {
                    "role": target.name,
                    "field": f"{entity}.{field}",
                    "access": chosen,
                    "previous_access": before,
                },
                record_type="role",
                record_id=target.id,
            )
            return FieldRuleInfo(entity, field, chosen)

    def clear_field_rule(
        self, role: str, entity: str, field: str, *, actor: User | None = None
    ) -> None:
        """Remove the role's rule on a field; an error if it has none."""
        with self.crm.transaction(actor) as op:
            op.access.require("role:manage")
            target = find_role(op, role)
            self._check_field(entity, field)
            rule = _field_rule(op, target.id, entity, field)
            if rule is None:
                raise CRMError(f"role {target.name!r} has no rule on {entity}.{field}")
            before = FieldAccess(rule.access)
            op.session.delete(rule)
            op.session.flush()
            flag_sensitive(
                op,
                "role.clear_field_rule",
                entity="role",
                record_id=target.id,
                detail=f"role {target.name!r}: rule on {entity}.{field} removed",
                facts={"role": target.name, "field": f"{entity}.{field}", "access": [before, None]},
            )
            op.emit(
                "role.field_rule_cleared",
                {"role": target.name, "field": f"{entity}.{field}", "previous_access": before},
                record_type="role",
                record_id=target.id,
            )

    def assign(self, username: str, role: str, *, actor: User | None = None) -> bool:
        """Give a user a role; ``False`` (and nothing audited) if they hold it already."""
        with self.crm.transaction(actor) as op:
            op.access.require("role:manage")
            user = find_user(op.session, username)
            return assign_role_in(op, user, find_role(op, role))

    def unassign(self, username: str, role: str, *, actor: User | None = None) -> bool:
        """Take a role from a user; ``False`` if they do not hold it. Taking ``admin`` from
        the last active administrator is refused."""
        with self.crm.transaction(actor) as op:
            op.access.require("role:manage")
            user = find_user(op.session, username)
            target = find_role(op, role)
            membership = op.session.get(UserRole, (user.id, target.id))
            if membership is None:
                return False
            if target.name == ADMIN_ROLE and not user.is_admin:
                refuse_losing_last_admin(
                    op.session, user, f"take the admin role from {user.username}"
                )
            op.session.delete(membership)
            op.session.flush()
            flag_sensitive(
                op,
                "role.unassign",
                entity="role",
                record_id=target.id,
                detail=f"role {target.name!r} taken from {user.username!r}",
                facts={"role": target.name, "username": user.username, "holds": [True, False]},
            )
            op.emit(
                "role.unassigned",
                {"role": target.name, "username": user.username},
                record_type="role",
                record_id=target.id,
            )
            return True

    # -- validation ------------------------------------------------------------------------

    def _check_permission(self, permission: str) -> None:
        known = known_permissions(self.crm)
        if permission in known:
            return
        message = f"unknown permission {permission!r}"
        close = difflib.get_close_matches(permission, known, n=3, cutoff=0.6)
        if close:
            message += "; did you mean " + " or ".join(close) + "?"
        resource = permission.partition(":")[0]
        child = self.crm.entities.get(resource)
        if child is not None and child.parent is not None:
            action = permission.partition(":")[2]
            raise ValidationError(
                [
                    FieldError(
                        "permission",
                        f"{resource} records follow their {child.parent.entity}: there is"
                        f" no {permission!r} to grant; grant {child.permission(action)}",
                    )
                ],
                "grant",
            )
        same = [name for name in known if name.startswith(f"{resource}:")]
        if same and not close:
            message += f"; {resource} has: {', '.join(same)}"
        elif not same and not close:
            message += "; list them with: crmkit roles permissions"
        raise ValidationError([FieldError("permission", message)], "grant")

    def _default_scope(self, permission: str) -> Scope:
        return Scope.OWN if permission.partition(":")[0] in self.crm.entities else Scope.ALL

    def _check_field(self, entity: str, field: str) -> None:
        entity_type = self.crm.entity(entity)  # an unknown entity lists the known ones
        fields = [
            *(name for name in entity_type.columns if name not in UNRULED_FIELDS),
            *self.crm.custom_fields[entity],
        ]
        if field in fields:
            return
        message = f"{entity} has no field {field!r}"
        close = difflib.get_close_matches(field, fields, n=3, cutoff=0.6)
        if close:
            message += "; did you mean " + " or ".join(close) + "?"
        else:
            message += f"; its fields: {', '.join(sorted(fields))}"
        raise ValidationError([FieldError("field", message)], "field rule")


def _scope(value: Scope | str) -> Scope:
    try:
        return Scope(value)
    except ValueError:
        raise ValidationError(
            [
                FieldError(
                    "scope",
                    f"unknown scope {value!r}; use one of {', '.join(s.value for s in Scope)}"
                    " (own: their records; team: and their team's; subtree: and every team"
                    " below; all: every record)",
                )
            ],
            "grant",
        ) from None


def _access(value: FieldAccess | str) -> FieldAccess:
    try:
        return FieldAccess(value)
    except ValueError:
        raise ValidationError(
            [
                FieldError(
                    "access",
                    f"unknown access {value!r}; use {' or '.join(a.value for a in FieldAccess)}",
                )
            ],
            "field rule",
        ) from None


def _refuse_admin(role: Role, verb: str) -> None:
    if role.name == ADMIN_ROLE:
        raise CRMError(
            f"cannot {verb} the admin role: it always holds every permission with scope all;"
            " create a role of your own for a narrower set (crmkit roles create NAME)"
        )


def _field_rule(op: Operation, role_id: int, entity: str, field: str) -> FieldRule | None:
    return op.session.scalar(
        select(FieldRule).where(
            FieldRule.role_id == role_id, FieldRule.entity == entity, FieldRule.field == field
        )
    )


def _grants(op: Operation, role_id: int) -> dict[str, str]:
    rows: Iterable[tuple[str, str]] = op.session.execute(
        select(RoleGrant.permission, RoleGrant.scope)
        .where(RoleGrant.role_id == role_id)
        .order_by(RoleGrant.permission)
    ).all()
    return dict(rows)


def _info(op: Operation, role: Role) -> RoleInfo:
    rules = op.session.scalars(
        select(FieldRule)
        .where(FieldRule.role_id == role.id)
        .order_by(FieldRule.entity, FieldRule.field)
    )
    holders = op.session.scalars(
        select(User.username)
        .join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role_id == role.id)
        .order_by(User.username)
    )
    return RoleInfo(
        id=role.id,
        name=role.name,
        description=role.description,
        is_builtin=role.is_builtin,
        grants=tuple(
            GrantInfo(permission, Scope(scope))
            for permission, scope in _grants(op, role.id).items()
        ),
        field_rules=tuple(
            FieldRuleInfo(rule.entity, rule.field, FieldAccess(rule.access)) for rule in rules
        ),
        holders=tuple(holders),
    )
