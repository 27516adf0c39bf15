"""What contacts do after a mail: clicks (through a signed redirect link), purchases and form
submissions (through the event relay), replies (inbound e-mail activities).

* ``track(url)`` in a template becomes ``<base_url>/plugins/campaigns/click/<token>``; the
  token names the campaign, the contact and the target and is signed with the message
  secret, so nobody can forge a click or make the route redirect elsewhere. A click sets the
  member's ``clicked_at`` (once) and redirects.
* The ``campaigns`` event sink (delivered by the worker's relay, at least once) marks members
  ``converted_by = "purchase"`` on the loyalty plugin's ``points.earned`` (about a contact)
  and ``"form"`` on the core ``lead.captured`` (the lead's e-mail matched to contacts).
  Marking twice changes nothing.
* A reply is an activity of kind ``email`` on the contact with ``direction = "inbound"``
  (the custom field this plugin adds to activities) after the member joined; the sending pass
  stops such members (:func:`crmkit_campaigns.sending.stop_finished`).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
from collections.abc import Sequence

from sqlalchemy import func, select, update

import crmkit
from crmkit_campaigns.models import Campaign, CampaignMember

CLICK_PATH = "/plugins/campaigns/click/"
SINK_PATTERNS = ("points.earned", "lead.captured")


@functools.lru_cache(maxsize=4)
def _keyed(secret: str) -> hmac.HMAC:
    """The HMAC of ``secret`` with its key schedule done once (copied per token: a campaign
    signs a link per mail, and setting the key up is most of an HMAC's cost)."""
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)


def _mac(secret: str, payload: str) -> str:
    mac = _keyed(secret).copy()
    mac.update(payload.encode())
    return mac.hexdigest()[:24]


def click_token(secret: str, campaign_id: int, contact_id: int, url: str) -> str:
    """A signed token naming a click on ``url`` by a contact in a campaign."""
    raw = f"{campaign_id}\n{contact_id}\n{url}".encode()
    payload = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return f"{payload}.{_mac(secret, payload)}"


def read_click_token(secret: str, token: str) -> tuple[int, int, str]:
    """``(campaign_id, contact_id, url)`` of a token; ``CRMError`` for a forged one."""
    payload, _, mac = token.partition(".")
    if not mac or not hmac.compare_digest(mac.encode(), _mac(secret, payload).encode()):
        raise crmkit.CRMError("this link is not valid (altered or incomplete)")
    try:
        text = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
        campaign, contact, url = text.split("\n", 2)
        return int(campaign), int(contact), url
    except ValueError:
        raise crmkit.CRMError("this link is not valid (altered or incomplete)") from None


def tracked_url(crm: crmkit.CRM, campaign_id: int, contact_id: int, url: str) -> str:
    """The click-counting link to ``url`` (only http and https targets are linked)."""
    if not str(url).startswith(("http://", "https://")):
        raise crmkit.CRMError(f"track() needs an http(s) URL, got {url!r}")
    token = click_token(crm.settings.messages.secret, campaign_id, contact_id, str(url))
    return f"{crm.settings.api.base_url.rstrip('/')}{CLICK_PATH}{token}"


def record_click(crm: crmkit.CRM, token: str, *, now: dt.datetime | None = None) -> str:
    """Record a click (the first one counts) and return where to send the browser."""
    campaign_id, contact_id, url = read_click_token(crm.settings.messages.secret, token)
    if not url.startswith(("http://", "https://")):
        raise crmkit.CRMError("this link is not valid (altered or incomplete)")
    with crm.transaction() as op:
        op.session.execute(
            update(CampaignMember)
            .where(
                CampaignMember.campaign_id == campaign_id,
                CampaignMember.contact_id == contact_id,
                CampaignMember.clicked_at.is_(None),
            )
            .values(clicked_at=now or crmkit.utcnow())
        )
    return url


def mark_converted(
    op: crmkit.Operation, contact_ids: Sequence[int], by: str, when: dt.datetime
) -> int:
    """Arm the ``by`` thank-you of these contacts in every running or paused campaign that
    has one (members who joined before ``when`` and were not converted yet: a contact is
    thanked once per campaign); how many rows. A paused campaign records the conversion too
    and thanks the member when it is resumed, so a purchase during a pause is not lost."""
    if not contact_ids:
        return 0
    running = [
        campaign_id
        for campaign_id, steps in op.session.execute(
            select(Campaign.id, Campaign.steps).where(Campaign.status.in_(("running", "paused")))
        )
        if any(step["kind"] == "thank_you" and step.get("on") == by for step in steps)
    ]
    if not running:
        return 0
    result = op.session.execute(
        update(CampaignMember)
        .where(
            CampaignMember.contact_id.in_(sorted(set(contact_ids))),
            CampaignMember.campaign_id.in_(running),
            CampaignMember.converted_at.is_(None),
            CampaignMember.joined_at <= when,
        )
        .values(converted_at=when, converted_by=by)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


class ConversionSink:
    """The durable event sink that arms thank-you steps (see the module docstring)."""

    name = "campaigns"
    patterns: Sequence[str] = SINK_PATTERNS

    def __init__(self, crm: crmkit.CRM) -> None:
        self.crm = crm

    def deliver(self, event: crmkit.Event) -> None:
        """Mark the contact(s) of a purchase or a form submission."""
        with self.crm.transaction() as op:
            if event.name == "points.earned" and event.record_type == "contact":
                if event.record_id is not None:
                    mark_converted(op, [event.record_id], "purchase", event.occurred_at)
            elif event.name == "lead.captured":
                email = str(event.payload.get("email") or "").strip().lower()
                if email:
                    ids = list(
                        op.session.scalars(
                            select(crmkit.Contact.id).where(
                                func.lower(crmkit.Contact.email) == email,
                                crmkit.Contact.deleted_at.is_(None),
                            )
                        )
                    )
                    mark_converted(op, ids, "form", event.occurred_at)
