"""Reminders and care messages for crmkit.

A bundled plugin (``crmkit plugins enable reminders``) that uses only crmkit's public API:

* reminders on any record, once or on an RFC 5545 recurrence rule, in the owner's time zone;
  list, snooze, done, cancel (:mod:`crmkit_reminders.service`);
* the worker's shared job that fires due reminders set-based, through the core message
  channels (:mod:`crmkit_reminders.delivery`);
* the CLI group ``crmkit reminders`` and API routes under ``/plugins/reminders``;
* on the web desk, a "my day" tile of the reminders due today and a "Reminders" page to
  snooze them or mark them done (:mod:`crmkit_reminders.desk`).

Needs the ``reminders`` extra (``pip install "crmkit[reminders]"``: python-dateutil,
lunar-python, jinja2, icalendar); without it the plugin is listed as failed to load and the
rest of crmkit works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

import crmkit

# The libraries of the extra: a missing one fails the plugin's import (``crmkit plugins
# list`` shows it) without importing them here; they load where they are used.
crmkit.require_modules(
    "dateutil", "icalendar", "jinja2", "lunar_python", install="pip install 'crmkit[reminders]'"
)

# (the plugin's own modules after the check: a missing library fails before they load)
from crmkit_reminders.models import Reminder, ReminderPreferences  # noqa: E402

crmkit_plugin = crmkit.PluginSpec(
    description="Reminders on any record and care messages to customers",
    requires=(),
    # what `crmkit --help` lists without importing the plugin
    commands={
        "reminders": (
            "Reminders: on any record, once or recurring (RFC 5545 RRULE), in the "
            "owner's time zone."
        )
    },
)

__all__ = ["Reminder", "ReminderPreferences", "crmkit_plugin"]


@crmkit.hookimpl
def crmkit_migrations() -> str:
    """The folder of the plugin's Alembic branch (``reminders``)."""
    return str(Path(__file__).parent / "migrations")


@crmkit.hookimpl
def crmkit_permissions() -> list[str]:
    """``reminder:manage``: other users' reminders, derived reminders and care messages.
    Users manage their own reminders without it."""
    return ["reminder:manage"]


@crmkit.hookimpl
def crmkit_settings() -> list[crmkit.SettingSpec]:
    """``[plugins.reminders]`` in ``crmkit.toml``."""
    return [
        crmkit.SettingSpec(
            "default_timezone",
            str,
            default="Asia/Shanghai",
            description="The time zone of users who set none (IANA name)",
        ),
        crmkit.SettingSpec(
            "default_channels",
            list,
            default=["inapp"],
            description="The channels of users who set none",
        ),
        crmkit.SettingSpec(
            "rules",
            list,
            default=[],
            description="Derived-reminder rules (an array of tables; see docs/reminders.md)",
        ),
        crmkit.SettingSpec(
            "care",
            list,
            default=[],
            description="Care messages to customers on holidays and birthdays (see"
            " docs/reminders.md)",
        ),
        crmkit.SettingSpec(
            "batch_size",
            int,
            default=2000,
            description="Due reminders one worker fires per transaction",
        ),
    ]


@crmkit.hookimpl
def crmkit_scheduled_jobs(crm: crmkit.CRM) -> list[crmkit.ScheduledJob]:
    """Fire due reminders (shared: every worker takes batches)."""
    from crmkit_reminders.care import care_job
    from crmkit_reminders.delivery import delivery_job
    from crmkit_reminders.derive import derive_job

    return [delivery_job(), derive_job(), care_job()]


@crmkit.hookimpl
def crmkit_custom_fields() -> list[crmkit.CustomField]:
    """On contacts: ``birthday_calendar`` (``gregorian`` or ``lunar``: which birthday the
    contact celebrates), ``timezone`` (care messages go out on their day at their wall
    clock) and ``language`` (``zh`` or ``en``: of care messages)."""
    return [
        crmkit.CustomField(
            entity="contact",
            name="birthday_calendar",
            type="choice",
            choices=("gregorian", "lunar"),
            label="Birthday calendar",
        ),
        crmkit.CustomField(
            entity="contact",
            name="timezone",
            type="text",
            label="Time zone (IANA, e.g. Asia/Shanghai)",
        ),
        crmkit.CustomField(
            entity="contact",
            name="language",
            type="choice",
            choices=("zh", "en"),
            label="Language of messages",
        ),
    ]


@crmkit.hookimpl
def crmkit_demo_data(crm: crmkit.CRM) -> None:
    """li.na's reminders (one due at once) and a contact with a lunar birthday."""
    from crmkit_reminders.demo import load_demo

    load_demo(crm)


@crmkit.hookimpl
def crmkit_cli_commands() -> list[click.Command]:
    """``crmkit reminders ...``."""
    from crmkit_reminders.cli import reminders_group

    return [reminders_group]


@crmkit.hookimpl
def crmkit_desk_tiles(crm: crmkit.CRM, actor: crmkit.User) -> list[crmkit.DeskTile]:
    """On "my day": how many of the user's reminders are due today (crmkit_reminders.desk)."""
    from crmkit_reminders.desk import desk_tiles

    return desk_tiles(crm, actor)


@crmkit.hookimpl
def crmkit_desk_pages(crm: crmkit.CRM) -> list[crmkit.DeskPage]:
    """The desk's "Reminders" page: today's reminders with snooze and done buttons."""
    from crmkit_reminders.desk import desk_pages

    return desk_pages()


@crmkit.hookimpl
def crmkit_api_routes(crm: crmkit.CRM) -> list[Any]:
    """The REST routes, mounted by the core under ``/plugins/reminders``."""
    from crmkit_reminders.api import routes

    return routes(crm)
