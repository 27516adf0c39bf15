"""Unique custom fields (``CustomField(unique=True)``): one live record per value, checked
in the writing transaction with an error that names only what the actor may see, and
enforced by a partial unique index for writes that race."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from crmkit.entities.custom_fields import CustomField
from crmkit.entities.equality import fold_case, fold_case_sql_text, sql_fold_case
from crmkit.errors import ConfigError, ConflictError, FieldError, ValidationError
from crmkit.services.disclosure import readable_record_ids

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.services.operation import Operation


def unique_fields(crm: CRM, entity: str) -> list[CustomField]:
    """The unique custom fields of ``entity``."""
    return [field for field in crm.custom_fields.get(entity, {}).values() if field.unique]


def _comparable(field: CustomField, value: object) -> str:
    text_value = str(value)
    return fold_case(text_value) if field.ignore_case else text_value


def check_unique(
    op: Operation, entity: str, values: Mapping[str, Any], record_id: int | None
) -> None:
    """Refuse ``values`` when a unique custom field's value is on another live record."""
    fields = [f for f in unique_fields(op.crm, entity) if values.get(f.name) is not None]
    if not fields:
        return
    model: Any = op.crm.entity(entity).model
    errors: list[FieldError] = []
    for field in fields:
        stored = model.custom[field.name].as_string()
        if field.ignore_case:
            stored = sql_fold_case(stored)
        query = select(model.id).where(
            model.deleted_at.is_(None), stored == _comparable(field, values[field.name])
        )
        if record_id is not None:
            query = query.where(model.id != record_id)
        other = op.session.scalar(query.limit(1))  # every record: uniqueness is global
        if other is None:
            continue
        if other in readable_record_ids(op, entity, [other]):
            errors.append(FieldError(field.name, f"is already used by {entity} {other}"))
        else:
            errors.append(FieldError(field.name, f"is already used by a {entity} you cannot see"))
    if errors:
        raise ValidationError(errors, entity)


@contextmanager
def unique_values_race(entity: str) -> Iterator[None]:
    """Turn a unique custom field's index refusing a write (another transaction took the
    value between the check and the write) into a ``ConflictError``."""
    try:
        yield
    except IntegrityError as error:
        message = str(error.orig)
        if "_custom_" not in message:
            raise
        field = message.rsplit("_custom_", 1)[1].split()[0].strip("'\"")
        raise ConflictError(
            f"{entity} field {field!r}: its value was taken by another write at the same"
            " time; try again"
        ) from None


def index_name(table: str, field: CustomField) -> str:
    """The unique index of a custom field (crmkit's ``uq_`` naming convention)."""
    return f"uq_{table}_custom_{field.name}"


def ensure_unique_indexes(crm: CRM) -> None:
    """Create the partial unique index of every unique custom field (if it is missing). A
    field whose existing values collide is a ``ConfigError`` saying so."""
    dialect = crm.engine.dialect.name
    for entity, fields in crm.custom_fields.items():
        table = crm.entity(entity).model.__tablename__
        for field in (f for f in fields.values() if f.unique):
            if dialect == "postgresql":
                value = f"(custom ->> '{field.name}')"
            else:
                value = f"json_extract(custom, '$.{field.name}')"
            if field.ignore_case:
                value = fold_case_sql_text(value, dialect)
            statement = (
                f"CREATE UNIQUE INDEX IF NOT EXISTS {index_name(table, field)} ON {table}"
                f" (({value})) WHERE deleted_at IS NULL"
            )
            try:
                with crm.engine.begin() as connection:
                    connection.execute(text(statement))
            except DBAPIError as error:
                raise ConfigError(
                    f"custom field {entity}.{field.name} is declared unique, but live"
                    f" {entity} records share values: make them unique first ({error.orig})"
                ) from None
