"""Turning Python values into JSON-ready ones, for event payloads and audit entries."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from collections.abc import Mapping
from typing import Any

#: Types ``to_json`` returns unchanged (exact types: an enum that subclasses ``str`` is not
#: one of them and still becomes its value).
_PLAIN = frozenset({str, int, float, bool, type(None)})


def to_json(value: Any) -> Any:
    """``value`` with dates, decimals, enums and UUIDs turned into JSON-ready forms."""
    kind = type(value)
    if kind in _PLAIN:  # the common case, checked first: events and audit entries are full
        return value  # of them; then exact dicts and lists, before the slower ABC checks
    if kind is dict or (kind is not list and isinstance(value, Mapping)):
        return {
            str(key): item if type(item) in _PLAIN else to_json(item) for key, item in value.items()
        }
    if kind is list or isinstance(value, list | tuple | set | frozenset):
        return [item if type(item) in _PLAIN else to_json(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    return value
