"""Every command of the ``crmkit`` CLI, every argument and option, given hostile values (issue
16): ids beyond any integer, odd Unicode digits, escape sequences, very long text, paths that
climb out, formulas. Each run must end with status 0, 1 (one line on stderr) or 2 (click's
usage error), never a traceback, and print no raw control character.

The commands are found by walking the click tree, so a new command is fuzzed without being
listed here. A few are skipped for what they are (they serve or loop forever, or write
scaffolding), named in SKIPPED.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import click
import crmkit_brokers
import crmkit_campaigns
import crmkit_cardscan
import crmkit_dedupe
import crmkit_insights
import crmkit_loyalty
import crmkit_reminders
import crmkit_tickets
import pytest
from cli_support import Run

from crmkit.cli import cli
from crmkit.cli.root import CORE_COMMANDS, all_core_commands
from crmkit.plugins import in_memory_plugin

#: Commands that do not return (serve, follow) or only scaffold files from templates.
SKIPPED = {"serve", "worker", "demo", "plugins migration", "plugins new", "init"}
#: Flags that make a command wait forever.
ENDLESS_FLAGS = {"follow"}
#: Commands whose failure lists several problems, one per line (an import's rejected rows).
MULTI_LINE_FAILURES = {("import",)}
HOSTILE = [
    "99999999999999999999",
    "-9223372036854775809",
    "²",
    "\x1b[2J\x1b]0;x\x07\u202e",
    "张" * 3000,
    "../../../../etc/passwd",
    '=HYPERLINK("http://x")',
    "1e999999",
]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    subcommands = all_core_commands() if group is cli else group.commands
    for name, command in sorted(subcommands.items()):
        path = (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, path)
        else:
            yield path


#: The bundled plugins (and the held-out example), whose commands are fuzzed with the
#: plugins enabled.
PLUGINS = {
    "dedupe": crmkit_dedupe,
    "loyalty": crmkit_loyalty,
    "cardscan": crmkit_cardscan,
    "reminders": crmkit_reminders,
    "campaigns": crmkit_campaigns,
    "insights": crmkit_insights,
    "tickets": crmkit_tickets,  # examples/crmkit-tickets: a third party's commands
    "brokers": crmkit_brokers,
}
#: Plugin settings written to the test's crmkit.toml. The brokers are configured at ports
#: nothing listens on, with a short time-out: ``brokers check`` and ``consume`` go all the way
#: to the first connection and fail there (one line, status 1) in milliseconds, where the real
#: brokers would hold every ``consume`` for its idle time.
PLUGIN_CONFIG = {
    "brokers": (
        "[plugins.brokers]\n"
        'rabbitmq_url = "amqp://guest:guest@127.0.0.1:1/"\n'
        'nats_url = "nats://127.0.0.1:1"\n'
        "timeout_seconds = 2.0\n"
    )
}
#: A command group named otherwise than its plugin.
GROUP_PLUGIN = {"cards": "cardscan", "insight": "insights"}
PLUGIN_GROUP = click.Group(
    "plugins-under-test",
    commands={c.name: c for m in PLUGINS.values() for c in m.crmkit_cli_commands() if c.name},
)
#: Plugin commands that would wait or load an OCR model for nothing here.
PLUGIN_SKIPPED: set[str] = set()


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli if path[0] in CORE_COMMANDS else PLUGIN_GROUP
    for name in path:
        assert isinstance(command, click.Group)
        command = all_core_commands()[name] if command is cli else command.commands[name]
    return command


def _value(parameter: click.Parameter, hostile: str) -> str:
    if isinstance(parameter.type, click.Choice):
        return str(parameter.type.choices[0])
    if parameter.type.name == "NAME=VALUE":
        return f"full_name={hostile}"
    return hostile


def _runs(path: tuple[str, ...]) -> Iterator[list[str]]:
    """Argument lists for ``path``: every argument and required option hostile at once, then
    each other option alone with two hostile values."""
    command = _command(path)
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    options = [
        p
        for p in command.params
        if isinstance(p, click.Option) and not p.is_flag and p.name not in ENDLESS_FLAGS
    ]
    required = [p for p in options if p.required]

    def base(hostile: str) -> list[str]:
        args = [*path]
        for argument in arguments:
            args.append(_value(argument, hostile))
        for option in required:
            args += [option.opts[0], _value(option, hostile)]
        return args

    for hostile in HOSTILE:
        yield base(hostile)
    rotation = itertools.cycle(HOSTILE)
    for option in options:
        if option.required:
            continue
        for _ in range(2):
            hostile = next(rotation)
            yield [*base("1"), option.opts[0], _value(option, hostile)]


COMMANDS = [path for path in _commands(cli) if " ".join(path) not in SKIPPED]


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_a_command_given_hostile_values_fails_in_one_line(
    cli_run: Run, path: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a command writing a file writes it here
    _fuzz(cli_run, path)


PLUGIN_COMMANDS = [path for path in _commands(PLUGIN_GROUP) if " ".join(path) not in PLUGIN_SKIPPED]


@pytest.mark.parametrize("path", PLUGIN_COMMANDS, ids=" ".join)
def test_a_plugin_command_given_hostile_values_fails_in_one_line(
    cli_run: Run,
    path: tuple[str, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plugin = GROUP_PLUGIN.get(path[0], path[0])
    if plugin in PLUGIN_CONFIG:  # cli_run works in tmp_path, where crmkit.toml is read
        (tmp_path / "crmkit.toml").write_text(PLUGIN_CONFIG[plugin], encoding="utf-8")
    installed = {name: in_memory_plugin(name, module) for name, module in PLUGINS.items()}
    monkeypatch.setattr("crmkit.app.discover_plugins", lambda: dict(installed))
    monkeypatch.setattr("crmkit.cli.plugins.discover_plugins", lambda: dict(installed))
    enabled = cli_run("plugins", "enable", plugin)
    assert enabled.exit_code == 0, enabled.output
    monkeypatch.chdir(tmp_path)
    _fuzz(cli_run, path)
    if plugin == "brokers":  # the settings were in effect: the runs went as far as connecting
        assert "cannot reach rabbitmq at 127.0.0.1:1" in cli_run("brokers", "check").stdout


def _fuzz(cli_run: Run, path: tuple[str, ...]) -> None:
    shown = cli_run(*path, "--help")  # the command is there (not "No such command")
    assert shown.exit_code == 0, shown.output
    for args in _runs(path):
        result = cli_run(*args)
        shown = " ".join(a[:30] for a in args)
        assert result.exit_code in (0, 1, 2), f"{shown}: {result.exit_code} {result.output[:500]}"
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"{shown}: {result.exception!r}"
        )
        assert "Traceback" not in result.output, shown
        assert "\x1b" not in result.output, shown
        assert "\u202e" not in result.output, shown
        if result.exit_code == 1 and path not in MULTI_LINE_FAILURES:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, f"{shown}: {result.stderr[:500]}"


def test_every_command_is_fuzzed_or_skipped_for_a_reason() -> None:
    every = {" ".join(path) for path in _commands(cli)}
    assert every >= SKIPPED  # a renamed command must not leave a stale skip behind
    assert len(COMMANDS) > 80
