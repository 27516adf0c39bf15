"""Segment-targeted e-mail campaigns for crmkit.

A bundled plugin (``crmkit plugins enable campaigns``) that uses only crmkit's public API:

* a campaign is an audience (a saved segment or a filter on contacts, as its owner sees
  them) and a sequence of steps: the first mail, follow-ups after N days unless the contact
  replied or clicked, a thank-you after a purchase or a form submission
  (:mod:`crmkit_campaigns.definition`, :mod:`crmkit_campaigns.service`);
* the worker's job that hands due mails to the core message queue, set-based, within the
  schedule window, one campaign mail per contact per day, per-domain limits
  (:mod:`crmkit_campaigns.sending`, :mod:`crmkit_campaigns.limits`);
* click tracking and the event sink that arms thank-you mails
  (:mod:`crmkit_campaigns.tracking`);
* the CLI group ``crmkit campaigns`` and API routes under ``/plugins/campaigns``.

Needs the ``campaigns`` extra (``pip install "crmkit[campaigns]"``: jinja2); without it the
plugin is listed as failed to load and the rest of crmkit works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

import crmkit

# The library of the extra: a missing one fails the plugin's import (``crmkit plugins list``
# shows it) without importing it here; it loads where mails are rendered.
crmkit.require_modules("jinja2", install="pip install 'crmkit[campaigns]'")

# (the plugin's own modules after the check: a missing library fails before they load)
from crmkit_campaigns.models import Campaign, CampaignMember, DomainCounter  # noqa: E402

crmkit_plugin = crmkit.PluginSpec(
    description="Segment-targeted e-mail campaigns: sequences, follow-ups, thank-yous",
    requires=(),
    # what `crmkit --help` lists without importing the plugin
    commands={
        "campaigns": (
            "E-mail campaigns to a segment or a filter of contacts: first mail, follow-ups, "
            "thank-yous."
        )
    },
)

__all__ = ["Campaign", "CampaignMember", "DomainCounter", "crmkit_plugin"]


@crmkit.hookimpl
def crmkit_migrations() -> str:
    """The folder of the plugin's Alembic branch (``campaigns``)."""
    return str(Path(__file__).parent / "migrations")


@crmkit.hookimpl
def crmkit_permissions() -> list[str]:
    """``campaign:manage``: create, start, pause, test-send and read one's campaigns (an
    admin: everyone's)."""
    return ["campaign:manage"]


@crmkit.hookimpl
def crmkit_settings() -> list[crmkit.SettingSpec]:
    """``[plugins.campaigns]`` in ``crmkit.toml``."""
    return [
        crmkit.SettingSpec(
            "languages",
            list,
            default=["zh", "en"],
            description="The template languages (a contact's ``language`` field picks one)",
        ),
        crmkit.SettingSpec(
            "default_language",
            str,
            default="zh",
            description="The language of contacts with none (every step needs its template)",
        ),
        crmkit.SettingSpec(
            "timezone",
            str,
            default="Asia/Shanghai",
            description="The zone of schedule windows given without one, and of the day in"
            " 'one campaign mail per contact per day' and the per-day limits",
        ),
        crmkit.SettingSpec(
            "per_domain_per_minute",
            int,
            default=300,
            description="Campaign mails per recipient domain per minute",
        ),
        crmkit.SettingSpec(
            "per_domain_per_day",
            int,
            default=20000,
            description="Campaign mails per recipient domain per day",
        ),
        crmkit.SettingSpec(
            "domain_limits",
            dict,
            default={},
            description="Limits of single domains: {'qq.com' = {per_minute = 60, per_day = 5000}}",
        ),
        crmkit.SettingSpec(
            "batch_size",
            int,
            default=1000,
            description="Members one sending transaction handles",
        ),
    ]


@crmkit.hookimpl
def crmkit_custom_fields() -> list[crmkit.CustomField]:
    """On activities: ``direction`` (``inbound`` or ``outbound``). An ``email`` activity with
    ``direction = "inbound"`` on a contact is a reply: it stops their campaign sequences."""
    return [
        crmkit.CustomField(
            entity="activity",
            name="direction",
            type="choice",
            choices=("inbound", "outbound"),
            label="Direction (inbound: from the customer)",
        )
    ]


@crmkit.hookimpl
def crmkit_scheduled_jobs(crm: crmkit.CRM) -> list[crmkit.ScheduledJob]:
    """Hand due campaign mails to the message queue (every 15 s, one worker at a time)."""
    from crmkit_campaigns.sending import campaigns_job

    return [campaigns_job()]


@crmkit.hookimpl
def crmkit_event_sinks(crm: crmkit.CRM) -> list[Any]:
    """``campaigns``: purchases (``points.earned``) and form submissions (``lead.captured``)
    arm thank-you mails."""
    from crmkit_campaigns.tracking import ConversionSink

    return [ConversionSink(crm)]


@crmkit.hookimpl
def crmkit_demo_data(crm: crmkit.CRM) -> None:
    """A running welcome campaign to the demo contacts, first mails due at once."""
    from crmkit_campaigns.demo import load_demo

    load_demo(crm)


@crmkit.hookimpl
def crmkit_cli_commands() -> list[click.Command]:
    """``crmkit campaigns ...``."""
    from crmkit_campaigns.cli import campaigns_group

    return [campaigns_group]


@crmkit.hookimpl
def crmkit_api_routes(crm: crmkit.CRM) -> list[Any]:
    """The REST routes, mounted by the core under ``/plugins/campaigns``."""
    from crmkit_campaigns.api import routes

    return routes(crm)
