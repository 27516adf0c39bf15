"""Referral tracking for crmkit: who referred whom, through which channel, and the reward.

A complete third-party plugin, laid out as a template to copy. Everything it does goes through
the doors any plugin has: the hooks implemented below (``@crmkit.hookimpl``), crmkit's public
API (``import crmkit``, never ``crmkit.<submodule>``) and the event bus.

What it adds while enabled (``crmkit plugins enable referrals``):

* an entity ``referral`` (``crm.records("referral")``) in its own table and Alembic branch;
* custom fields on contacts: ``wechat_id``, ``referral_code``, ``vip_level``;
* a veto on new contacts whose e-mail domain is blocked, and on self-referrals;
* a reward credited to the referrer when a referral is created (``referral.rewarded``);
* an in-process event counter (``EVENTS_SEEN``) and a JSON-lines event sink;
* ``crmkit referrals list|stats`` and demo referrals for ``crmkit demo``;
* REST routes under ``/plugins/referrals`` (``GET /stats``, ``GET /contacts/{id}``);
* on the web desk (:mod:`crmkit_referrals.desk`): a panel on contacts, a page with its menu
  entry, a "Give a referral code" button on contacts and a "my day" tile.

Settings (``[plugins.referrals]`` in ``crmkit.toml``)::

    [plugins.referrals]
    blocked_domains = ["spam.example"]
    reward_points = 100
    event_log = "referral-events.jsonl"
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

import crmkit
from crmkit_referrals.cli import referrals_group
from crmkit_referrals.models import Referral
from crmkit_referrals.sinks import JsonLinesSink

#: The plugin's name: the entry point's name in pyproject.toml, used for its settings section,
#: its Alembic branch label and the errors crmkit reports for it.
PLUGIN_NAME = "referrals"

crmkit_plugin = crmkit.PluginSpec(
    description="Referral tracking: who referred whom, through which channel, and the reward",
    requires=(),
    # what `crmkit --help` lists without importing the plugin
    commands={
        "referrals": (
            "Referrals: who referred whom, and the rewards earned (plugin crmkit-referrals)."
        )
    },
)

#: How many events of each name this process has seen after commit (``crmkit_on_event``).
#: The demo prints it; tests read it to see which events were (not) delivered.
EVENTS_SEEN: Counter[str] = Counter()

VIP_LEVELS = ("bronze", "silver", "gold")

__all__ = [
    "EVENTS_SEEN",
    "PLUGIN_NAME",
    "VIP_LEVELS",
    "JsonLinesSink",
    "Referral",
    "crmkit_plugin",
]


def settings_of(crm: crmkit.CRM) -> dict[str, Any]:
    """This plugin's validated settings (defaults filled in) on ``crm``."""
    return crm.plugin_settings(PLUGIN_NAME)


# -- what the plugin declares ---------------------------------------------------------------


@crmkit.hookimpl
def crmkit_entities() -> list[crmkit.EntityType]:
    """The ``referral`` entity, served by the core record service."""
    return [
        crmkit.EntityType(
            name="referral",
            model=Referral,
            label="Referral",
            required=("referrer_contact_id", "referred_contact_id"),
            search=("channel", "note"),
            source=PLUGIN_NAME,
        )
    ]


@crmkit.hookimpl
def crmkit_migrations() -> str:
    """The folder of this plugin's Alembic branch."""
    return str(Path(__file__).parent / "migrations")


@crmkit.hookimpl
def crmkit_custom_fields() -> list[crmkit.CustomField]:
    """Fields referral programmes need on core contacts."""
    return [
        crmkit.CustomField(
            entity="contact",
            name="wechat_id",
            type=crmkit.FieldType.TEXT,
            label="WeChat ID",
            description="The contact's WeChat (微信) account, where most referrals happen",
            source=PLUGIN_NAME,
        ),
        crmkit.CustomField(
            entity="contact",
            name="referral_code",
            type=crmkit.FieldType.TEXT,
            label="Referral code",
            description="The code this contact hands out to the people they refer",
            source=PLUGIN_NAME,
        ),
        crmkit.CustomField(
            entity="contact",
            name="vip_level",
            type=crmkit.FieldType.CHOICE,
            choices=VIP_LEVELS,
            label="VIP level",
            source=PLUGIN_NAME,
        ),
    ]


