"""Messages: sending over the channels, the delivery log, retries and the do-not-contact list.

``crm.messages`` is the one way crmkit and its plugins reach a person: admin alerts,
reminders, care messages and campaigns all send through it, so there is one delivery log and
one do-not-contact list per channel. Sending to users, contacts or addresses, reading the log,
retrying and managing the do-not-contact list need ``message:manage``; the system (no actor:
the worker, a plugin's job) may send. Unsubscribing through a signed link needs nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from attrs import frozen
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from crmkit.db.base import utcnow
from crmkit.errors import ConfigError, CRMError, FieldError, ValidationError
from crmkit.messages.channels import (
    EmailChannel,
    InAppChannel,
    MessageChannel,
    OutgoingMessage,
    WebhookChannel,
)
from crmkit.messages.models import MessageDelivery, MessageStatus, Suppression, SuppressionReason
from crmkit.messages.outbox import (
    DeliveryStats,
    Message,
    MessageDispatcher,
    Recording,
    SendResult,
    add_suppression,
    queue_messages,
    read_unsubscribe_token,
    retry_dead,
    unsubscribe_headers,
)
from crmkit.services.users import find_user

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.entities.organisation import User
    from crmkit.services.operation import Operation
    from crmkit.services.scheduler import JobContext, ScheduledJob

log = logging.getLogger(__name__)

MANAGE = "message:manage"
#: The most log entries one query returns.
MAX_LOG_LIMIT = 10_000


@frozen
class ChannelInfo:
    """A channel as ``crmkit messages channels`` lists it."""

    name: str
    description: str
    in_database: bool
    plugin: str


@frozen
class DeliveryRecord:
    """One entry of the delivery log."""

    id: int
    key: str
    channel: str
    address: str
    kind: str
    subject: str
    status: str
    attempts: int
    created_at: dt.datetime
    due_at: dt.datetime
    sent_at: dt.datetime | None
    late: bool
    last_error: str | None
    user_id: int | None
    contact_id: int | None
    record_type: str | None
    record_id: int | None


@frozen
class SuppressionRecord:
    """An address on a channel's do-not-contact list."""

    channel: str
    address: str
    reason: str
    detail: str
    contact_id: int | None
    created_at: dt.datetime


def built_in_channels(crm: CRM) -> list[MessageChannel]:
    """``inapp``, ``email`` and ``webhook``, configured from the settings."""
    settings = crm.settings
    return [
        InAppChannel(),
        EmailChannel(settings.email),
        WebhookChannel(
            settings.messages.webhook_secret,
            allow_internal=settings.relay.allow_internal_addresses,
        ),
    ]


