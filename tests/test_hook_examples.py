"""Every hook's docstring example runs: it is executed as a plugin module, registered against
the hook specifications (pluggy checks its signature), and, for the hooks listed in
SCENARIOS, embedded in a real CRM and made to do what the docstring says it does.

After adding a hook, give it an ``Example::`` block; add a scenario below when the example
can be run against a CRM (most can)."""

from __future__ import annotations

import inspect
import logging
import pathlib
import sys
import textwrap
import types
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import click
import pluggy
import pytest
from litestar import get
from litestar.di import NamedDependency
from sqlalchemy import insert, select

import crmkit
import crmkit.hookspecs
from crmkit.testing import CRMFactory, api_client

SPECS = {
    name: function
    for name, function in vars(crmkit.hookspecs).items()
    if name.startswith("crmkit_") and hasattr(function, "crmkit_spec")
}


def example_of(hook: str) -> str:
    """The code of the hook's ``Example::`` block."""
    doc = inspect.getdoc(SPECS[hook]) or ""
    _, marker, rest = doc.partition("Example::\n")
    assert marker, f"hook {hook} has no 'Example::' block in its docstring (crmkit/hookspecs.py)"
    lines = []
    for line in rest.splitlines():
        if line and not line.startswith(" "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines)).strip() + "\n"


def run_example(hook: str, **names: Any) -> SimpleNamespace:
    """Execute the example as a plugin module; ``names`` are what it refers to."""
    from crmkit_referrals.models import Referral

    namespace: dict[str, Any] = {
        "crmkit": crmkit,
        "click": click,
        "pathlib": pathlib,
        "logging": logging,
        "select": select,
        "insert": insert,
        "get": get,
        "NamedDependency": NamedDependency,
        "Referral": Referral,
        "__name__": f"example_{hook}",
        **names,
    }
    module = types.ModuleType(f"example_{hook}")
    module.__dict__.update(namespace)
    sys.modules[module.__name__] = module  # Litestar reads a handler's module for its types
    exec(compile(example_of(hook), f"<example of {hook}>", "exec"), module.__dict__)
    return SimpleNamespace(**module.__dict__)


def as_plugin(module: SimpleNamespace) -> SimpleNamespace:
    """Only the hook implementations of an executed example."""
    return SimpleNamespace(
        **{
            name: value
            for name, value in vars(module).items()
            if name.startswith("crmkit_") and hasattr(value, "crmkit_impl")
        }
    )


@pytest.mark.parametrize("hook", sorted(SPECS))
def test_the_example_implements_its_hook_with_the_right_signature(hook: str) -> None:
    plugin = as_plugin(run_example(hook))
    assert hook in vars(plugin) or hook in example_of(hook), f"{hook}: the example is not of it"
    manager = pluggy.PluginManager("crmkit")
    manager.add_hookspecs(crmkit.hookspecs)
    manager.register(plugin, name="example")  # pluggy refuses a wrong signature


# -- what each example does, on a real CRM ----------------------------------------------------


def referral_table(crm: crmkit.CRM) -> None:
    from crmkit_referrals.models import Referral

    Referral.__table__.create(crm.engine, checkfirst=True)  # type: ignore[attr-defined]


def entities(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"example": as_plugin(run_example("crmkit_entities"))})
    referral_table(crm)
    a, b = (crm.contacts.create({"full_name": n}) for n in ("张伟", "王芳"))
    crm.records("referral").create({"referrer_contact_id": a.id, "referred_contact_id": b.id})
    with pytest.raises(crmkit.ValidationError, match="referred_contact_id"):
        crm.records("referral").create({"referrer_contact_id": a.id})


def migrations(make_crm: CRMFactory) -> None:
    module = run_example("crmkit_migrations", __file__=__file__)
    assert module.crmkit_migrations() == str(pathlib.Path(__file__).parent / "migrations")


def custom_fields(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"example": as_plugin(run_example("crmkit_custom_fields"))})
    contact = crm.contacts.create({"full_name": "王芳", "wechat_id": "wangfang88"})
    assert crm.contacts.get(contact.id).wechat_id == "wangfang88"


def permissions(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"example": as_plugin(run_example("crmkit_permissions"))})
    assert {"loyalty:redeem", "loyalty:adjust"} <= set(crm.roles.permissions())


def settings(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"example": as_plugin(run_example("crmkit_settings"))})
    assert crm.plugin_settings("example") == {"blocked_domains": []}


def before_create(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"example": as_plugin(run_example("crmkit_before_create"))})
    with pytest.raises(crmkit.PluginError, match="spam domain"):
        crm.contacts.create({"full_name": "X", "email": "x@spam.example"})
    assert crm.contacts.count() == 0


def after_create(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"example": as_plugin(run_example("crmkit_after_create"))})
    lead = crm.leads.create({"full_name": "刘洋"})
    (task,) = crm.tasks.list().items
    assert (task.title, task.lead_id) == ("Call back", lead.id)


