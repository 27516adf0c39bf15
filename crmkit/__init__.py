"""crmkit: a plugin-extensible CRM framework.

Everything a plugin or an application may import is listed here; the rest of the package is
private and may change. Plugins import ``crmkit`` and nothing below it.
"""

import importlib
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from crmkit.api.schemas import MatchedRecord
    from crmkit.app import CRM, open_crm
    from crmkit.assignment.rules import AssignmentRequest, AssignmentStrategy
    from crmkit.assignment.rules import Candidate as AssignmentCandidate
    from crmkit.assignment.rules import Choice as AssignmentChoice
    from crmkit.assignment.rules import Member as AssignmentMember
    from crmkit.assignment.rules import Rule as AssignmentRule
    from crmkit.cards import CardField, OcrEngine, OcrLine
    from crmkit.collector import collector_paused
    from crmkit.db.base import Base as Model
    from crmkit.db.base import RecordMixin, UTCDateTime, utcnow
    from crmkit.db.engine import allocate_ids, bind_value, bulk_insert
    from crmkit.desk.extensions import (
        DeskAction,
        DeskButton,
        DeskLink,
        DeskMenuEntry,
        DeskPage,
        DeskPanel,
        DeskTile,
        DeskView,
    )
    from crmkit.desk.i18n import desk_gettext
    from crmkit.duplicates import DisclosedMatch, DuplicateAction, DuplicateMatch
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
    from crmkit.entities.registry import EntityType, ParentLink
    from crmkit.entities.segments import MeasureContext, SegmentMeasure
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
    from crmkit.events.outbox import OutboxEvent
    from crmkit.events.types import BatchEventSink, Event, EventSink
    from crmkit.events.webhook import WebhookSink
    from crmkit.hookspecs import hookspec
    from crmkit.messages.channels import (
        MessageChannel,
        MessageInvalid,
        MessageRejected,
        OutgoingMessage,
    )
    from crmkit.messages.models import Suppression
    from crmkit.messages.outbox import Message, SendResult
    from crmkit.plugins import PluginSpec, hookimpl
    from crmkit.services.disclosure import (
        LABEL_FIELDS,
        disclosed_matches,
        readable_ids_query,
        readable_record_ids,
    )
    from crmkit.services.duplicate_check import DuplicateCheck, check_duplicates
    from crmkit.services.merges import STRATEGIES as MERGE_STRATEGIES
    from crmkit.services.merges import MergeResult, MergeService
    from crmkit.services.messages import DeliveryRecord
    from crmkit.services.operation import Operation
    from crmkit.services.records import BulkRejected, BulkResult, Page, RecordService, RowError
    from crmkit.services.scheduler import JobContext, ScheduledJob
    from crmkit.services.segments import Segment, SegmentService
    from crmkit.settings import Settings, SettingSpec

    open = open_crm

