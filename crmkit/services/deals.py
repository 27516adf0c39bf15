"""Deals move through the stages of a pipeline; pipelines are managed here too."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crmkit.db.base import utcnow
from crmkit.entities.deals import Pipeline, Stage, StageKind
from crmkit.entities.organisation import User
from crmkit.errors import FieldError, NotFoundError, ValidationError
from crmkit.services.operation import Operation
from crmkit.services.records import RecordService

if TYPE_CHECKING:
    from crmkit.app import CRM

DEFAULT_STAGES: tuple[tuple[str, int, StageKind], ...] = (
    ("Inquiry", 10, StageKind.OPEN),
    ("Qualified", 25, StageKind.OPEN),
    ("Proposal", 50, StageKind.OPEN),
    ("Negotiation", 75, StageKind.OPEN),
    ("Won", 100, StageKind.WON),
    ("Lost", 0, StageKind.LOST),
)


class PipelineService:
    """Create and read pipelines and their ordered stages."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def create(
        self,
        name: str,
        stages: Sequence[tuple[str, int, StageKind | str]] = DEFAULT_STAGES,
        *,
        default: bool = False,
        actor: User | None = None,
    ) -> Pipeline:
        """Create a pipeline with ``stages`` given as ``(name, probability, kind)``."""
        name = name.strip()
        errors = []
        if not name:
            errors.append(FieldError("name", "is required"))
        if not stages:
            errors.append(FieldError("stages", "a pipeline needs at least one stage"))
        names = [stage[0] for stage in stages]
        if len(set(names)) != len(names):
            errors.append(FieldError("stages", "stage names must be unique"))
        kinds = []
        for stage_name, probability, kind in stages:
            if not 0 <= probability <= 100:
                errors.append(FieldError("stages", f"{stage_name}: probability must be 0-100"))
            try:
                kinds.append(StageKind(kind))
            except ValueError:
                errors.append(FieldError("stages", f"{stage_name}: kind must be open, won or lost"))
        if errors:
            raise ValidationError(errors, "pipeline")
        with self.crm.transaction(actor) as op:
            if op.session.scalar(select(Pipeline.id).where(Pipeline.name == name)):
                raise ValidationError([FieldError("name", f"pipeline {name!r} exists")], "pipeline")
            has_default = op.session.scalar(select(Pipeline.id).where(Pipeline.is_default))
            pipeline = Pipeline(name=name, is_default=default or not has_default)
            if pipeline.is_default and has_default:
                for other in op.session.scalars(select(Pipeline).where(Pipeline.is_default)):
                    other.is_default = False
            op.session.add(pipeline)
            op.session.flush()
            for position, ((stage_name, probability, _), kind) in enumerate(
                zip(stages, kinds, strict=True)
            ):
                op.session.add(
                    Stage(
                        pipeline_id=pipeline.id,
                        name=stage_name,
                        position=position,
                        probability=probability,
                        kind=kind,
                    )
                )
            op.emit(
                "pipeline.created",
                {"name": name, "stages": names},
                record_type="pipeline",
                record_id=pipeline.id,
            )
            return pipeline

    def all(self) -> list[Pipeline]:
        """Every pipeline, the default first."""
        with self.crm.transaction(write=False) as op:
            query = select(Pipeline).order_by(Pipeline.is_default.desc(), Pipeline.name)
            return list(op.session.scalars(query))

    def stages(self, pipeline_id: int) -> list[Stage]:
        """The stages of a pipeline in order."""
        with self.crm.transaction(write=False) as op:
            query = select(Stage).where(Stage.pipeline_id == pipeline_id).order_by(Stage.position)
            return list(op.session.scalars(query))


def _default_pipeline(op: Operation) -> Pipeline:
    pipeline = op.session.scalar(select(Pipeline).where(Pipeline.is_default))
    if pipeline is None:
        raise ValidationError(
            [
                FieldError(
                    "pipeline_id",
                    "no pipeline given and no default pipeline exists:"
                    " create one with crm.pipelines.create(...)",
                )
            ],
            "deal",
        )
    return pipeline


