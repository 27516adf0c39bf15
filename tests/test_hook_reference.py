"""docs/reference/hooks.md is checked in and must match crmkit/hookspecs.py.

After adding or changing a hook: ``python docs/gen_hooks.py`` (from the repository root),
then commit docs/reference/hooks.md.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "docs" / "gen_hooks.py"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_hooks", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_checked_in_hook_reference_is_current() -> None:
    problem = load_generator().stale_message()
    assert problem is None, problem


def test_a_stale_page_names_the_command_that_regenerates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = load_generator()
    page = tmp_path / "hooks.md"
    page.write_text("# Hook reference\n\nan old page\n", encoding="utf-8")
    monkeypatch.setattr(generator, "PAGE", page)
    assert generator.stale_message() == (
        "docs/reference/hooks.md is stale (it differs from crmkit/hookspecs.py): regenerate it"
        " with `python docs/gen_hooks.py` from the repository root and commit the result"
    )
    assert generator.main(["--check"]) == 1
    assert generator.main([]) == 0
    assert generator.stale_message() is None


def test_the_check_runs_from_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_hook_is_listed_with_its_calling_convention() -> None:
    import crmkit.hookspecs

    page = (ROOT / "docs" / "reference" / "hooks.md").read_text(encoding="utf-8")
    for spec in load_generator().hook_specs(crmkit.hookspecs):
        assert f"## {spec.__name__}\n" in page
    assert "**firstresult**" in page
