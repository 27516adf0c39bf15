"""The composition root: settings, engine, plugins, entities and services of one CRM."""

from __future__ import annotations

import logging
import threading
import types
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from crmkit.db import migrate
from crmkit.db.engine import READ_ONLY, make_engine
from crmkit.db.models import import_core_models
from crmkit.entities.custom_fields import CustomField
from crmkit.entities.organisation import User
from crmkit.entities.registry import CORE_ENTITIES, EntityType, checked_child
from crmkit.entities.system import PluginState
from crmkit.errors import ConfigError, CRMError
from crmkit.events.types import Event
from crmkit.permissions.access import AccessCache
from crmkit.plugins import InstalledPlugin, PluginHost, discover_plugins, in_memory_plugin
from crmkit.services.operation import Operation
from crmkit.services.request_check import pending_check
from crmkit.services.values import ValuePreparer
from crmkit.settings import Settings

if TYPE_CHECKING:
    from crmkit.events.types import EventSink
    from crmkit.services.assignment import AssignmentService
    from crmkit.services.audit_log import AuditLog
    from crmkit.services.deals import DealService, PipelineService
    from crmkit.services.forms import FormService
    from crmkit.services.leads import LeadService
    from crmkit.services.merges import MergeService
    from crmkit.services.messages import MessageService
    from crmkit.services.pool import PoolService
    from crmkit.services.records import RecordService
    from crmkit.services.roles import RoleService
    from crmkit.services.segments import SegmentService
    from crmkit.services.sign_in import SignInService
    from crmkit.services.tokens import TokenService
    from crmkit.services.users import UserService
    from crmkit.services.webhooks import WebhookSubscriptionService

log = logging.getLogger(__name__)


