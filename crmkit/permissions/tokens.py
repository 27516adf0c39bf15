"""API tokens: issued once in plain text, stored only as SHA-256 hashes; the rules that
decide whether one is still valid."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from attrs import frozen

from crmkit.errors import TokenRejected

TOKEN_PREFIX = "crmk_"

#: ``last_used_at`` is written at most this often per token: an API client making many
#: calls a second costs one UPDATE a minute, not one per call.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def new_token() -> str:
    """A fresh random token (``crmk_`` + 43 URL-safe characters, 256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The stored form of a token. A fast hash is right here: the token is 256 random bits,
    so there is nothing to brute-force that a slow hash would protect."""
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    """The first characters of a token, shown in listings so users can tell tokens apart."""
    return token[: len(TOKEN_PREFIX) + 6]


def is_expired(expires_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether a token with this expiry time is expired at ``now``."""
    return expires_at is not None and expires_at <= now


UNKNOWN_TOKEN = (
    "unknown API token: check that it was copied whole, or issue a new one"
    " (crmkit tokens issue USER NAME)"
)


@frozen
class TokenState:
    """What deciding whether a token is valid needs: the token and its user's state."""

    id: int
    prefix: str
    name: str
    username: str
    user_active: bool
    revoked_at: dt.datetime | None
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None


def check_token(state: TokenState, now: dt.datetime) -> None:
    """``TokenRejected`` saying why, unless the token is valid at ``now``."""
    label = f"API token {state.prefix}… ({state.name})"
    if not state.user_active:
        raise TokenRejected(f"{label} belongs to {state.username!r}, who is deactivated")
    if state.revoked_at is not None:
        raise TokenRejected(
            f"{label} was revoked at {state.revoked_at:%Y-%m-%d %H:%M} UTC; issue a new one"
        )
    if state.expires_at is not None and is_expired(state.expires_at, now):
        raise TokenRejected(
            f"{label} expired at {state.expires_at:%Y-%m-%d %H:%M} UTC; issue a new one"
        )


def last_use_due(last: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether a token last used at ``last`` should have its use written at ``now``."""
    return last is None or now - last >= LAST_USED_RESOLUTION