@crmkit.hookimpl
def crmkit_settings() -> list[crmkit.SettingSpec]:
    """``[plugins.referrals]`` in the config file."""
    return [
        crmkit.SettingSpec(
            "blocked_domains",
            list,
            default=[],
            description="E-mail domains (and their sub-domains) refused for new contacts",
        ),
        crmkit.SettingSpec(
            "reward_points",
            int,
            default=100,
            description="Points credited to the referrer for each new referral",
        ),
        crmkit.SettingSpec(
            "event_log",
            str,
            default="",
            description=(
                "A JSON-lines file the relay worker appends contact and referral events to"
                " (relative to the config file); empty: no event log"
            ),
        ),
    ]


@crmkit.hookimpl
def crmkit_cli_commands() -> list[click.Command]:
    """``crmkit referrals list|stats``."""
    return [referrals_group]


# -- lifecycle ------------------------------------------------------------------------------


@crmkit.hookimpl
def crmkit_api_routes(crm: crmkit.CRM) -> list[Any]:
    """The REST routes of ``crmkit_referrals.api``, served under ``/plugins/referrals``."""
    from crmkit_referrals.api import ROUTES

    return list(ROUTES)


@crmkit.hookimpl
def crmkit_setup(crm: crmkit.CRM, op: crmkit.Operation) -> None:
    """On enable (after the migration, in the enabling transaction): check the settings, so a
    bad value stops the enable with a clear error, and record a ``referrals.setup`` event
    saying what was found."""
    settings = settings_of(crm)
    existing = op.records("referral").count()
    op.emit(
        "referrals.setup",
        {
            "existing_referrals": existing,
            "reward_points": settings["reward_points"],
            "blocked_domains": list(settings["blocked_domains"]),
        },
    )


@crmkit.hookimpl
def crmkit_demo_data(crm: crmkit.CRM) -> None:
    """Two referrals from the first demo contact to the next two."""
    first = crm.contacts.list(sort="id", limit=3).items
    if len(first) < 2:
        return
    referrer, *referred = first
    with crm.transaction() as op:
        for contact, channel in zip(referred, ("wechat", "event"), strict=False):
            op.records("referral").create(
                {
                    "referrer_contact_id": referrer.id,
                    "referred_contact_id": contact.id,
                    "channel": channel,
                    "note": f"{referrer.full_name} 介绍了 {contact.full_name}",
                }
            )


# -- rules inside the transaction -----------------------------------------------------------


@crmkit.hookimpl
def crmkit_before_create(op: crmkit.Operation, entity: str, values: dict[str, Any]) -> None:
    """Refuse new contacts from blocked e-mail domains, and self-referrals."""
    if entity == "contact":
        refuse_blocked_domain(op.crm, values)
    elif entity == "referral" and values.get("referrer_contact_id") == values.get(
        "referred_contact_id"
    ):
        raise crmkit.PluginVeto(
            f"contact {values['referrer_contact_id']} cannot refer themselves:"
            " referrer and referred must be different contacts"
        )


def refuse_blocked_domain(crm: crmkit.CRM, values: Mapping[str, Any]) -> None:
    """Raise ``crmkit.PluginVeto`` when any e-mail of a new contact is in a blocked domain
    (or a sub-domain of one). Addresses arrive normalised (lower-case) from the core."""
    addresses = [values.get("email"), *(values.get("extra_emails") or [])]
    domains = {address.rpartition("@")[2] for address in addresses if address}
    if not domains:
        return
    blocked = {
        str(domain).strip().lstrip("@").lower() for domain in settings_of(crm)["blocked_domains"]
    }
    for domain in sorted(domains):
        if any(domain == b or domain.endswith("." + b) for b in blocked):
            raise crmkit.PluginVeto(f"e-mail domain {domain} is blocked for new contacts")


