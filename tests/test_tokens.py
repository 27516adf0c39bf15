"""API tokens: issued once in plain text, stored as hashes, refused at once when unknown,
revoked, expired, or of a deactivated user."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import crmkit
from crmkit.db.base import utcnow
from crmkit.permissions.models import ApiToken
from crmkit.permissions.tokens import LAST_USED_RESOLUTION, token_hash
from crmkit.services.tokens import TokenService


@pytest.fixture
def tokens(crm: crmkit.CRM) -> TokenService:
    return crm.tokens


@pytest.fixture
def alice(crm: crmkit.CRM) -> crmkit.User:
    crm.users.create("boss", admin=True)
    user: crmkit.User = crm.users.create("alice", manager="boss")
    return user


def stored_tokens(crm: crmkit.CRM) -> list[ApiToken]:
    with Session(crm.engine) as session:
        return list(session.scalars(select(ApiToken)))


def later(monkeypatch: pytest.MonkeyPatch, span: dt.timedelta) -> None:
    """Make the token service's clock run ``span`` ahead."""
    moment = utcnow() + span
    monkeypatch.setattr("crmkit.services.tokens.utcnow", lambda: moment)


def test_an_issued_token_authenticates_its_user(tokens: TokenService, alice: crmkit.User) -> None:
    _, plain = tokens.issue("alice", "ERP sync")

    assert tokens.authenticate(plain).id == alice.id


def test_only_the_hash_of_a_token_is_stored(
    crm: crmkit.CRM, tokens: TokenService, alice: crmkit.User
) -> None:
    _, plain = tokens.issue("alice", "ERP sync")

    (stored,) = stored_tokens(crm)
    assert stored.token_hash == token_hash(plain)
    assert plain not in {stored.token_hash, stored.prefix, stored.name}


def test_a_token_is_listed_by_its_first_characters_and_status(
    tokens: TokenService, alice: crmkit.User
) -> None:
    token, plain = tokens.issue("alice", "ERP sync", expires_in=dt.timedelta(days=30))

    (listed,) = tokens.list("alice")

    assert (listed.id, listed.name, listed.status) == (token.id, "ERP sync", "active")
    assert plain.startswith(listed.prefix)
    assert len(listed.prefix) < len(plain)
    assert listed.expires_at == token.expires_at


def test_an_unknown_token_is_refused(tokens: TokenService, alice: crmkit.User) -> None:
    tokens.issue("alice", "ERP sync")

    with pytest.raises(crmkit.PermissionDenied, match="unknown API token"):
        tokens.authenticate("crmk_not-a-real-token")


def test_a_revoked_token_fails_at_once(tokens: TokenService, alice: crmkit.User) -> None:
    token, plain = tokens.issue("alice", "ERP sync")
    tokens.authenticate(plain)

    tokens.revoke(token.id)

    with pytest.raises(crmkit.PermissionDenied, match=r"\(ERP sync\) was revoked at"):
        tokens.authenticate(plain)
    assert tokens.list("alice")[0].status == "revoked"


def test_revoking_a_token_twice_is_an_error(tokens: TokenService, alice: crmkit.User) -> None:
    token, _ = tokens.issue("alice", "ERP sync")
    tokens.revoke(token.id)

    with pytest.raises(crmkit.CRMError, match="was already revoked at"):
        tokens.revoke(token.id)


def test_revoking_an_unknown_token_is_an_error(tokens: TokenService) -> None:
    with pytest.raises(crmkit.NotFoundError, match="token 99 not found"):
        tokens.revoke(99)


def test_an_expired_token_is_refused(
    tokens: TokenService, alice: crmkit.User, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, plain = tokens.issue("alice", "ERP sync", expires_in=dt.timedelta(hours=1))

    later(monkeypatch, dt.timedelta(hours=1, seconds=1))

    with pytest.raises(crmkit.PermissionDenied, match=r"\(ERP sync\) expired at"):
        tokens.authenticate(plain)
    assert tokens.list("alice")[0].status == "expired"


def test_a_token_works_until_it_expires(
    tokens: TokenService, alice: crmkit.User, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, plain = tokens.issue("alice", "ERP sync", expires_in=dt.timedelta(hours=1))

    later(monkeypatch, dt.timedelta(minutes=59))

    assert tokens.authenticate(plain).username == "alice"


def test_a_token_of_a_deactivated_user_is_refused(
    crm: crmkit.CRM, tokens: TokenService, alice: crmkit.User
) -> None:
    _, plain = tokens.issue("alice", "ERP sync")

    crm.users.deactivate("alice")

    with pytest.raises(crmkit.PermissionDenied, match="belongs to 'alice', who is deactivated"):
        tokens.authenticate(plain)


def test_no_token_is_issued_for_a_deactivated_user(
    crm: crmkit.CRM, tokens: TokenService, alice: crmkit.User
) -> None:
    crm.users.deactivate("alice")

    with pytest.raises(crmkit.CRMError, match="'alice' is deactivated: no tokens can be issued"):
        tokens.issue("alice", "ERP sync")

    assert stored_tokens(crm) == []


def test_authentication_records_when_a_token_was_last_used(
    tokens: TokenService, alice: crmkit.User
) -> None:
    _, plain = tokens.issue("alice", "ERP sync")

    tokens.authenticate(plain)

    assert tokens.list("alice")[0].last_used_at is not None


def test_last_use_is_written_at_most_once_a_minute(
    tokens: TokenService, alice: crmkit.User, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, plain = tokens.issue("alice", "ERP sync")
    tokens.authenticate(plain)
    first = tokens.list("alice")[0].last_used_at
    assert first is not None

    later(monkeypatch, LAST_USED_RESOLUTION / 2)
    tokens.authenticate(plain)
    unchanged = tokens.list("alice")[0].last_used_at
    later(monkeypatch, LAST_USED_RESOLUTION * 2)
    tokens.authenticate(plain)

    assert unchanged == first
    later_use = tokens.list("alice")[0].last_used_at
    assert later_use is not None
    assert later_use > first


def test_a_user_issues_and_revokes_their_own_tokens(
    tokens: TokenService, alice: crmkit.User
) -> None:
    token, _ = tokens.issue("alice", "my script", actor=alice)

    tokens.revoke(token.id, actor=alice)

    assert [t.status for t in tokens.list("alice", actor=alice)] == ["revoked"]


def test_tokens_of_another_user_need_user_manage(
    crm: crmkit.CRM, tokens: TokenService, alice: crmkit.User
) -> None:
    bob = crm.users.create("bob")
    token, _ = tokens.issue("alice", "ERP sync")

    with pytest.raises(crmkit.PermissionDenied, match="user:manage"):
        tokens.issue("alice", "bob's backdoor", actor=bob)
    with pytest.raises(crmkit.PermissionDenied, match="user:manage"):
        tokens.revoke(token.id, actor=bob)
    with pytest.raises(crmkit.PermissionDenied, match="user:manage"):
        tokens.list("alice", actor=bob)


def test_a_token_needs_a_name(tokens: TokenService, alice: crmkit.User) -> None:
    with pytest.raises(crmkit.ValidationError, match="name: is required"):
        tokens.issue("alice", "  ")


def test_a_token_cannot_expire_before_it_is_issued(
    tokens: TokenService, alice: crmkit.User
) -> None:
    with pytest.raises(crmkit.ValidationError, match="expires_in: must be positive"):
        tokens.issue("alice", "ERP sync", expires_in=dt.timedelta(0))
