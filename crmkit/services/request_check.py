"""A check a request owes before it may read or write anything (the API's bearer token, the
desk's session), run inside the first operation the request opens.

Checking up front in a transaction of its own cost each request a second transaction; a
check run as the first statement of the request's own operation costs one statement and
fails that operation before it does anything. :meth:`crmkit.app.CRM.transaction` asks
:func:`pending_check` for the current context's check and runs it (see docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.services.operation import Operation


class RequestCheck(Protocol):
    """What a request must pass in its first operation: ``verify`` raises (a
    :class:`crmkit.errors.CRMError`) to refuse it, or sets ``verified``."""

    @property
    def crm(self) -> CRM:
        """The CRM whose operations run the check."""

    @property
    def verified(self) -> bool:
        """Whether a check in this request has passed."""

    def verify(self, op: Operation) -> None:
        """Check, in ``op``'s transaction, before ``op`` does anything."""


_PENDING: ContextVar[RequestCheck | None] = ContextVar("crmkit_request_check", default=None)


@contextmanager
def checking(check: RequestCheck) -> Iterator[RequestCheck]:
    """Within the block, the first operation ``check.crm`` opens (in this context: the
    request's task and the worker threads it runs code in) runs ``check`` first."""
    reset = _PENDING.set(check)
    try:
        yield check
    finally:
        _PENDING.reset(reset)


def check_rest_of_context(check: RequestCheck) -> None:
    """Make ``check`` the current context's check until the context ends: for code that runs
    in a context of its own per request (Litestar runs each synchronous handler in a copy
    of the request's context), where no block encloses the rest of the request."""
    _PENDING.set(check)


def pending_check(crm: CRM) -> RequestCheck | None:
    """The current context's check for ``crm``, if it has not passed yet."""
    check = _PENDING.get()
    if check is None or check.verified or check.crm is not crm:
        return None
    return check
