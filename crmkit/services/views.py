"""What services hand back: read-only snapshots of records, as the actor may see them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from crmkit.duplicates import DisclosedMatch


class Record(Mapping[str, Any]):
    """A read-only snapshot of one record: ``record.full_name`` or ``record["full_name"]``.

    Custom fields read like built-in ones, as they are written: ``record.wechat_id`` (the
    shape of hook values, event payloads, CLI JSON and REST bodies); ``record.custom`` is
    the dict of them all. Fields a field rule hides from the actor are simply absent. To
    change a record, call its service's ``update`` with ``record.version`` as
    ``expected_version``.
    """

    __slots__ = ("_entity", "_values", "_warnings")

    def __init__(
        self, entity: str, values: dict[str, Any], warnings: tuple[DisclosedMatch, ...] = ()
    ) -> None:
        object.__setattr__(self, "_entity", entity)
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_warnings", tuple(warnings))

    @property
    def duplicate_warnings(self) -> tuple[DisclosedMatch, ...]:
        """The possible duplicates the write that returned this snapshot was flagged with
        (a duplicate rule said ``warn``, or a collision under the ``warn`` policy); empty for
        a clean write and for every read. They hold what the actor may see of each match
        (``crmkit.disclosed_matches``): a record outside their scope is only named by its
        owner."""
        warnings: tuple[DisclosedMatch, ...] = object.__getattribute__(self, "_warnings")
        return warnings

    def with_warnings(self, warnings: tuple[DisclosedMatch, ...]) -> Record:
        """This snapshot carrying ``warnings`` (see :attr:`duplicate_warnings`)."""
        values: dict[str, Any] = object.__getattribute__(self, "_values")
        return Record(self.entity, values, warnings)

    @property
    def entity(self) -> str:
        """The entity name (``contact``, ``deal``, ...)."""
        entity: str = object.__getattribute__(self, "_entity")
        return entity

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            entity = object.__getattribute__(self, "_entity")
            raise AttributeError(
                f"{entity} has no field {name!r} (no built-in or custom field of that name,"
                " or a field rule hides it from you)"
            ) from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("records are read-only snapshots: change them with update()")

    def __getitem__(self, key: str) -> Any:
        values: dict[str, Any] = object.__getattribute__(self, "_values")
        try:
            return values[key]
        except KeyError:
            custom = values.get("custom")
            if isinstance(custom, dict) and key in custom:
                return custom[key]  # custom fields read top-level, as they are written
            raise

    def __iter__(self) -> Iterator[str]:
        values: dict[str, Any] = object.__getattribute__(self, "_values")
        return iter(values)

    def __len__(self) -> int:
        values: dict[str, Any] = object.__getattribute__(self, "_values")
        return len(values)

    def __repr__(self) -> str:
        values: dict[str, Any] = object.__getattribute__(self, "_values")
        label = values.get("full_name") or values.get("name") or values.get("title") or ""
        return f"<{self.entity} {values.get('id')} {label!s}>".replace("  ", " ")

    def to_dict(self) -> dict[str, Any]:
        """A plain dict copy of the visible values."""
        values: dict[str, Any] = object.__getattribute__(self, "_values")
        return {**values, "custom": dict(values.get("custom") or {})}
