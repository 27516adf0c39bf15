"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error the API answers has ``type``, ``title``, ``status`` and ``detail``; validation
errors add ``errors: [{field, message}]``; a duplicate refused on create adds ``matches``.
crmkit errors map by class (:data:`STATUS_BY_ERROR`), Litestar's own (unknown route, wrong
method, oversize or malformed body, wrong types) keep their status and get the same shape.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import DataError

from crmkit.api.schemas import MatchedRecord
from crmkit.duplicates import DisclosedMatch
from crmkit.errors import (
    ConflictError,
    CRMError,
    NotFoundError,
    PermissionDenied,
    TokenRejected,
    ValidationError,
)
from crmkit.events.payloads import to_json

log = logging.getLogger(__name__)
_FIELD_IN_MESSAGE = re.compile(r"(?:unknown|missing required) field `([^`]+)`")

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:crmkit:problem:"


class PreconditionFailed(ConflictError):
    """``If-Match`` named a version the record is no longer at (answered 412)."""

    title = "Precondition failed"


#: crmkit error classes and the HTTP status they answer (the first matching class wins).
STATUS_BY_ERROR: tuple[tuple[type[CRMError], int], ...] = (
    (PreconditionFailed, 412),
    (NotFoundError, 404),
    (PermissionDenied, 403),
    (ValidationError, 422),
    (ConflictError, 409),
    (CRMError, 400),
)

_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Permission denied",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal server error",
}


class FieldProblem(msgspec.Struct):
    """One bad field: its name and what is wrong with it."""

    field: str
    message: str


#: Some ``type`` values of the problems the API answers (``urn:crmkit:problem:<slug>``, the
#: slug from the error's class or title), named in the OpenAPI document's ``Problem`` schema.
PROBLEM_TYPES = (
    "validation-error",
    "not-found-error",
    "permission-denied",
    "conflict-error",
    "duplicate-error",
    "precondition-failed",
    "bad-request",
    "authentication-required",
    "request-body-too-large",
    "internal-error",
)

_TYPE_HELP = (
    "What went wrong, as a URN such as "
    + ", ".join(f"`{PROBLEM_TYPE_BASE}{slug}`" for slug in PROBLEM_TYPES)
    + " (a plugin's errors have slugs of their own)."
)


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem details object (``application/problem+json``)."""

    type: Annotated[
        str,
        msgspec.Meta(description=_TYPE_HELP),
    ]
    title: str
    status: int
    detail: str
    errors: Annotated[
        list[FieldProblem] | None, msgspec.Meta(description="The bad fields (400, 422).")
    ] = None
    matches: Annotated[
        list[MatchedRecord] | None,
        msgspec.Meta(description="The records a refused duplicate matches (409)."),
    ] = None


#: The challenge of a 401: which scheme the API takes.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="crmkit"'}


def problem_body(
    status: int, detail: str, *, slug: str | None = None, title: str | None = None
) -> dict[str, Any]:
    """The members every problem has: type, title, status and detail."""
    title = title or _TITLES.get(status, "Error")
    return {
        "type": PROBLEM_TYPE_BASE + (slug or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail,
    }


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    errors: Sequence[tuple[str, str]] = (),
    matches: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[dict[str, Any]]:
    """A problem+json response."""
    body = problem_body(status, detail, slug=slug, title=title)
    if errors:
        body["errors"] = [{"field": field, "message": message} for field, message in errors]
    if matches is not None:
        body["matches"] = [to_json(dict(match)) for match in matches]
    return Response(
        body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=dict(headers or {})
    )


def _match_json(match: object) -> Mapping[str, Any]:
    if isinstance(match, Mapping):
        return match
    if isinstance(match, DisclosedMatch):
        return match.as_dict()
    fields = getattr(type(match), "__attrs_attrs__", None)
    if fields is not None:
        return {field.name: getattr(match, field.name) for field in fields}
    return {"match": str(match)}


def crm_error_response(error: CRMError) -> Response[dict[str, Any]]:
    """The problem response of a crmkit error."""
    status = next(code for kind, code in STATUS_BY_ERROR if isinstance(error, kind))
    errors: list[tuple[str, str]] = []
    if isinstance(error, ValidationError):
        errors = [(item.field, item.message) for item in error.errors]
    matches = getattr(error, "matches", None)
    return problem_response(
        status,
        str(error),
        title=error.title,
        slug=_slug(type(error).__name__),
        errors=errors,
        matches=[_match_json(m) for m in matches] if matches is not None else None,
    )


def _slug(class_name: str) -> str:
    out = []
    for index, char in enumerate(class_name):
        if char.isupper() and index:
            out.append("-")
        out.append(char.lower())
    return "".join(out)


def handle_crm_error(request: Request[Any, Any, Any], error: CRMError) -> Response[Any]:
    """Exception handler: crmkit errors. A bearer token rejected inside the request's
    operation answers exactly as one rejected before it (401 with the challenge)."""
    if isinstance(error, TokenRejected):
        return problem_response(401, str(error), headers=CHALLENGE)
    return crm_error_response(error)


def handle_http_exception(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    """Exception handler: Litestar's errors (404 route, 405, 413, 400 bad body, 401, ...)."""
    status = error.status_code
    headers = dict(error.headers or {})
    if isinstance(error, ValidationException):
        problems = _validation_problems(error.extra)
        in_body = [field for field, _, source in problems if source == "body"]
        if in_body:  # a body of the wrong shape: fields named, like the services' own errors
            return problem_response(
                422,
                "invalid input: " + "; ".join(f"{f}: {m}" for f, m, _ in problems),
                slug="validation-error",
                errors=[(f, m) for f, m, _ in problems],
                headers=headers,
            )
        detail = error.detail
        if problems:
            detail = "; ".join(f"{f}: {m}" for f, m, _ in problems)
        return problem_response(
            400,
            detail,
            slug="bad-request",
            errors=[(f, m) for f, m, _ in problems],
            headers=headers,
        )
    detail = error.detail or _TITLES.get(status, "Error")
    if status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    elif status == 404 and detail == "Not Found":
        detail = f"no route {request.url.path}"
    elif status == 413:
        detail = "the request body is larger than the API accepts (crmkit.api.max_body_bytes)"
    return problem_response(status, detail, headers=headers)


