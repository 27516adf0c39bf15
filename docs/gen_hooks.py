"""Write the hook reference page, docs/reference/hooks.md, from crmkit/hookspecs.py.

    python docs/gen_hooks.py            rewrite docs/reference/hooks.md
    python docs/gen_hooks.py --check    exit 1 (naming the fix) when the page is stale

The page is checked in, so it reads the same in the repository, the package's sdist and the
built site; tests/test_hook_reference.py fails while it differs from what this script writes.
One section per hook specification, in source order: its signature, its calling convention
(read from the pluggy spec options, so the page cannot disagree with the code) and its
docstring.

Docstrings are Markdown, with two reStructuredText habits understood as well: ``code`` (double
backticks, which Markdown reads the same way) and a paragraph ending in `::` followed by an
indented block, which becomes a Python code block.
"""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import crmkit.hookspecs

PAGE = Path(__file__).resolve().parent / "reference" / "hooks.md"
REGENERATE = "python docs/gen_hooks.py"
SPEC_ATTRIBUTE = "crmkit_spec"  # set by pluggy.HookspecMarker("crmkit")
SOURCE = "crmkit/hookspecs.py"
MAX_SIGNATURE_WIDTH = 88

CONVENTIONS = {
    "firstresult": (
        "**firstresult**: implementations are called until one returns something other than "
        "`None`; that value is the result."
    ),
    "historic": (
        "**historic**: the call is remembered; a plugin registered later still receives it."
    ),
    "called": (
        "**collected**: every enabled plugin's implementation is called in turn; the hook "
        "returns nothing."
    ),
    "collected": (
        "**collected**: every enabled plugin's implementation is called; the results are "
        "gathered in a list (`None` results are left out)."
    ),
}


def hook_specs(module: ModuleType) -> list[Callable[..., Any]]:
    """The module's own functions that carry a crmkit hookspec marker, in source order."""
    specs = [
        function
        for _, function in inspect.getmembers(module, inspect.isfunction)
        if function.__module__ == module.__name__ and hasattr(function, SPEC_ATTRIBUTE)
    ]
    return sorted(specs, key=lambda function: inspect.getsourcelines(function)[1])


def format_annotation(annotation: Any) -> str:
    """An annotation as written in the source (string annotations stay as they are)."""
    if isinstance(annotation, str):
        return annotation
    return inspect.formatannotation(annotation)


def format_signature(function: Callable[..., Any]) -> str:
    """`def name(...) -> ...`, one parameter per line when it does not fit on one."""
    signature = inspect.signature(function)
    parameters = []
    for parameter in signature.parameters.values():
        text = str(parameter.replace(annotation=inspect.Parameter.empty))
        if parameter.annotation is not inspect.Parameter.empty:
            name, _, default = text.partition("=")
            text = f"{name}: {format_annotation(parameter.annotation)}"
            if default:
                text += f" = {default}"
        parameters.append(text)
    returns = ""
    if signature.return_annotation is not inspect.Signature.empty:
        returns = f" -> {format_annotation(signature.return_annotation)}"
    one_line = f"def {function.__name__}({', '.join(parameters)}){returns}: ..."
    if len(one_line) <= MAX_SIGNATURE_WIDTH or not parameters:
        return one_line
    lines = "".join(f"    {parameter},\n" for parameter in parameters)
    return f"def {function.__name__}(\n{lines}){returns}: ..."


def calling_convention(function: Callable[..., Any]) -> str:
    """Which of CONVENTIONS the spec options select."""
    options = getattr(function, SPEC_ATTRIBUTE)
    if options.get("firstresult"):
        return "firstresult"
    if options.get("historic"):
        return "historic"
    if inspect.signature(function).return_annotation in ("None", None):
        return "called"
    return "collected"


LITERAL_BLOCK_MARKER = re.compile(r"(?P<text>.*?)\s*::$")


def docstring_to_markdown(docstring: str) -> str:
    """Turn reST literal blocks (`Example::` + indented lines) into fenced Python code."""
    lines = inspect.cleandoc(docstring).splitlines()
    return "\n".join(_convert_literal_blocks(lines)).strip() + "\n"


def _convert_literal_blocks(lines: list[str]) -> Iterator[str]:
    index = 0
    while index < len(lines):
        line = lines[index]
        marker = LITERAL_BLOCK_MARKER.fullmatch(line)
        if not marker or line.startswith((" ", "\t")):
            yield line
            index += 1
            continue
        text = marker.group("text")
        if text:
            yield text + ":"
        index += 1
        block: list[str] = []
        while index < len(lines) and (not lines[index].strip() or lines[index][:1].isspace()):
            block.append(lines[index])
            index += 1
        while block and not block[-1].strip():
            block.pop()
        code = textwrap.dedent("\n".join(block)).strip("\n")
        yield ""
        yield "```python"
        yield from code.splitlines()
        yield "```"
        yield ""


def hook_section(function: Callable[..., Any]) -> str:
    """The Markdown section of one hook."""
    docstring = inspect.getdoc(function)
    if not docstring:
        raise SystemExit(
            f"{SOURCE}: hook {function.__name__} has no docstring; every hook needs one "
            "saying when it is called, with what, and what its return value means."
        )
    return "\n".join(
        [
            f"## {function.__name__}",
            "",
            "```python",
            format_signature(function),
            "```",
            "",
            f"Calling convention: {CONVENTIONS[calling_convention(function)]}",
            "",
            docstring_to_markdown(docstring),
        ]
    )


def hook_reference(module: ModuleType) -> str:
    """The whole page: title, the module's docstring as introduction, one section per hook."""
    specs = hook_specs(module)
    if not specs:
        raise SystemExit(
            f"{SOURCE} defines no hook specifications: no function carries the "
            f"'{SPEC_ATTRIBUTE}' attribute of pluggy.HookspecMarker('crmkit')."
        )
    parts = [
        "# Hook reference",
        "",
        f"Generated from `{SOURCE}` by `{REGENERATE}`: edit the docstrings there and run it"
        " again (a test fails while this page is stale).",
        "",
    ]
    if module.__doc__:
        parts.append(docstring_to_markdown(module.__doc__))
    parts.append("Hooks, in the order they are declared:\n")
    parts.extend(f"- [`{spec.__name__}`](#{spec.__name__})" for spec in specs)
    parts.append("")
    parts.extend(hook_section(spec) for spec in specs)
    return "\n".join(parts)


def stale_message() -> str | None:
    """Why the checked-in page differs from the hook specifications, or ``None`` if current."""
    wanted = hook_reference(crmkit.hookspecs)
    current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else None
    if current == wanted:
        return None
    why = "does not exist" if current is None else f"is stale (it differs from {SOURCE})"
    return (
        f"docs/reference/hooks.md {why}: regenerate it with `{REGENERATE}` from the repository"
        " root and commit the result"
    )


def main(arguments: list[str]) -> int:
    """Rewrite the page, or with ``--check`` only say whether it is current."""
    if arguments == ["--check"]:
        problem = stale_message()
        if problem:
            print(problem, file=sys.stderr)
            return 1
        return 0
    if arguments:
        print(f"usage: {REGENERATE} [--check]", file=sys.stderr)
        return 2
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(hook_reference(crmkit.hookspecs), encoding="utf-8")
    print(f"wrote {PAGE.relative_to(Path.cwd()) if PAGE.is_relative_to(Path.cwd()) else PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
