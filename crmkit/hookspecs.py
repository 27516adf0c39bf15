"""Every extension point of crmkit, one function each.

A plugin implements any of these with ``@crmkit.hookimpl`` on a function of the same name.
Each docstring says when the hook is called, with what, and what its return value means. The
hook reference, docs/reference/hooks.md, is generated from this module: after adding or
changing a hook, run ``python docs/gen_hooks.py`` and commit the page (a test fails while it
is stale).

Calling conventions (pluggy):

* *collected*: every enabled plugin's implementation is called; the results are gathered in a
  list (``None`` results are dropped).
* *firstresult*: implementations are called until one returns something other than ``None``;
  that answer wins.
* Hooks that run inside an operation's transaction may raise (``crmkit.PluginVeto`` or any
  exception) to refuse it: the whole operation rolls back and the error names the plugin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from crmkit.app import CRM
    from crmkit.assignment.rules import AssignmentStrategy
    from crmkit.cards import CardField, OcrEngine, OcrLine
    from crmkit.desk.extensions import DeskAction, DeskMenuEntry, DeskPage, DeskPanel, DeskTile
    from crmkit.duplicates import DuplicateMatch
    from crmkit.entities.custom_fields import CustomField
    from crmkit.entities.organisation import User
    from crmkit.entities.registry import EntityType
    from crmkit.entities.segments import SegmentMeasure
    from crmkit.events.types import Event, EventSink
    from crmkit.messages.channels import MessageChannel
    from crmkit.services.operation import Operation
    from crmkit.services.scheduler import ScheduledJob
    from crmkit.settings import SettingSpec

hookspec = pluggy.HookspecMarker("crmkit")


@hookspec
def crmkit_entities() -> Sequence[EntityType]:
    """Declare the plugin's own entities (collected).

    Called when the CRM opens. Return ``crmkit.EntityType`` objects for models that subclass
    ``crmkit.Model`` and ``crmkit.RecordMixin``; each then gets the full record service
    (create/get/update/delete/list, hooks, events, custom fields) as ``crm.records(name)``.
    Ship the tables in the plugin's own Alembic branch (see ``crmkit_migrations``).

    Who sees the records: an entity's own ``<name>:read`` (etc.) grants, held by ``admin``
    until granted to other roles. An entity whose records belong to another record (a
    ticket of a contact) declares ``parent=crmkit.ParentLink("contact", "contact_id")``
    instead: it then has no permissions of its own, and each record is visible exactly as
    its parent is (changing one needs ``contact:update``), in every read path.

    Example::

        @crmkit.hookimpl
        def crmkit_entities():
            return [crmkit.EntityType(name="referral", model=Referral, label="Referral",
                                      required=("referrer_contact_id", "referred_contact_id"))]
    """


@hookspec
def crmkit_migrations() -> str:
    """Return the folder of the plugin's Alembic revisions (collected).

    Called by ``crmkit db upgrade`` and ``crmkit plugins enable``. The plugin's first revision
    carries ``branch_labels = ("<plugin name>",)``, ``down_revision = None`` and
    ``depends_on = "0001_core"`` (the id of the core revision it needs); crmkit upgrades each
    enabled plugin's branch to its head.

    Example::

        @crmkit.hookimpl
        def crmkit_migrations():
            return str(pathlib.Path(__file__).parent / "migrations")
    """


@hookspec
def crmkit_custom_fields() -> Sequence[CustomField]:
    """Add typed custom fields to any entity, core or plugin (collected).

    Called when the CRM opens. The fields are validated on every write, usable in filters and
    sorting, and listed by ``crmkit plugins info``. They are written and read at the top
    level like built-in fields: ``create({"wechat_id": ...})``, ``record.wechat_id``, hook
    values, event payloads, CLI JSON and REST bodies (``record.custom`` is the dict of all).

    Example::

        @crmkit.hookimpl
        def crmkit_custom_fields():
            return [crmkit.CustomField(entity="contact", name="wechat_id", type="text")]
    """


@hookspec
def crmkit_permissions() -> Sequence[str]:
    """Declare the permissions the plugin adds, as ``"resource:action"`` strings (collected).

    Example::

        @crmkit.hookimpl
        def crmkit_permissions():
            return ["loyalty:redeem", "loyalty:adjust"]
    """


@hookspec
def crmkit_settings() -> Sequence[SettingSpec]:
    """Declare the plugin's settings, read from ``[plugins.<name>]`` in the config (collected).

    Return ``crmkit.SettingSpec`` objects; ``crm.plugin_settings("<plugin name>")`` returns
    the values, validated once and with the defaults filled in.

    Example::

        @crmkit.hookimpl
        def crmkit_settings():
            return [crmkit.SettingSpec("blocked_domains", list, default=[],
                                       description="E-mail domains refused on create")]
    """


@hookspec
def crmkit_cli_commands() -> Sequence[click.Command]:
    """Add ``crmkit`` sub-commands (collected).

    Called when the ``crmkit`` command starts, for enabled plugins only. Return click commands
    or groups; a group named after the plugin is the convention. The command gets the open CRM
    through ``crmkit.cli_crm()``.

    Example::

        @click.group(name="referrals")
        def referrals_group(): ...

        @crmkit.hookimpl
        def crmkit_cli_commands():
            return [referrals_group]
    """


@hookspec
def crmkit_api_routes(crm: CRM) -> Sequence[Any]:
    """Add REST API routes (collected).

    Called once when the API app is built (``crmkit serve``, ``crmkit.api.create_app``), for
    enabled plugins only. Return Litestar route handlers, ``Controller`` classes or
    ``Router`` objects; the core mounts each plugin's under ``/plugins/<plugin-name>``, puts
    them in the OpenAPI schema (tagged with the plugin's name) and protects them with the
    same bearer-token authentication as the core routes. A handler may declare these
    dependencies by parameter name (mark them ``NamedDependency[...]``, as Litestar 2.2x
    asks):

    * ``crm``: the open ``crmkit.CRM``;
    * ``actor``: the authenticated ``crmkit.User`` the token belongs to (pass it to every
      service call as ``actor=actor``, so permissions and field rules apply).

    Sync handlers run the services in Litestar's thread pool (``sync_to_thread=True``). A
    ``crmkit.CRMError`` raised in a handler becomes RFC 9457 problem+json exactly as in the
    core routes (``NotFoundError`` 404, ``PermissionDenied`` 403, ``ValidationError`` 422
    with the fields named, ``ConflictError`` 409, any other 400).

    Example::

        import msgspec
        from litestar import get
        from litestar.di import NamedDependency

        class ReferralSummary(msgspec.Struct):   # a named, typed answer (docs/plugins.md)
            referrals: int

        @get("/summary", sync_to_thread=True)
        def referral_summary(
            crm: NamedDependency[crmkit.CRM], actor: NamedDependency[crmkit.User]
        ) -> ReferralSummary:
            return ReferralSummary(referrals=crm.records("referral").count(actor=actor))

        @crmkit.hookimpl
        def crmkit_api_routes(crm):
            return [referral_summary]   # served at GET /plugins/referrals/summary
    """


@hookspec
def crmkit_setup(crm: CRM, op: Operation) -> None:
    """Run once when the plugin is enabled, after its migrations (only the enabled plugin's).

    Seed reference data through ``op``: it is the transaction that records the plugin as
    enabled, so raising aborts the enable and leaves nothing behind.

    Example::

        @crmkit.hookimpl
        def crmkit_setup(crm, op):
            op.records("task").create({"title": "Review the referral programme settings"})
    """


@hookspec
def crmkit_startup(crm: CRM) -> None:
    """Called when a CRM instance opens (process start of the CLI, API or worker), and when
    the plugin is enabled in a process whose CRM is already open.

    Example::

        @crmkit.hookimpl
        def crmkit_startup(crm):
            logging.getLogger(__name__).info("ready on %s", crm.settings.database_url)
    """


@hookspec
def crmkit_shutdown(crm: CRM) -> None:
    """Called when a CRM instance closes. Release what ``crmkit_startup`` acquired.

    Example::

        @crmkit.hookimpl
        def crmkit_shutdown(crm):
            logging.getLogger(__name__).info("closing %s", crm.settings.database_url)
    """


@hookspec
def crmkit_before_create(op: Operation, entity: str, values: dict[str, Any]) -> None:
    """Called inside the transaction before a record is inserted.

    ``values`` holds the validated, normalised field values (custom fields included, at the
    top level like built-in ones) and may be changed in place. Raise ``crmkit.PluginVeto`` to
    refuse: nothing is written. Bulk imports call it once per row.

    Lookups through ``op.records(name)`` see only what the acting user may see, so a check
    that must consider every record (is this code taken?) would miss the records outside the
    actor's scope. Use ``op.records(name, elevated=True)`` for such a check, and word the
    refusal so it names nothing the actor may not see. For plain uniqueness, declare the
    custom field with ``unique=True`` instead: the core enforces it, with a database index.

    Example::

        @crmkit.hookimpl
        def crmkit_before_create(op, entity, values):
            if entity == "contact" and values.get("email", "").endswith("@spam.example"):
                raise crmkit.PluginVeto("spam domain")
    """


@hookspec
def crmkit_after_create(
    op: Operation, entity: str, record_id: int, values: Mapping[str, Any]
) -> None:
    """Called inside the transaction after a record is inserted (it has its id now).

    Write related rows through ``op`` here; raising rolls the whole operation back.

    Example::

        @crmkit.hookimpl
        def crmkit_after_create(op, entity, record_id, values):
            if entity == "lead":
                op.records("task").create({"title": "Call back", "lead_id": record_id})
    """


@hookspec
def crmkit_after_create_many(
    op: Operation, entity: str, records: Sequence[tuple[int, Mapping[str, Any]]]
) -> None:
    """Called inside the transaction after records were inserted, with ``(record_id, values)``
    for each: once per ``create`` (one record) and once per batch of a bulk create such as an
    import (up to its ``batch_size`` records). Every created record reaches it exactly once,
    after ``crmkit_after_create`` ran for it.

    Implement this one instead of ``crmkit_after_create`` when the work can be done for many
    records at once (filing index keys, one query for the batch): a bulk create keeps its
    batched insert only while no plugin implements ``crmkit_after_create``, because that hook
    must see each row inserted and may fail it alone. Raising rolls the whole operation back
    (an import then imports nothing); refuse single rows in ``crmkit_before_create``.

    Example::

        @crmkit.hookimpl
        def crmkit_after_create_many(op, entity, records):
            if entity == "contact":
                op.emit("welcome.due", {"contact_ids": [record_id for record_id, _ in records]})
    """


@hookspec
def crmkit_before_update(
    op: Operation,
    entity: str,
    record_id: int,
    changes: dict[str, Any],
    previous: Mapping[str, Any],
) -> None:
    """Called inside the transaction before a record is updated.

    ``changes`` holds only the fields that change (validated; may be changed in place);
    ``previous`` the values before. Raise to refuse.

    Example::

        @crmkit.hookimpl
        def crmkit_before_update(op, entity, record_id, changes, previous):
            if entity == "deal" and "amount" in changes and previous["closed_at"]:
                raise crmkit.PluginVeto("closed deals keep their amount")
    """


@hookspec
def crmkit_after_update(
    op: Operation,
    entity: str,
    record_id: int,
    changes: Mapping[str, Any],
    previous: Mapping[str, Any],
) -> None:
    """Called inside the transaction after a record is updated. Raising rolls back.

    Example::

        @crmkit.hookimpl
        def crmkit_after_update(op, entity, record_id, changes, previous):
            if "stage_id" in changes:
                op.emit("myplugin.stage_seen", record_type=entity, record_id=record_id)
    """


@hookspec
def crmkit_before_delete(
    op: Operation, entity: str, record_id: int, previous: Mapping[str, Any]
) -> None:
    """Called inside the transaction before a record is (soft-)deleted. Raise to refuse.

    Example::

        @crmkit.hookimpl
        def crmkit_before_delete(op, entity, record_id, previous):
            if entity == "account" and previous.get("value_tier") == "key":
                raise crmkit.PluginVeto("key accounts are never deleted")
    """


@hookspec
def crmkit_after_delete(
    op: Operation, entity: str, record_id: int, previous: Mapping[str, Any]
) -> None:
    """Called inside the transaction after a record is soft-deleted. Raising rolls back.

    Example::

        @crmkit.hookimpl
        def crmkit_after_delete(op, entity, record_id, previous):
            if entity == "contact":
                op.emit("myplugin.contact_gone", {"name": previous.get("full_name")},
                        record_type="contact", record_id=record_id)
    """


@hookspec(firstresult=True)
def crmkit_find_duplicates(
    op: Operation, entity: str, values: Mapping[str, Any], record_id: int | None
) -> Sequence[DuplicateMatch] | None:
    """Find existing records that look like the same customer (firstresult).

    Called inside the transaction when a contact, lead or account is created or updated (and
    for every row of an import), before the write. ``values`` are the validated, normalised
    values of the new record (for an update: the record as it will be after the change);
    ``record_id`` is ``None`` on create and the record's id on update (never report the
    record itself). Look at every live record, in or out of the actor's scope: a collision is
    with a record the actor may not see. The core, not the plugin, decides what the actor is
    told (``crmkit.disclosed_matches``: a record outside their scope only as "a record you
    cannot see matches" with its owner); give each match ``reason_fields`` (the fields each
    reason draws on) so that reasons about fields the actor may see can be shown.

    Return a list of ``crmkit.DuplicateMatch`` (an empty list means "no duplicates" and stops
    the search), or ``None`` to let the next implementation answer. The core's own fallback
    (an exact e-mail or phone match) runs last. The core then applies each match's
    ``action``: ``block`` refuses the write with a ``DuplicateError`` listing the matches,
    ``warn`` writes and flags the record, ``allow`` writes; the assignment rules' collision
    policy looks at matches owned by somebody else.

    Example::

        @crmkit.hookimpl
        def crmkit_find_duplicates(op, entity, values, record_id):
            if entity != "contact" or not values.get("email"):
                return None
            same = op.records("contact").list(filters={"email": values["email"]}).items
            return [crmkit.DuplicateMatch(entity, r.id, 1.0, "block", ["same e-mail"],
                                          owner_id=r.owner_id, reason_fields=[["email"]])
                    for r in same if r.id != record_id]
    """


@hookspec(firstresult=True)
def crmkit_find_duplicates_many(
    op: Operation, entity: str, rows: Sequence[tuple[int, Mapping[str, Any]]]
) -> Mapping[int, Sequence[DuplicateMatch]] | None:
    """Find existing records that look like each row of an import batch (firstresult).

    Called inside the transaction once per import batch (up to a thousand rows) before the
    batch is written, instead of ``crmkit_find_duplicates`` once per row. ``rows`` are
    ``(key, values)`` pairs, ``values`` as ``crmkit_find_duplicates`` gets them on create.
    Return a mapping from each row's key to its matches (a row missing from it has none),
    with the same meaning and disclosure rules as ``crmkit_find_duplicates``, or ``None``
    to decline. A plugin that implements ``crmkit_find_duplicates`` should implement this
    too, answering a batch with a few queries: when every plugin that answers the one-row
    hook declines the batch, the core checks the batch with its own exact e-mail/phone
    match in one query; when a plugin implements only the one-row hook, the core asks it
    row by row.

    Example::

        @crmkit.hookimpl
        def crmkit_find_duplicates_many(op, entity, rows):
            if entity != "contact":
                return None
            wanted = {values["email"]: key for key, values in rows if values.get("email")}
            found = {}
            for record in op.records("contact").list(filters={"email__in": list(wanted)}).items:
                found.setdefault(wanted[record.email], []).append(
                    crmkit.DuplicateMatch(entity, record.id, 1.0, "warn", ["same e-mail"],
                                          owner_id=record.owner_id, reason_fields=[["email"]]))
            return found
    """


@hookspec
def crmkit_assignment_strategies() -> Sequence[AssignmentStrategy]:
    """Register assignment strategies that rules may name (collected).

    Called the first time an operation assigns a record or a rule is defined. Return
    ``crmkit.AssignmentStrategy`` objects; a rule with ``strategy = "<name>"`` then calls
    ``choose(request)`` with a ``crmkit.AssignmentRequest``: the entity, the rule, the new
    record's values and the rule's *available* candidates (active, not away, under capacity;
    a team member is expanded into its active users), in member order. Return one of
    ``request.candidates`` (or a ``crmkit.AssignmentChoice`` with a reason, shown by
    ``crmkit rules test``), or ``None`` when none fits: the next rule is tried. Set
    ``takes_turns=True`` to get ``request.turn``, the rule's turn counter (advanced atomically
    in the database, so fair across processes), and ``needs_load=True`` to get each
    candidate's ``open_records``. A name must not clash with a built-in strategy
    (round_robin, least_loaded, weighted, territory, fixed) or another plugin's.

    ``request.crm`` is the CRM (read your settings with
    ``request.crm.plugin_settings("<plugin>")``, not from module globals) and ``request.op``
    the operation assigning the record. A ``None`` answer while candidates were available is
    reported as "strategy '<name>' declined", not as "no member available". A plugin whose
    strategy a rule uses cannot be disabled until the rule is removed.

    Example::

        SPEAKS = {"li.na": ("zh", "en"), "chan.kaming": ("yue", "en")}

        def by_language(request):
            wanted = request.values.get("language")
            speakers = [c for c in request.candidates if wanted in SPEAKS.get(c.username, ())]
            return speakers[request.turn % len(speakers)] if speakers else None

        @crmkit.hookimpl
        def crmkit_assignment_strategies():
            return [crmkit.AssignmentStrategy("by_language", by_language, takes_turns=True)]
    """


@hookspec
def crmkit_segment_measures(crm: CRM) -> Sequence[SegmentMeasure]:
    """Add computed measures that segments and list filters can compare like fields
    (collected).

    Called the first time a filter is compiled after the CRM opens (or its plugins are
    reloaded). Return ``crmkit.SegmentMeasure`` objects: an ``entity``, a ``name`` (it must
    not be a field of the entity) and ``expression(context)``, which returns a SQL
    expression over ``context.model`` — usually a correlated scalar subquery — for the
    value of one record. ``context`` is a ``crmkit.MeasureContext`` (``op``, ``entity``,
    ``model``, and ``now``, one instant per evaluation). The expression runs inside the one
    statement of the count, list or segment, for every record it looks at: keep it an
    indexed look-up. ``type`` (``crmkit.FieldType``; ``choices`` for a choice) says how
    operands are parsed; ``permission`` is needed to filter on the measure and
    ``hidden_with`` names fields (``"deal.amount"``) whose hiding hides the measure too.
    The insights plugin's ``rfm_segment`` and ``value_tier`` and the loyalty plugin's
    ``points_balance`` come this way; the core brings a deal's ``stage_kind``, ``stage`` and
    ``pipeline``. Filters then write ``{"activity_count__gte": 2}``, or
    ``crmkit segments add busy contact --when "activity_count>=2"``.

    Example::

        from sqlalchemy import func, select

        def activity_count(context):
            activity = crmkit.Activity
            return (
                select(func.count())
                .where(activity.contact_id == context.model.id, activity.deleted_at.is_(None))
                .scalar_subquery()
            )

        @crmkit.hookimpl
        def crmkit_segment_measures(crm):
            return [crmkit.SegmentMeasure("contact", "activity_count", activity_count,
                                          type=crmkit.FieldType.NUMBER, label="Activities")]
    """


@hookspec
def crmkit_merge_references(
    op: Operation, entity: str, survivor_id: int, merged_id: int
) -> Mapping[str, Any] | None:
    """Move your plugin's references from a merged record to the survivor (collected).

    Called inside the merge's transaction by ``crm.merges.merge`` after the core re-pointed
    every foreign key to the entity's table (those it finds in the SQLAlchemy metadata,
    plugin tables included, in tables with an ``id`` column) and before the merged record is
    soft-deleted. Implement it for references that are *not* foreign keys: ids kept in JSON,
    ``(entity, id)`` pairs, keys in another system, and for foreign keys in a table without
    an ``id`` column (one row per record, keyed by it), which the core leaves alone. Raise
    to refuse the merge (the whole merge rolls back).

    Return a JSON-ready mapping describing what you moved, under a key of your own (your
    plugin's name), or ``None``. The core stores the union of the answers with the merge and
    hands it back to ``crmkit_undo_merge_references`` when the merge is undone.

    Example::

        @crmkit.hookimpl
        def crmkit_merge_references(op, entity, survivor_id, merged_id):
            if entity != "contact":
                return None
            moved = []
            for card in op.session.scalars(select(Card).where(Card.holder == merged_id)):
                card.holder = survivor_id
                moved.append(card.id)
            return {"loyalty": {"cards": moved}}
    """


@hookspec
def crmkit_undo_merge_references(
    op: Operation, entity: str, survivor_id: int, merged_id: int, moved: Mapping[str, Any]
) -> None:
    """Move your references back when a merge is undone (every implementation is called).

    Called inside the undo's transaction by ``crm.merges.undo`` after the merged record was
    restored and the core pointed its foreign keys back. ``moved`` is the union of what the
    ``crmkit_merge_references`` implementations returned at merge time: read your own key.

    Example::

        @crmkit.hookimpl
        def crmkit_undo_merge_references(op, entity, survivor_id, merged_id, moved):
            for card_id in moved.get("loyalty", {}).get("cards", []):
                op.session.get(Card, card_id).holder = merged_id
    """


@hookspec
def crmkit_on_event(crm: CRM, event: Event) -> None:
    """An in-process subscriber: called after the transaction that emitted ``event`` commits.

    Runs in the process that made the change, once per event, in emit order. It cannot undo
    the change; an exception is logged with the plugin's name and the other subscribers still
    run. For guaranteed delivery use a durable sink (``crmkit_event_sinks``).

    Example::

        @crmkit.hookimpl
        def crmkit_on_event(crm, event):
            if event.name == "deal.stage_changed":
                print("deal", event.record_id, "moved to", event.payload["stage"])
    """


@hookspec
def crmkit_event_sinks(crm: CRM) -> Sequence[EventSink]:
    """Return durable event sinks (collected): the relay worker delivers outbox events to them.

    Delivery is at least once, in order per record, with retries, backoff and a dead-letter
    state; ``event.id`` is the idempotency key. A sink's ``name`` must stay stable. A sink
    that also has ``deliver_batch(events)`` (``crmkit.BatchEventSink``: a broker awaiting
    confirms, a batched webhook) gets every event of a relay pass at once, at most one per
    record, and returns an outcome per event (``None`` for delivered); an exception with a
    true ``permanent`` attribute parks its delivery as dead without retries. The bundled
    ``brokers`` plugin's RabbitMQ and NATS sinks are examples.

    Example::

        @crmkit.hookimpl
        def crmkit_event_sinks(crm):
            return [crmkit.WebhookSink(name="erp", url="https://erp.example/hooks",
                                       secret="s3cret", patterns=["deal.*"])]
    """


@hookspec
def crmkit_message_channels(crm: CRM) -> Sequence[MessageChannel]:
    """Add ways to reach a person: SMS, WeCom, DingTalk ... (collected).

    Called when messages are sent and when the worker delivers them. Return
    ``crmkit.MessageChannel`` subclass instances with a unique ``name``; ``inapp``,
    ``email`` and ``webhook`` are built in. Senders name the channel
    (``crm.messages.send_many([crmkit.Message(channel="sms", ...)])``,
    ``crmkit messages send sms ...``); every message is logged once per delivery key in the
    one delivery log, and an address on the channel's do-not-contact list gets nothing.

    A worker-delivered channel implements ``deliver(message)`` (or ``deliver_many`` to share
    a connection across a batch): it is called outside any transaction with a
    ``crmkit.OutgoingMessage``; raise ``crmkit.MessageRejected`` for a permanent refusal
    (the message is dead and the address is put on the do-not-contact list as ``bounced``),
    ``crmkit.MessageInvalid`` for a message that can never be sent (dead at once, the address
    not blamed), anything else to retry with backoff. ``user_address`` and
    ``contact_address`` say where a user or a contact is reached on the channel. A channel
    that only writes rows sets ``in_database = True`` and implements
    ``write(session, messages)``: it runs in the sending transaction.

    Example::

        class SmsChannel(crmkit.MessageChannel):
            name = "sms"
            description = "text messages through the gateway"

            def contact_address(self, contact):
                return contact.get("phone")

            def deliver(self, message):
                answer = gateway.send(message.address, message.body)
                if answer.status == "invalid_number":
                    raise crmkit.MessageRejected(answer.text)
                answer.raise_for_status()

        @crmkit.hookimpl
        def crmkit_message_channels(crm):
            return [SmsChannel()]
    """


@hookspec
def crmkit_scheduled_jobs(crm: CRM) -> Sequence[ScheduledJob]:
    """Register jobs the worker runs on a schedule (collected).

    Called when ``crmkit worker`` starts (and by ``crmkit worker --once``). Return
    ``crmkit.ScheduledJob`` objects with a unique ``name``. A job runs every
    ``every_seconds``; each slot of that length is one occurrence, run by exactly one of the
    running workers (claimed in the ``scheduled_runs`` table; a run whose worker died is
    taken over when its ``lease_seconds`` expire, so make the job idempotent). With
    ``shared=True`` the job runs on every worker at every pass instead and splits its work by
    claiming its own rows (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL): use that
    for work that comes as many due rows, such as reminder occurrences. ``run(context)``
    gets a ``crmkit.JobContext`` (``crm``, ``worker_id``, ``now``, ``slot_start``) and returns
    a short summary (``"idle"`` or ``None`` when there was nothing to do) or raises (logged;
    the next occurrence runs as usual). There is no second worker process per plugin.

    Example::

        def expire_points(context):
            expired = context.crm.records("loyalty_points").count()  # ... the real work
            return f"expired {expired} point lot(s)"

        @crmkit.hookimpl
        def crmkit_scheduled_jobs(crm):
            return [crmkit.ScheduledJob("loyalty.expire", expire_points, every_seconds=3600)]
    """


@hookspec
def crmkit_demo_data(crm: CRM) -> None:
    """Called by ``crmkit demo`` after the core demo data is loaded: add the plugin's own.

    Example::

        @crmkit.hookimpl
        def crmkit_demo_data(crm):
            first, second, *_ = crm.contacts.list(sort="id", limit=2).items
            crm.records("referral").create(
                {"referrer_contact_id": first.id, "referred_contact_id": second.id})
    """


@hookspec(firstresult=True)
def crmkit_ocr_engine(crm: CRM, name: str) -> OcrEngine | None:
    """Provide the OCR engine the card-scanning plugin reads cards with (firstresult).

    Called once per CRM the first time a card is read, with the engine ``name`` configured in
    ``[plugins.cardscan] engine``. Return an object with a ``name`` and a
    ``read(image) -> Sequence[crmkit.OcrLine]`` method (``crmkit.OcrEngine``) when you
    provide an engine of that name, else ``None``. The bundled ``rapidocr`` (default) and
    ``tesseract`` engines answer last, so a plugin may replace either. An engine must not
    download models at run time.

    Example::

        class UpperCaseEngine:
            name = "shouting"

            def read(self, image):
                lines = other_engine.read(image)
                return [crmkit.OcrLine(l.text.upper(), l.box, l.confidence) for l in lines]

        @crmkit.hookimpl
        def crmkit_ocr_engine(crm, name):
            return UpperCaseEngine() if name == "shouting" else None
    """


@hookspec
def crmkit_card_fields(
    lines: Sequence[OcrLine], fields: Mapping[str, CardField], region: str
) -> Mapping[str, CardField] | None:
    """Parse fields from a business card's text (collected).

    Called by the card-scanning plugin after its own parser, with the OCR lines (top to
    bottom), the fields read so far (QR code and built-in parser) and the default phone
    region. Return the fields you read (``{"title": crmkit.CardField("总经理", 0.9,
    "myplugin")}``) or ``None``. A returned field replaces the current one when its
    confidence is higher. Field names: ``full_name``, ``name_latin``, ``family_name``,
    ``given_name``, ``title``, ``company``, ``company_latin``, ``department``, ``mobile``,
    ``office``, ``fax``, ``email``, ``website``, ``address``, ``wechat``, ``linkedin``.

    Example::

        @crmkit.hookimpl
        def crmkit_card_fields(lines, fields, region):
            for line in lines:
                if line.text.startswith("LINE ID:"):
                    return {"line_id": crmkit.CardField(line.text[8:].strip(), 0.95, "line")}
            return None
    """


# -- the web desk (/desk) --------------------------------------------------------------------
#
# Declared extension points of the desk's pages: a plugin adds content, never patches a
# template. Each hook is called on each request of the pages it feeds, for enabled plugins
# only, one plugin at a time (what a plugin returns is known to be its own; if it raises, the
# error is logged and only its part is left out, or shown as a panel saying it failed).
# Everything returned is text the desk escapes, except ``DeskPanel.html``, which must be a
# ``markupsafe.Markup`` the plugin built. Read data through services with ``actor=actor`` so
# the user sees only what they may.


@hookspec
def crmkit_desk_pages(crm: CRM) -> Sequence[DeskPage]:
    """Add pages to the desk (collected).

    Return ``crmkit.DeskPage`` objects; each is served at ``/desk/plugins/<plugin>/<path>``
    to signed-in users and, with ``menu=True`` (the default), listed in the menu. Its
    ``render(view)`` gets a ``crmkit.DeskView`` (``crm``, ``actor``, ``query``, ``locale``,
    ``gettext``: the plugin's catalogue, then the desk's) and returns the
    ``crmkit.DeskPanel`` objects shown under the title (itself looked up the same way). A
    ``crmkit.PermissionDenied`` it raises shows a 403 page, a ``crmkit.NotFoundError`` 404,
    any other ``crmkit.CRMError`` its message.

    A table cell may be a ``crmkit.DeskButton(label, action, values)``: a click POSTs the
    ``values`` to the page (checked against the session's CSRF token) and calls the page's
    ``actions[action](view, form)``, which does its work through services with
    ``actor=view.actor`` and returns the outcome shown above the page; a ``crmkit.CRMError``
    it raises is shown instead (404 for ``NotFoundError``, 403, 409 or 422), and its
    transaction changed nothing. The dedupe plugin's merge and dismiss buttons and the
    reminders plugin's snooze and done buttons work this way.

    Example::

        def referral_page(view):
            page = view.crm.records("referral").list(limit=20, actor=view.actor)
            return [crmkit.DeskPanel(
                title=view.gettext("Latest referrals"),
                columns=("#", "Referrer", "Referred"),
                cells=[(str(r.id), crmkit.DeskLink(f"#{r.referrer_contact_id}",
                                                   f"/desk/contacts/{r.referrer_contact_id}"),
                        str(r.referred_contact_id)) for r in page.items],
            )]

        @crmkit.hookimpl
        def crmkit_desk_pages(crm):
            return [crmkit.DeskPage(path="referrals", title="Referrals", render=referral_page)]
    """


@hookspec
def crmkit_desk_record_panels(
    crm: CRM, entity: str, record: Mapping[str, Any], actor: User, locale: str
) -> Sequence[DeskPanel]:
    """Add panels to a record page (collected).

    Called for each record page the desk shows: ``entity`` is the entity name (``contact``,
    ``deal``, ...), ``record`` the record as ``actor`` may see it (hidden fields absent).
    Return ``crmkit.DeskPanel`` objects (or nothing, for records the plugin has nothing to
    say about); they appear under the record's timeline. The loyalty card on a contact, the
    referrals a contact made, the duplicates of a lead are panels.

    A ``crmkit.DeskPanel`` has a ``title`` and any of ``rows`` (label, value pairs),
    ``text`` (a paragraph), ``columns`` over ``cells`` (a table; a cell is text or a
    ``crmkit.DeskLink(label, href)``), ``links`` and ``html`` (trusted markup). Every
    entity, a plugin's included, has its record pages at ``/desk/<plural>/<id>``
    (``/desk/tickets/7``), so a cell can link to them.

    ``locale`` is the signed-in user's UI language (``"zh_CN"`` or ``"en"``), for text of the
    plugin's own (``crmkit.desk_gettext(__name__, locale)`` reads the plugin's catalogue); an
    implementation that does not need it leaves the argument out (added after the hook:
    implementations without it keep working).

    Example::

        @crmkit.hookimpl
        def crmkit_desk_record_panels(crm, entity, record, actor):
            if entity != "contact":
                return []
            made = crm.records("referral").count(
                {"referrer_contact_id": record["id"]}, actor=actor
            )
            return [crmkit.DeskPanel(title="Referrals", rows=[("Referred", str(made))])]
    """


@hookspec
def crmkit_desk_menu(crm: CRM, actor: User, locale: str) -> Sequence[DeskMenuEntry]:
    """Add entries to the desk's menu (collected).

    Called for each desk page. Return ``crmkit.DeskMenuEntry`` objects (``label``, ``href``,
    ``order``; the built-in entries use orders 10-90). A plugin page with ``menu=True`` gets
    its entry without this hook; use it for links elsewhere or entries only some users see. A
    label the plugin's catalogue or the desk's has is shown in the user's language.

    ``locale`` is the signed-in user's UI language (``"zh_CN"`` or ``"en"``), for text of the
    plugin's own (``crmkit.desk_gettext(__name__, locale)`` reads the plugin's catalogue); an
    implementation that does not need it leaves the argument out (added after the hook:
    implementations without it keep working).

    Example::

        @crmkit.hookimpl
        def crmkit_desk_menu(crm, actor):
            return [crmkit.DeskMenuEntry("API docs", "/schema/swagger", order=95)]
    """


@hookspec
def crmkit_desk_actions(crm: CRM, actor: User, locale: str) -> Sequence[DeskAction]:
    """Add action buttons to record pages (collected).

    Return ``crmkit.DeskAction`` objects; each shows as a button on the record pages of its
    ``entity``. A click POSTs to ``/desk/<plural>/<id>/actions/<plugin>/<name>`` (checked
    against the session's CSRF token) and calls ``run(crm, record_id, actor)``: do the work
    through services with ``actor=actor``; the text it returns is shown as the outcome and a
    ``crmkit.CRMError`` it raises as the error (nothing else changes). The label and
    ``confirm`` are looked up in the plugin's catalogue, then the desk's; for an outcome in
    the user's language, give ``run`` the ``locale`` (``functools.partial``), as the referrals
    example does.

    ``locale`` is the signed-in user's UI language (``"zh_CN"`` or ``"en"``), for text of the
    plugin's own (``crmkit.desk_gettext(__name__, locale)`` reads the plugin's catalogue); an
    implementation that does not need it leaves the argument out (added after the hook:
    implementations without it keep working).

    Example::

        def thank(crm, record_id, actor):
            crm.records("activity").create({"kind": "note", "subject": "Thanked for referral",
                                            "contact_id": record_id}, actor=actor)
            return "Thank-you noted."

        @crmkit.hookimpl
        def crmkit_desk_actions(crm, actor):
            return [crmkit.DeskAction(name="thank", label="Thank for referral",
                                      entity="contact", run=thank)]
    """


@hookspec
def crmkit_desk_tiles(crm: CRM, actor: User, locale: str) -> Sequence[DeskTile]:
    """Add tiles to the "my day" dashboard (collected).

    Called when ``actor`` opens ``/desk``. Return ``crmkit.DeskTile`` objects (``title``, a
    short ``value``, optional ``note`` and ``href``); count only what ``actor`` may see. The
    title is shown in the user's language when the plugin's catalogue or the desk's has it;
    translate the note yourself. The reminders
    plugin's "Reminders due today" is a tile.

    ``locale`` is the signed-in user's UI language (``"zh_CN"`` or ``"en"``), for text of the
    plugin's own (``crmkit.desk_gettext(__name__, locale)`` reads the plugin's catalogue); an
    implementation that does not need it leaves the argument out (added after the hook:
    implementations without it keep working).

    Example::

        @crmkit.hookimpl
        def crmkit_desk_tiles(crm, actor):
            mine = crm.records("referral").count({"owner_id": actor.id}, actor=actor)
            return [crmkit.DeskTile(title="My referrals", value=str(mine))]
    """
