"""Reading typed values from what callers send: Python objects, JSON values, or the strings
of CSV cells and query parameters. Built-in columns and custom fields share these, so "12",
" 12 " and 12 mean the same number everywhere. Each raises ``ValueError`` with the reason."""

from __future__ import annotations

import datetime as dt
import decimal
import re

_TRUE = frozenset({"true", "yes", "1", "y", "on", "是", "真"})
_FALSE = frozenset({"false", "no", "0", "n", "off", "否", "假"})
_WHOLE = re.compile(r"\s*[-+]?\d{1,30}\s*")
#: The longest number text read at all: longer is refused before any conversion (Python's
#: own limit on int() of a string is 4 300 digits, and Decimal takes any length).
MAX_NUMBER_CHARS = 100
#: The largest magnitude and the most significant digits a decimal may have (a custom
#: decimal field; a Numeric column has its own, tighter precision and scale).
DECIMAL_MAX_DIGITS = 28  # Python's decimal context precision


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
        raise ValueError(f"expected a whole number, got {_short(value)}")
    if not INT_MIN <= number <= INT_MAX:
        raise ValueError(f"{_short(number)} is out of range ({INT_MIN} to {INT_MAX})")
    return number


def _short(value: object) -> str:
    """``repr(value)``, cut to 40 characters (an error message must not echo a megabyte)."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge number"
    return text if len(text) <= 40 else text[:37] + "..."


def check_text(value: str) -> str:
    """``value`` itself, refused when it holds a NUL character (PostgreSQL cannot store one;
    SQLite would, and every later reader would trip on it)."""
    if "\x00" in value:
        raise ValueError("contains a NUL character (\\x00), which text may not hold")
    return value


def parse_decimal(
    value: object, *, precision: int = DECIMAL_MAX_DIGITS, scale: int | None = None
) -> decimal.Decimal:
    """A finite decimal number; thousands separators in strings are ignored ("1,234.50").

    At most ``precision`` digits, ``scale`` of them after the point (a ``Numeric(18, 2)``
    column: below 10^16, rounded half-up to cents): a larger number is refused, never
    stored as Infinity or rounded by the database."""
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, float):
        text = repr(value)
    elif isinstance(value, int):
        if abs(value) >= 10**precision:
            raise ValueError(f"{_short(value)} is out of range (at most {precision} digits)")
        text = str(value)
    else:
        text = str(value).strip().replace(",", "")
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"expected a number of at most {precision} digits, got {_short(value)}")
    try:
        number = decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise ValueError(f"expected a number, got {_short(value)}") from None
    if not number.is_finite():
        raise ValueError(f"expected a finite number, got {_short(value)}")
    whole_digits = precision - (scale or 0)
    if number and number.adjusted() >= whole_digits:
        limit = f"less than 10^{whole_digits}" if whole_digits else "less than 1"
        raise ValueError(f"{_short(value)} is out of range (the value must be {limit})")
    if scale is not None:
        number = number.quantize(decimal.Decimal(1).scaleb(-scale), decimal.ROUND_HALF_UP)
    elif number and number.adjusted() < -precision:
        number = decimal.Decimal(0)
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
