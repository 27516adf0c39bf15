"""Reading typed values from what callers send: Python objects, JSON values, or the strings
of CSV cells and query parameters. Built-in columns and custom fields share these, so "12",
" 12 " and 12 mean the same number everywhere. Each raises ``ValueError`` with the reason."""

from __future__ import annotations

import datetime as dt
import decimal
import re

_TRUE = frozenset({"true", "yes", "1", "y", "on", "是", "真"})
_FALSE = frozenset({"false", "no", "0", "n", "off", "否", "假"})
_WHOLE = re.compile(r"\s*[-+]?\d+\s*")


#: The range of an SQL INTEGER (ids, counts, number fields) on every supported database: a
#: larger number would be a database error on PostgreSQL, so it is a value error here.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


def parse_int(value: object) -> int:
    """A whole number within the SQL INTEGER range: an int, an integral float, or a string
    of digits."""
    if isinstance(value, bool):
        raise ValueError("expected a whole number, got a boolean")
    if isinstance(value, int):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and _WHOLE.fullmatch(value)
    ):
        number = int(value)
    else:
        raise ValueError(f"expected a whole number, got {value!r}")
    if not INT_MIN <= number <= INT_MAX:
        raise ValueError(f"{number} is out of range ({INT_MIN} to {INT_MAX})")
    return number


def parse_decimal(value: object) -> decimal.Decimal:
    """A finite decimal number; thousands separators in strings are ignored ("1,234.50")."""
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    try:
        number = decimal.Decimal(str(value).strip().replace(",", ""))
    except decimal.InvalidOperation:
        raise ValueError(f"expected a number, got {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def parse_date(value: object) -> dt.date:
    """A calendar date: a ``date`` or ``YYYY-MM-DD``; a date *and time* is refused."""
    if isinstance(value, dt.datetime):
        raise ValueError("expected a date, got a date and time")
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"expected a date as YYYY-MM-DD, got {value!r}") from None


def parse_datetime(value: object) -> dt.datetime:
    """A point in time with a time zone (ISO 8601), returned in UTC."""
    if not isinstance(value, dt.datetime):
        try:
            value = dt.datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ValueError(f"expected an ISO 8601 date and time, got {value!r}") from None
    if value.tzinfo is None:
        raise ValueError("expected a date and time with a time zone (e.g. +08:00 or Z)")
    return value.astimezone(dt.UTC)


def parse_bool(value: object) -> bool:
    """True or false, also from yes/no, 1/0, on/off and 是/否."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {value!r}")
