"""The reminders plugin's face on the web desk: a "my day" tile counting the signed-in
user's reminders due today, and their "Reminders" page listing them with buttons to snooze
(an hour, or to tomorrow morning) or mark done. The buttons call the same service functions
as the plugin's CLI and API (``service.snooze``, ``service.mark_done``), as the signed-in
user: a reminder that is not theirs is not found."""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping

import crmkit
from crmkit_reminders import service

PAGE_PATH = "today"
PAGE_HREF = f"/desk/plugins/reminders/{PAGE_PATH}"
#: How long the snooze buttons put a reminder off, in minutes.
SNOOZE_MINUTES = {"hour": 60, "day": 24 * 60}


def _plural(entity: str) -> str:
    return entity[:-1] + "ies" if entity.endswith("y") else entity + "s"


def _when(info: service.ReminderInfo) -> str:
    """When the reminder is (was) due, on the owner's wall clock."""
    if info.next_due_at is None:
        return "—"
    local = info.next_due_at.astimezone(zoneinfo.ZoneInfo(info.timezone))
    return (
        local.strftime("%H:%M") if info.status == service.ACTIVE else local.strftime("%m-%d %H:%M")
    )


def _about(info: service.ReminderInfo) -> crmkit.DeskLink | str:
    if info.record_type is None or info.record_id is None:
        return ""
    return crmkit.DeskLink(
        f"{info.record_type} #{info.record_id}",
        f"/desk/{_plural(info.record_type)}/{info.record_id}",
    )


def desk_tiles(crm: crmkit.CRM, actor: crmkit.User) -> list[crmkit.DeskTile]:
    """ "Reminders due today": how many, and the first one's title."""
    due = service.due_today(crm, actor=actor)
    return [
        crmkit.DeskTile(
            title="Reminders due today",
            value=str(len(due)),
            note=due[0].title if due else "",
            href=PAGE_HREF,
        )
    ]


def reminders_page(view: crmkit.DeskView) -> list[crmkit.DeskPanel]:
    """The user's reminders due today, with snooze and done buttons."""
    _ = view.gettext
    due = service.due_today(view.crm, actor=view.actor)
    return [
        crmkit.DeskPanel(
            title=_("Reminders due today"),
            text="" if due else _("Nothing is due today."),
            columns=(_("Due"), _("Reminder"), _("About"), _("Snooze"), _("Snooze"), _("Done"))
            if due
            else (),
            cells=[
                (
                    _when(info),
                    info.title,
                    _about(info),
                    crmkit.DeskButton(
                        _("Snooze an hour"), "snooze", {"reminder": str(info.id), "for": "hour"}
                    ),
                    crmkit.DeskButton(
                        _("Snooze a day"), "snooze", {"reminder": str(info.id), "for": "day"}
                    ),
                    crmkit.DeskButton(_("Done"), "done", {"reminder": str(info.id)}),
                )
                for info in due
            ],
        )
    ]


def _reminder_id(form: Mapping[str, str]) -> int:
    text = form.get("reminder", "")
    if not text.isdigit() or len(text) > 18:
        raise crmkit.ValidationError(
            [crmkit.FieldError("reminder", "must be the number of a reminder")]
        )
    return int(text)


def snooze_action(view: crmkit.DeskView, form: Mapping[str, str]) -> str:
    """Put a reminder off an hour, or a day."""
    minutes = SNOOZE_MINUTES.get(form.get("for", ""))
    if minutes is None:
        raise crmkit.ValidationError(
            [crmkit.FieldError("for", f"must be one of {', '.join(SNOOZE_MINUTES)}")]
        )
    info = service.snooze(view.crm, _reminder_id(form), minutes=minutes, actor=view.actor)
    return view.gettext("Snoozed: %(title)s") % {"title": info.title}


def done_action(view: crmkit.DeskView, form: Mapping[str, str]) -> str:
    """Mark a reminder done."""
    info = service.mark_done(view.crm, _reminder_id(form), actor=view.actor)
    return view.gettext("Done: %(title)s") % {"title": info.title}


def desk_pages() -> list[crmkit.DeskPage]:
    """The plugin's desk pages."""
    return [
        crmkit.DeskPage(
            path=PAGE_PATH,
            title="Reminders",
            render=reminders_page,
            actions={"snooze": snooze_action, "done": done_action},
        )
    ]
