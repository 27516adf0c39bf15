"""Sending messages: logging them once per delivery key, delivering in-database channels in
the sending transaction, and the worker's claims, retries and catch-up for the others.

Guarantees:

* one delivery log row per ``key`` (a unique column): sending the same key twice sends once;
* in-database channels (the in-app inbox) are written in the sending transaction: delivered
  exactly when it commits;
* other channels are claimed by one worker at a time (``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL, SQLite's write lock), with a lease that another worker takes over when the
  claiming worker dies; a failed attempt is retried with exponential backoff, then ``dead``;
* an address on the channel's do-not-contact list gets nothing (checked when the message is
  logged and again when it is delivered);
* a message due longer ago than ``catch_up_seconds`` when a worker gets to it is logged
  ``late`` and not sent (no flood after downtime).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from attrs import field, frozen
from sqlalchemy import String, and_, any_, bindparam, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from crmkit.db.base import utcnow
from crmkit.db.engine import bulk_insert
from crmkit.entities.customers import Contact
from crmkit.entities.organisation import User
from crmkit.errors import CRMError, FieldError, ValidationError
from crmkit.messages.channels import (
    MessageChannel,
    MessageInvalid,
    MessageRejected,
    OutgoingMessage,
)
from crmkit.messages.models import MessageDelivery, MessageStatus, Suppression, SuppressionReason

if TYPE_CHECKING:
    from crmkit.settings import MessageSettings

log = logging.getLogger(__name__)
#: Delivery keys looked up per query when a batch is logged.
KEY_CHUNK = 5_000
UNSUBSCRIBE_POST_BODY = "List-Unsubscribe=One-Click"
#: A message sent this long after it was due is flagged ``late`` in the log.
LATE_AFTER = dt.timedelta(minutes=1)


@frozen
class Message:
    """A message to send: over ``channel`` to an address (``to``), a user (``user_id``) or a
    contact (``contact_id``; the channel finds the address: the e-mail channel uses the
    contact's e-mail).

    ``key`` makes the send idempotent: a second message with a key already logged is not
    sent (default: a fresh key). ``due_at`` is when it was meant to go out (default: now); the
    worker does not send it before then, and logs it ``late`` rather than sending it when it
    is older than the catch-up window. ``unsubscribe`` adds one-click unsubscribe (RFC 8058)
    headers and link to an e-mail to a customer; ``log_activity`` records each sent message
    as an activity on its contact."""

    channel: str
    subject: str
    body: str = ""
    to: str | None = None
    user_id: int | None = None
    contact_id: int | None = None
    kind: str = "message"
    key: str | None = None
    html: str | None = None
    record_type: str | None = None
    record_id: int | None = None
    due_at: dt.datetime | None = None
    data: Mapping[str, Any] = field(factory=dict)
    unsubscribe: bool = False
    log_activity: bool = False


@frozen
class SendResult:
    """What logging a batch of messages did: ``sent`` (in-database channels, delivered in
    the transaction), ``queued`` (for the worker), ``suppressed`` (do-not-contact),
    ``repeated`` (key already logged: nothing done), ``unreachable`` (no address on that
    channel: logged ``dead``), ``late`` (in-database messages due before the catch-up
    window: logged ``late``, not delivered)."""

    sent: int = 0
    queued: int = 0
    suppressed: int = 0
    repeated: int = 0
    unreachable: int = 0
    late: int = 0


def _flags(message: Message) -> dict[str, Any]:
    data = dict(message.data)
    if message.unsubscribe:
        data["unsubscribe"] = True
    if message.log_activity:
        data["log_activity"] = True
    return data


def queue_messages(
    session: Session,
    channels: Mapping[str, MessageChannel],
    messages: Sequence[Message],
    *,
    now: dt.datetime | None = None,
    catch_up: dt.timedelta | None = None,
) -> SendResult:
    """Log ``messages`` in the current transaction: in-database channels are delivered
    here, the others queued for the worker. Set-based: a few statements per batch,
    whatever its size. An in-database message due longer ago than ``catch_up`` is logged
    ``late`` and not written (the worker applies the same window to the others)."""
    if not messages:
        return SendResult()
    now = now or utcnow()
    for message in messages:
        if message.channel not in channels:
            raise CRMError(
                f"unknown message channel {message.channel!r}; known: {', '.join(sorted(channels))}"
            )
        if message.to is None and message.user_id is None and message.contact_id is None:
            raise ValidationError([FieldError("to", "name an address, a user or a contact")])
        if message.due_at is not None and message.due_at.tzinfo is None:
            raise ValidationError([FieldError("due_at", "needs a time zone")])
    keyed = [(message.key or f"message:{uuid.uuid4().hex}", message) for message in messages]
    seen: set[str] = set()
    unique: list[tuple[str, Message]] = []
    for key, message in keyed:
        if key not in seen:
            seen.add(key)
            unique.append((key, message))
    existing = _existing_keys(session, [key for key, _ in unique])
    fresh = [(key, message) for key, message in unique if key not in existing]
    repeated = len(messages) - len(fresh)
    addresses = _addresses(session, channels, [message for _, message in fresh])
    suppressed_pairs = _suppressed(
        session, {(m.channel, a) for (_, m), a in zip(fresh, addresses, strict=True) if a}
    )
    rows: list[dict[str, Any]] = []
    in_database: dict[str, list[dict[str, Any]]] = {}
    counts = {"sent": 0, "queued": 0, "suppressed": 0, "unreachable": 0, "late": 0}
    horizon = now - catch_up if catch_up is not None else None
    late_after = now - LATE_AFTER
    for (key, message), address in zip(fresh, addresses, strict=True):
        channel = channels[message.channel]
        due = message.due_at or now
        row: dict[str, Any] = {
            "key": key,
            "channel": message.channel,
            "address": address or "",
            "user_id": message.user_id,
            "contact_id": message.contact_id,
            "kind": message.kind,
            "subject": message.subject[:300],
            "body": message.body,
            "html": message.html,
            "record_type": message.record_type,
            "record_id": message.record_id,
            "data": _flags(message),
            "created_at": now,
            "due_at": due,
            "late": False,
            "attempts": 0,
            "next_attempt_at": due,
            "claimed_by": None,
            "claim_expires_at": None,
            "sent_at": None,
            "last_error": None,
        }
        if not address:
            row["status"] = MessageStatus.DEAD.value
            row["last_error"] = f"no {message.channel} address for {_recipient(message)}"
            counts["unreachable"] += 1
        elif (message.channel, address) in suppressed_pairs:
            row["status"] = MessageStatus.SUPPRESSED.value
            counts["suppressed"] += 1
        elif channel.in_database and horizon is not None and due < horizon:
            row["status"] = MessageStatus.LATE.value
            row["late"] = True
            counts["late"] += 1
        elif channel.in_database and due <= now:
            row["late"] = due < late_after
            row["status"] = MessageStatus.SENT.value
            row["attempts"] = 1
            row["sent_at"] = now
            in_database.setdefault(message.channel, []).append(row)
            counts["sent"] += 1
        else:
            row["status"] = MessageStatus.PENDING.value
            counts["queued"] += 1
        rows.append(row)
    bulk_insert(session.connection(), MessageDelivery.__table__, rows)  # type: ignore[arg-type]
    for name, written in in_database.items():
        channels[name].write(session, [_outgoing(row) for row in written])
    return SendResult(repeated=repeated, **counts)


def _recipient(message: Message) -> str:
    if message.user_id is not None:
        return f"user {message.user_id}"
    if message.contact_id is not None:
        return f"contact {message.contact_id}"
    return repr(message.to)


def _outgoing(row: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        id=int(row.get("id") or 0),
        key=row["key"],
        channel=row["channel"],
        address=row["address"],
        kind=row["kind"],
        subject=row["subject"],
        body=row["body"],
        html=row["html"],
        user_id=row["user_id"],
        contact_id=row["contact_id"],
        record_type=row["record_type"],
        record_id=row["record_id"],
        data=row["data"] or {},
        headers=headers or {},
        late=bool(row["late"]),
    )


def one_of(session: Session, column: Any, values: Sequence[Any], element: Any) -> Any:
    """``column IN values``; on PostgreSQL as ``= ANY(:array)``, one parameter however many
    values (an expanded IN of thousands of parameters costs more to build than to run)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(element)))
    return column.in_(values)


