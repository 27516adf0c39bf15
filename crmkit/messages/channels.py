"""Message channels: the ways crmkit reaches a person.

A channel is a :class:`MessageChannel`. Three are built in: ``inapp`` (the user's in-app
inbox, written in the sending transaction), ``email`` (SMTP, ``[crmkit.email]``) and
``webhook`` (a signed JSON POST to the address, a URL). Plugins add more (SMS, WeCom,
DingTalk) through the ``crmkit_message_channels`` hook.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import smtplib
import ssl
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, ClassVar

from attrs import field, frozen
from sqlalchemy.orm import Session

from crmkit.db.engine import bulk_insert
from crmkit.messages.mime import display_address, email_bytes
from crmkit.outbound import UnsafeDestination, check_url_host, guarded_client
from crmkit.permissions.models import Notification

if TYPE_CHECKING:
    import httpx

    from crmkit.settings import EmailSettings


@frozen
class OutgoingMessage:
    """One logged message as its channel gets it: the delivery log row, read-only.

    ``headers`` are channel-specific extras the core adds (for e-mail: ``Message-ID`` and
    the RFC 8058 ``List-Unsubscribe`` pair when the message allows unsubscribing)."""

    id: int
    key: str
    channel: str
    address: str
    kind: str
    subject: str
    body: str
    html: str | None = None
    user_id: int | None = None
    contact_id: int | None = None
    record_type: str | None = None
    record_id: int | None = None
    data: Mapping[str, Any] = field(factory=dict)
    headers: Mapping[str, str] = field(factory=dict)
    late: bool = False


class MessageRejected(Exception):
    """Raised by a channel when the receiver refused the message for good (an address that
    does not exist, a 5xx SMTP answer): the message is ``dead`` at once, and the address
    goes on the channel's do-not-contact list as ``bounced``. Any other exception is a
    failed attempt, retried with backoff (but see :class:`MessageInvalid`)."""


class MessageInvalid(Exception):
    """Raised by a channel when the message itself cannot be sent, whoever receives it (its
    text cannot be composed into a mail, say): trying again would fail the same way, so
    the message is ``dead`` at once, but the address is not blamed (no do-not-contact
    entry)."""


class MessageChannel:
    """A way to reach a person. Subclass it and return instances from
    ``crmkit_message_channels``.

    * ``name``: what senders name (``"sms"``); unique.
    * ``in_database``: ``True`` for channels that only write rows (the in-app inbox): the core
      calls :meth:`write` inside the sending transaction, so the message is delivered exactly
      when the sending transaction commits, with no worker involved. Otherwise the message
      is queued and the worker calls :meth:`deliver_many` outside any transaction, retrying
      failures with backoff.
    * :meth:`user_address` / :meth:`contact_address`: the address of a user or a contact on
      this channel (``None``: they have none), used when a sender names a recipient rather
      than an address.
    """

    name: ClassVar[str] = ""
    in_database: ClassVar[bool] = False
    #: A short description for ``crmkit messages channels``.
    description: ClassVar[str] = ""

    def user_address(self, user: Mapping[str, Any]) -> str | None:
        """The address of a user (``id``, ``username``, ``email`` ...); ``None`` if none."""
        return None

    def contact_address(self, contact: Mapping[str, Any]) -> str | None:
        """The address of a contact (its field values); ``None`` if none."""
        return None

    def normalise_address(self, address: str) -> str:
        """The form addresses are compared and stored in (do-not-contact list, log)."""
        return address.strip()

    def write(self, session: Session, messages: Sequence[OutgoingMessage]) -> None:
        """Deliver ``messages`` inside the sending transaction (``in_database`` channels)."""
        raise NotImplementedError(f"channel {self.name!r} is not an in-database channel")

    def deliver(self, message: OutgoingMessage) -> None:
        """Hand one message over; raise :class:`MessageRejected` for a permanent refusal,
        :class:`MessageInvalid` for a message that can never be sent, anything else for a
        failure worth retrying."""
        raise NotImplementedError(f"channel {self.name!r} does not implement deliver()")

    def deliver_many(self, messages: Sequence[OutgoingMessage]) -> list[BaseException | None]:
        """Deliver a batch; one outcome per message, in order (``None``: handed over).
        Override it to share a connection across the batch."""
        outcomes: list[BaseException | None] = []
        for message in messages:
            try:
                self.deliver(message)
            except Exception as error:  # noqa: BLE001 - each failure is this message's outcome
                outcomes.append(error)
            else:
                outcomes.append(None)
        return outcomes


class InAppChannel(MessageChannel):
    """The in-app inbox (``crmkit notifications``, ``GET /notifications``): one row per
    message, written in the sending transaction."""

    name = "inapp"
    in_database = True
    description = "the user's in-app inbox (written in the sending transaction)"

    def user_address(self, user: Mapping[str, Any]) -> str | None:
        return str(user["id"])

    def write(self, session: Session, messages: Sequence[OutgoingMessage]) -> None:
        now = dt.datetime.now(dt.UTC)
        bulk_insert(
            session.connection(),
            Notification.__table__,  # type: ignore[arg-type]
            [
                {
                    "user_id": int(message.address),
                    "created_at": now,
                    "kind": message.kind,
                    "title": message.subject[:300],
                    "body": message.body,
                    "event_id": message.data.get("event_id"),
                    "read_at": None,
                }
                for message in messages
            ],
        )


def message_id(key: str, domain: str) -> str:
    """A ``Message-ID`` made from the delivery key: a retried send of the same message
    carries the same id, so mail systems drop the repeat."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


