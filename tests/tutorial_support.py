"""Running the lines of the tutorial's console blocks (tests/test_plugin_tutorial.py), in
this process or, after the tutorial edited a module already imported here, in a fresh one
(as the reader's next command would be)."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from crmkit.cli import cli
from crmkit.testing import source_checkout_plugins

Patch = Callable[[str, Any], None]


def run_line(line: str, runner: CliRunner, patch: Patch, chdir: Callable[[str], None]) -> None:
    """Run one line as the reader would in a shell."""
    words = shlex.split(line)
    if words[0] == "cd":
        chdir(words[1])
    elif words[:3] == ["pip", "install", "-e"]:
        # Installing makes the entry point visible; the source checkout does the same here.
        root = Path.cwd()
        patch("crmkit.app.discover_plugins", lambda: source_checkout_plugins(root))
    elif words[0] == "crmkit":
        result = runner.invoke(cli, words[1:])
        assert result.exit_code == 0, f"{line}\n{result.output}{result.exception!r}"
    elif words[0] == "pytest":
        code = pytest.main([*words[1:], "-q", "-p", "no:cacheprovider", "-p", "no:xdist"])
        assert code == 0, f"{line}: the plugin's tests failed (exit {code})"
    else:
        raise AssertionError(f"the tutorial runs {line!r}, which its test does not know")


def write_file(title: str, body: str) -> str:
    """Write a python block titled ``path`` or ``path (append)``; return the path."""
    name, _, mode = title.partition(" ")
    path = Path.cwd() / name
    if mode == "(append)":
        body = path.read_text(encoding="utf-8") + "\n\n" + body
    path.write_text(body, encoding="utf-8")
    if name.endswith("__init__.py"):  # its next import re-reads it (its modules stay)
        sys.modules.pop(name.removesuffix("/__init__.py").replace("/", "."), None)
    return name


def main(steps: Sequence[Sequence[str]]) -> None:
    """Run ``steps`` (``["file", title, body]`` or ``["run", line]``) in this fresh
    process, the plugin installed from the current folder."""
    import os

    import crmkit.app

    root = Path.cwd()
    crmkit.app.discover_plugins = lambda: source_checkout_plugins(root)  # type: ignore[assignment]

    def patch(target: str, value: Any) -> None:
        module, _, name = target.rpartition(".")
        setattr(sys.modules[module], name, value)

    for step in steps:
        if step[0] == "file":
            write_file(step[1], step[2])
        else:
            run_line(step[1], CliRunner(), patch, os.chdir)


if __name__ == "__main__":
    import json

    main(json.loads(sys.stdin.read()))
