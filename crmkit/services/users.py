"""Users and teams: who works in the CRM, how they are organised (a team tree and a manager
chain), and what happens when somebody leaves (deactivation and the handover of their open
records).

Every method takes ``actor`` (``None`` is the system) and runs in one transaction. Changes
need ``user:manage`` or ``team:manage``; reads are open to every user (owners and teams are
shown next to every record).
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from attrs import frozen
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from crmkit.assignment.config import HandoverFallback
from crmkit.db.base import utcnow
from crmkit.entities.customers import Account, Contact, Lead, LeadStatus
from crmkit.entities.deals import Deal, Stage, StageKind
from crmkit.entities.followup import Task, TaskStatus
from crmkit.entities.organisation import Role, Team, User
from crmkit.errors import CRMError, FieldError, NotFoundError, ValidationError
from crmkit.permissions.access import subtree
from crmkit.permissions.audit import audit_rows, flag_sensitive
from crmkit.permissions.catalogue import ASSIGNABLE
from crmkit.permissions.models import ApiToken, UserRole
from crmkit.services.assignment import choose_owner, ownership_reason

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.services.operation import Operation

#: The name of the built-in role whose holders count as administrators.
ADMIN_ROLE = "admin"
#: The roles a new user gets unless told otherwise.
DEFAULT_ROLES = ("sales_rep",)


class UnknownNameError(NotFoundError):
    """A user, team or role name that does not exist; the message lists close matches."""

    def __init__(self, kind: str, name: str, known: Sequence[str]) -> None:
        super().__init__(kind, name)
        self.args = (unknown_name_message(kind, name, known),)


def unknown_name_message(kind: str, name: str, known: Sequence[str]) -> str:
    """``role 'salesrep' not found; did you mean 'sales_rep'?`` (or the known names, when
    there are few)."""
    message = f"{kind} {name!r} not found"
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if close:
        message += "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    elif not known:
        message += f" (there are no {kind}s yet)"
    elif len(known) <= 12:
        message += f"; known: {', '.join(sorted(known))}"
    return message


# -- lookups shared by the user, role, token and audit services -------------------------------


def find_user(session: Session, username: str) -> User:
    """The user called ``username``; ``UnknownNameError`` suggesting close names if none."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        known = list(session.scalars(select(User.username)))
        raise UnknownNameError("user", username, known)
    return user


def find_team(session: Session, name: str) -> Team:
    """The team called ``name``; ``UnknownNameError`` suggesting close names if none."""
    team = session.scalar(select(Team).where(Team.name == name))
    if team is None:
        known = list(session.scalars(select(Team.name)))
        raise UnknownNameError("team", name, known)
    return team


def active_admin_ids(session: Session) -> set[int]:
    """Ids of the active administrators: users flagged ``is_admin`` and holders of the
    built-in ``admin`` role."""
    holders = (
        select(UserRole.user_id)
        .join(Role, Role.id == UserRole.role_id)
        .where(Role.name == ADMIN_ROLE)
    )
    query = select(User.id).where(User.is_active, or_(User.is_admin, User.id.in_(holders)))
    return set(session.scalars(query))


def refuse_losing_last_admin(session: Session, user: User, what: str) -> None:
    """Refuse ``what`` (a deactivation, an unassignment) when ``user`` is the only active
    administrator left: nobody could manage the CRM afterwards."""
    admins = active_admin_ids(session)
    if user.id in admins and len(admins) == 1:
        raise CRMError(
            f"cannot {what}: {user.username} is the last active administrator; make another"
            " user an admin first (crmkit roles assign USER admin)"
        )


def team_parents(session: Session) -> dict[int, int | None]:
    """Every team's parent id, by team id."""
    return dict(session.execute(select(Team.id, Team.parent_id)).all())


# -- value objects -----------------------------------------------------------------------------


