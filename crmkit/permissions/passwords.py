"""Desk sign-in: the tables behind it (password hashes, sessions, lock-outs) and the rules
for passwords and session tokens.

Passwords are hashed with Argon2id (argon2-cffi, its default parameters: the winner of the
Password Hashing Competition, RFC 9106). A desk session is a random 256-bit token in a
signed cookie; only its SHA-256 hash is stored, like an API token's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import argon2
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from crmkit.db.base import Base, utcnow

_HASHER = argon2.PasswordHasher()
#: Checked against when a user name is unknown, so that a wrong name takes as long as a
#: wrong password and the timing does not tell which user names exist.
_DUMMY_HASH = _HASHER.hash("crmkit: no such user")


class DeskAccount(Base):
    """A user's desk sign-in: password hash, failed attempts, lock-out, UI language."""

    __tablename__ = "desk_accounts"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    password_set_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    failed_sign_ins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    locale: Mapped[str | None] = mapped_column(String(16), default=None)


class DeskSession(Base):
    """A signed-in browser: the SHA-256 of its session token, its CSRF token, its expiry."""

    __tablename__ = "desk_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    remote: Mapped[str] = mapped_column(String(100), default="")


class DeskKey(Base):
    """A named secret of the desk (``cookie``: the key session cookies are signed with),
    made once per database so every process serving the desk signs alike."""

    __tablename__ = "desk_keys"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


def hash_password(password: str) -> str:
    """The stored form of ``password`` (an Argon2id hash with its salt and parameters)."""
    return _HASHER.hash(password)


def password_matches(stored: str | None, password: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from; ``None`` (no password set)
    costs the same time as a wrong password and never matches."""
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except argon2.exceptions.VerificationError:
        return False
    except argon2.exceptions.InvalidHashError:
        return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with weaker parameters than today's defaults."""
    return _HASHER.check_needs_rehash(stored)


def new_session_token() -> str:
    """A fresh random session token (256 bits)."""
    return secrets.token_urlsafe(32)


def session_token_hash(token: str) -> str:
    """The stored form of a session token (a fast hash suffices for 256 random bits)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_csrf_token() -> str:
    """A fresh CSRF token for a session's forms."""
    return secrets.token_urlsafe(24)
