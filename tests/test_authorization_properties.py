"""Property: for random team trees, users, grants and contacts, the contacts a user can list
(page by page) and count are exactly those a plain reference computation of the scope rules
allows.

The reference, written from the design rather than from crmkit's code:

- an administrator sees every live contact;
- a user without ``contact:read`` in any of their roles is refused (``PermissionDenied``);
- otherwise the widest scope among their roles counts, and a contact is visible when the user
  owns it, or the scope is ``all``, or the scope is ``team`` and the contact's team is the
  user's team, or the scope is ``subtree`` and the contact's team is the user's team or any
  team below it. A user without a team has only their own contacts with ``team``/``subtree``.
- soft-deleted contacts are never visible.

Each example builds its world with direct inserts in one transaction, after removing the
previous example's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import crmkit
from crmkit.entities.customers import Contact
from crmkit.entities.organisation import Role, Team, User
from crmkit.errors import PermissionDenied
from crmkit.permissions.models import RoleGrant, UserRole

SCOPES = ("own", "team", "subtree", "all")  # narrowest to widest


@dataclass(frozen=True)
class UserSpec:
    team: int | None  # index into the world's teams
    roles: tuple[str | None, ...]  # per role, its contact:read scope (None: no such grant)
    admin: bool


@dataclass(frozen=True)
class ContactSpec:
    owner: int | None  # index into the world's users
    team: int | None
    deleted: bool


@dataclass(frozen=True)
class WorldSpec:
    parents: tuple[int | None, ...]  # per team, the index of its parent (always an earlier one)
    users: tuple[UserSpec, ...]
    contacts: tuple[ContactSpec, ...]
    page_size: int


def maybe_index(size: int) -> st.SearchStrategy[int | None]:
    """An index below ``size`` or ``None``, ``None`` no likelier than any one index (so
    trees grow deep and most users and contacts have a team)."""
    return st.sampled_from([None, *range(size)])


@st.composite
def worlds(draw: st.DrawFn) -> WorldSpec:
    # Sizes are drawn first so that examples are not mostly tiny lists.
    team_count = draw(st.integers(0, 8))
    user_count = draw(st.integers(1, 6))
    contact_count = draw(st.integers(0, 30))
    parents = tuple(draw(maybe_index(index)) for index in range(team_count))
    user = st.builds(
        UserSpec,
        team=maybe_index(team_count),
        roles=st.integers(0, 2)
        .flatmap(lambda n: st.lists(st.sampled_from([None, *SCOPES]), min_size=n, max_size=n))
        .map(tuple),
        admin=st.integers(0, 9).map(lambda n: n == 0),
    )
    contact = st.builds(
        ContactSpec,
        owner=maybe_index(user_count),
        team=maybe_index(team_count),
        deleted=st.integers(0, 9).map(lambda n: n == 0),
    )
    users = draw(st.lists(user, min_size=user_count, max_size=user_count))
    contacts = draw(st.lists(contact, min_size=contact_count, max_size=contact_count))
    return WorldSpec(parents, tuple(users), tuple(contacts), draw(st.integers(1, 8)))


# -- the reference -----------------------------------------------------------------------------


def below(parents: tuple[int | None, ...], team: int) -> set[int]:
    """``team`` and every team under it."""
    found = {team}
    grew = True
    while grew:
        grew = False
        for child, parent in enumerate(parents):
            if parent in found and child not in found:
                found.add(child)
                grew = True
    return found


def reference(world: WorldSpec, user_index: int) -> set[int] | None:
    """The indexes of the contacts the user may see; ``None`` when they may not read
    contacts at all."""
    user = world.users[user_index]
    live = {i for i, contact in enumerate(world.contacts) if not contact.deleted}
    if user.admin:
        return live
    scopes = [scope for scope in user.roles if scope is not None]
    if not scopes:
        return None
    scope = max(scopes, key=SCOPES.index)
    if scope == "all":
        return live
    teams: set[int] = set()
    if user.team is not None and scope == "team":
        teams = {user.team}
    elif user.team is not None and scope == "subtree":
        teams = below(world.parents, user.team)
    return {
        i for i in live if world.contacts[i].owner == user_index or world.contacts[i].team in teams
    }


# -- building a world in the database ---------------------------------------------------------


def clear(crm: crmkit.CRM) -> None:
    """Remove the previous example's contacts, users, roles and teams."""
    with crm.transaction() as op:
        for model in (Contact, UserRole, RoleGrant, Role, User):
            op.session.execute(sa.delete(model))
        op.session.execute(sa.update(Team).values(parent_id=None))
        op.session.execute(sa.delete(Team))


