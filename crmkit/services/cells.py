"""How values and entity names are written as text, in CSV files and on the command line.

Kept apart from the services that use them (transfer, the CLI's tables) because the CLI must
build its command groups without importing the database layer (see docs/decisions.md).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping

#: The most records one page of a list returns (the API's and the CLI's ``limit``).
MAX_PAGE = 1000


def plural(entity: str) -> str:
    """The plural of an entity name: ``contact`` → ``contacts``, ``activity`` →
    ``activities`` (CLI group names, file names)."""
    if entity.endswith("y") and not entity.endswith(("ay", "ey", "oy", "uy")):
        return entity[:-1] + "ies"
    return entity if entity.endswith("s") else entity + "s"


def csv_cell(value: object) -> str:
    """A value as a CSV cell that imports back to the same value: lists joined with ``;``,
    mappings as ``k=v;k=v``, dates and times in ISO 8601, empty for ``None``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return ";".join(f"{key}={csv_cell(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        # A phone extension is stored as "+86...;ext=12"; inside a ";" list it is written
        # the way people type it, which imports back to the same number.
        return ";".join(csv_cell(item).replace(";ext=", " ext. ") for item in value)
    return str(value)


__all__ = ["MAX_PAGE", "csv_cell", "plural"]
