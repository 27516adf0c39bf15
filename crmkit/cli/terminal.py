"""Output that cannot rewrite the user's terminal.

Stored text comes from anyone (a public form, an import, the API): an escape sequence in a
lead's name would clear the screen, set the window title or overwrite earlier lines when a
command prints it. While a command runs, its standard output and error go through
:class:`SafeTextStream`, which shows every control character (C0 but tab and newline, DEL,
C1, and the bidirectional overrides that reorder text) as a visible escape (``\\x1b``). One
place for every command, plugins' commands included; nothing a command prints is exempt.

Data a command writes for other programs (``crmkit export`` to a pipe) goes to the raw
stream (:func:`raw_stdout`), unchanged; to a terminal it is made safe like everything else.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from typing import Any, TextIO

#: Characters a terminal may act on, and bidirectional controls that reorder what is shown.
UNSAFE_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\u202e``);
    tab and newline are kept."""
    return UNSAFE_CHARACTERS.sub(_escape, text)


def json_safe(text: str) -> str:
    """JSON text with the control characters ``json.dumps`` leaves as they are (DEL, C1,
    bidirectional controls) written as JSON escapes (``\\u009b``): still the same JSON."""
    return UNSAFE_CHARACTERS.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


class SafeTextStream:
    """A text stream that writes :func:`terminal_safe` text to ``stream``. It has no
    ``buffer``, so click cannot write around it."""

    def __init__(self, stream: TextIO) -> None:
        self.raw = stream

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.raw.write(terminal_safe(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.raw.flush()

    def isatty(self) -> bool:
        return bool(self.raw.isatty())

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    @property
    def encoding(self) -> str | None:
        return getattr(self.raw, "encoding", None)

    @property
    def errors(self) -> str | None:
        return getattr(self.raw, "errors", None)

    def fileno(self) -> int:
        return self.raw.fileno()

    def __getattr__(self, name: str) -> Any:
        if name == "buffer":
            raise AttributeError(name)
        return getattr(self.raw, name)


@contextlib.contextmanager
def safe_output() -> Iterator[None]:
    """Standard output and error made :class:`SafeTextStream` for the duration."""
    saved = sys.stdout, sys.stderr
    sys.stdout = SafeTextStream(sys.stdout)
    sys.stderr = SafeTextStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def raw_stream(stream: TextIO) -> TextIO:
    """The stream under a :class:`SafeTextStream` (``stream`` itself otherwise)."""
    return stream.raw if isinstance(stream, SafeTextStream) else stream


def raw_stdout() -> TextIO:
    """Standard output for data other programs read: raw when it is not a terminal."""
    return sys.stdout if sys.stdout.isatty() else raw_stream(sys.stdout)


__all__ = [
    "UNSAFE_CHARACTERS",
    "SafeTextStream",
    "json_safe",
    "raw_stdout",
    "raw_stream",
    "safe_output",
    "terminal_safe",
]
