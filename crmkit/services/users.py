"""Users and teams: the minimum the record model needs (owners and teams of records)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from crmkit.entities.organisation import Team, User
from crmkit.errors import FieldError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from crmkit.app import CRM


class UserService:
    """Create and find users and teams."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def create_team(self, name: str, *, parent: str | None = None) -> Team:
        """Create a team, optionally under a parent team (by name)."""
        with self.crm.transaction() as op:
            if op.session.scalar(select(Team.id).where(Team.name == name)):
                raise ValidationError([FieldError("name", f"team {name!r} exists")], "team")
            parent_id = None
            if parent is not None:
                parent_id = op.session.scalar(select(Team.id).where(Team.name == parent))
                if parent_id is None:
                    raise NotFoundError("team", parent)
            team = Team(name=name, parent_id=parent_id)
            op.session.add(team)
            op.session.flush()
            op.emit("team.created", {"name": name, "parent_id": parent_id},
                    record_type="team", record_id=team.id)
            return team

    def create(
        self,
        username: str,
        *,
        display_name: str = "",
        email: str | None = None,
        team: str | None = None,
        admin: bool = False,
    ) -> User:
        """Create a user, optionally in a team (by name)."""
        username = username.strip()
        if not username:
            raise ValidationError([FieldError("username", "is required")], "user")
        with self.crm.transaction() as op:
            if op.session.scalar(select(User.id).where(User.username == username)):
                raise ValidationError([FieldError("username", f"user {username!r} exists")], "user")
            team_id = None
            if team is not None:
                team_id = op.session.scalar(select(Team.id).where(Team.name == team))
                if team_id is None:
                    raise NotFoundError("team", team)
            user = User(username=username, display_name=display_name or username, email=email,
                        team_id=team_id, is_admin=admin)
            op.session.add(user)
            op.session.flush()
            op.emit("user.created", {"username": username, "team_id": team_id},
                    record_type="user", record_id=user.id)
            return user

    def get(self, username: str) -> User:
        """The user called ``username``."""
        with self.crm.transaction(write=False) as op:
            user = op.session.scalar(select(User).where(User.username == username))
            if user is None:
                raise NotFoundError("user", username)
            return user

    def list(self) -> list[User]:
        """Every user, by username."""
        with self.crm.transaction(write=False) as op:
            return list(op.session.scalars(select(User).order_by(User.username)))