def _existing_keys(session: Session, keys: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), KEY_CHUNK):
        chunk = keys[start : start + KEY_CHUNK]
        found.update(
            session.scalars(
                select(MessageDelivery.key).where(
                    one_of(session, MessageDelivery.key, chunk, String())
                )
            )
        )
    return found


def _addresses(
    session: Session, channels: Mapping[str, MessageChannel], messages: Sequence[Message]
) -> list[str | None]:
    """The normalised address of each message: given, or the user's or contact's on the
    channel (one query for all users, one for all contacts)."""
    user_ids = {m.user_id for m in messages if m.to is None and m.user_id is not None}
    contact_ids = {
        m.contact_id for m in messages if m.to is None and m.user_id is None and m.contact_id
    }
    users: dict[int, dict[str, Any]] = {}
    for start in range(0, len(user_ids), KEY_CHUNK):
        chunk = sorted(user_ids)[start : start + KEY_CHUNK]
        for row in session.execute(
            select(User.id, User.username, User.email, User.display_name, User.is_active).where(
                User.id.in_(chunk)
            )
        ):
            if row.is_active:
                users[row.id] = dict(row._mapping)
    contacts: dict[int, dict[str, Any]] = {}
    columns = list(Contact.__table__.c)
    for start in range(0, len(contact_ids), KEY_CHUNK):
        chunk = sorted(contact_ids)[start : start + KEY_CHUNK]
        for row in session.execute(
            select(*columns).where(Contact.id.in_(chunk), Contact.deleted_at.is_(None))
        ):
            contacts[row.id] = dict(row._mapping)
    result: list[str | None] = []
    for message in messages:
        channel = channels[message.channel]
        address: str | None
        if message.to is not None:
            address = message.to
        elif message.user_id is not None:
            user = users.get(message.user_id)
            address = channel.user_address(user) if user else None
        else:
            contact = contacts.get(message.contact_id or 0)
            address = channel.contact_address(contact) if contact else None
        result.append(channel.normalise_address(address) if address else None)
    return result


