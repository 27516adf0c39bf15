"""The public API (``import crmkit``) is one list, loaded lazily: every name in ``__all__``
resolves, the lazy table and the type checkers' imports agree, and importing crmkit does
not pull in the database layer (the CLI's start-up depends on it)."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys

import pytest

import crmkit

DEFINED_IN_INIT = {
    "cli_crm",
    "cli_progress_stream",
    "formula_safe",
    "problem_responses",
    "require_modules",
    "terminal_safe",
}


def type_checking_imports() -> dict[str, str]:
    """Name -> "module" or "module:attribute" as the TYPE_CHECKING block imports it."""
    tree = ast.parse(inspect.getsource(crmkit))
    found: dict[str, str] = {}
    for node in tree.body:
        if not (isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"):
            continue
        for statement in node.body:
            if isinstance(statement, ast.ImportFrom) and statement.module:
                for alias in statement.names:
                    name = alias.asname or alias.name
                    renamed = alias.asname is not None and alias.asname != alias.name
                    found[name] = (
                        f"{statement.module}:{alias.name}" if renamed else statement.module
                    )
            elif isinstance(statement, ast.Assign):  # open = open_crm
                target = statement.targets[0]
                assert isinstance(target, ast.Name)
                assert isinstance(statement.value, ast.Name)
                found[target.id] = found[statement.value.id] + f":{statement.value.id}"
    return found


def test_lazy_table_and_type_checking_imports_agree() -> None:
    assert type_checking_imports() == crmkit._EXPORTS


def test_all_lists_exactly_the_lazy_names_and_the_functions_defined_here() -> None:
    assert sorted(crmkit.__all__) == sorted(set(crmkit._EXPORTS) | DEFINED_IN_INIT)


@pytest.mark.parametrize("name", sorted(crmkit._EXPORTS))
def test_every_public_name_resolves(name: str) -> None:
    value = getattr(crmkit, name)
    assert value is not None
    assert name in dir(crmkit)


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = crmkit.no_such_thing  # type: ignore[attr-defined]


def test_open_is_open_crm() -> None:
    assert crmkit.open is crmkit.open_crm


def test_importing_crmkit_and_its_cli_loads_no_database_or_web_layer() -> None:
    probe = (
        "import sys, crmkit, crmkit.cli; "
        "heavy = [m for m in ('sqlalchemy', 'alembic', 'litestar', 'crmkit.app') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_require_modules_names_what_is_missing_without_importing_it() -> None:
    crmkit.require_modules("json", "sqlite3", install="nothing to do")
    with pytest.raises(ModuleNotFoundError, match=r"missing no_such_lib_x: pip install x"):
        crmkit.require_modules("json", "no_such_lib_x", install="pip install x")


def test_require_modules_does_not_import_what_it_checks() -> None:
    probe = (
        "import sys, crmkit\n"
        "crmkit.require_modules('decimal', install='-')\n"
        "print('decimal' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
