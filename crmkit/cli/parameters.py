"""Click parameter types the commands share: ``field=value`` pairs and comma-separated
names."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click


class FieldValue(click.ParamType[tuple[str, str]]):
    """``NAME=VALUE`` (the value may be empty, and may itself contain ``=``)."""

    name = "NAME=VALUE"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str]:
        if isinstance(value, tuple) and len(value) == 2:
            return str(value[0]), str(value[1])  # already converted (a default)
        text = str(value)
        key, separator, item = text.partition("=")
        if not separator or not key.strip():
            self.fail(f"{text!r} is not NAME=VALUE (for example city=上海)", param, ctx)
        return key.strip(), item


FIELD_VALUE = FieldValue()


def pairs_to_dict(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``[("city", "上海"), ...]`` as a dict; a name given twice keeps its last value."""
    return dict(pairs)


def split_names(values: Sequence[str]) -> list[str]:
    """Option values that may each hold several comma-separated names, flattened:
    ``("id,created_at", "version")`` → ``["id", "created_at", "version"]``."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


__all__ = ["FIELD_VALUE", "FieldValue", "pairs_to_dict", "split_names"]


F = TypeVar("F", bound=Callable[..., Any])


def filter_option(help_text: str) -> Callable[[F], F]:
    """The ``--filter FIELD[__OP]=VALUE`` option of listing and exporting commands."""
    return click.option(
        "--filter",
        "filters",
        multiple=True,
        type=FIELD_VALUE,
        metavar="FIELD[__OP]=VALUE",
        help=help_text,
    )


search_option = click.option(
    "--search", metavar="TEXT", help="Free-text search in the main text fields."
)