def _suppressed(session: Session, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    if not pairs:
        return set()
    found: set[tuple[str, str]] = set()
    ordered = sorted(pairs)
    for start in range(0, len(ordered), KEY_CHUNK):
        chunk = ordered[start : start + KEY_CHUNK]
        addresses = {address for _, address in chunk}
        for channel, address in session.execute(
            select(Suppression.channel, Suppression.address).where(
                Suppression.address.in_(addresses)
            )
        ):
            if (channel, address) in pairs:
                found.add((channel, address))
    return found


def add_suppression(
    session: Session,
    channel: str,
    address: str,
    reason: str,
    *,
    detail: str = "",
    contact_id: int | None = None,
    actor_id: int | None = None,
) -> bool:
    """Put ``address`` on ``channel``'s do-not-contact list; ``False`` if it was already."""
    values = {
        "channel": channel,
        "address": address,
        "reason": reason,
        "detail": detail,
        "contact_id": contact_id,
        "created_at": utcnow(),
        "created_by_id": actor_id,
    }
    maker = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    added = session.execute(
        maker(Suppression)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["channel", "address"])
        .returning(Suppression.id)
    ).scalar()
    return added is not None


# -- one-click unsubscribe (RFC 8058) -------------------------------------------------------


def unsubscribe_token(secret: str, channel: str, address: str) -> str:
    """A token naming ``address`` on ``channel``, signed with ``secret`` (not guessable,
    never expires: an old e-mail's link still works)."""
    payload = base64.urlsafe_b64encode(f"{channel}\n{address}".encode()).decode().rstrip("=")
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{payload}.{mac}"


def read_unsubscribe_token(secret: str, token: str) -> tuple[str, str]:
    """The ``(channel, address)`` a token names; ``CRMError`` for a forged or broken one."""
    payload, _, mac = token.partition(".")
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()[:32]
    if not mac or not hmac.compare_digest(mac.encode(), expected.encode()):
        raise CRMError("this unsubscribe link is not valid (altered or incomplete)")
    text = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    channel, _, address = text.partition("\n")
    return channel, address


def unsubscribe_headers(base_url: str, secret: str, channel: str, address: str) -> dict[str, str]:
    """The RFC 8058 header pair of an e-mail: a one-click POST link (and its GET page)."""
    url = (
        f"{base_url.rstrip('/')}/messages/unsubscribe/{unsubscribe_token(secret, channel, address)}"
    )
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": UNSUBSCRIBE_POST_BODY}


# -- the worker's side -------------------------------------------------------------------------


@frozen
class DeliveryStats:
    """What one delivery pass did."""

    sent: int = 0
    retried: int = 0
    dead: int = 0
    suppressed: int = 0
    late: int = 0

    @property
    def idle(self) -> bool:
        """Whether the pass found nothing to do."""
        return not (self.sent or self.retried or self.dead or self.suppressed or self.late)