def build(crm: crmkit.CRM, world: WorldSpec) -> tuple[list[User], list[int]]:
    """Insert the world; return its users and its contact ids (in spec order)."""
    clear(crm)
    with crm.transaction() as op:
        session = op.session
        teams: list[Team] = []
        for index, parent in enumerate(world.parents):
            team = Team(
                name=f"team {index}", parent_id=teams[parent].id if parent is not None else None
            )
            session.add(team)
            session.flush()
            teams.append(team)
        users: list[User] = []
        for index, spec in enumerate(world.users):
            user = User(
                username=f"user{index}",
                team_id=teams[spec.team].id if spec.team is not None else None,
                is_admin=spec.admin,
            )
            session.add(user)
            session.flush()
            users.append(user)
            for number, scope in enumerate(spec.roles):
                role = Role(name=f"user{index}-role{number}")
                session.add(role)
                session.flush()
                session.add(UserRole(user_id=user.id, role_id=role.id))
                # a role without contact:read still grants something, which must not count
                grant = ("contact:read", scope) if scope is not None else ("deal:read", "all")
                session.add(RoleGrant(role_id=role.id, permission=grant[0], scope=grant[1]))
        contacts = [
            Contact(
                full_name=f"contact {index}",
                owner_id=users[spec.owner].id if spec.owner is not None else None,
                team_id=teams[spec.team].id if spec.team is not None else None,
                deleted_at=dt.datetime.now(dt.UTC) if spec.deleted else None,
            )
            for index, spec in enumerate(world.contacts)
        ]
        session.add_all(contacts)
        session.flush()
        session.expunge_all()
        return users, [contact.id for contact in contacts]


def listed(crm: crmkit.CRM, user: User, page_size: int, most: int) -> list[int]:
    """Every contact id the user's list shows, page by page (failing once it has shown
    more than ``most``)."""
    ids: list[int] = []
    cursor = None
    while True:
        page = crm.contacts.list(limit=page_size, cursor=cursor, actor=user)
        ids += [record.id for record in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids
        assert len(ids) <= most, "the list keeps going"


# -- the property ------------------------------------------------------------------------------


@pytest.fixture
def crm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    return make_crm()


def contacts_everywhere(teams: int, users: int) -> tuple[ContactSpec, ...]:
    """A contact for every (owner, team) pair, owners and teams ``None`` included, and a
    deleted one."""
    return (
        *(
            ContactSpec(owner, team, deleted=False)
            for owner in [None, *range(users)]
            for team in [None, *range(teams)]
        ),
        ContactSpec(owner=0, team=0, deleted=True),
    )


#: Hand-picked worlds run on every test run, next to the random ones: a three-level tree
#: (0 → 1 → 2, and 3 apart) with one user per scope, a user without a team, one without
#: the grant, one whose second role is the wider, and an administrator.
TREE = (None, 0, 1, None)
HAND_PICKED = (
    WorldSpec(
        parents=TREE,
        users=(
            UserSpec(team=0, roles=("subtree",), admin=False),
            UserSpec(team=1, roles=("subtree",), admin=False),
            UserSpec(team=1, roles=("team",), admin=False),
            UserSpec(team=2, roles=("own",), admin=False),
            UserSpec(team=None, roles=("subtree",), admin=False),
            UserSpec(team=3, roles=("all",), admin=False),
        ),
        contacts=contacts_everywhere(4, 6),
        page_size=4,
    ),
    WorldSpec(
        parents=TREE,
        users=(
            UserSpec(team=1, roles=("own", "team"), admin=False),
            UserSpec(team=1, roles=("team", "subtree"), admin=False),
            UserSpec(team=2, roles=(None,), admin=False),
            UserSpec(team=2, roles=(), admin=False),
            UserSpec(team=3, roles=(), admin=True),
        ),
        contacts=contacts_everywhere(4, 5),
        page_size=7,
    ),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(world=worlds())
@example(world=HAND_PICKED[0])
@example(world=HAND_PICKED[1])
def test_the_contacts_a_user_sees_are_those_the_scope_rules_allow(
    crm: crmkit.CRM, world: WorldSpec
) -> None:
    users, contact_ids = build(crm, world)

    for index, user in enumerate(users):
        expected = reference(world, index)
        if expected is None:
            with pytest.raises(PermissionDenied):
                crm.contacts.list(actor=user)
            with pytest.raises(PermissionDenied):
                crm.contacts.count(actor=user)
            continue
        ids = listed(crm, user, world.page_size, len(contact_ids))
        assert len(ids) == len(set(ids)), f"user{index}: a contact listed twice"
        assert set(ids) == {contact_ids[i] for i in expected}, f"user{index}"
        assert crm.contacts.count(actor=user) == len(expected), f"user{index}"


def test_the_reference_follows_the_tree_down_not_up() -> None:
    world = WorldSpec(
        parents=(None, 0, 1, None),  # 0 → 1 → 2, and 3 on its own
        users=(UserSpec(team=1, roles=("subtree",), admin=False),),
        contacts=tuple(ContactSpec(owner=None, team=team, deleted=False) for team in range(4)),
        page_size=5,
    )

    assert reference(world, 0) == {1, 2}
