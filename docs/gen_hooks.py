"""Write the hook reference page (reference/hooks.md) from crmkit/hookspecs.py.

Run by the mkdocs-gen-files plugin on every `mkdocs build` / `mkdocs serve`; the page exists
only inside the build, never on disk. One section per hook specification, in source order: its
signature, its calling convention (read from the pluggy spec options, so the page cannot
disagree with the code) and its docstring.

Docstrings are Markdown, with two reStructuredText habits understood as well: ``code`` (double
backticks, which Markdown reads the same way) and a paragraph ending in `::` followed by an
indented block, which becomes a Python code block.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import mkdocs_gen_files

import crmkit.hookspecs

PAGE = "reference/hooks.md"
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
        f"Generated from `{SOURCE}` at every docs build; edit the docstrings there.",
        "",
    ]
    if module.__doc__:
        parts.append(docstring_to_markdown(module.__doc__))
    parts.append("Hooks, in the order they are declared:\n")
    parts.extend(f"- [`{spec.__name__}`](#{spec.__name__})" for spec in specs)
    parts.append("")
    parts.extend(hook_section(spec) for spec in specs)
    return "\n".join(parts)


with mkdocs_gen_files.open(PAGE, "w") as page:
    page.write(hook_reference(crmkit.hookspecs))
