"""API tokens: issued once in plain text, stored only as SHA-256 hashes."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

TOKEN_PREFIX = "crmk_"


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
