"""REST routes of the cardscan plugin, mounted by the core under ``/plugins/cardscan``.

Handlers declare the core's ``crm`` and ``actor`` dependencies and call the same services
as the CLI (:mod:`crmkit_cardscan.service`); crmkit errors become problem+json responses in
the core's exception handlers. An upload larger than ``max_upload_mb`` (all its cards
together) is refused with 413 before it is read.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, PathParameter, QueryParameter

import crmkit
from crmkit_cardscan import service
from crmkit_cardscan.reading import settings_of

CrmDependency = NamedDependency[crmkit.CRM]
ActorDependency = NamedDependency[crmkit.User | None]
ScanId = Annotated[int, PathParameter(ge=1, le=2**31 - 1, description="The card scan's id.")]
#: At most this many cards in one upload.
MAX_FILES = 50


class CardField(msgspec.Struct, kw_only=True):
    """A field read from a card: its value, how sure the reader is, and who gave it."""

    value: str | None
    confidence: float
    source: str


class CardScan(msgspec.Struct, kw_only=True):
    """A scanned card: its draft fields, why a person must look at it (``flags``), the
    matches the caller may see (``duplicates``) and how many they may not."""

    id: int
    status: Literal["review", "saved", "discarded"]
    filename: str
    page: int
    engine: str
    fields: dict[str, CardField]
    flags: list[str]
    duplicates: list[crmkit.MatchedRecord]
    hidden_matches: int
    contact_id: int | None
    account_id: int | None
    activity_id: int | None
    scanned_by_id: int | None
    scanned_at: dt.datetime
    location: str | None = None


class UploadFailure(msgspec.Struct, kw_only=True):
    """A file of an upload that could not be read."""

    file: str
    error: str


class CardUpload(msgspec.Struct, kw_only=True):
    """What an upload did: the cards read, the files that failed, how many cards were
    saved and how many wait for review."""

    cards: list[CardScan]
    failed: list[UploadFailure]
    saved: int
    review: int


class ScanDecision(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How to save a card under review: ``new`` contact, ``link`` to ``contact_id``, or
    ``update`` that contact's empty fields; ``fields`` corrects the draft first."""

    choice: Annotated[str, msgspec.Meta(description="new, link or update.")] = "new"
    contact_id: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None
    fields: dict[str, str] = msgspec.field(default_factory=dict)
    where: str | None = None


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def routes(crm: crmkit.CRM | None = None) -> list[Any]:
    """What ``crmkit_api_routes`` returns; the upload's size limit comes from ``crm``'s
    settings."""
    limit_mb = int(settings_of(crm)["max_upload_mb"]) if crm is not None else 20  # type: ignore[call-overload]
    body_limit = limit_mb * 2**20 + 256 * 1024  # the cards, plus the multipart framing

    class CardScanController(Controller):
        """Upload cards, review and decide scans, fetch a card's image."""

        path = "/"
        tags = ["cardscan"]  # noqa: RUF012 - Litestar reads this class attribute

        @post(
            "/scans",
            sync_to_thread=True,
            request_max_body_size=body_limit,
            responses=crmkit.problem_responses(401, 403, 413),
        )
        def upload(
            self,
            crm: CrmDependency,
            actor: ActorDependency,
            data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
        ) -> CardUpload:
            """Scan one or many cards: multipart form with ``card`` file part(s); ``save``
            (true/false) and ``where`` (text) optional. A file that cannot be read is
            reported under ``failed``; when no file could be read the answer is 400."""
            uploads = data.get("card")
            files = uploads if isinstance(uploads, list) else [uploads] if uploads else []
            files = [f for f in files if isinstance(f, UploadFile)]
            if not files:
                raise crmkit.CRMError("no card uploaded: send the image(s) as the 'card' file part")
            if len(files) > MAX_FILES:
                raise crmkit.CRMError(f"{len(files)} cards in one upload; at most {MAX_FILES}")
            save = _flag(data.get("save", "false"))
            where = data.get("where")
            where_text = str(where)[:200] if isinstance(where, str) and where.strip() else None
            cards: list[dict[str, Any]] = []
            failed: list[dict[str, str]] = []
            errors: list[crmkit.CRMError] = []
            for upload in files:
                name = (upload.filename or "card")[:200]
                try:
                    content = upload.file.read()
                    cards.extend(
                        service.scan_file(
                            crm, content, name, save=save, where=where_text, actor=actor
                        )
                    )
                except crmkit.PermissionDenied:
                    raise
                except crmkit.CRMError as error:
                    failed.append({"file": name, "error": str(error)})
                    errors.append(error)
            if errors and not cards:
                if len(errors) == 1:
                    raise errors[0]
                raise crmkit.CRMError("; ".join(str(e) for e in errors))
            body = {
                "cards": cards,
                "failed": failed,
                "saved": sum(1 for c in cards if c["status"] == "saved"),
                "review": sum(1 for c in cards if c["status"] == "review"),
            }
            return body  # type: ignore[return-value] # the JSON of a CardUpload

        @get("/scans", sync_to_thread=True, responses=crmkit.problem_responses(401, 403))
        def list_scans(
            self,
            crm: CrmDependency,
            actor: ActorDependency,
            status: Annotated[
                str, QueryParameter(description="review, saved, discarded or all.")
            ] = "review",
            limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 50,
        ) -> list[CardScan]:
            """Card scans, newest first (one's own; everyone's with cards:review)."""
            return service.scans(  # type: ignore[return-value] # the JSON of CardScans
                crm, status=None if status == "all" else status, limit=limit, actor=actor
            )

        @get(
            "/scans/{scan_id:int}",
            sync_to_thread=True,
            responses=crmkit.problem_responses(401, 403, 404),
        )
        def show(self, crm: CrmDependency, actor: ActorDependency, scan_id: ScanId) -> CardScan:
            """One card scan: its draft, flags and visible duplicates."""
            return service.get(crm, scan_id, actor=actor)  # type: ignore[return-value]

        @post(
            "/scans/{scan_id:int}/confirm",
            sync_to_thread=True,
            responses=crmkit.problem_responses(401, 403, 404, 409, 413, 422),
        )
        def confirm(
            self,
            crm: CrmDependency,
            actor: ActorDependency,
            scan_id: ScanId,
            data: Annotated[ScanDecision | None, Body()] = None,
        ) -> CardScan:
            """Save a scan under review: ``{"choice": "new"|"link"|"update",
            "contact_id": 42, "fields": {"title": "..."}, "where": "..."}``."""
            decision = data or ScanDecision()
            return service.confirm(  # type: ignore[return-value] # the JSON of a CardScan
                crm,
                scan_id,
                choice=decision.choice,
                contact_id=decision.contact_id,
                changes=decision.fields,
                where=decision.where[:200] if decision.where is not None else None,
                actor=actor,
            )

        @post(
            "/scans/{scan_id:int}/discard",
            sync_to_thread=True,
            responses=crmkit.problem_responses(401, 403, 404, 409),
        )
        def discard(self, crm: CrmDependency, actor: ActorDependency, scan_id: ScanId) -> CardScan:
            """Discard a scan under review (its image is deleted)."""
            return service.discard(crm, scan_id, actor=actor)  # type: ignore[return-value]

        @get(
            "/scans/{scan_id:int}/image",
            sync_to_thread=True,
            media_type="image/jpeg",
            responses=crmkit.problem_responses(401, 403, 404),
        )
        def image(
            self, crm: CrmDependency, actor: ActorDependency, scan_id: ScanId
        ) -> Response[bytes]:
            """The card's image: a saved card's to whoever may read its contact."""
            content, media_type = service.image(crm, scan_id, actor=actor)
            return Response(content, media_type=media_type)

    return [CardScanController]
