"""Messages through the API: the channels, sending, the delivery log and the do-not-contact
list (``message:manage``), and the public one-click unsubscribe link (RFC 8058)."""

from __future__ import annotations

import datetime as dt
import html
from typing import Annotated, Any, Literal

import anyio.to_thread
import msgspec
from litestar import MediaType, Request, Response, Router, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from crmkit.api.problems import problem_specs
from crmkit.app import CRM
from crmkit.entities.organisation import User
from crmkit.services.messages import DeliveryRecord

Status = Literal["pending", "in_flight", "sent", "dead", "suppressed", "late"]
Reason = Literal["unsubscribed", "bounced", "complained", "manual"]


class Channel(msgspec.Struct, kw_only=True):
    """A message channel."""

    name: str
    plugin: str
    in_database: bool
    description: str


class MessageSend(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One message to send: over ``channel`` to exactly one of ``to`` (an address),
    ``user`` (a username) or ``contact_id``."""

    channel: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    body: str = ""
    to: Annotated[str, msgspec.Meta(min_length=1, max_length=500)] | None = None
    user: Annotated[str, msgspec.Meta(min_length=1, max_length=150)] | None = None
    contact_id: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None
    kind: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "message"
    key: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    unsubscribe: bool = False


class MessageDelivery(msgspec.Struct, kw_only=True):
    """One entry of the delivery log."""

    id: int
    key: str
    channel: str
    address: str
    kind: str
    subject: str
    status: Status
    attempts: int
    created_at: dt.datetime
    due_at: dt.datetime
    sent_at: dt.datetime | None
    late: bool
    last_error: str | None
    user_id: int | None
    contact_id: int | None


class InboxItem(msgspec.Struct, kw_only=True):
    """A message in the caller's in-app inbox."""

    id: int
    created_at: dt.datetime
    kind: str
    title: str
    body: str
    read_at: dt.datetime | None


class MarkRead(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Inbox messages to mark read."""

    ids: Annotated[
        list[Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]], msgspec.Meta(max_length=10_000)
    ]


class MarkedRead(msgspec.Struct, kw_only=True):
    """How many of the messages were marked read (the caller's own, not read before)."""

    marked: int


class SuppressionCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An address to put on a channel's do-not-contact list."""

    channel: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    address: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    reason: Reason = "manual"
    detail: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class SuppressionAdded(msgspec.Struct, kw_only=True):
    """Whether the address was added (false: it was on the list already)."""

    added: bool


class Suppression(msgspec.Struct, kw_only=True):
    """An address on a channel's do-not-contact list."""

    channel: str
    address: str
    reason: str
    detail: str
    created_at: dt.datetime


def _delivery(record: DeliveryRecord) -> MessageDelivery:
    return MessageDelivery(
        id=record.id,
        key=record.key,
        channel=record.channel,
        address=record.address,
        kind=record.kind,
        subject=record.subject,
        status=record.status,  # type: ignore[arg-type]
        attempts=record.attempts,
        created_at=record.created_at,
        due_at=record.due_at,
        sent_at=record.sent_at,
        late=record.late,
        last_error=record.last_error,
        user_id=record.user_id,
        contact_id=record.contact_id,
    )


_PAGE = """<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 3rem auto">
<h1>{title}</h1><p>{text}</p>{form}</body></html>"""


def message_router(crm: CRM) -> Router:
    """``/messages`` routes."""

    @get(
        "/channels",
        summary="List the message channels",
        sync_to_thread=True,
        operation_id="list_message_channels",
        responses=problem_specs(401),
    )
    def list_channels(actor: NamedDependency[User]) -> list[Channel]:
        return [
            Channel(
                name=c.name, plugin=c.plugin, in_database=c.in_database, description=c.description
            )
            for c in crm.messages.channel_list()
        ]

    @post(
        "/",
        summary="Send a message",
        description="In-app messages are in the inbox when this answers (status sent); the"
        " others are queued (pending) for the worker. A key already used sends nothing and"
        " answers the earlier message. Needs message:manage.",
        sync_to_thread=True,
        status_code=201,
        operation_id="send_message",
        responses=problem_specs(400, 401, 403, 404, 413, 422),
    )
    def send_message(data: JSONBody[MessageSend], actor: NamedDependency[User]) -> MessageDelivery:
        record = crm.messages.send(
            data.channel,
            data.subject,
            data.body,
            to=data.to,
            user=data.user,
            contact_id=data.contact_id,
            kind=data.kind,
            key=data.key,
            unsubscribe=data.unsubscribe,
            actor=actor,
        )
        return _delivery(record)

    @get(
        "/",
        summary="The delivery log, newest first",
        sync_to_thread=True,
        operation_id="list_messages",
        responses=problem_specs(400, 401, 403, 404, 422),
    )
    def list_messages(
        actor: NamedDependency[User],
        status: FromQuery[Status | None] = None,
        channel: Annotated[str | None, QueryParameter(max_length=64)] = None,
        contact_id: Annotated[int | None, QueryParameter(ge=1, le=2**31 - 1)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 50,
    ) -> list[MessageDelivery]:
        found = crm.messages.log(
            status=status, channel=channel, contact_id=contact_id, limit=limit, actor=actor
        )
        return [_delivery(record) for record in found]

    @get(
        "/inbox",
        summary="The caller's in-app inbox, newest first",
        description="Reminders, alerts and every other in-app message sent to the caller.",
        sync_to_thread=True,
        operation_id="list_inbox",
        responses=problem_specs(401),
    )
    def list_inbox(actor: NamedDependency[User], unread_only: bool = True) -> list[InboxItem]:
        return [
            InboxItem(
                id=note.id,
                created_at=note.created_at,
                kind=note.kind,
                title=note.title,
                body=note.body,
                read_at=note.read_at,
            )
            for note in crm.audit.inbox(actor.username, unread_only=unread_only, actor=actor)
        ]

    @post(
        "/inbox/read",
        summary="Mark messages of the caller's inbox read",
        sync_to_thread=True,
        status_code=200,
        operation_id="mark_inbox_read",
        responses=problem_specs(400, 401, 413, 422),
    )
    def mark_inbox_read(data: JSONBody[MarkRead], actor: NamedDependency[User]) -> MarkedRead:
        return MarkedRead(marked=crm.audit.mark_read(actor.username, data.ids, actor=actor))

    @get(
        "/suppressions",
        summary="The do-not-contact list",
        sync_to_thread=True,
        operation_id="list_suppressions",
        responses=problem_specs(401, 403),
    )
    def list_suppressions(
        actor: NamedDependency[User],
        channel: Annotated[str | None, QueryParameter(max_length=64)] = None,
    ) -> list[Suppression]:
        return [
            Suppression(
                channel=s.channel,
                address=s.address,
                reason=s.reason,
                detail=s.detail,
                created_at=s.created_at,
            )
            for s in crm.messages.suppressions(channel=channel, actor=actor)
        ]

    @post(
        "/suppressions",
        summary="Put an address on a channel's do-not-contact list",
        sync_to_thread=True,
        status_code=201,
        operation_id="add_suppression",
        responses=problem_specs(400, 401, 403, 413, 422),
    )
    def add_suppression(
        data: JSONBody[SuppressionCreate], actor: NamedDependency[User]
    ) -> SuppressionAdded:
        added = crm.messages.suppress(
            data.channel, data.address, reason=data.reason, detail=data.detail, actor=actor
        )
        return SuppressionAdded(added=added)

    @get(
        "/unsubscribe/{token:str}",
        summary="The unsubscribe page of an e-mail's link (public)",
        description="Shows a button that confirms; a GET never unsubscribes (mail scanners"
        " follow links).",
        exclude_from_auth=True,
        security=[],
        media_type=MediaType.HTML,
        operation_id="unsubscribe_page",
    )
    def unsubscribe_page(token: FromPath[str]) -> Response[str]:
        escaped = html.escape(token, quote=True)
        form = (
            f'<form method="post" action="{escaped}">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            "<button>退订 Unsubscribe</button></form>"
        )
        page = _PAGE.format(
            title="退订 Unsubscribe",
            text="确认后将不再收到这类邮件。Confirm to receive no more of these e-mails.",
            form=form,
        )
        return Response(page, media_type=MediaType.HTML)

    @post(
        "/unsubscribe/{token:str}",
        summary="One-click unsubscribe (RFC 8058, public)",
        description="The POST a mail client sends for List-Unsubscribe-Post"
        " (body List-Unsubscribe=One-Click), or the page's button: the address goes on the"
        " channel's do-not-contact list. Repeating it is harmless.",
        exclude_from_auth=True,
        security=[],
        status_code=200,
        media_type=MediaType.HTML,
        operation_id="unsubscribe",
        responses=problem_specs(400, 404, 413),
    )
    async def unsubscribe(token: FromPath[str], request: Request[Any, Any, Any]) -> Response[str]:
        await request.body()  # RFC 8058: List-Unsubscribe=One-Click; anything else is fine too
        channel, address = await anyio.to_thread.run_sync(crm.messages.unsubscribe, token)
        page = _PAGE.format(
            title="已退订 Unsubscribed",
            text=html.escape(f"{address} 已退订 ({channel}). {address} is unsubscribed."),
            form="",
        )
        return Response(page, media_type=MediaType.HTML)

    return Router(
        path="/messages",
        route_handlers=[
            list_channels,
            send_message,
            list_messages,
            list_inbox,
            mark_inbox_read,
            list_suppressions,
            add_suppression,
            unsubscribe_page,
            unsubscribe,
        ],
        tags=["messages"],
    )