class EmailChannel(MessageChannel):
    """E-mail through the SMTP server of ``[crmkit.email]``. A batch is spread over
    ``connections`` SMTP connections, each sending its share in turn."""

    name = "email"
    description = "e-mail over SMTP ([crmkit.email])"

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings

    def user_address(self, user: Mapping[str, Any]) -> str | None:
        return user.get("email") or None

    def contact_address(self, contact: Mapping[str, Any]) -> str | None:
        return contact.get("email") or None

    def normalise_address(self, address: str) -> str:
        return address.strip().lower()

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        smtp: smtplib.SMTP
        if settings.security == "tls":
            smtp = smtplib.SMTP_SSL(
                settings.host,
                settings.port,
                timeout=settings.timeout_seconds,
                context=ssl.create_default_context(),
            )
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds)
            if settings.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
        if settings.username:
            smtp.login(settings.username, settings.password)
        return smtp

    def compose(self, message: OutgoingMessage) -> bytes:
        """The e-mail of ``message`` as sent: headers (``Message-ID`` from the delivery key,
        the channel extras such as ``List-Unsubscribe``), a text part and, if given, an HTML
        part (:mod:`crmkit.messages.mime`)."""
        settings = self.settings
        return email_bytes(
            sender=display_address(settings.from_name, settings.from_address),
            to=message.address,
            subject=message.subject,
            date=formatdate(localtime=False),
            message_id=message_id(message.key, settings.from_address.split("@")[-1]),
            body=message.body or message.subject,
            html=message.html,
            headers=message.headers,
        )

    def _send(self, smtp: smtplib.SMTP, message: OutgoingMessage) -> None:
        """Send one composed message over ``smtp`` (envelope: the configured sender and the
        message's address; SMTPUTF8 when the address needs it and the server offers it)."""
        smtp.ehlo_or_helo_if_needed()
        options: list[str] = []
        international = not (message.address.isascii() and self.settings.from_address.isascii())
        if international:
            if not smtp.has_extn("smtputf8"):
                raise smtplib.SMTPNotSupportedError(
                    f"{message.address!r} needs SMTPUTF8, which the server does not offer"
                )
            options = ["SMTPUTF8", "BODY=8BITMIME"]
        smtp.sendmail(
            self.settings.from_address,
            [message.address],
            self.compose(message),
            options,
        )

    def deliver(self, message: OutgoingMessage) -> None:
        outcome = self.deliver_many([message])[0]
        if outcome is not None:
            raise outcome

    def deliver_many(self, messages: Sequence[OutgoingMessage]) -> list[BaseException | None]:
        if not messages:
            return []
        lanes = min(self.settings.connections, len(messages))
        shares = [list(range(lane, len(messages), lanes)) for lane in range(lanes)]
        outcomes: list[BaseException | None] = [None] * len(messages)

        def send_share(indexes: list[int]) -> None:
            smtp: smtplib.SMTP | None = None
            try:
                for index in indexes:
                    try:
                        if smtp is None:
                            smtp = self._connect()
                        self._send(smtp, messages[index])
                    except ValueError as error:  # not composable (broken text): this one only
                        outcomes[index] = MessageInvalid(f"cannot be composed: {error}")
                    except smtplib.SMTPRecipientsRefused as error:
                        codes = [code for code, _ in error.recipients.values()]
                        outcomes[index] = (
                            MessageRejected(f"refused: {_smtp_answer(error.recipients)}")
                            if codes and all(500 <= code < 600 for code in codes)
                            else error
                        )
                    except smtplib.SMTPResponseException as error:
                        outcomes[index] = (
                            MessageRejected(f"{error.smtp_code} {_decode(error.smtp_error)}")
                            if 500 <= error.smtp_code < 600
                            else OSError(f"{error.smtp_code} {_decode(error.smtp_error)}")
                        )
                        _drop(smtp)
                        smtp = None
                    except (OSError, smtplib.SMTPException) as error:
                        outcomes[index] = OSError(
                            f"SMTP {self.settings.host}:{self.settings.port}:"
                            f" {type(error).__name__}: {error}"
                        )
                        _drop(smtp)
                        smtp = None
            finally:
                _drop(smtp)

        if lanes == 1:
            send_share(shares[0])
        else:
            with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="crmkit-smtp") as pool:
                list(pool.map(send_share, shares))
        return outcomes