@frozen
class TeamInfo:
    """One team of the tree: its parent's name, its depth (0 at a root), the names from
    the root down to it, and how many active users it has."""

    id: int
    name: str
    parent: str | None
    depth: int
    path: tuple[str, ...]
    members: int


@frozen
class UserProfile:
    """A user with the names of their team, manager and roles (for listings)."""

    id: int
    username: str
    display_name: str
    email: str | None
    team_id: int | None
    team: str | None
    manager_id: int | None
    manager: str | None
    roles: tuple[str, ...]
    is_admin: bool
    is_active: bool
    deactivated_at: dt.datetime | None


@frozen
class Deactivation:
    """What deactivating a user did: who took over their open records (``None``: the shared
    pool), how many of each entity moved, and how many tokens were revoked."""

    username: str
    successor: str | None
    handed_over: Mapping[str, int]
    tokens_revoked: int


# -- the handover of a departing user's records ----------------------------------------------


def open_record_ids(op: Operation, user: User) -> dict[str, list[int]]:
    """Ids of the open records ``user`` owns, by entity: contacts, accounts, leads not yet
    converted, deals in an open stage, open tasks. Activities are history and stay theirs."""
    owned = {
        "contact": select(Contact.id).where(Contact.owner_id == user.id),
        "account": select(Account.id).where(Account.owner_id == user.id),
        "lead": select(Lead.id).where(
            Lead.owner_id == user.id, Lead.status != LeadStatus.CONVERTED
        ),
        "deal": select(Deal.id)
        .join(Stage, Stage.id == Deal.stage_id)
        .where(Deal.owner_id == user.id, Stage.kind == StageKind.OPEN),
        "task": select(Task.id).where(Task.owner_id == user.id, Task.status == TaskStatus.OPEN),
    }
    models: dict[str, Any] = {
        "contact": Contact,
        "account": Account,
        "lead": Lead,
        "deal": Deal,
        "task": Task,
    }
    return {
        entity: list(
            op.session.scalars(
                query.where(models[entity].deleted_at.is_(None)).order_by(models[entity].id)
            )
        )
        for entity, query in owned.items()
    }


def successor_of(session: Session, user: User) -> User | None:
    """Who takes over ``user``'s records: their manager, or the manager's manager when the
    manager is inactive too, and so on up the chain; ``None`` when nobody active is found."""
    seen = {user.id}
    manager_id = user.manager_id
    while manager_id is not None and manager_id not in seen:
        seen.add(manager_id)
        manager = session.get(User, manager_id)
        if manager is None:
            return None
        if manager.is_active:
            return manager
        manager_id = manager.manager_id
    return None


def hand_over_records(op: Operation, user: User, successor: User | None) -> dict[str, int]:
    """Give ``user``'s open records to new owners: each contact, account, lead and deal to
    the member the assignment rules choose for it (the departing user skipped); a record no
    rule matches goes back to the shared pool (no owner; the team stays), or, with
    ``[crmkit.assignment] handover_without_rule = "manager"``, to ``successor`` (owner and
    team become theirs; the pool when there is none). Open tasks go to ``successor`` (the
    pool without one). Returns the number moved per entity.

    This is the one place a departing user's records change hands. Each record is updated
    through its record service bound to ``op``, so every handover is validated, audited,
    evented and written to the ownership history like any other change.
    """
    fallback = op.crm.settings.assignment.handover_without_rule
    pool: dict[str, object] = {"owner_id": None}
    to_successor: dict[str, object] = pool
    if successor is not None:
        to_successor = {"owner_id": successor.id, "team_id": successor.team_id}
    if fallback is HandoverFallback.MANAGER:
        default, to = to_successor, "their manager" if successor else "the shared pool"
    else:
        default, to = pool, "the shared pool"
    moved: dict[str, int] = {}
    with op.elevated():  # the caller holds user:manage; that is what authorises the handover
        for entity, ids in open_record_ids(op, user).items():
            records = op.records(entity)
            model: Any = records.model
            for record_id in ids:
                decision = None
                if entity in ASSIGNABLE:
                    values = records.snapshot(op.session.get(model, record_id))
                    decision = choose_owner(op, entity, values, exclude_user_id=user.id).decision
                if decision is not None:
                    changes: dict[str, object] = {
                        "owner_id": decision.user_id,
                        "team_id": decision.team_id,
                    }
                    why = f"{user.username} deactivated; rule {decision.rule}: {decision.reason}"
                elif entity in ASSIGNABLE:
                    changes, why = default, f"{user.username} deactivated; to {to}"
                else:  # tasks are work to be done, not customers: the manager takes them
                    changes = to_successor
                    why = f"{user.username} deactivated; to " + (
                        f"successor {successor.username}" if successor else "the shared pool"
                    )
                with ownership_reason(op, "handover", why):
                    records.update(record_id, changes)
            moved[entity] = len(ids)
    return moved


