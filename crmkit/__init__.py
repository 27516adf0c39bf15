"""crmkit: a plugin-extensible CRM framework.

Everything a plugin or an application may import is listed here; the rest of the package is
private and may change. Plugins import ``crmkit`` and nothing below it.
"""

from crmkit.app import CRM, open_crm
from crmkit.assignment.rules import AssignmentRequest, AssignmentStrategy
from crmkit.assignment.rules import Candidate as AssignmentCandidate
from crmkit.assignment.rules import Choice as AssignmentChoice
from crmkit.db.base import Base as Model
from crmkit.db.base import RecordMixin, utcnow
from crmkit.desk.extensions import (
    DeskAction,
    DeskLink,
    DeskMenuEntry,
    DeskPage,
    DeskPanel,
    DeskTile,
    DeskView,
)
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
from crmkit.services.merges import STRATEGIES as MERGE_STRATEGIES
from crmkit.services.merges import MergeResult, MergeService
from crmkit.services.operation import Operation
from crmkit.services.records import BulkRejected, BulkResult, Page, RecordService, RowError
from crmkit.settings import Settings, SettingSpec

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
    "ConfigError",
    "ConflictError",
    "Contact",
    "CustomField",
    "Deal",
    "DeskAction",
    "DeskLink",
    "DeskMenuEntry",
    "DeskPage",
    "DeskPanel",
    "DeskTile",
    "DeskView",
    "DuplicateAction",
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
    "cli_crm",
    "hookimpl",
    "normalise_email",
    "normalise_name",
    "normalise_phone",
    "open",
    "open_crm",
    "utcnow",
]


def cli_crm() -> CRM:
    """The CRM the running ``crmkit`` command opened (for plugin CLI commands)."""
    from crmkit.cli.context import current_crm

    return current_crm()