def _decode(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _smtp_answer(recipients: Mapping[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{to}: {code} {_decode(text)}" for to, (code, text) in recipients.items())


def _drop(smtp: smtplib.SMTP | None) -> None:
    """Close an SMTP connection, ignoring a server that already went away."""
    if smtp is not None:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()


class WebhookChannel(MessageChannel):
    """A signed JSON POST to the address (a URL), like the event webhooks: header
    ``X-Crmkit-Signature`` (HMAC-SHA256 with ``[crmkit.messages] webhook_secret``) and
    ``Idempotency-Key`` (the delivery key). A 4xx answer other than 408/429 is a permanent
    refusal; a 5xx or a network error is retried."""

    name = "webhook"
    description = "a signed JSON POST to the address (a URL)"

    def __init__(
        self, secret: str, timeout_seconds: float = 10.0, *, allow_internal: bool = False
    ) -> None:
        self.secret = secret
        self.timeout_seconds = timeout_seconds
        #: deliver to internal addresses too (``crmkit.relay.allow_internal_addresses``)
        self.allow_internal = allow_internal

    def deliver(self, message: OutgoingMessage) -> None:
        outcome = self.deliver_many([message])[0]
        if outcome is not None:
            raise outcome

    def deliver_many(self, messages: Sequence[OutgoingMessage]) -> list[BaseException | None]:
        """POST each message; one guarded client (its TLS context and connection pool) serves
        the whole batch, so a batch to one receiver reuses its connection."""
        if not messages:
            return []
        outcomes: list[BaseException | None] = []
        with guarded_client(self.timeout_seconds, allow_internal=self.allow_internal) as client:
            for message in messages:
                try:
                    self._post(client, message)
                except Exception as error:  # noqa: BLE001 - each failure is this message's outcome
                    outcomes.append(error)
                else:
                    outcomes.append(None)
        return outcomes

    def _post(self, client: httpx.Client, message: OutgoingMessage) -> None:
        import httpx

        from crmkit.events.webhook import sign

        if not message.address.startswith(("http://", "https://")):
            raise MessageRejected(f"not an http(s) URL: {message.address!r}")
        try:  # never into the local network (crmkit.outbound); names checked on connecting
            check_url_host(message.address, allow_internal=self.allow_internal)
        except UnsafeDestination as error:
            raise MessageRejected(str(error)) from None
        body = json.dumps(
            {
                "id": message.id,
                "key": message.key,
                "kind": message.kind,
                "subject": message.subject,
                "body": message.body,
                "user_id": message.user_id,
                "contact_id": message.contact_id,
                "record_type": message.record_type,
                "record_id": message.record_id,
                "data": dict(message.data),
                "late": message.late,
            },
            ensure_ascii=False,
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "crmkit-messages",
            "Idempotency-Key": message.key,
            "X-Crmkit-Message-Kind": message.kind,
        }
        if self.secret:
            headers["X-Crmkit-Signature"] = sign(self.secret, body, int(time.time()))
        try:
            response = client.post(message.address, content=body, headers=headers)
        except UnsafeDestination as error:
            raise MessageRejected(str(error)) from None
        except httpx.HTTPError as error:
            raise OSError(f"{message.address}: {type(error).__name__}: {error}") from None
        status = response.status_code
        if 400 <= status < 500 and status not in (408, 429):
            raise MessageRejected(f"{message.address} answered {status}")
        if not 200 <= status < 300:
            raise OSError(f"{message.address} answered {status}")
