"""crmkit: a plugin-extensible CRM framework.

Everything a plugin or an application may import is listed here; the rest of the package is
private and may change. Plugins import ``crmkit`` and nothing below it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmkit.app import CRM, open_crm
from crmkit.assignment.rules import AssignmentRequest, AssignmentStrategy
from crmkit.assignment.rules import Candidate as AssignmentCandidate
from crmkit.assignment.rules import Choice as AssignmentChoice
from crmkit.cards import CardField, OcrEngine, OcrLine
from crmkit.db.base import Base as Model
from crmkit.db.base import RecordMixin, utcnow
from crmkit.duplicates import DuplicateAction, DuplicateMatch
from crmkit.entities import (
    Account,
    Activity,
    ActivityKind,
    Contact,
    Deal,
    Lead,
    LeadStatus,
    LifecycleStage,
    Pipeline,
    Stage,
    StageKind,
    Task,
    TaskStatus,
    Team,
    User,
)
from crmkit.entities.custom_fields import CustomField, FieldType
from crmkit.entities.normalise import normalise_email, normalise_name, normalise_phone
from crmkit.entities.registry import EntityType
from crmkit.errors import (
    ConfigError,
    ConflictError,
    CRMError,
    DuplicateError,
    FieldError,
    NotFoundError,
    PermissionDenied,
    PluginError,
    PluginVeto,
    TokenRejected,
    ValidationError,
)
from crmkit.events.types import Event, EventSink
from crmkit.events.webhook import WebhookSink
from crmkit.plugins import PluginSpec, hookimpl
from crmkit.services.duplicate_check import DuplicateCheck, check_duplicates
from crmkit.services.merges import STRATEGIES as MERGE_STRATEGIES
from crmkit.services.merges import MergeResult, MergeService
from crmkit.services.operation import Operation
from crmkit.services.records import BulkRejected, BulkResult, Page, RecordService, RowError
from crmkit.settings import Settings, SettingSpec

if TYPE_CHECKING:
    from litestar.openapi.datastructures import ResponseSpec

open = open_crm

__version__ = "0.1.0"

__all__ = [
    "CRM",
    "MERGE_STRATEGIES",
    "Account",
    "Activity",
    "ActivityKind",
    "AssignmentCandidate",
    "AssignmentChoice",
    "AssignmentRequest",
    "AssignmentStrategy",
    "BulkRejected",
    "BulkResult",
    "CRMError",
    "CardField",
    "ConfigError",
    "ConflictError",
    "Contact",
    "CustomField",
    "Deal",
    "DuplicateAction",
    "DuplicateCheck",
    "DuplicateError",
    "DuplicateMatch",
    "EntityType",
    "Event",
    "EventSink",
    "FieldError",
    "FieldType",
    "Lead",
    "LeadStatus",
    "LifecycleStage",
    "MergeResult",
    "MergeService",
    "Model",
    "NotFoundError",
    "OcrEngine",
    "OcrLine",
    "Operation",
    "Page",
    "PermissionDenied",
    "Pipeline",
    "PluginError",
    "PluginSpec",
    "PluginVeto",
    "RecordMixin",
    "RecordService",
    "RowError",
    "SettingSpec",
    "Settings",
    "Stage",
    "StageKind",
    "Task",
    "TaskStatus",
    "Team",
    "TokenRejected",
    "User",
    "ValidationError",
    "WebhookSink",
    "check_duplicates",
    "cli_crm",
    "hookimpl",
    "normalise_email",
    "normalise_name",
    "normalise_phone",
    "open",
    "open_crm",
    "problem_responses",
    "utcnow",
]


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI response entries (RFC 9457 problem+json) for a plugin route's error statuses,
    400 always among them: ``@post("/x", responses=crmkit.problem_responses(404, 409))``.
    The core's exception handlers answer every ``crmkit.CRMError`` in that shape."""
    from crmkit.api.problems import problem_specs

    return problem_specs(*statuses)


def cli_crm() -> CRM:
    """The CRM the running ``crmkit`` command opened (for plugin CLI commands)."""
    from crmkit.cli.context import current_crm

    return current_crm()