def after_create_many(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"example": as_plugin(run_example("crmkit_after_create_many"))})
    seen: list[Any] = []
    crm.subscribe("welcome.due", seen.append)
    crm.contacts.create_many([(1, {"full_name": "张伟"}), (2, {"full_name": "王芳"})])
    assert len(seen[0].payload["contact_ids"]) == 2


def before_update(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"example": as_plugin(run_example("crmkit_before_update"))})
    crm.pipelines.create("Sales")
    deal = crm.deals.create({"name": "ERP", "amount": "100"})
    crm.deals.update(deal.id, {"closed_at": "2026-12-01T00:00:00Z"})
    with pytest.raises(crmkit.PluginError, match="closed deals keep their amount"):
        crm.deals.update(deal.id, {"amount": "200"})


def after_update(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"example": as_plugin(run_example("crmkit_after_update"))})
    crm.pipelines.create("Sales")
    seen: list[Any] = []
    crm.subscribe("myplugin.stage_seen", seen.append)
    deal = crm.deals.create({"name": "ERP"})
    crm.deals.move_to_stage(deal.id, "Negotiation")
    assert [event.record_id for event in seen] == [deal.id]


def before_delete(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"example": as_plugin(run_example("crmkit_before_delete"))})
    account = crm.accounts.create({"name": "上海星辰贸易", "value_tier": "key"})
    with pytest.raises(crmkit.PluginError, match="key accounts are never deleted"):
        crm.accounts.delete(account.id)


def after_delete(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"example": as_plugin(run_example("crmkit_after_delete"))})
    seen: list[Any] = []
    crm.subscribe("myplugin.contact_gone", seen.append)
    contact = crm.contacts.create({"full_name": "王芳"})
    crm.contacts.delete(contact.id)
    assert seen[0].payload == {"name": "王芳"}


def find_duplicates(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"example": as_plugin(run_example("crmkit_find_duplicates"))})
    crm.contacts.create({"full_name": "王芳", "email": "wf@example.cn"})
    with pytest.raises(crmkit.DuplicateError):
        crm.contacts.create({"full_name": "王 芳", "email": "wf@example.cn"})


def assignment_strategies(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"example": as_plugin(run_example("crmkit_assignment_strategies"))})
    for user in ("li.na", "chan.kaming"):
        crm.users.create(user, roles=["sales_rep"])
    crm.assignment.add_rule("lead", "by language", "by_language", ["li.na", "chan.kaming"])
    explanation = crm.assignment.test("lead", {"full_name": "陈家明"})
    assert explanation.decision is None  # no language: the strategy declines


def cli_commands(make_crm: CRMFactory) -> None:
    module = run_example("crmkit_cli_commands")
    (group,) = module.crmkit_cli_commands()
    assert group.name == "referrals"


def api_routes(make_crm: CRMFactory) -> None:
    routes = as_plugin(run_example("crmkit_api_routes"))
    entity = as_plugin(run_example("crmkit_entities"))
    crm = make_crm(plugins={"referrals": routes, "entities": entity})
    referral_table(crm)
    with api_client(crm) as api:
        response = api.as_user("admin").get("/plugins/referrals/summary")
    assert response.json() == {"referrals": 0}


def setup(make_crm: CRMFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = as_plugin(run_example("crmkit_setup"))
    monkeypatch.setattr(
        "crmkit.app.discover_plugins",
        lambda: {"example": crmkit_in_memory("example", plugin)},
    )
    crm = make_crm(discover=True)
    crm.enable_plugin("example")
    (task,) = crm.tasks.list().items
    assert "referral programme" in task.title


def crmkit_in_memory(name: str, plugin: object) -> Any:
    from crmkit.plugins import in_memory_plugin

    return in_memory_plugin(name, plugin)


def startup_and_shutdown(make_crm: CRMFactory, caplog: pytest.LogCaptureFixture) -> None:
    plugin = SimpleNamespace(
        **vars(as_plugin(run_example("crmkit_startup"))),
        **vars(as_plugin(run_example("crmkit_shutdown"))),
    )
    with caplog.at_level(logging.INFO):
        make_crm(plugins={"example": plugin}).close()
    messages = [record.getMessage() for record in caplog.records]
    assert any(
        m.startswith("ready on sqlite") or m.startswith("ready on postgresql") for m in messages
    )
    assert any(m.startswith("closing ") for m in messages)


def on_event(make_crm: CRMFactory, capsys: pytest.CaptureFixture[str]) -> None:
    crm = make_crm(plugins={"example": as_plugin(run_example("crmkit_on_event"))})
    crm.pipelines.create("Sales")
    deal = crm.deals.create({"name": "ERP"})
    crm.deals.move_to_stage(deal.id, "Negotiation")
    assert f"deal {deal.id} moved to" in capsys.readouterr().out


def event_sinks(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"example": as_plugin(run_example("crmkit_event_sinks"))})
    (sink,) = [sink for sink in crm.event_sinks() if sink.name == "erp"]
    assert list(sink.patterns) == ["deal.*"]


def demo_data(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"example": as_plugin(run_example("crmkit_demo_data"))})
    referral_table(crm)
    crm.contacts.create({"full_name": "张伟"})
    crm.contacts.create({"full_name": "王芳"})
    as_plugin(run_example("crmkit_demo_data")).crmkit_demo_data(crm)
    assert crm.records("referral").count() == 1