#: Every public name and where it lives ("module" or "module:attribute" when renamed).
#: Looked up on first use, so ``import crmkit`` (and the CLI's start-up) stays cheap.
#: A new public name goes here, in the TYPE_CHECKING block above (for type checkers) and
#: in ``__all__``; tests/test_public_api.py fails until all three agree.
_EXPORTS: dict[str, str] = {
    "Account": "crmkit.entities",
    "Activity": "crmkit.entities",
    "ActivityKind": "crmkit.entities",
    "AssignmentCandidate": "crmkit.assignment.rules:Candidate",
    "AssignmentChoice": "crmkit.assignment.rules:Choice",
    "AssignmentMember": "crmkit.assignment.rules:Member",
    "AssignmentRequest": "crmkit.assignment.rules",
    "AssignmentRule": "crmkit.assignment.rules:Rule",
    "AssignmentStrategy": "crmkit.assignment.rules",
    "BatchEventSink": "crmkit.events.types",
    "BulkRejected": "crmkit.services.records",
    "BulkResult": "crmkit.services.records",
    "CRM": "crmkit.app",
    "CRMError": "crmkit.errors",
    "CardField": "crmkit.cards",
    "ConfigError": "crmkit.errors",
    "ConflictError": "crmkit.errors",
    "Contact": "crmkit.entities",
    "CustomField": "crmkit.entities.custom_fields",
    "Deal": "crmkit.entities",
    "DeliveryRecord": "crmkit.services.messages",
    "DeskAction": "crmkit.desk.extensions",
    "DeskButton": "crmkit.desk.extensions",
    "DeskLink": "crmkit.desk.extensions",
    "DeskMenuEntry": "crmkit.desk.extensions",
    "DeskPage": "crmkit.desk.extensions",
    "DeskPanel": "crmkit.desk.extensions",
    "DeskTile": "crmkit.desk.extensions",
    "DeskView": "crmkit.desk.extensions",
    "DisclosedMatch": "crmkit.duplicates",
    "MatchedRecord": "crmkit.api.schemas",
    "DuplicateAction": "crmkit.duplicates",
    "DuplicateCheck": "crmkit.services.duplicate_check",
    "DuplicateError": "crmkit.errors",
    "DuplicateMatch": "crmkit.duplicates",
    "EntityType": "crmkit.entities.registry",
    "Event": "crmkit.events.types",
    "EventSink": "crmkit.events.types",
    "FieldError": "crmkit.errors",
    "FieldType": "crmkit.entities.custom_fields",
    "JobContext": "crmkit.services.scheduler",
    "LABEL_FIELDS": "crmkit.services.disclosure",
    "Lead": "crmkit.entities",
    "LeadStatus": "crmkit.entities",
    "LifecycleStage": "crmkit.entities",
    "MERGE_STRATEGIES": "crmkit.services.merges:STRATEGIES",
    "MeasureContext": "crmkit.entities.segments",
    "MergeResult": "crmkit.services.merges",
    "MergeService": "crmkit.services.merges",
    "Message": "crmkit.messages.outbox",
    "MessageChannel": "crmkit.messages.channels",
    "MessageInvalid": "crmkit.messages.channels",
    "MessageRejected": "crmkit.messages.channels",
    "Model": "crmkit.db.base:Base",
    "NotFoundError": "crmkit.errors",
    "OcrEngine": "crmkit.cards",
    "OcrLine": "crmkit.cards",
    "Operation": "crmkit.services.operation",
    "OutboxEvent": "crmkit.events.outbox",
    "OutgoingMessage": "crmkit.messages.channels",
    "Page": "crmkit.services.records",
    "ParentLink": "crmkit.entities.registry",
    "PermissionDenied": "crmkit.errors",
    "Pipeline": "crmkit.entities",
    "PluginError": "crmkit.errors",
    "PluginSpec": "crmkit.plugins",
    "PluginVeto": "crmkit.errors",
    "RecordMixin": "crmkit.db.base",
    "RecordService": "crmkit.services.records",
    "RowError": "crmkit.services.records",
    "ScheduledJob": "crmkit.services.scheduler",
    "Segment": "crmkit.services.segments",
    "SegmentMeasure": "crmkit.entities.segments",
    "SegmentService": "crmkit.services.segments",
    "SendResult": "crmkit.messages.outbox",
    "SettingSpec": "crmkit.settings",
    "Settings": "crmkit.settings",
    "Stage": "crmkit.entities",
    "StageKind": "crmkit.entities",
    "Suppression": "crmkit.messages.models",
    "Task": "crmkit.entities",
    "TaskStatus": "crmkit.entities",
    "Team": "crmkit.entities",
    "TokenRejected": "crmkit.errors",
    "UTCDateTime": "crmkit.db.base",
    "User": "crmkit.entities",
    "ValidationError": "crmkit.errors",
    "WebhookSink": "crmkit.events.webhook",
    "allocate_ids": "crmkit.db.engine",
    "bind_value": "crmkit.db.engine",
    "bulk_insert": "crmkit.db.engine",
    "check_duplicates": "crmkit.services.duplicate_check",
    "collector_paused": "crmkit.collector",
    "desk_gettext": "crmkit.desk.i18n",
    "disclosed_matches": "crmkit.services.disclosure",
    "hookimpl": "crmkit.plugins",
    "hookspec": "crmkit.hookspecs",
    "normalise_email": "crmkit.entities.normalise",
    "normalise_name": "crmkit.entities.normalise",
    "normalise_phone": "crmkit.entities.normalise",
    "open": "crmkit.app:open_crm",
    "open_crm": "crmkit.app",
    "readable_ids_query": "crmkit.services.disclosure",
    "readable_record_ids": "crmkit.services.disclosure",
    "utcnow": "crmkit.db.base",
}

__version__ = "0.1.0"