def _due(now: dt.datetime) -> Any:
    table = MessageDelivery
    return or_(
        and_(table.status == MessageStatus.PENDING.value, table.next_attempt_at <= now),
        and_(table.status == MessageStatus.IN_FLIGHT.value, table.claim_expires_at < now),
    )


#: What the transaction that records a batch's outcomes gives: its session, and what logs the
#: sent messages that asked for an activity (``None``: nothing logs them).
Recording = tuple[Session, Callable[[Sequence[OutgoingMessage]], None] | None]


class MessageDispatcher:
    """Delivers queued messages of worker-delivered channels. Several may run at once."""

    def __init__(
        self,
        session_factory: Any,
        channels: Mapping[str, MessageChannel],
        settings: MessageSettings,
        *,
        worker_id: str,
        base_url: str,
        postgres: bool,
        recording: Callable[[], AbstractContextManager[Recording]] | None = None,
    ) -> None:
        self._sessions = session_factory
        self.channels = {name: c for name, c in channels.items() if not c.in_database}
        self.settings = settings
        self.worker_id = worker_id
        self.base_url = base_url
        self._postgres = postgres
        # the transaction that records a batch's outcomes: by default a plain one; the CRM's
        # also writes the activities of the sent messages that asked for one, in it
        self._recording = recording or self._plain_recording

    @contextmanager
    def _plain_recording(self) -> Iterator[Recording]:
        with self._sessions() as session, session.begin():
            yield session, None

    def claim(self, now: dt.datetime) -> tuple[list[OutgoingMessage], DeliveryStats]:
        """Claim due messages; those too late or suppressed are settled here, not sent."""
        if not self.channels:
            return [], DeliveryStats()
        table = MessageDelivery
        with self._sessions() as session, session.begin():
            query = (
                select(table.id)
                .where(_due(now), table.channel.in_(list(self.channels)))
                .order_by(table.next_attempt_at, table.id)
                .limit(self.settings.batch_size)
            )
            if self._postgres:
                query = query.with_for_update(skip_locked=True)
            ids = list(session.scalars(query))
            if not ids:
                return [], DeliveryStats()
            rows = [
                dict(row._mapping)
                for row in session.execute(
                    select(table.__table__).where(
                        table.id.in_(bindparam("ids", ids, expanding=True, literal_execute=True))
                    )
                )
            ]
            horizon = now - dt.timedelta(seconds=self.settings.catch_up_seconds)
            too_late = [row["id"] for row in rows if row["due_at"] < horizon]
            suppressed_pairs = _suppressed(
                session, {(row["channel"], row["address"]) for row in rows}
            )
            blocked = [
                row["id"]
                for row in rows
                if (row["channel"], row["address"]) in suppressed_pairs
                and row["id"] not in set(too_late)
            ]
            settled = set(too_late) | set(blocked)
            if too_late:
                session.execute(
                    update(table)
                    .where(table.id.in_(too_late))
                    .values(status=MessageStatus.LATE.value, late=True, claim_expires_at=None)
                )
            if blocked:
                session.execute(
                    update(table)
                    .where(table.id.in_(blocked))
                    .values(status=MessageStatus.SUPPRESSED.value, claim_expires_at=None)
                )
            claimed = [row for row in rows if row["id"] not in settled]
            if claimed:
                late_after = LATE_AFTER
                session.execute(
                    update(table)
                    .where(table.id.in_([row["id"] for row in claimed]))
                    .values(
                        status=MessageStatus.IN_FLIGHT.value,
                        claimed_by=self.worker_id,
                        claim_expires_at=now + dt.timedelta(seconds=self.settings.lease_seconds),
                        attempts=table.attempts + 1,
                        late=table.due_at < now - late_after,
                    )
                )
            messages = []
            for row in claimed:
                row["late"] = row["due_at"] < now - LATE_AFTER
                messages.append(_outgoing(row, self._headers(row)))
        return messages, DeliveryStats(late=len(too_late), suppressed=len(blocked))

    def _headers(self, row: Mapping[str, Any]) -> dict[str, str]:
        if not (row["data"] or {}).get("unsubscribe"):
            return {}
        return unsubscribe_headers(
            self.base_url, self.settings.secret, row["channel"], row["address"]
        )

    def backoff(self, attempts: int) -> dt.timedelta:
        """The wait after the ``attempts``-th failed attempt (exponential, capped)."""
        seconds = self.settings.backoff_seconds * (2 ** max(attempts - 1, 0))
        return dt.timedelta(seconds=min(seconds, self.settings.max_backoff_seconds))

    def run_once(self, now: dt.datetime | None = None) -> DeliveryStats:
        """Claim a batch, deliver it channel by channel, record each outcome."""
        now = now or utcnow()
        messages, settled = self.claim(now)
        if not messages:
            return settled
        outcomes: dict[int, BaseException | None] = {}
        by_channel: dict[str, list[OutgoingMessage]] = {}
        for message in messages:
            by_channel.setdefault(message.channel, []).append(message)
        for name, batch in by_channel.items():
            try:
                results = self.channels[name].deliver_many(batch)
            except Exception as error:  # noqa: BLE001 - a channel failing whole fails its batch
                results = [error] * len(batch)
            for message, outcome in zip(batch, results, strict=True):
                outcomes[message.id] = outcome
        return self._record(messages, outcomes, settled)

    def _record(
        self,
        messages: Sequence[OutgoingMessage],
        outcomes: Mapping[int, BaseException | None],
        settled: DeliveryStats,
    ) -> DeliveryStats:
        table = MessageDelivery
        now = utcnow()
        sent = [m for m in messages if outcomes[m.id] is None]
        retried = dead = 0
        with self._recording() as (session, log_sent):
            mine = and_(
                table.claimed_by == self.worker_id, table.status == MessageStatus.IN_FLIGHT.value
            )
            if sent:
                session.execute(
                    update(table)
                    .where(table.id.in_([m.id for m in sent]), mine)
                    .values(
                        status=MessageStatus.SENT.value,
                        sent_at=now,
                        last_error=None,
                        claim_expires_at=None,
                    )
                )
            failed_ids = [m.id for m in messages if outcomes[m.id] is not None]
            # Result has keys(), so dict(result) would read it as a mapping: pair by hand
            attempts: dict[int, int] = {}
            for row_id, count in session.execute(
                select(table.id, table.attempts).where(table.id.in_(failed_ids))
            ):
                attempts[row_id] = count
            for message in messages:
                error = outcomes[message.id]
                if error is None:
                    continue
                text = f"{type(error).__name__}: {error}"[:2000]
                count = attempts.get(message.id, 1)
                if (
                    isinstance(error, (MessageRejected, MessageInvalid))
                    or count >= self.settings.max_attempts
                ):
                    status, next_at = MessageStatus.DEAD.value, now
                    dead += 1
                    if isinstance(error, MessageRejected):
                        add_suppression(
                            session,
                            message.channel,
                            message.address,
                            SuppressionReason.BOUNCED.value,
                            detail=str(error)[:500],
                            contact_id=message.contact_id,
                        )
                else:
                    status, next_at = MessageStatus.PENDING.value, now + self.backoff(count)
                    retried += 1
                log.warning("message %s over %s failed: %s", message.key, message.channel, text)
                session.execute(
                    update(table)
                    .where(table.id == message.id, mine)
                    .values(
                        status=status,
                        next_attempt_at=next_at,
                        last_error=text,
                        claim_expires_at=None,
                    )
                )
            logged = [m for m in sent if m.data.get("log_activity") and m.contact_id]
            if logged and log_sent is not None:
                log_sent(logged)  # in the same transaction: sent and logged, or neither
        return DeliveryStats(
            sent=len(sent),
            retried=retried,
            dead=dead,
            suppressed=settled.suppressed,
            late=settled.late,
        )


def retry_dead(session: Session, ids: Iterable[int] | None) -> int:
    """Put dead messages (these, or all with ``None``) back in the queue; how many."""
    table = MessageDelivery
    query = update(table).where(table.status == MessageStatus.DEAD.value, table.address != "")
    if ids is not None:
        query = query.where(table.id.in_(sorted(set(ids))))
    result = session.execute(
        query.values(
            status=MessageStatus.PENDING.value,
            attempts=0,
            next_attempt_at=utcnow(),
            due_at=utcnow(),
            claim_expires_at=None,
        ).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


__all__ = [
    "DeliveryStats",
    "Message",
    "MessageDispatcher",
    "Recording",
    "SendResult",
    "add_suppression",
    "queue_messages",
    "read_unsubscribe_token",
    "retry_dead",
    "unsubscribe_headers",
    "unsubscribe_token",
]
