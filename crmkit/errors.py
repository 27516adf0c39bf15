"""The errors crmkit raises. Each names the problem and, where it can, the fix.

Interfaces translate them: the CLI prints ``str(error)`` on one line and exits non-zero, the
REST API answers problem+json with ``title`` and ``detail``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from attrs import frozen

if TYPE_CHECKING:
    from crmkit.duplicates import DisclosedMatch


class CRMError(Exception):
    """Base class of every error crmkit raises on purpose."""

    title = "CRM error"


class ConfigError(CRMError):
    """The configuration (file, database URL, settings) is wrong or missing."""

    title = "Configuration error"


@frozen
class FieldError:
    """One problem with one field of one record."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ValidationError(CRMError):
    """A record's values are invalid; ``errors`` names every bad field."""

    title = "Invalid input"

    def __init__(self, errors: Sequence[FieldError], entity: str | None = None) -> None:
        self.errors = tuple(errors)
        self.entity = entity
        what = f"invalid {entity}" if entity else "invalid input"
        super().__init__(f"{what}: " + "; ".join(str(e) for e in self.errors))


class NotFoundError(CRMError):
    """The record does not exist, was deleted, or is outside the actor's scope."""

    title = "Not found"

    def __init__(self, entity: str, record_id: object) -> None:
        self.entity = entity
        self.record_id = record_id
        super().__init__(f"{entity} {record_id} not found")


class ConflictError(CRMError):
    """The record changed since the caller read it (optimistic concurrency)."""

    title = "Conflict"


class DuplicateError(ConflictError):
    """A write was refused because the record matches existing ones (a duplicate rule said
    ``block``, or the collision policy refuses a customer somebody else owns). ``matches``
    holds ``crmkit.DisclosedMatch`` objects: what the actor may see of each match (a record
    outside their scope is named only by its owner); the message lists them."""

    title = "Duplicate"

    def __init__(self, message: str, matches: Sequence[DisclosedMatch]) -> None:
        self.matches = tuple(matches)
        super().__init__(message)


class PermissionDenied(CRMError):
    """The actor may not do this."""

    title = "Permission denied"


class TokenRejected(PermissionDenied):
    """An API token is unknown, revoked or expired, or belongs to a deactivated user (the
    REST API answers 401)."""

    title = "Authentication required"


class PluginError(CRMError):
    """A plugin failed: it raised inside a hook, or it cannot be enabled or loaded."""

    title = "Plugin error"

    def __init__(self, plugin: str, message: str) -> None:
        self.plugin = plugin
        super().__init__(message)


class PluginVeto(CRMError):
    """Raised by a plugin's hook to refuse an operation; the whole operation rolls back.

    Example::

        @crmkit.hookimpl
        def crmkit_before_create(op, entity, values):
            if entity == "contact" and not values.get("email"):
                raise crmkit.PluginVeto("contacts need an e-mail address here")
    """

    title = "Refused by a plugin"
