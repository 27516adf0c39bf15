"""The core's tables: organisation, customers, deals, follow-up, system."""

from crmkit.entities.customers import Account, Contact, Lead, LeadStatus, LifecycleStage
from crmkit.entities.deals import Deal, Pipeline, Stage, StageKind
from crmkit.entities.followup import Activity, ActivityKind, Task, TaskStatus
from crmkit.entities.forms import LeadForm
from crmkit.entities.merges import Merge
from crmkit.entities.organisation import Role, Team, User
from crmkit.entities.segments import SavedSegment
from crmkit.entities.system import PluginState

__all__ = [
    "Account",
    "Activity",
    "ActivityKind",
    "Contact",
    "Deal",
    "Lead",
    "LeadForm",
    "LeadStatus",
    "LifecycleStage",
    "Merge",
    "Pipeline",
    "PluginState",
    "Role",
    "SavedSegment",
    "Stage",
    "StageKind",
    "Task",
    "TaskStatus",
    "Team",
    "User",
]