def referral_crm(make_crm: CRMFactory, hook: str) -> tuple[crmkit.CRM, Any, int]:
    """A CRM with the referral entity and the example of ``hook``; one referral made by a
    contact the administrator ``boss`` owns; (crm, the example, the referrer's id)."""
    example = as_plugin(run_example(hook))
    entity = as_plugin(run_example("crmkit_entities"))
    crm = make_crm(plugins={"example": example, "entities": entity})
    referral_table(crm)
    boss = crm.users.create("boss", admin=True)
    a, b = (crm.contacts.create({"full_name": n}, actor=boss) for n in ("张伟", "王芳"))
    crm.records("referral").create(
        {"referrer_contact_id": a.id, "referred_contact_id": b.id}, actor=boss
    )
    return crm, example, a.id


def desk_pages(make_crm: CRMFactory) -> None:
    crm, example, referrer = referral_crm(make_crm, "crmkit_desk_pages")
    (page,) = example.crmkit_desk_pages(crm)
    view = crmkit.DeskView(crm=crm, actor=crm.users.get("boss"), query={}, locale="en", gettext=str)
    (panel,) = page.render(view)
    assert panel.cells[0][1] == crmkit.DeskLink(f"#{referrer}", f"/desk/contacts/{referrer}")


def desk_record_panels(make_crm: CRMFactory) -> None:
    crm, example, referrer = referral_crm(make_crm, "crmkit_desk_record_panels")
    boss = crm.users.get("boss")
    (panel,) = example.crmkit_desk_record_panels(crm, "contact", {"id": referrer}, boss)
    assert panel.rows == (("Referred", "1"),)
    assert example.crmkit_desk_record_panels(crm, "deal", {"id": 1}, boss) == []


def desk_menu(make_crm: CRMFactory) -> None:
    module = run_example("crmkit_desk_menu")
    (entry,) = module.crmkit_desk_menu(None, None)
    assert (entry.href, entry.order) == ("/schema/swagger", 95)


def desk_actions(make_crm: CRMFactory) -> None:
    crm, example, referrer = referral_crm(make_crm, "crmkit_desk_actions")
    boss = crm.users.get("boss")
    (action,) = example.crmkit_desk_actions(crm, boss)
    assert action.run(crm, referrer, boss) == "Thank-you noted."
    (note,) = crm.records("activity").list({"contact_id": referrer}).items
    assert note.subject == "Thanked for referral"


def desk_tiles(make_crm: CRMFactory) -> None:
    crm, example, _ = referral_crm(make_crm, "crmkit_desk_tiles")
    (tile,) = example.crmkit_desk_tiles(crm, crm.users.get("boss"))
    assert (tile.title, tile.value) == ("My referrals", "1")


def segment_measures(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"example": as_plugin(run_example("crmkit_segment_measures"))})
    busy, quiet = (crm.contacts.create({"full_name": n}) for n in ("张伟", "王芳"))
    for subject in ("回访", "报价"):
        crm.activities.create({"kind": "call", "subject": subject, "contact_id": busy.id})
    crm.activities.create({"kind": "call", "subject": "问候", "contact_id": quiet.id})
    crm.segments.create("busy", "contact", {"activity_count__gte": 2})
    assert [c.id for c in crm.segments.members("busy").items] == [busy.id]


SCENARIOS: dict[str, Callable[..., None]] = {
    "crmkit_desk_pages": desk_pages,
    "crmkit_desk_record_panels": desk_record_panels,
    "crmkit_desk_menu": desk_menu,
    "crmkit_desk_actions": desk_actions,
    "crmkit_desk_tiles": desk_tiles,
    "crmkit_entities": entities,
    "crmkit_migrations": migrations,
    "crmkit_custom_fields": custom_fields,
    "crmkit_permissions": permissions,
    "crmkit_settings": settings,
    "crmkit_cli_commands": cli_commands,
    "crmkit_api_routes": api_routes,
    "crmkit_setup": setup,
    "crmkit_startup": startup_and_shutdown,
    "crmkit_before_create": before_create,
    "crmkit_after_create": after_create,
    "crmkit_after_create_many": after_create_many,
    "crmkit_before_update": before_update,
    "crmkit_after_update": after_update,
    "crmkit_before_delete": before_delete,
    "crmkit_after_delete": after_delete,
    "crmkit_find_duplicates": find_duplicates,
    "crmkit_assignment_strategies": assignment_strategies,
    "crmkit_on_event": on_event,
    "crmkit_event_sinks": event_sinks,
    "crmkit_segment_measures": segment_measures,
}


@pytest.mark.parametrize("hook", sorted(SCENARIOS))
def test_the_example_does_what_its_docstring_says(
    hook: str, request: pytest.FixtureRequest
) -> None:
    scenario = SCENARIOS[hook]
    wanted = inspect.signature(scenario).parameters
    scenario(**{name: request.getfixturevalue(name) for name in wanted})
