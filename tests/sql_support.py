"""Catching the SQL an engine runs, for the tests that check which statements and plans a
list takes (tests/test_scoped_paging.py, tests/test_scoped_union.py)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


class ContactSelects:
    """The SELECTs on contacts an engine runs, with their parameters, from creation until
    ``close()``."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.seen: list[tuple[str, Any]] = []
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM contacts" in statement:
            self.seen.append((statement, parameters))

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._seen)