class CRM:
    """One CRM: a database, its enabled plugins and the services that work on it.

    Open it with :func:`crmkit.open`. Each service call runs in its own transaction unless it
    is made through an :class:`Operation` from :meth:`transaction`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        plugins: Mapping[str, object] | None = None,
        discover: bool = True,
    ) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url, echo=settings.echo_sql)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )
        self.installed: dict[str, InstalledPlugin] = discover_plugins() if discover else {}
        self.embedded = {name: in_memory_plugin(name, obj) for name, obj in (plugins or {}).items()}
        self.installed.update(self.embedded)
        self.host = PluginHost()
        self._subscribers: list[tuple[tuple[str, ...], Any]] = []
        self._plugin_settings: dict[str, dict[str, Any]] = {}
        self._local = threading.local()  # the operation open in each thread, if any
        self.access_cache = AccessCache()  # each user's permissions, checked per operation
        self._closed = False
        try:
            initialised = migrate.is_initialised(self.engine)
        except OperationalError as error:
            self.engine.dispose()
            raise ConfigError(
                f"cannot connect to the database {self.engine.url.render_as_string()}:"
                f" {_first_line(error)}"
            ) from None
        self.initialised = initialised
        stored = self._stored_enabled()  # read once for the warning and the registration
        if discover:
            self._warn_enabled_but_broken(stored)
        for name in self._enabled_names(stored):
            self.host.register(self.installed[name])
        from crmkit.services.collisions import CORE_CHECK_NAME, CoreDuplicateCheck

        self.host.register_core(CoreDuplicateCheck(), CORE_CHECK_NAME)
        from crmkit.services.segment_filters import CORE_MEASURES_NAME, CoreMeasures

        self.host.register_core(CoreMeasures(), CORE_MEASURES_NAME)
        self._build_registry()
        if initialised:
            from crmkit.services.uniqueness import ensure_unique_indexes

            ensure_unique_indexes(self)
        self.host.call("crmkit_startup", crm=self)

    # -- plugins ---------------------------------------------------------------------------

    def enabled_plugin_names(self) -> list[str]:
        """Plugins enabled in the database and loadable here, plus embedded ones."""
        return self._enabled_names(self._stored_enabled())

    def _enabled_names(self, stored: set[str]) -> list[str]:
        names = set(self.embedded) | {n for n in stored if n in self.installed}
        return sorted(n for n in names if self.installed[n].loaded)

    def _stored_enabled(self) -> set[str]:
        if not self.initialised:
            return set()
        with self._read_sessions() as session:
            return set(session.scalars(select(PluginState.name).where(PluginState.enabled)))

    def import_installed_plugins(self) -> None:
        """Import every installed plugin, enabled or not (a CRM opens with only the enabled
        ones imported), and every core model module (a command imports those its path
        uses), so that all their models are in the SQLAlchemy metadata: for work that
        must see every table the database may hold, such as a merge re-pointing references
        in a disabled plugin's tables (its data stays while it is disabled)."""
        import_core_models()
        for plugin in self.installed.values():
            plugin.load()

    def _warn_enabled_but_broken(self, stored: set[str]) -> None:
        """An enabled plugin (``stored``: the names enabled in the database) that cannot load
        here is worth a warning on every start (its hooks are not running); one merely
        installed without its extra is not."""
        for name in sorted(stored):
            plugin = self.installed.get(name)
            if plugin is not None and not plugin.loaded:
                log.warning(
                    "plugin %r is enabled but failed to load, so its hooks are not running: %s",
                    name,
                    plugin.load_error,
                )

    def _build_registry(self) -> None:
        self.entities: dict[str, EntityType] = {e.name: e for e in CORE_ENTITIES}
        for group in self.host.call("crmkit_entities"):
            for entity in group:
                if entity.name in self.entities:
                    raise ConfigError(f"entity {entity.name!r} is declared twice")
                self.entities[entity.name] = entity
        for entity in list(self.entities.values()):
            if entity.parent is not None:
                self.entities[entity.name] = checked_child(entity, self.entities)
        self.custom_fields: dict[str, dict[str, CustomField]] = {name: {} for name in self.entities}
        declared = list(self.settings.custom_fields)
        for group in self.host.call("crmkit_custom_fields"):
            declared.extend(group)
        for custom in declared:
            self._add_custom_field(custom)
        self._preparers: dict[str, ValuePreparer] = {}
        #: relations and measures segments may filter on (built on first use)
        self.segment_vocabulary: dict[Any, Any] = {}
        core = {entity.name for entity in CORE_ENTITIES}
        for name in self.entities:
            if name not in core:
                self.preparer(name)  # a plugin column crmkit cannot validate fails here, named

    def _add_custom_field(self, custom: CustomField) -> None:
        entity = self.entities.get(custom.entity)
        if entity is None:
            raise ConfigError(
                f"custom field {custom.name!r} ({custom.source}) names unknown entity"
                f" {custom.entity!r}; known: {', '.join(sorted(self.entities))}"
            )
        if custom.name in entity.columns:
            raise ConfigError(
                f"custom field {custom.name!r} ({custom.source}) clashes with the built-in"
                f" field {custom.entity}.{custom.name}"
            )
        fields = self.custom_fields[custom.entity]
        if custom.name in fields:
            raise ConfigError(f"custom field {custom.entity}.{custom.name} is declared twice")
        fields[custom.name] = custom

    def preparer(self, entity: str) -> ValuePreparer:
        """The validator/normaliser for ``entity`` (built once)."""
        preparer = self._preparers.get(entity)
        if preparer is None:
            preparer = ValuePreparer(
                self.entity(entity), self.custom_fields[entity], self.settings.default_region
            )
            self._preparers[entity] = preparer
        return preparer

    def entity(self, name: str) -> EntityType:
        """The entity type called ``name``; an unknown name is a ``CRMError`` listing the
        known ones."""
        try:
            return self.entities[name]
        except KeyError:
            raise CRMError(
                f"unknown entity {name!r}; known: {', '.join(sorted(self.entities))}"
            ) from None

    def event_sinks(self) -> list[EventSink]:
        """Every durable sink: webhooks from the config and those plugins return."""
        from crmkit.events.subscriptions import subscription_sinks
        from crmkit.events.webhook import WebhookSink

        internal = self.settings.relay.allow_internal_addresses
        sinks: list[EventSink] = [
            WebhookSink.from_config(c, allow_internal=internal) for c in self.settings.webhooks
        ]
        if self.initialised:  # subscriptions made through the API (``webhook_subscriptions``)
            with self._read_sessions() as session:
                sinks.extend(subscription_sinks(session, allow_internal=internal))
        for group in self.host.call("crmkit_event_sinks", crm=self):
            sinks.extend(group)
        names = [sink.name for sink in sinks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(f"two event sinks are named {duplicates[0]!r}; names must be unique")
        return sinks

    def add_hookspecs(self, namespace: types.ModuleType | type) -> None:
        """Declare a plugin's own hooks (functions marked ``@crmkit.hookspec`` on a class or
        module ``namespace``) for other plugins to implement; declaring the same hooks again
        does nothing. Call them with :meth:`call_hook`. The loyalty plugin's earn-rule hook
        is declared this way, so the core's hook list stays free of plugin concerns."""
        for name in dir(namespace):
            if name.startswith("crmkit_"):
                caller = getattr(self.host.manager.hook, name, None)
                if caller is not None and caller.spec is not None:
                    return
        self.host.manager.add_hookspecs(namespace)

    def hook_implemented(self, hook: str) -> bool:
        """Whether any enabled plugin implements ``hook`` (lets a hot path skip the call)."""
        return hasattr(self.host.manager.hook, hook) and self.host.implemented(hook)

    def call_hook(self, hook: str, **kwargs: Any) -> Any:
        """Call a hook (core or declared by :meth:`add_hookspecs`) with keyword arguments;
        an exception raised in an implementation becomes a ``crmkit.PluginError`` naming
        the plugin, as for the core's hooks."""
        return self.host.call(hook, **kwargs)

    def plugin_settings(self, plugin: str) -> dict[str, Any]:
        """The validated settings of an installed plugin (``[plugins.<name>]``), checked
        once and then cached."""
        cached = self._plugin_settings.get(plugin)
        if cached is not None:
            return dict(cached)
        installed = self.installed.get(plugin)
        if installed is None:
            raise CRMError(f"unknown plugin {plugin!r}")
        specs = installed.call_own("crmkit_settings") or []
        self._plugin_settings[plugin] = self.settings.plugin_settings(plugin, specs)
        return dict(self._plugin_settings[plugin])

    # -- transactions ----------------------------------------------------------------------

    def require_schema(self) -> None:
        """Fail clearly when the database was never initialised."""
        if not self.initialised:
            self.initialised = migrate.is_initialised(self.engine)
        if not self.initialised:
            raise ConfigError(
                f"the database {self.engine.url.render_as_string()} is not initialised:"
                " run 'crmkit db upgrade' (or crm.upgrade() in Python)"
            )

    @contextmanager
    def transaction(self, actor: User | None = None, *, write: bool = True) -> Iterator[Operation]:
        """Run an operation in one transaction: all of it commits, or none of it.

        In-process subscribers see its events after the commit.
        """
        self.require_schema()
        if getattr(self._local, "operation", None) is not None:
            raise CRMError(
                "an operation is already open in this thread: inside `with crm.transaction()"
                " as op`, use op.records(...) (or pass op= to a service) so the work joins it"
            )
        factory = self._sessions if write else self._read_sessions
        session: Session = factory()
        op = Operation(self, session, actor, write=write)
        self._local.operation = op
        try:
            with session.begin():
                check = pending_check(self)
                if check is not None:
                    check.verify(op)  # a request's token or session, checked in this transaction
                yield op
                op.write_events()
        finally:
            self._local.operation = None
            session.close()
        self._publish(op.events)

    def publishes_events(self) -> bool:
        """Whether anything in this process reads a transaction's events after its commit
        (a ``subscribe`` callback or a ``crmkit_on_event`` hook); when nothing does, an
        operation forgets its events once they are in the outbox."""
        return bool(self._subscribers) or self.host.implemented("crmkit_on_event")

    def _publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        has_hook = self.host.implemented("crmkit_on_event")
        for event in events:
            if has_hook:
                self.host.call_each_safely("crmkit_on_event", crm=self, event=event)
            for patterns, callback in self._subscribers:
                if event.matches(patterns):
                    try:
                        callback(event)
                    except Exception:
                        log.exception("event subscriber %r failed on %s", callback, event.name)

    def subscribe(self, patterns: str | Sequence[str], callback: Any) -> None:
        """Call ``callback(event)`` after commit for events whose name matches ``patterns``."""
        self._subscribers.append(
            ((patterns,) if isinstance(patterns, str) else tuple(patterns), callback)
        )

    # -- services --------------------------------------------------------------------------

    def records(
        self, entity: str, *, op: Operation | None = None, elevated: bool = False
    ) -> RecordService:
        """The record service of ``entity`` (core or plugin); see ``Operation.records`` for
        ``elevated``."""
        from crmkit.services.records import RecordService

        kind: type[RecordService] = RecordService
        if entity == "deal":  # the deal and lead services load only for their own entity
            from crmkit.services.deals import DealService

            kind = DealService
        elif entity == "lead":
            from crmkit.services.leads import LeadService

            kind = LeadService
        return kind(self, self.entity(entity), op=op, elevated=elevated)

    @property
    def contacts(self) -> RecordService:
        """Contacts: people."""
        return self.records("contact")

    @property
    def accounts(self) -> RecordService:
        """Accounts: companies and organisations."""
        return self.records("account")

    @property
    def leads(self) -> LeadService:
        """Leads: unqualified prospects, convertible to contact + account + deal."""
        from crmkit.services.leads import LeadService

        return LeadService(self, self.entity("lead"))

    @property
    def deals(self) -> DealService:
        """Deals: opportunities moving through pipeline stages."""
        from crmkit.services.deals import DealService

        return DealService(self, self.entity("deal"))

    @property
    def activities(self) -> RecordService:
        """Activities: calls, visits, e-mails, meetings and notes (the follow-up record)."""
        return self.records("activity")

    @property
    def tasks(self) -> RecordService:
        """Tasks: things to do by a due time."""
        return self.records("task")

    @cached_property
    def pipelines(self) -> PipelineService:
        """Pipelines and their stages."""
        from crmkit.services.deals import PipelineService

        return PipelineService(self)

    @cached_property
    def users(self) -> UserService:
        """Users and teams: create, move, deactivate (handing their customers over)."""
        from crmkit.services.users import UserService

        return UserService(self)

    @cached_property
    def assignment(self) -> AssignmentService:
        """Assignment rules (define, list, remove, test), bulk assignment, availability and
        the ownership history of records."""
        from crmkit.services.assignment import AssignmentService

        return AssignmentService(self)

    @cached_property
    def pool(self) -> PoolService:
        """The shared pool: release policies, releasing, listing and claiming records."""
        from crmkit.services.pool import PoolService

        return PoolService(self)

    @cached_property
    def roles(self) -> RoleService:
        """Roles, their scoped grants and field rules, and who holds them."""
        from crmkit.services.roles import RoleService

        return RoleService(self)

    @cached_property
    def tokens(self) -> TokenService:
        """API tokens: issue, list, revoke, authenticate."""
        from crmkit.services.tokens import TokenService

        return TokenService(self)

    @cached_property
    def sign_in(self) -> SignInService:
        """Desk sign-in: passwords, lock-out, browser sessions."""
        from crmkit.services.sign_in import SignInService

        return SignInService(self)

    @cached_property
    def forms(self) -> FormService:
        """Lead-capture forms: add, list, remove, submit, HTML snippet."""
        from crmkit.services.forms import FormService

        return FormService(self)

    @cached_property
    def webhooks(self) -> WebhookSubscriptionService:
        """Webhook subscriptions made through the API, and their deliveries."""
        from crmkit.services.webhooks import WebhookSubscriptionService

        return WebhookSubscriptionService(self)

    @cached_property
    def merges(self) -> MergeService:
        """Merges of two records into one (survivorship, re-pointing, audit) and their undo."""
        from crmkit.services.merges import MergeService

        return MergeService(self)

    @cached_property
    def messages(self) -> MessageService:
        """Message channels: send (in-app, e-mail, webhook, plugin channels), the delivery
        log, retries and the per-channel do-not-contact list."""
        from crmkit.services.messages import MessageService

        return MessageService(self)

    @cached_property
    def segments(self) -> SegmentService:
        """Segments: saved, named filters over one entity (relations, plugin measures and
        other segments included), counted and listed live for whoever looks."""
        from crmkit.services.segments import SegmentService

        return SegmentService(self)

    @cached_property
    def audit(self) -> AuditLog:
        """The audit log (read side) and the in-app notification inbox."""
        from crmkit.services.audit_log import AuditLog

        return AuditLog(self)

    # -- schema ----------------------------------------------------------------------------

    def migration_locations(self) -> list[str]:
        """Every installed plugin's migrations folder (enabled or not)."""
        locations: list[str] = []
        for plugin in self.installed.values():
            if plugin.loaded:
                folder = plugin.call_own("crmkit_migrations")
                if folder:
                    locations.append(str(folder))
        return locations

    def upgrade(self) -> list[str]:
        """Bring the core schema and every enabled plugin's schema to their latest revision;
        return the branches upgraded."""
        config = migrate.alembic_config(
            self.engine.url.render_as_string(hide_password=False), self.migration_locations()
        )
        heads = migrate.branch_heads(config)
        branches = [migrate.CORE_BRANCH]
        branches += [name for name in self.enabled_plugin_names() if name in heads]
        migrate.upgrade(self.engine, config, branches)
        self.initialised = True
        from crmkit.services.roles import seed_builtin_roles

        with self.transaction() as op:
            seed_builtin_roles(op, announce=False)
        from crmkit.services.uniqueness import ensure_unique_indexes

        ensure_unique_indexes(self)
        return branches

    def reload_plugins(self, also: Sequence[str] = ()) -> None:
        """Re-read the enabled set from the database and rebuild entities and fields (after
        ``plugins enable``/``disable`` in this process); ``also`` adds plugins about to be
        enabled."""
        for name in self.host.names:
            if name not in self.embedded:
                self.host.unregister(name)
        for name in [*self.enabled_plugin_names(), *also]:
            self.host.register(self.installed[name])
        self._build_registry()
        self._plugin_settings.clear()
        if self.initialised:
            from crmkit.services.uniqueness import ensure_unique_indexes

            ensure_unique_indexes(self)

    def enable_plugin(self, name: str) -> list[str]:
        """Enable an installed plugin: check its requirements, run its migrations and its
        setup hook, record it in the database. Returns the migration branches run."""
        from crmkit.services.plugin_admin import enable_plugin

        return enable_plugin(self, name)

    def disable_plugin(self, name: str) -> None:
        """Disable a plugin: its hooks stop; its data stays."""
        from crmkit.services.plugin_admin import disable_plugin

        disable_plugin(self, name)

    def close(self) -> None:
        """Run the plugins' shutdown hooks and release the connection pool."""
        if self._closed:
            return
        self._closed = True
        try:
            self.host.call("crmkit_shutdown", crm=self)
        finally:
            self.engine.dispose()

    def __enter__(self) -> CRM:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def open_crm(
    database_url: str | None = None,
    *,
    config: str | None = None,
    plugins: Mapping[str, object] | None = None,
    discover: bool = True,
    upgrade: bool = False,
    settings: Settings | None = None,
) -> CRM:
    """Open a CRM.

    ``database_url`` overrides the config file's; ``plugins`` embeds plugin objects (always
    enabled); ``upgrade=True`` runs migrations first (handy for scripts and tests).

    Example::

        crm = crmkit.open("sqlite:///crm.db", upgrade=True)
        contact = crm.contacts.create({"full_name": "张伟", "phone": "138 1234 5678"})
    """
    if settings is None:
        settings = Settings.load(config, database_url=database_url)
    crm = CRM(settings, plugins=plugins, discover=discover)
    if upgrade:
        try:
            crm.upgrade()
        except Exception:
            crm.close()
            raise
    return crm