__all__ = [
    "CRM",
    "LABEL_FIELDS",
    "MERGE_STRATEGIES",
    "Account",
    "Activity",
    "ActivityKind",
    "AssignmentCandidate",
    "AssignmentChoice",
    "AssignmentMember",
    "AssignmentRequest",
    "AssignmentRule",
    "AssignmentStrategy",
    "BatchEventSink",
    "BulkRejected",
    "BulkResult",
    "CRMError",
    "CardField",
    "ConfigError",
    "ConflictError",
    "Contact",
    "CustomField",
    "Deal",
    "DeliveryRecord",
    "DeskAction",
    "DeskButton",
    "DeskLink",
    "DeskMenuEntry",
    "DeskPage",
    "DeskPanel",
    "DeskTile",
    "DeskView",
    "DisclosedMatch",
    "DuplicateAction",
    "DuplicateCheck",
    "DuplicateError",
    "DuplicateMatch",
    "EntityType",
    "Event",
    "EventSink",
    "FieldError",
    "FieldType",
    "JobContext",
    "Lead",
    "LeadStatus",
    "LifecycleStage",
    "MatchedRecord",
    "MeasureContext",
    "MergeResult",
    "MergeService",
    "Message",
    "MessageChannel",
    "MessageInvalid",
    "MessageRejected",
    "Model",
    "NotFoundError",
    "OcrEngine",
    "OcrLine",
    "Operation",
    "OutboxEvent",
    "OutgoingMessage",
    "Page",
    "ParentLink",
    "PermissionDenied",
    "Pipeline",
    "PluginError",
    "PluginSpec",
    "PluginVeto",
    "RecordMixin",
    "RecordService",
    "RowError",
    "ScheduledJob",
    "Segment",
    "SegmentMeasure",
    "SegmentService",
    "SendResult",
    "SettingSpec",
    "Settings",
    "Stage",
    "StageKind",
    "Suppression",
    "Task",
    "TaskStatus",
    "Team",
    "TokenRejected",
    "UTCDateTime",
    "User",
    "ValidationError",
    "WebhookSink",
    "allocate_ids",
    "bind_value",
    "bulk_insert",
    "check_duplicates",
    "cli_crm",
    "cli_progress_stream",
    "collector_paused",
    "desk_gettext",
    "disclosed_matches",
    "formula_safe",
    "hookimpl",
    "hookspec",
    "normalise_email",
    "normalise_name",
    "normalise_phone",
    "open",
    "open_crm",
    "problem_responses",
    "readable_ids_query",
    "readable_record_ids",
    "require_modules",
    "terminal_safe",
    "utcnow",
]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562) and keep it in the module."""
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'crmkit' has no attribute {name!r}")
    module_name, _, attribute = target.partition(":")
    value = getattr(importlib.import_module(module_name), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


def cli_crm() -> "CRM":
    """The CRM the running ``crmkit`` command opened (for plugin CLI commands)."""
    from crmkit.cli.context import current_crm

    return current_crm()


def cli_progress_stream() -> TextIO:
    """Where a plugin command draws a progress bar (``click.progressbar(file=...)``): the
    raw standard error. Everything else a command prints goes through crmkit's terminal
    guard, which shows control characters (a bar's carriage returns too) as escapes."""
    import sys

    from crmkit.cli.terminal import raw_stream

    return raw_stream(sys.stderr)


def formula_safe(cell: str) -> str:
    """A CSV cell as a spreadsheet will not run it (a leading ``'`` before ``=``, ``+``,
    ``-``, ``@``, tab or carriage return; a plain number stays as it is), for a plugin that
    exports stored text, as ``crmkit export`` does."""
    from crmkit.services.transfer import formula_safe as safe

    return safe(cell)


def terminal_safe(text: str) -> str:
    """``text`` with control characters shown as escapes (``\\x1b``), for a plugin that
    writes stored text somewhere crmkit's terminal guard does not see."""
    from crmkit.cli.terminal import terminal_safe as safe

    return safe(text)


def require_modules(*names: str, install: str) -> None:
    """Fail a plugin's import, naming what is missing and ``install`` (how to get it), when
    one of the modules ``names`` is not installed, without importing any of them: a plugin
    checks its extra's libraries this way and imports them inside the functions that use
    them, so opening a CRM (and every command) does not pay for them.

    Example::

        crmkit.require_modules("numpy", "opencc", install="pip install 'crmkit[dedupe]'")
    """
    import importlib.util

    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    if missing:
        raise ModuleNotFoundError(f"missing {', '.join(missing)}: {install}", name=missing[0])


def problem_responses(*statuses: int) -> dict[int, Any]:
    """OpenAPI entries documenting RFC 9457 problem+json answers with ``statuses`` (400
    always among them), for a plugin route's ``responses=``: crmkit errors raised in a
    route already become problem+json; this says so in the schema, so clients (and the
    schemathesis fuzz tests) know every status a route may answer.

    Example::

        @post("/cards", responses=crmkit.problem_responses(403, 404, 409, 422))
        def issue(...): ...
    """
    from crmkit.api.problems import problem_specs

    return dict(problem_specs(*statuses))