def _validation_problems(extra: object) -> list[tuple[str, str, str]]:
    """``(field, message, source)`` from a Litestar validation error's ``extra``."""
    found: list[tuple[str, str, str]] = []
    if isinstance(extra, list):
        for item in extra:
            if isinstance(item, Mapping):
                key = str(item.get("key") or "body")
                message = str(item.get("message") or "is invalid")
                named = _FIELD_IN_MESSAGE.search(message)
                if key in ("data", "body") and named:  # msgspec names the field in the text
                    key = named.group(1)
                found.append((key, message, str(item.get("source") or "")))
    return found


def handle_unexpected(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    """Exception handler: anything else is a bug; log it, answer 500 without internals."""
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem_response(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "the server failed on this request; it has been logged",
        slug="internal-error",
    )


def handle_unreadable_body(
    request: Request[Any, Any, Any], error: SerializationException
) -> Response[Any]:
    """Exception handler: a body the JSON decoder refused outside a typed parameter (an
    integer beyond 64 bits, bad UTF-8, ...): a 400 naming the problem."""
    detail = str(error).strip() or "the body is not valid JSON"
    return problem_response(400, f"the request body cannot be read: {detail[:200]}")


def handle_data_error(request: Request[Any, Any, Any], error: DataError) -> Response[Any]:
    """Exception handler: a value the database refused as data (out of range for its
    column, malformed): the caller's input, 422, without the database's text (it carries
    the statement and its parameters)."""
    log.info("database refused a value on %s %s: %s", request.method, request.url.path, error)
    return problem_response(
        422, "a value does not fit the database (out of range or malformed)", slug="invalid-value"
    )


def handle_recursion(request: Request[Any, Any, Any], error: RecursionError) -> Response[Any]:
    """Exception handler: JSON nested deeper than the decoder goes is the caller's problem
    (400); any other recursion error is a bug (500, logged)."""
    if "deserializ" in str(error) or "decod" in str(error):
        return problem_response(
            400, "the request body is nested too deeply to read", slug="bad-request"
        )
    return handle_unexpected(request, error)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    CRMError: handle_crm_error,
    HTTPException: handle_http_exception,
    SerializationException: handle_unreadable_body,
    RecursionError: handle_recursion,
    DataError: handle_data_error,
    Exception: handle_unexpected,
}


def problem_specs(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI response entries for the given error statuses (400, a request Litestar cannot
    read, always among them)."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=_TITLES.get(status, "Error"),
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status in sorted({400, *statuses})
    }
