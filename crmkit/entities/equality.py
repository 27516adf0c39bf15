"""What "equal" means for field values, once, in Python and in SQL.

Two values of a field are equal when they are identical after the field's normaliser (the
one every write runs: names NFKC with folded spaces, e-mails lower-cased, phones E.164,
numbers and dates parsed). Letter case counts, except for a text field declared
``ignore_case=True``: its values are compared after :func:`fold_case`. List filters, rule
conditions, territory maps and unique fields all compare this way. ``contains`` and free
text search are looser on purpose: they find a substring ignoring letter case on every text
field.

:func:`fold_case` folds the 26 Latin letters A-Z only, and :func:`sql_fold_case` is the
same fold in SQL on both engines: SQLite's ``lower()`` folds exactly those; PostgreSQL's
``lower()`` folds more letters, by the database's locale, except under the "C" collation,
so it is ``lower(x COLLATE "C")`` there (as fast as ``lower(x)``; ``translate()`` with the
26 letters, which also agrees, scanned a million rows about five times slower). Python,
SQLite and PostgreSQL therefore agree on every string (tests/test_equality.py checks it
with hypothesis).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER = "abcdefghijklmnopqrstuvwxyz"
_FOLD = str.maketrans(UPPER, LOWER)


def fold_case(text: str) -> str:
    """``text`` with the Latin capitals A-Z made small; every other character as it is."""
    return text.translate(_FOLD)


def same_text(left: str, right: str, *, ignore_case: bool) -> bool:
    """Whether two normalised text values are equal (see the module docstring)."""
    return fold_case(left) == fold_case(right) if ignore_case else left == right


class sql_fold_case(FunctionElement[str]):  # noqa: N801 (a SQL function, named like one)
    """:func:`fold_case` in SQL: ``lower(x)`` on SQLite, ``lower(x COLLATE "C")``
    elsewhere."""

    type = String()
    inherit_cache = True
    name = "sql_fold_case"


@compiles(sql_fold_case)
def _fold_generic(element: sql_fold_case, compiler: SQLCompiler, **kw: Any) -> str:
    return fold_case_sql_text(compiler.process(element.clauses, **kw), "postgresql")


@compiles(sql_fold_case, "sqlite")
def _fold_sqlite(element: sql_fold_case, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


def fold_case_sql_text(expression: str, dialect: str) -> str:
    """:func:`sql_fold_case` around a SQL text ``expression`` (for DDL written as text)."""
    if dialect == "sqlite":
        return f"lower({expression})"
    return f'lower(({expression}) COLLATE "C")'