class MessageService:
    """Send messages; read the log; retry; manage the do-not-contact list."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    # -- channels --------------------------------------------------------------------------

    def channels(self) -> dict[str, MessageChannel]:
        """Every channel by name: the built-in ones and those enabled plugins add."""
        found: dict[str, MessageChannel] = {c.name: c for c in built_in_channels(self.crm)}
        for group in self.crm.host.call("crmkit_message_channels", crm=self.crm):
            for channel in group:
                if not channel.name:
                    raise ConfigError(f"message channel {channel!r} has no name")
                if channel.name in found:
                    raise ConfigError(f"two message channels are named {channel.name!r}")
                found[channel.name] = channel
        return found

    def channel_list(self) -> list[ChannelInfo]:
        """The channels, described (for ``crmkit messages channels``)."""
        built_in = {c.name for c in built_in_channels(self.crm)}
        return [
            ChannelInfo(
                name=name,
                description=channel.description,
                in_database=channel.in_database,
                plugin="core" if name in built_in else self._plugin_of(channel),
            )
            for name, channel in sorted(self.channels().items())
        ]

    def _plugin_of(self, channel: MessageChannel) -> str:
        module = type(channel).__module__.split(".")[0]
        for name, plugin in self.crm.installed.items():
            if plugin.module_name.split(".")[0] == module:
                return name
        return module

    # -- sending ---------------------------------------------------------------------------

    def send_many(
        self,
        messages: Sequence[Message],
        *,
        op: Operation | None = None,
        actor: User | None = None,
        now: dt.datetime | None = None,
    ) -> SendResult:
        """Log and send ``messages`` in one transaction (``op``'s, when given): in-database
        channels (``inapp``) are delivered when it commits, the others by the worker. A
        message whose ``key`` was logged before is not sent again. Set-based: use it for
        batches (a reminder job sends thousands at a time). ``now`` is the time of the send
        (default: the clock's; a job passes the time of its pass)."""
        if op is not None:
            return self._send(op, messages, now)
        with self.crm.transaction(actor) as own:
            return self._send(own, messages, now)

    def _send(
        self, op: Operation, messages: Sequence[Message], now: dt.datetime | None = None
    ) -> SendResult:
        op.access.require(MANAGE)
        catch_up = dt.timedelta(seconds=self.crm.settings.messages.catch_up_seconds)
        return queue_messages(op.session, self.channels(), messages, now=now, catch_up=catch_up)

    def send(
        self,
        channel: str,
        subject: str,
        body: str = "",
        *,
        to: str | None = None,
        user: str | None = None,
        contact_id: int | None = None,
        kind: str = "message",
        key: str | None = None,
        html: str | None = None,
        unsubscribe: bool = False,
        actor: User | None = None,
    ) -> DeliveryRecord:
        """Send one message to an address (``to``), a user (by username) or a contact;
        return its log entry (``sent`` for in-app, ``pending`` until the worker sends it,
        ``suppressed`` for a do-not-contact address)."""
        if sum(x is not None for x in (to, user, contact_id)) != 1:
            raise ValidationError([FieldError("to", "name exactly one of: address, user, contact")])
        if not subject.strip():
            raise ValidationError([FieldError("subject", "must not be empty")])
        with self.crm.transaction(actor) as op:
            op.access.require(MANAGE)
            user_id = find_user(op.session, user).id if user is not None else None
            message = Message(
                channel=channel,
                subject=subject,
                body=body,
                to=to,
                user_id=user_id,
                contact_id=contact_id,
                kind=kind,
                key=key,
                html=html,
                unsubscribe=unsubscribe,
            )
            if key is None:
                import uuid

                message = Message(**{**_fields(message), "key": f"message:{uuid.uuid4().hex}"})
            queue_messages(op.session, self.channels(), [message])
            row = op.session.scalars(
                select(MessageDelivery).where(MessageDelivery.key == message.key)
            ).one()
            return _record(row)

    # -- the log ---------------------------------------------------------------------------

    def log(
        self,
        *,
        status: str | None = None,
        channel: str | None = None,
        kind: str | None = None,
        contact_id: int | None = None,
        user: str | None = None,
        limit: int = 100,
        actor: User | None = None,
    ) -> list[DeliveryRecord]:
        """Delivery log entries matching every filter given, newest first."""
        if not 1 <= limit <= MAX_LOG_LIMIT:
            raise ValidationError([FieldError("limit", f"must be between 1 and {MAX_LOG_LIMIT}")])
        if status is not None and status not in set(MessageStatus):
            raise ValidationError(
                [FieldError("status", f"must be one of {', '.join(MessageStatus)}")]
            )
        with self.crm.transaction(actor, write=False) as op:
            op.access.require(MANAGE)
            query = select(MessageDelivery)
            if status is not None:
                query = query.where(MessageDelivery.status == status)
            if channel is not None:
                query = query.where(MessageDelivery.channel == channel)
            if kind is not None:
                query = query.where(MessageDelivery.kind == kind)
            if contact_id is not None:
                query = query.where(MessageDelivery.contact_id == contact_id)
            if user is not None:
                query = query.where(MessageDelivery.user_id == find_user(op.session, user).id)
            rows = op.session.scalars(query.order_by(MessageDelivery.id.desc()).limit(limit))
            return [_record(row) for row in rows]

    def counts(self, *, actor: User | None = None) -> dict[str, int]:
        """How many log entries are in each status."""
        with self.crm.transaction(actor, write=False) as op:
            op.access.require(MANAGE)
            rows = op.session.execute(
                select(MessageDelivery.status, func.count()).group_by(MessageDelivery.status)
            )
            return {status: int(count) for status, count in rows}

    def retry(self, ids: Iterable[int] | None = None, *, actor: User | None = None) -> int:
        """Queue dead messages again (these ids, or every dead one with ``None``); how many."""
        with self.crm.transaction(actor) as op:
            op.access.require(MANAGE)
            return retry_dead(op.session, None if ids is None else list(ids))

    # -- do not contact --------------------------------------------------------------------

    def _normalised(self, channel: str, address: str) -> str:
        channels = self.channels()
        if channel not in channels:
            raise CRMError(
                f"unknown message channel {channel!r}; known: {', '.join(sorted(channels))}"
            )
        if not address.strip():
            raise ValidationError([FieldError("address", "must not be empty")])
        return channels[channel].normalise_address(address)

    def suppress(
        self,
        channel: str,
        address: str,
        *,
        reason: str = SuppressionReason.MANUAL.value,
        detail: str = "",
        actor: User | None = None,
    ) -> bool:
        """Put an address on ``channel``'s do-not-contact list; ``False`` if it was on it."""
        if reason not in set(SuppressionReason):
            raise ValidationError(
                [FieldError("reason", f"must be one of {', '.join(SuppressionReason)}")]
            )
        normalised = self._normalised(channel, address)
        with self.crm.transaction(actor) as op:
            op.access.require(MANAGE)
            return add_suppression(
                op.session, channel, normalised, reason, detail=detail, actor_id=op.actor_id
            )

    def unsuppress(self, channel: str, address: str, *, actor: User | None = None) -> bool:
        """Take an address off the list (it may be sent to again); ``False`` if not on it."""
        normalised = self._normalised(channel, address)
        with self.crm.transaction(actor) as op:
            op.access.require(MANAGE)
            result = op.session.execute(
                delete(Suppression).where(
                    Suppression.channel == channel, Suppression.address == normalised
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def suppressions(
        self, *, channel: str | None = None, actor: User | None = None
    ) -> list[SuppressionRecord]:
        """The do-not-contact list (of one channel, or all), newest first."""
        with self.crm.transaction(actor, write=False) as op:
            op.access.require(MANAGE)
            query = select(Suppression).order_by(Suppression.id.desc())
            if channel is not None:
                query = query.where(Suppression.channel == channel)
            return [
                SuppressionRecord(
                    channel=row.channel,
                    address=row.address,
                    reason=row.reason,
                    detail=row.detail,
                    contact_id=row.contact_id,
                    created_at=row.created_at,
                )
                for row in op.session.scalars(query)
            ]

    def is_suppressed(self, channel: str, address: str) -> bool:
        """Whether ``address`` is on ``channel``'s do-not-contact list (no permission needed:
        it reveals nothing about records)."""
        normalised = self._normalised(channel, address)
        with self.crm.transaction(write=False) as op:
            found = op.session.scalar(
                select(Suppression.id).where(
                    Suppression.channel == channel, Suppression.address == normalised
                )
            )
            return found is not None

    # -- one-click unsubscribe (RFC 8058) ---------------------------------------------------

    def unsubscribe_headers(self, channel: str, address: str) -> dict[str, str]:
        """The ``List-Unsubscribe`` and ``List-Unsubscribe-Post`` headers for ``address``."""
        return unsubscribe_headers(
            self.crm.settings.api.base_url,
            self.crm.settings.messages.secret,
            channel,
            self._normalised(channel, address),
        )

    def unsubscribe_url(self, channel: str, address: str) -> str:
        """The one-click unsubscribe link for ``address`` on ``channel``."""
        return self.unsubscribe_headers(channel, address)["List-Unsubscribe"][1:-1]

    def unsubscribe(self, token: str) -> tuple[str, str]:
        """Honour an unsubscribe link: the address it names goes on the channel's
        do-not-contact list (reason ``unsubscribed``). Returns ``(channel, address)``; a
        forged or broken token is a ``CRMError``; unsubscribing twice is fine."""
        try:
            channel, address = read_unsubscribe_token(self.crm.settings.messages.secret, token)
        except (ValueError, UnicodeDecodeError):
            raise CRMError("this unsubscribe link is not valid (altered or incomplete)") from None
        if channel not in self.channels() or not address:
            raise CRMError(f"this unsubscribe link names an unknown channel {channel!r}")
        with self.crm.transaction() as op:
            contact = _contact_with_email(op.session, address) if channel == "email" else None
            add_suppression(
                op.session,
                channel,
                address,
                SuppressionReason.UNSUBSCRIBED.value,
                detail="one-click unsubscribe link",
                contact_id=contact,
            )
        return channel, address

    # -- the worker ------------------------------------------------------------------------

    def dispatcher(self, worker_id: str) -> MessageDispatcher:
        """The worker's delivery loop for this CRM's channels."""
        crm = self.crm
        return MessageDispatcher(
            lambda: Session(crm.engine, expire_on_commit=False),
            self.channels(),
            crm.settings.messages,
            worker_id=worker_id,
            base_url=crm.settings.api.base_url,
            postgres=crm.engine.dialect.name == "postgresql",
            recording=self._recording,
        )

    @contextmanager
    def _recording(self) -> Iterator[Recording]:
        """The transaction that records a delivered batch: the sent messages' activities are
        written in it, so a message is never marked sent without its activity (or the other
        way round)."""
        with self.crm.transaction() as op:
            yield op.session, lambda sent: self._log_activities(op, sent)

    def deliver_pending(self, worker_id: str = "crmkit", *, rounds: int = 1) -> DeliveryStats:
        """Deliver queued messages that are due: up to ``rounds`` batches (the worker's
        job does one per pass; tests and scripts may drain the queue)."""
        dispatcher = self.dispatcher(worker_id)
        total = DeliveryStats()
        for _ in range(rounds):
            stats = dispatcher.run_once()
            total = DeliveryStats(
                sent=total.sent + stats.sent,
                retried=total.retried + stats.retried,
                dead=total.dead + stats.dead,
                suppressed=total.suppressed + stats.suppressed,
                late=total.late + stats.late,
            )
            if stats.idle:
                break
        return total

    def _log_activities(self, op: Operation, messages: Sequence[OutgoingMessage]) -> None:
        """Record sent messages that asked for it as e-mail activities on their contacts
        (a contact deleted since is reported and skipped, not a reason to undo the batch)."""
        events = len(op.events)
        try:
            with op.session.begin_nested():  # a savepoint: a failure undoes only the activities
                result = op.records("activity").create_many(
                    [
                        (
                            index,
                            {
                                "kind": "email" if message.channel == "email" else "note",
                                "subject": message.subject,
                                "body": message.body,
                                "contact_id": message.contact_id,
                                "occurred_at": utcnow(),
                            },
                        )
                        for index, message in enumerate(messages, start=1)
                    ]
                )
        except Exception:  # the mails are out: keep them marked sent, and say so
            del op.events[events:]
            log.exception(
                "%d message(s) sent, but their activities were not recorded", len(messages)
            )
            return
        for error in result.errors:
            message = messages[error.line - 1]
            log.warning(
                "message %s sent, but its activity was not recorded: %s", message.key, error
            )


def delivery_job() -> ScheduledJob:
    """The core job that delivers queued messages (shared: every worker claims batches).
    Each worker's job keeps one dispatcher, so channels keep their state between passes."""
    from crmkit.services.scheduler import ScheduledJob

    dispatchers: dict[str, MessageDispatcher] = {}

    def deliver(context: JobContext) -> str:
        dispatcher = dispatchers.get(context.worker_id)
        if dispatcher is None:
            dispatcher = context.crm.messages.dispatcher(context.worker_id)
            dispatchers[context.worker_id] = dispatcher
        stats = dispatcher.run_once(context.now)
        if stats.idle:
            return "idle"
        return (
            f"sent {stats.sent}, retried {stats.retried}, dead {stats.dead},"
            f" suppressed {stats.suppressed}, late {stats.late}"
        )

    return ScheduledJob(
        "messages.deliver",
        deliver,
        every_seconds=1.0,
        shared=True,
        description="deliver queued messages (e-mail, webhook, plugin channels)",
    )


def _contact_with_email(session: Session, address: str) -> int | None:
    from crmkit.entities.customers import Contact

    return session.scalar(
        select(Contact.id).where(Contact.email == address, Contact.deleted_at.is_(None)).limit(1)
    )


def _fields(message: Message) -> dict[str, Any]:
    from attrs import asdict

    return asdict(message, recurse=False)


def _record(row: MessageDelivery) -> DeliveryRecord:
    return DeliveryRecord(
        id=row.id,
        key=row.key,
        channel=row.channel,
        address=row.address,
        kind=row.kind,
        subject=row.subject,
        status=row.status,
        attempts=row.attempts,
        created_at=row.created_at,
        due_at=row.due_at,
        sent_at=row.sent_at,
        late=row.late,
        last_error=row.last_error,
        user_id=row.user_id,
        contact_id=row.contact_id,
        record_type=row.record_type,
        record_id=row.record_id,
    )
