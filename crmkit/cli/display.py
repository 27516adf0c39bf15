"""How commands show results: aligned tables that count CJK characters as two columns,
``field: value`` details, and JSON."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click

from crmkit.cli.terminal import json_safe
from crmkit.events.payloads import to_json
from crmkit.services.cells import csv_cell

MAX_CELL_WIDTH = 40


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: East Asian wide and full-width characters take two,
    combining marks none."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def clip(text: str, limit: int = MAX_CELL_WIDTH) -> str:
    """``text`` on one line, cut to ``limit`` columns with an ellipsis."""
    text = " ".join(text.split())
    if display_width(text) <= limit:
        return text
    kept, width = [], 0
    for char in text:
        char_width = display_width(char)
        if width + char_width > limit - 1:
            break
        kept.append(char)
        width += char_width
    return "".join(kept) + "…"


def pad(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` terminal columns."""
    return text + " " * (width - display_width(text))


def cell_text(value: object) -> str:
    """A value as a table cell: like a CSV cell, times to the minute."""
    text = csv_cell(value)
    if len(text) > 16 and text[10:11] == "T" and text[4:5] == "-":
        return text[:16].replace("T", " ")  # 2025-06-01T08:30:12.5+00:00 -> 2025-06-01 08:30
    return text


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """An aligned plain-text table (no trailing spaces) with a rule under the header."""
    body = [[clip(cell_text(value)) for value in row] for row in rows]
    widths = [display_width(header) for header in headers]
    for row in body:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], display_width(cell))

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            pad(cell, width) for cell, width in zip(cells, widths, strict=True)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(list(headers)), rule, *(line(row) for row in body)])


def echo_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Print :func:`render_table`."""
    click.echo(render_table(headers, rows))


def echo_details(values: Mapping[str, object]) -> None:
    """Print ``field  value`` lines, the names aligned (values not clipped)."""
    width = max((display_width(name) for name in values), default=0)
    for name, value in values.items():
        click.echo(f"{pad(name, width)}  {cell_text(value)}".rstrip())


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON (dates, decimals and enums made JSON-ready; CJK kept
    readable)."""
    click.echo(json_safe(json.dumps(to_json(value), ensure_ascii=False, indent=2)))


__all__ = [
    "MAX_CELL_WIDTH",
    "cell_text",
    "clip",
    "display_width",
    "echo_details",
    "echo_json",
    "echo_table",
    "pad",
    "render_table",
]
