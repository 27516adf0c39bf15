"""The permissions crmkit knows and the built-in roles.

A permission is ``"<resource>:<action>"``. Every entity (core and plugin) has ``read``,
``create``, ``update``, ``delete`` and ``export``; customer entities also ``assign``; leads
``convert``. Administration has ``user:manage``, ``team:manage``, ``role:manage``,
``audit:read``, ``plugin:manage``, ``webhook:manage`` (API webhook subscriptions) and
``form:manage`` (lead-capture forms), ``message:manage`` (sending messages, the delivery
log, the do-not-contact list), ``segment:manage`` (saved segments: create, change,
delete); ``segment:read`` reads segments and counts and lists their members (within
``<entity>:read``); assignment has ``assignment:manage`` (rules, pool policies, bulk
assignment and release) and ``pool:claim`` (list and claim records of the shared pool).
Plugins add theirs through ``crmkit_permissions``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from crmkit.permissions.models import Scope

RECORD_ACTIONS = ("read", "create", "update", "delete", "export")
ASSIGNABLE = ("contact", "account", "lead", "deal")
#: Entities whose records can be merged (``<entity>:merge``, a sensitive operation).
MERGEABLE = ("contact", "account", "lead")
ADMIN_PERMISSIONS = (
    "user:manage",
    "team:manage",
    "role:manage",
    "audit:read",
    "plugin:manage",
    "webhook:manage",
    "form:manage",
    "assignment:manage",
    "message:manage",
    "segment:manage",
)
#: Taking records from the shared pool (within the per-user limits).
POOL_PERMISSIONS = ("pool:claim",)
#: Reading saved segments and counting and listing their members (within ``<entity>:read``).
SEGMENT_PERMISSIONS = ("segment:read",)
CUSTOMER_ENTITIES = ("contact", "account", "lead", "deal", "activity", "task")


def record_permissions(entities: Iterable[str]) -> list[str]:
    """The permissions of records of ``entities``."""
    names = [f"{entity}:{action}" for entity in entities for action in RECORD_ACTIONS]
    names += [f"{entity}:assign" for entity in ASSIGNABLE if entity in set(entities)]
    names += [f"{entity}:merge" for entity in MERGEABLE if entity in set(entities)]
    names += ["lead:convert"] if "lead" in set(entities) else []
    return names


def all_permissions(entities: Iterable[str], plugin_permissions: Iterable[str] = ()) -> list[str]:
    """Every permission a role may be granted, sorted."""
    return sorted(
        {
            *record_permissions(entities),
            *ADMIN_PERMISSIONS,
            *POOL_PERMISSIONS,
            *SEGMENT_PERMISSIONS,
            *plugin_permissions,
        }
    )


def _grants(actions: Iterable[str], scope: Scope) -> dict[str, Scope]:
    return {
        f"{entity}:{action}": scope
        for entity in CUSTOMER_ENTITIES
        for action in actions
        if not (action in ("assign",) and entity not in ASSIGNABLE)
    }


#: name → (description, grants). ``admin`` also gets every plugin permission when seeded.
BUILTIN_ROLES: Mapping[str, tuple[str, Mapping[str, Scope]]] = {
    "admin": (
        "Everything, on every record",
        {
            **_grants((*RECORD_ACTIONS, "assign"), Scope.ALL),
            "lead:convert": Scope.ALL,
            **{f"{entity}:merge": Scope.ALL for entity in MERGEABLE},
            **dict.fromkeys(ADMIN_PERMISSIONS, Scope.ALL),
            **dict.fromkeys(POOL_PERMISSIONS, Scope.ALL),
            **dict.fromkeys(SEGMENT_PERMISSIONS, Scope.ALL),
        },
    ),
    "manager": (
        "Reads and changes the records of their team and every team below it",
        {
            **_grants((*RECORD_ACTIONS, "assign"), Scope.SUBTREE),
            "lead:convert": Scope.SUBTREE,
            "pool:claim": Scope.ALL,
            "segment:read": Scope.ALL,
            "segment:manage": Scope.ALL,
            **{f"{entity}:merge": Scope.SUBTREE for entity in MERGEABLE},
        },
    ),
    "sales_rep": (
        "Works on their own customers",
        {
            **_grants(("read", "create", "update"), Scope.OWN),
            "lead:convert": Scope.OWN,
            "pool:claim": Scope.ALL,
            "segment:read": Scope.ALL,
        },
    ),
    "read_only": (
        "Reads every customer record, changes nothing",
        {**_grants(("read",), Scope.ALL), "segment:read": Scope.ALL},
    ),
}
