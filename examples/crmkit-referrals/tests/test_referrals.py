"""The referrals plugin on a real CRM (SQLite, or PostgreSQL with --crmkit-postgres-url)."""

from __future__ import annotations

import json

import pytest

import crmkit
from crmkit.testing import ApiClient, CommandLine


def refer(crm: crmkit.CRM, referrer: str, referred: str, **values: object) -> int:
    first = crm.contacts.create({"full_name": referrer})
    second = crm.contacts.create({"full_name": referred})
    record = crm.records("referral").create(
        {"referrer_contact_id": first.id, "referred_contact_id": second.id, **values}
    )
    return int(record.id)


def test_a_contact_from_a_blocked_domain_is_refused(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.PluginError, match=r"referrals.*spam\.example is blocked"):
        crm.contacts.create({"full_name": "王芳", "email": "wang@mail.spam.example"})
    assert crm.contacts.count() == 0


def test_a_self_referral_is_refused(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "李娜"})
    with pytest.raises(crmkit.PluginError, match="cannot refer themselves"):
        crm.records("referral").create(
            {"referrer_contact_id": contact.id, "referred_contact_id": contact.id}
        )


def test_the_stats_route_counts_only_what_the_caller_may_read(crm_api: ApiClient) -> None:
    crm = crm_api.crm
    crm_api.user("li.na", roles=["sales_rep"])
    refer(crm, "张伟", "陈静", channel="wechat")  # owned by nobody: li.na sees none
    as_rep = crm_api.as_user("li.na")
    assert as_rep.get("/plugins/referrals/stats").status_code == 403  # no referral:read yet

    crm.roles.grant("sales_rep", "referral:read", "own")
    as_admin = crm_api.as_user("admin").get("/plugins/referrals/stats")
    mine = as_rep.get("/plugins/referrals/stats")

    assert as_admin.status_code == 200, as_admin.text
    assert as_admin.json()["by_channel"] == {"wechat": 1}
    assert mine.status_code == 200, mine.text
    assert mine.json()["referrals"] == 0


def test_list_prints_the_referrals_as_json(crm: crmkit.CRM, crm_cli: CommandLine) -> None:
    refer(crm, "张伟", "陈静", channel="wechat")
    (row,) = json.loads(crm_cli.ok("referrals", "list", "--json"))
    assert (row["referrer"], row["referred"], row["channel"]) == ("张伟", "陈静", "wechat")


def test_an_unknown_channel_option_value_fails_in_one_line(crm_cli: CommandLine) -> None:
    assert "No referrals yet." in crm_cli.ok("referrals", "list", "--channel", "nowhere")
    assert "--limit" in crm_cli.run("referrals", "list", "--limit", "0").output
