"""``crmkit plugins new`` writes a plugin whose own tests pass at once, and ``crmkit plugins
migration`` writes its next revision from its models."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cli_support import Run, failed, ok
from sqlalchemy import inspect

import crmkit
from crmkit.plugins import in_memory_plugin
from crmkit.scaffold import write_plugin
from crmkit.testing import CRMFactory


def fresh_name() -> str:
    """A plugin name of its own (its tables join this process's model metadata)."""
    return f"p{uuid.uuid4().hex[:8]}"


def test_new_writes_a_plugin_whose_tests_pass_at_once(cli_run: Run, tmp_path: Path) -> None:
    name = fresh_name()
    output = ok(cli_run("plugins", "new", name, "--directory", str(tmp_path)))
    target = tmp_path / f"crmkit-{name}"
    assert f"Wrote {target}" in output
    (migration,) = (target / f"crmkit_{name}" / "migrations").glob(f"{name}_0001_*.py")
    text = migration.read_text(encoding="utf-8")
    assert f"branch_labels: str | Sequence[str] | None = ('{name}',)" in text
    assert "from crmkit" not in text  # only sqlalchemy and alembic: nothing private

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=target,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 passed" in result.stdout


def test_new_names_the_entity_as_told(cli_run: Run, tmp_path: Path) -> None:
    # a consonant before the y: "...ty" is pluralised "...ties" (a vowel before it keeps "ys")
    name, entity = fresh_name(), f"e{uuid.uuid4().hex[:8]}ty"
    ok(cli_run("plugins", "new", name, "--entity", entity, "--directory", str(tmp_path)))
    target = tmp_path / f"crmkit-{name}"
    (migration,) = (target / f"crmkit_{name}" / "migrations").glob(f"{name}_0001_*.py")
    table = entity[:-1] + "ies"
    assert f"create the {table} table" in migration.read_text(encoding="utf-8")
    hooks = (target / f"crmkit_{name}" / "__init__.py").read_text(encoding="utf-8")
    assert f'name="{entity}"' in hooks
    assert f'records("{entity}")' in (target / f"crmkit_{name}" / "api.py").read_text()


def test_new_refuses_a_core_entity_name(cli_run: Run, tmp_path: Path) -> None:
    line = failed(cli_run("plugins", "new", fresh_name(), "--entity", "contact"))
    assert "entity name 'contact' is a core entity's" in line


def test_new_refuses_a_name_that_cannot_be_a_package(cli_run: Run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    line = failed(cli_run("plugins", "new", "My-Plugin", "--directory", str(out)))
    assert "plugin name 'My-Plugin' is not usable" in line
    assert not out.exists()


def test_migration_autogenerates_the_next_revision_of_the_plugins_branch(
    make_crm: CRMFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from crmkit.services.plugin_migrations import make_plugin_migration

    name = fresh_name()
    target = write_plugin(name, tmp_path)
    package = target / f"crmkit_{name}"
    monkeypatch.syspath_prepend(str(target))
    module = importlib.import_module(f"crmkit_{name}")
    monkeypatch.setattr(
        "crmkit.app.discover_plugins", lambda: {name: in_memory_plugin(name, module)}
    )
    crm = make_crm(enable=[name])
    assert inspect(crm.engine).has_table(f"{name}_items")

    (package / "tags.py").write_text(
        "from sqlalchemy import String\n"
        "from sqlalchemy.orm import Mapped, mapped_column\n\n"
        "import crmkit\n\n\n"
        "class Tag(crmkit.RecordMixin, crmkit.Model):\n"
        f"    __tablename__ = '{name}_tags'\n"
        "    label: Mapped[str] = mapped_column(String(40), unique=True)\n",
        encoding="utf-8",
    )
    importlib.import_module(f"crmkit_{name}.tags")

    path = make_plugin_migration(crm, name, "add tags")

    assert path.name == f"{name}_0002_add_tags.py"
    text = path.read_text(encoding="utf-8")
    assert f"down_revision: str | Sequence[str] | None = '{name}_0001'" in text
    assert f"uq_{name}_tags_label" in text  # crmkit's naming convention
    assert f"{name}_items" not in text  # nothing else changed
    crm.upgrade()
    assert inspect(crm.engine).has_table(f"{name}_tags")


def test_migration_of_a_plugin_without_tables_says_so(make_crm: CRMFactory) -> None:
    from crmkit.services.plugin_migrations import make_plugin_migration

    class Bare:
        @crmkit.hookimpl
        def crmkit_migrations(self) -> str:
            return "/nonexistent/never-written"

    crm = make_crm(plugins={"bare": Bare()})
    with pytest.raises(crmkit.PluginError, match="plugin 'bare' defines no tables"):
        make_plugin_migration(crm, "bare", "nothing")
