"""Where the time goes: a pyinstrument profile summarised as inclusive and own time per
function, in percent of the profiled call."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from attrs import frozen
from pyinstrument import Profiler
from pyinstrument.frame import Frame

T = TypeVar("T")

#: Library functions worth naming in the inclusive list (besides crmkit's own).
INTERESTING = (
    "phonenumbers/phonenumberutil.py:parse",
    "phonenumbers/phonenumberutil.py:is_possible_number",
    "phonenumbers/phonenumberutil.py:format_number",
    "sqlalchemy/orm/session.py:Session.execute",
    "sqlalchemy/orm/session.py:Session.scalars",
    "sqlalchemy/orm/session.py:SessionTransaction.commit",
    "json/__init__.py:dumps",
    "uuid.py:uuid4",
    "csv.py:",
    "psycopg/cursor.py:Cursor.executemany",
    "psycopg/cursor.py:Cursor.copy",
    "sqlalchemy/engine/default.py:DefaultDialect.do_executemany",
    "sqlalchemy/engine/default.py:DefaultDialect.do_execute",
)


@frozen
class Item:
    """One function's share of the profiled time."""

    name: str
    seconds: float
    percent: float


@frozen
class ProfileSummary:
    """The profile of one call: total seconds, the functions that include the most time
    (crmkit's and a few library entry points) and those with the most own time."""

    total: float
    inclusive: list[Item]
    own: list[Item]
    text: str


def _key(frame: Frame) -> str:
    path = frame.file_path or ""
    for marker in ("site-packages/", "lib/python3.", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "lib/python3.":
                path = path.split("/", 1)[1] if "/" in path else path
            break
    function = frame.function or "?"
    if frame.class_name:
        function = f"{frame.class_name}.{function}"
    return f"{path}:{function}"


def _walk(frame: Frame, ancestors: frozenset[str]) -> Iterator[tuple[Frame, str, bool]]:
    key = _key(frame)
    yield frame, key, key in ancestors
    inner = ancestors | {key}
    for child in frame.children:
        yield from _walk(child, inner)


def _wanted(key: str) -> bool:
    if key.startswith("crmkit/") or key.startswith("bench/"):
        return True
    return any(key.startswith(prefix) for prefix in INTERESTING)


def summarise(root: Frame, top: int = 14) -> tuple[float, list[Item], list[Item]]:
    """Inclusive time (counted once per stack, so recursion is not double-counted) of
    crmkit functions and selected library calls, and own time of every function."""
    total = root.time or 1e-12
    inclusive: dict[str, float] = {}
    own: dict[str, float] = {}
    for frame, key, recursive in _walk(root, frozenset()):
        if frame.is_synthetic:
            continue
        if not recursive:
            inclusive[key] = inclusive.get(key, 0.0) + frame.time
        own[key] = own.get(key, 0.0) + frame.total_self_time

    def items(source: dict[str, float], keep: Callable[[str], bool]) -> list[Item]:
        ranked = sorted(
            ((k, v) for k, v in source.items() if keep(k)), key=lambda kv: kv[1], reverse=True
        )
        return [Item(k, v, 100.0 * v / total) for k, v in ranked[:top]]

    skip_root = {_key(root)}
    return (
        total,
        items(inclusive, lambda k: _wanted(k) and k not in skip_root),
        items(own, lambda k: True),
    )


def profile(function: Callable[[], T], *, interval: float = 0.001) -> tuple[T, ProfileSummary]:
    """Run ``function`` under pyinstrument; return its result and the summary."""
    profiler = Profiler(interval=interval, async_mode="disabled")
    profiler.start()
    try:
        result = function()
    finally:
        profiler.stop()
    session = profiler.last_session
    root = session.root_frame() if session is not None else None
    if root is None:
        return result, ProfileSummary(0.0, [], [], "")
    total, inclusive, own = summarise(root)
    text = profiler.output_text(unicode=True, color=False, show_all=False)
    return result, ProfileSummary(total, inclusive, own, text)


def as_markdown(summary: ProfileSummary, title: str) -> list[str]:
    """Two small tables: inclusive time of crmkit/library calls, and own time."""
    lines = [f"**{title}** (profiled total {summary.total:.2f} s; the profiler slows the run)", ""]
    lines += ["| Inclusive time in | s | % |", "|---|---:|---:|"]
    lines += [
        f"| `{item.name}` | {item.seconds:.2f} | {item.percent:.1f} |" for item in summary.inclusive
    ]
    lines += ["", "| Own time in | s | % |", "|---|---:|---:|"]
    lines += [
        f"| `{item.name}` | {item.seconds:.2f} | {item.percent:.1f} |" for item in summary.own
    ]
    lines.append("")
    return lines