@crmkit.hookimpl
def crmkit_after_create(
    op: crmkit.Operation, entity: str, record_id: int, values: Mapping[str, Any]
) -> None:
    """Credit the referrer: set the referral's ``reward_points`` (the ``reward_points``
    setting, unless the caller gave a value) and emit ``referral.rewarded`` about the referrer.

    Both happen in the creating transaction: they commit with the referral, or not at all.
    """
    if entity != "referral":
        return
    points = values.get("reward_points")
    if points is None:
        points = int(settings_of(op.crm)["reward_points"])
        op.records("referral").update(record_id, {"reward_points": points})
    if points:
        op.emit(
            "referral.rewarded",
            {
                "referral_id": record_id,
                "referred_contact_id": values["referred_contact_id"],
                "points": points,
            },
            record_type="contact",
            record_id=values["referrer_contact_id"],
        )


# -- events ---------------------------------------------------------------------------------


@crmkit.hookimpl
def crmkit_on_event(crm: crmkit.CRM, event: crmkit.Event) -> None:
    """Count every event seen after commit (an in-process subscriber: no delivery guarantee;
    a rolled-back operation delivers nothing)."""
    EVENTS_SEEN[event.name] += 1


@crmkit.hookimpl
def crmkit_event_sinks(crm: crmkit.CRM) -> Sequence[crmkit.EventSink]:
    """The JSON-lines event log, when the ``event_log`` setting names a file."""
    configured = str(settings_of(crm)["event_log"]).strip()
    if not configured:
        return []
    path = Path(configured).expanduser()
    config_path = crm.settings.config_path
    if not path.is_absolute() and config_path is not None:
        path = config_path.resolve().parent / path
    return [JsonLinesSink(path=path)]


# -- the web desk -----------------------------------------------------------------------------
# All five desk hooks; what they show and do is in crmkit_referrals.desk.


@crmkit.hookimpl
def crmkit_desk_record_panels(
    crm: crmkit.CRM, entity: str, record: Mapping[str, Any], actor: crmkit.User, locale: str
) -> list[crmkit.DeskPanel]:
    """A "Referrals" panel on a contact's page: its referral code and whom it referred (as
    ``actor`` may see them), in the user's ``locale``."""
    if entity != "contact":
        return []
    from crmkit_referrals.desk import record_panels

    return record_panels(crm, record, actor, locale)


@crmkit.hookimpl
def crmkit_desk_pages(crm: crmkit.CRM) -> list[crmkit.DeskPage]:
    """The page /desk/plugins/referrals/latest (in the menu through ``crmkit_desk_menu``,
    for the users who may read referrals)."""
    from crmkit_referrals.desk import PAGE_PATH, latest_page

    return [crmkit.DeskPage(path=PAGE_PATH, title="Referrals", render=latest_page, menu=False)]


@crmkit.hookimpl
def crmkit_desk_menu(crm: crmkit.CRM, actor: crmkit.User) -> list[crmkit.DeskMenuEntry]:
    """ "Referrals" in the desk's menu, linking to the page, for users with ``referral:read``."""
    from crmkit_referrals.desk import menu_entries

    return menu_entries(crm, actor)


@crmkit.hookimpl
def crmkit_desk_actions(
    crm: crmkit.CRM, actor: crmkit.User, locale: str
) -> list[crmkit.DeskAction]:
    """ "Give a referral code" on contact pages: sets the contact's ``referral_code`` and
    says so in the user's ``locale``."""
    from crmkit_referrals.desk import issue_code_action

    return [issue_code_action(locale)]


@crmkit.hookimpl
def crmkit_desk_tiles(crm: crmkit.CRM, actor: crmkit.User) -> list[crmkit.DeskTile]:
    """ "Referrals, last 30 days" on "my day": how many ``actor`` may read, and the latest."""
    from crmkit_referrals.desk import tiles

    return tiles(crm, actor)