def _resolve_stage(op: Operation, pipeline_id: int, stage: object) -> Stage:
    query = select(Stage).where(Stage.pipeline_id == pipeline_id)
    if isinstance(stage, int):
        query = query.where(Stage.id == stage)
    else:
        query = query.where(Stage.name == str(stage))
    found = op.session.scalar(query)
    if found is None:
        raise ValidationError(
            [FieldError("stage_id", f"stage {stage!r} is not in pipeline {pipeline_id}")], "deal"
        )
    return found


class DealService(RecordService):
    """Deals: a pipeline and stage are required (the default pipeline's first stage when
    none is given); moving stage stamps the time, closes won/lost deals and emits
    ``deal.stage_changed``."""

    def before_create(self, op: Operation, values: dict[str, Any]) -> None:
        if values.get("pipeline_id") is None:
            values["pipeline_id"] = _default_pipeline(op).id
        pipeline_id = values["pipeline_id"]
        if values.get("stage_id") is None:
            first = op.session.scalar(
                select(Stage).where(Stage.pipeline_id == pipeline_id).order_by(Stage.position)
            )
            if first is None:
                raise ValidationError(
                    [FieldError("pipeline_id", f"pipeline {pipeline_id} does not exist")], "deal"
                )
            values["stage_id"] = first.id
        stage = _resolve_stage(op, pipeline_id, values["stage_id"])
        values["stage_changed_at"] = utcnow()
        values["closed_at"] = None if stage.kind == StageKind.OPEN else utcnow()

    def before_update(
        self, op: Operation, record: Any, changes: dict[str, Any], previous: Mapping[str, Any]
    ) -> None:
        if "stage_id" not in changes and "pipeline_id" not in changes:
            return
        pipeline_id = changes.get("pipeline_id", record.pipeline_id)
        stage = _resolve_stage(op, pipeline_id, changes.get("stage_id", record.stage_id))
        changes["stage_id"] = stage.id
        changes["stage_changed_at"] = utcnow()
        changes["closed_at"] = None if stage.kind == StageKind.OPEN else utcnow()

    def after_update(
        self, op: Operation, record: Any, changes: Mapping[str, Any], previous: Mapping[str, Any]
    ) -> None:
        if "stage_id" not in changes:
            return
        rows = op.session.execute(
            select(Stage.id, Stage.name).where(
                Stage.id.in_([previous["stage_id"], changes["stage_id"]])
            )
        )
        names: dict[int, str] = dict(rows.all())
        stage = op.session.get(Stage, changes["stage_id"])
        assert stage is not None
        op.emit(
            "deal.stage_changed",
            {
                "from_stage": names.get(previous["stage_id"]),
                "stage": stage.name,
                "stage_id": stage.id,
                "kind": stage.kind,
                "amount": record.amount,
            },
            record_type="deal",
            record_id=record.id,
        )

    def move_to_stage(
        self,
        deal_id: int,
        stage: int | str,
        *,
        expected_version: int | None = None,
        actor: User | None = None,
    ) -> Any:
        """Move a deal to a stage of its pipeline, given by id or name."""
        with self._operation(actor) as op:
            deal = self._load(op, deal_id)
            target = _resolve_stage(op, deal.pipeline_id, stage)
            return self.crm.records("deal", op=op).update(
                deal_id, {"stage_id": target.id}, expected_version=expected_version
            )

    def stage_of(self, deal: Any) -> Stage:
        """The stage object of a deal."""
        with self.crm.transaction(write=False) as op:
            stage = op.session.get(Stage, deal.stage_id)
            if stage is None:
                raise NotFoundError("stage", deal.stage_id)
            return stage


__all__ = ["DEFAULT_STAGES", "DealService", "PipelineService"]