# -- the service -------------------------------------------------------------------------------


class UserService:
    """Users and teams: create, organise, deactivate, and list them."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    # -- teams ---------------------------------------------------------------------------------

    def create_team(
        self, name: str, *, parent: str | None = None, actor: User | None = None
    ) -> Team:
        """Create a team, optionally under a parent team (by name). Needs ``team:manage``."""
        name = name.strip()
        if not name:
            raise ValidationError([FieldError("name", "is required")], "team")
        with self.crm.transaction(actor) as op:
            op.access.require("team:manage")
            if op.session.scalar(select(Team.id).where(Team.name == name)):
                raise ValidationError([FieldError("name", f"team {name!r} exists")], "team")
            parent_id = find_team(op.session, parent).id if parent is not None else None
            team = Team(name=name, parent_id=parent_id)
            op.session.add(team)
            op.session.flush()
            audit_rows(
                op,
                "team.create",
                "team",
                [(team.id, {"name": [None, name], "parent": [None, parent]})],
            )
            op.emit(
                "team.created",
                {"name": name, "parent_id": parent_id, "parent": parent},
                record_type="team",
                record_id=team.id,
            )
            return team

    def teams(self, *, actor: User | None = None) -> list[TeamInfo]:
        """Every team, depth first from the roots (children by name): the order of a tree
        view."""
        with self.crm.transaction(actor, write=False) as op:
            teams = list(op.session.scalars(select(Team).order_by(Team.name)))
            members = dict(
                op.session.execute(
                    select(User.team_id, func.count())
                    .where(User.is_active, User.team_id.is_not(None))
                    .group_by(User.team_id)
                ).all()
            )
        by_id = {team.id: team for team in teams}
        children: dict[int | None, list[Team]] = {}
        for team in teams:
            children.setdefault(team.parent_id, []).append(team)
        result: list[TeamInfo] = []

        def visit(team: Team, path: tuple[str, ...]) -> None:
            path = (*path, team.name)
            parent = by_id[team.parent_id].name if team.parent_id in by_id else None
            result.append(
                TeamInfo(team.id, team.name, parent, len(path) - 1, path, members.get(team.id, 0))
            )
            for child in children.get(team.id, []):
                visit(child, path)

        for root in children.get(None, []):
            visit(root, ())
        return result

    def move_team(self, name: str, new_parent: str | None, *, actor: User | None = None) -> Team:
        """Move a team (with everything below it) under ``new_parent``, or to the top with
        ``None``. Refused when ``new_parent`` is the team itself or below it (a cycle); the
        error names the cycle. Needs ``team:manage``; audited as sensitive, because it
        changes which records every manager above sees."""
        with self.crm.transaction(actor) as op:
            op.access.require("team:manage")
            team = find_team(op.session, name)
            parent = find_team(op.session, new_parent) if new_parent is not None else None
            parents = team_parents(op.session)
            if parent is not None and parent.id in subtree(parents, team.id):
                raise CRMError(
                    f"cannot move team {team.name!r} under {parent.name!r}: that would make a"
                    f" cycle: {_cycle_path(op.session, parents, team.id, parent.id)}"
                    " (each the parent of the next)"
                )
            old_parent_id = team.parent_id
            new_parent_id = parent.id if parent is not None else None
            if old_parent_id == new_parent_id:
                return team
            old_parent = op.session.get(Team, old_parent_id) if old_parent_id else None
            old_name = old_parent.name if old_parent is not None else None
            team.parent_id = new_parent_id
            op.session.flush()
            flag_sensitive(
                op,
                "team.move",
                entity="team",
                record_id=team.id,
                detail=f"team {team.name!r} moved from under {old_name!r} to under {new_parent!r}",
                facts={"team": team.name, "parent": [old_name, new_parent]},
            )
            op.emit(
                "team.moved",
                {"name": team.name, "old_parent": old_name, "new_parent": new_parent},
                record_type="team",
                record_id=team.id,
            )
            return team

    # -- users ---------------------------------------------------------------------------------

    def create(
        self,
        username: str,
        *,
        display_name: str = "",
        email: str | None = None,
        team: str | None = None,
        admin: bool = False,
        roles: Sequence[str] | None = None,
        manager: str | None = None,
        actor: User | None = None,
    ) -> User:
        """Create a user, optionally in a team and under a manager (by name), holding
        ``roles`` (by default ``sales_rep``, or ``admin`` for an administrator; built-in roles
        are created on first use).

        Needs ``user:manage``; making an administrator (``admin=True`` or the ``admin`` role)
        needs ``role:manage`` as well and is audited as sensitive.
        """
        from crmkit.services.roles import assign_role_in, find_role

        username = username.strip()
        if not username:
            raise ValidationError([FieldError("username", "is required")], "user")
        with self.crm.transaction(actor) as op:
            access = op.access
            access.require("user:manage")
            if roles is None:
                roles = (ADMIN_ROLE,) if admin else DEFAULT_ROLES
            makes_admin = admin or ADMIN_ROLE in roles
            if makes_admin:
                access.require("role:manage")
            if op.session.scalar(select(User.id).where(User.username == username)):
                raise ValidationError([FieldError("username", f"user {username!r} exists")], "user")
            team_id = find_team(op.session, team).id if team is not None else None
            boss = find_user(op.session, manager) if manager is not None else None
            if boss is not None and not boss.is_active:
                raise CRMError(f"manager {boss.username!r} is deactivated; pick an active user")
            held = [find_role(op, role) for role in dict.fromkeys(roles)]
            user = User(
                username=username,
                display_name=display_name or username,
                email=email,
                team_id=team_id,
                manager_id=boss.id if boss is not None else None,
                is_admin=admin,
            )
            op.session.add(user)
            op.session.flush()
            for role in held:
                assign_role_in(op, user, role, audit=False)
            facts = {
                "username": [None, username],
                "team": [None, team],
                "manager": [None, manager],
                "roles": [None, [role.name for role in held]],
                "is_admin": [None, admin],
            }
            if makes_admin:
                flag_sensitive(
                    op,
                    "user.create",
                    entity="user",
                    record_id=user.id,
                    detail=f"administrator {username!r} created",
                    facts=facts,
                )
            else:
                audit_rows(op, "user.create", "user", [(user.id, facts)])
            op.emit(
                "user.created",
                {
                    "username": username,
                    "team_id": team_id,
                    "manager": manager,
                    "roles": [role.name for role in held],
                    "is_admin": admin,
                },
                record_type="user",
                record_id=user.id,
            )
            return user

    def get(self, username: str, *, actor: User | None = None) -> User:
        """The user called ``username``, active or not (see ``is_active`` and
        ``deactivated_at``); an unknown name suggests close ones."""
        with self.crm.transaction(actor, write=False) as op:
            return find_user(op.session, username)

    def profiles(
        self, *, include_inactive: bool = True, actor: User | None = None
    ) -> list[UserProfile]:
        """Every user with their team, manager and role names (for listings)."""
        with self.crm.transaction(actor, write=False) as op:
            query = select(User).order_by(User.username)
            if not include_inactive:
                query = query.where(User.is_active)
            users = list(op.session.scalars(query))
            return _profiles(op.session, users)

    def profile(self, username: str, *, actor: User | None = None) -> UserProfile:
        """One user with their team, manager and role names."""
        with self.crm.transaction(actor, write=False) as op:
            return _profiles(op.session, [find_user(op.session, username)])[0]

    def set_manager(self, username: str, manager: str | None, *, actor: User | None = None) -> User:
        """Make ``manager`` the user's manager (``None``: nobody). Refused when the manager
        is the user, is deactivated, or reports to the user (directly or further up: a
        cycle, which the error names). Needs ``user:manage``."""
        with self.crm.transaction(actor) as op:
            op.access.require("user:manage")
            user = find_user(op.session, username)
            boss = find_user(op.session, manager) if manager is not None else None
            if boss is not None:
                if boss.id == user.id:
                    raise CRMError(f"{user.username} cannot be their own manager")
                if not boss.is_active:
                    raise CRMError(f"manager {boss.username!r} is deactivated; pick an active user")
                chain = _manager_chain(op.session, boss)
                if user.id in [link.id for link in chain]:
                    names = [user.username, *(link.username for link in chain)]
                    names = names[: names.index(user.username, 1) + 1]
                    raise CRMError(
                        f"cannot make {boss.username} the manager of {user.username}: that would"
                        f" make a cycle: {' → '.join(names)} (each reports to the next)"
                    )
            old = op.session.get(User, user.manager_id) if user.manager_id else None
            old_name = old.username if old is not None else None
            if old_name == manager:
                return user
            user.manager_id = boss.id if boss is not None else None
            op.session.flush()
            audit_rows(
                op, "user.set_manager", "user", [(user.id, {"manager": [old_name, manager]})]
            )
            op.emit(
                "user.manager_changed",
                {"username": user.username, "old_manager": old_name, "new_manager": manager},
                record_type="user",
                record_id=user.id,
            )
            return user

    def set_team(self, username: str, team: str | None, *, actor: User | None = None) -> User:
        """Move the user to ``team`` (``None``: no team). Their records keep their team.
        Needs ``user:manage``."""
        with self.crm.transaction(actor) as op:
            op.access.require("user:manage")
            user = find_user(op.session, username)
            new = find_team(op.session, team) if team is not None else None
            old = op.session.get(Team, user.team_id) if user.team_id else None
            old_name = old.name if old is not None else None
            if old_name == team:
                return user
            user.team_id = new.id if new is not None else None
            op.session.flush()
            audit_rows(op, "user.set_team", "user", [(user.id, {"team": [old_name, team]})])
            op.emit(
                "user.team_changed",
                {"username": user.username, "old_team": old_name, "new_team": team},
                record_type="user",
                record_id=user.id,
            )
            return user

    def deactivate(self, username: str, *, actor: User | None = None) -> Deactivation:
        """Deactivate a departing user, in one transaction: they are marked inactive, every
        API token of theirs is revoked at once, and their open records (contacts, accounts,
        leads not converted, open deals, open tasks) go to their manager, or, with no active
        manager up the chain, to the shared pool (no owner). Emits ``user.deactivated`` and
        is audited as sensitive.

        Refused, with nothing changed, for an unknown or already inactive user and for the
        last active administrator. Needs ``user:manage``.
        """
        with self.crm.transaction(actor) as op:
            op.access.require("user:manage")
            user = find_user(op.session, username)
            if not user.is_active:
                since = f" since {user.deactivated_at:%Y-%m-%d}" if user.deactivated_at else ""
                raise CRMError(f"user {user.username!r} is already deactivated{since}")
            refuse_losing_last_admin(op.session, user, f"deactivate {user.username}")
            now = utcnow()
            user.is_active = False
            user.deactivated_at = now
            op.session.flush()
            revoked = op.session.execute(  # type: ignore[attr-defined]
                update(ApiToken)
                .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                .values(revoked_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            successor = successor_of(op.session, user)
            moved = hand_over_records(op, user, successor)
            result = Deactivation(
                username=user.username,
                successor=successor.username if successor is not None else None,
                handed_over=moved,
                tokens_revoked=int(revoked or 0),
            )
            to = repr(result.successor) if result.successor else "the shared pool"
            flag_sensitive(
                op,
                "user.deactivate",
                entity="user",
                record_id=user.id,
                detail=f"user {user.username!r} deactivated; {sum(moved.values())} open"
                f" record(s) handed to {to}; {result.tokens_revoked} token(s) revoked",
                facts={
                    "username": user.username,
                    "is_active": [True, False],
                    "successor": result.successor,
                    "handed_over": moved,
                    "tokens_revoked": result.tokens_revoked,
                },
            )
            op.emit(
                "user.deactivated",
                {
                    "username": user.username,
                    "successor": result.successor,
                    "handed_over": moved,
                    "tokens_revoked": result.tokens_revoked,
                },
                record_type="user",
                record_id=user.id,
            )
            return result

    def list(self, *, include_inactive: bool = True, actor: User | None = None) -> list[User]:
        """Every user by username; deactivated ones too unless ``include_inactive`` is false
        (their ``is_active`` is false)."""
        with self.crm.transaction(actor, write=False) as op:
            query = select(User).order_by(User.username)
            if not include_inactive:
                query = query.where(User.is_active)
            return list(op.session.scalars(query))


def _cycle_path(
    session: Session, parents: Mapping[int, int | None], team_id: int, new_parent_id: int
) -> str:
    """``East → Shanghai → East``: from the moved team down to its would-be parent and
    back."""
    chain = [new_parent_id]
    while chain[-1] != team_id:
        parent = parents.get(chain[-1])
        if parent is None:  # not below after all (cannot happen when called on a cycle)
            break
        chain.append(parent)
    names = dict(session.execute(select(Team.id, Team.name)).all())
    down = [names[team] for team in reversed(chain)]
    return " → ".join([*down, names[team_id]])


def _manager_chain(session: Session, user: User) -> list[User]:
    """``user`` and everyone above them (their manager, the manager's manager, ...)."""
    chain = [user]
    seen = {user.id}
    while chain[-1].manager_id is not None and chain[-1].manager_id not in seen:
        boss = session.get(User, chain[-1].manager_id)
        if boss is None:
            break
        chain.append(boss)
        seen.add(boss.id)
    return chain


def _profiles(session: Session, users: Sequence[User]) -> list[UserProfile]:
    teams = dict(session.execute(select(Team.id, Team.name)).all())
    usernames = dict(session.execute(select(User.id, User.username)).all())
    ids = [user.id for user in users]
    held: dict[int, list[str]] = {}
    for user_id, role in session.execute(
        select(UserRole.user_id, Role.name)
        .join(Role, Role.id == UserRole.role_id)
        .where(UserRole.user_id.in_(ids))
        .order_by(Role.name)
    ):
        held.setdefault(user_id, []).append(role)
    return [
        UserProfile(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            email=user.email,
            team_id=user.team_id,
            team=teams.get(user.team_id) if user.team_id is not None else None,
            manager_id=user.manager_id,
            manager=usernames.get(user.manager_id) if user.manager_id is not None else None,
            roles=tuple(held.get(user.id, ())),
            is_admin=user.is_admin,
            is_active=user.is_active,
            deactivated_at=user.deactivated_at,
        )
        for user in users
    ]
