"""Pipelines and their stages, deals moving through them, and lead conversion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from outbox_reader import outbox_events, outbox_names

import crmkit

RENEWALS = [("Due", 20, "open"), ("Renewed", 100, "won"), ("Churned", 0, "lost")]


def stage_names(crm: crmkit.CRM, pipeline: crmkit.Pipeline) -> list[str]:
    return [stage.name for stage in crm.pipelines.stages(pipeline.id)]


def stage_id(crm: crmkit.CRM, pipeline: crmkit.Pipeline, name: str) -> int:
    return next(stage.id for stage in crm.pipelines.stages(pipeline.id) if stage.name == name)


def field_errors(error: pytest.ExceptionInfo[crmkit.ValidationError]) -> dict[str, str]:
    return {item.field: item.message for item in error.value.errors}


@pytest.fixture
def sales(crm: crmkit.CRM) -> crmkit.Pipeline:
    """The default pipeline the ``crm`` fixture created."""
    (pipeline,) = crm.pipelines.all()
    return pipeline


@pytest.fixture
def renewals(crm: crmkit.CRM) -> crmkit.Pipeline:
    """A second pipeline (not the default)."""
    return crm.pipelines.create("Renewals", RENEWALS)


# -- pipelines -------------------------------------------------------------------------------


def test_the_first_pipeline_becomes_the_default(sales: crmkit.Pipeline) -> None:
    assert sales.is_default


def test_a_pipeline_keeps_its_stages_in_the_given_order(
    crm: crmkit.CRM, renewals: crmkit.Pipeline
) -> None:
    stages = crm.pipelines.stages(renewals.id)

    assert [(s.name, s.position, s.probability, s.kind) for s in stages] == [
        ("Due", 0, 20, "open"),
        ("Renewed", 1, 100, "won"),
        ("Churned", 2, 0, "lost"),
    ]


def test_a_later_pipeline_is_not_the_default_unless_asked(renewals: crmkit.Pipeline) -> None:
    assert not renewals.is_default


def test_a_new_default_pipeline_replaces_the_old_default(crm: crmkit.CRM) -> None:
    crm.pipelines.create("Projects", RENEWALS, default=True)

    assert [(p.name, p.is_default) for p in crm.pipelines.all()] == [
        ("Projects", True),
        ("Sales", False),
    ]


@pytest.mark.parametrize(
    ("name", "stages", "field", "message"),
    [
        ("Dup", [("A", 10, "open"), ("A", 100, "won")], "stages", "stage names must be unique"),
        ("Kind", [("A", 10, "pending")], "stages", "A: kind must be open, won or lost"),
        ("Odds", [("A", 120, "open")], "stages", "A: probability must be 0-100"),
        ("Empty", [], "stages", "a pipeline needs at least one stage"),
        ("  ", [("A", 10, "open")], "name", "is required"),
        ("Sales", [("A", 10, "open")], "name", "pipeline 'Sales' exists"),
    ],
)
def test_an_invalid_pipeline_is_refused_and_nothing_is_written(
    crm: crmkit.CRM, name: str, stages: list[Any], field: str, message: str
) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.pipelines.create(name, stages)

    assert field_errors(error) == {field: message}
    assert len(crm.pipelines.all()) == 1
    assert outbox_names(crm) == ["pipeline.created"]


# -- deals and stages ------------------------------------------------------------------------


def test_a_deal_without_a_pipeline_starts_in_the_first_stage_of_the_default(
    crm: crmkit.CRM, sales: crmkit.Pipeline
) -> None:
    deal = crm.deals.create({"name": "Order"})

    assert (deal.pipeline_id, deal.stage_id) == (sales.id, stage_id(crm, sales, "Inquiry"))


def test_a_deal_in_a_given_pipeline_starts_in_its_first_stage(
    crm: crmkit.CRM, renewals: crmkit.Pipeline
) -> None:
    deal = crm.deals.create({"name": "Renewal", "pipeline_id": renewals.id})

    assert deal.stage_id == stage_id(crm, renewals, "Due")


def test_a_new_deal_is_open_and_stamped_with_its_stage_time(crm: crmkit.CRM) -> None:
    deal = crm.deals.create({"name": "Order"})

    assert deal.closed_at is None
    assert deal.stage_changed_at is not None


def test_a_deal_created_in_a_won_stage_is_closed(crm: crmkit.CRM, sales: crmkit.Pipeline) -> None:
    deal = crm.deals.create({"name": "Order", "stage_id": stage_id(crm, sales, "Won")})

    assert deal.closed_at is not None


def test_a_deal_in_a_stage_of_another_pipeline_is_refused(
    crm: crmkit.CRM, renewals: crmkit.Pipeline
) -> None:
    foreign = stage_id(crm, renewals, "Due")

    with pytest.raises(crmkit.ValidationError) as error:
        crm.deals.create({"name": "Order", "stage_id": foreign})

    assert "stage_id" in field_errors(error)
    assert crm.deals.count() == 0


def test_a_deal_needs_a_pipeline_when_there_is_no_default(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm()

    with pytest.raises(crmkit.ValidationError) as error:
        crm.deals.create({"name": "Order"})

    assert "crm.pipelines.create" in field_errors(error)["pipeline_id"]


def test_a_deal_moves_to_a_stage_given_by_name(crm: crmkit.CRM, sales: crmkit.Pipeline) -> None:
    deal = crm.deals.create({"name": "Order"})

    moved = crm.deals.move_to_stage(deal.id, "Proposal")

    assert moved.stage_id == stage_id(crm, sales, "Proposal")
    assert crm.deals.stage_of(moved).name == "Proposal"


def test_a_deal_moves_to_a_stage_given_by_id(crm: crmkit.CRM, sales: crmkit.Pipeline) -> None:
    deal = crm.deals.create({"name": "Order"})

    moved = crm.deals.move_to_stage(deal.id, stage_id(crm, sales, "Negotiation"))

    assert crm.deals.stage_of(moved).name == "Negotiation"


def test_moving_a_deal_bumps_its_version_and_stage_time(crm: crmkit.CRM) -> None:
    deal = crm.deals.create({"name": "Order"})

    moved = crm.deals.move_to_stage(deal.id, "Qualified")

    assert moved.version == 2
    assert moved.stage_changed_at > deal.stage_changed_at


@pytest.mark.parametrize("stage", ["Won", "Lost"])
def test_winning_or_losing_a_deal_closes_it(crm: crmkit.CRM, stage: str) -> None:
    deal = crm.deals.create({"name": "Order"})

    closed = crm.deals.move_to_stage(deal.id, stage)

    assert closed.closed_at is not None
    assert crm.deals.get(deal.id).closed_at == closed.closed_at


def test_reopening_a_closed_deal_clears_its_close_time(crm: crmkit.CRM) -> None:
    deal = crm.deals.create({"name": "Order"})
    crm.deals.move_to_stage(deal.id, "Won")

    reopened = crm.deals.move_to_stage(deal.id, "Negotiation")

    assert reopened.closed_at is None
    assert crm.deals.get(deal.id).closed_at is None


def test_moving_to_a_stage_of_another_pipeline_is_refused(
    crm: crmkit.CRM, renewals: crmkit.Pipeline
) -> None:
    deal = crm.deals.create({"name": "Order"})

    with pytest.raises(crmkit.ValidationError) as error:
        crm.deals.move_to_stage(deal.id, stage_id(crm, renewals, "Renewed"))

    assert "stage_id" in field_errors(error)
    assert crm.deals.get(deal.id).stage_id == deal.stage_id


def test_moving_to_an_unknown_stage_name_is_refused(crm: crmkit.CRM) -> None:
    deal = crm.deals.create({"name": "Order"})

    with pytest.raises(crmkit.ValidationError, match="'Signed' is not in pipeline"):
        crm.deals.move_to_stage(deal.id, "Signed")


def test_updating_the_stage_id_directly_is_checked_like_a_move(
    crm: crmkit.CRM, renewals: crmkit.Pipeline
) -> None:
    deal = crm.deals.create({"name": "Order"})

    with pytest.raises(crmkit.ValidationError):
        crm.deals.update(deal.id, {"stage_id": stage_id(crm, renewals, "Due")})


def test_a_stage_change_emits_the_stage_it_came_from_and_went_to(crm: crmkit.CRM) -> None:
    deal = crm.deals.create({"name": "Order", "amount": "5000"})

    crm.deals.move_to_stage(deal.id, "Won")

    (event,) = outbox_events(crm, "deal.stage_changed")
    assert event.record_id == deal.id
    assert (event.payload["from_stage"], event.payload["stage"]) == ("Inquiry", "Won")
    assert (event.payload["kind"], event.payload["amount"]) == ("won", "5000.00")


def test_a_stage_change_is_also_a_deal_update(crm: crmkit.CRM) -> None:
    deal = crm.deals.create({"name": "Order"})

    crm.deals.move_to_stage(deal.id, "Qualified")

    assert outbox_names(crm)[-2:] == ["deal.updated", "deal.stage_changed"]


def test_moving_to_the_current_stage_changes_nothing(crm: crmkit.CRM) -> None:
    deal = crm.deals.create({"name": "Order"})

    same = crm.deals.move_to_stage(deal.id, "Inquiry")

    assert same.version == 1
    assert outbox_events(crm, "deal.stage_changed") == []


def test_a_stale_move_is_a_conflict(crm: crmkit.CRM) -> None:
    deal = crm.deals.create({"name": "Order"})
    crm.deals.move_to_stage(deal.id, "Qualified")

    with pytest.raises(crmkit.ConflictError, match="reload it"):
        crm.deals.move_to_stage(deal.id, "Won", expected_version=deal.version)

    assert crm.deals.stage_of(crm.deals.get(deal.id)).name == "Qualified"


def test_a_change_that_leaves_the_stage_alone_emits_no_stage_event(crm: crmkit.CRM) -> None:
    deal = crm.deals.create({"name": "Order"})

    crm.deals.update(deal.id, {"amount": "100"})

    assert outbox_events(crm, "deal.stage_changed") == []


# -- leads -----------------------------------------------------------------------------------


@pytest.fixture
def lead(crm: crmkit.CRM) -> Any:
    """A lead from a trade fair, with a company."""
    return crm.leads.create(
        {
            "full_name": "李娜",
            "company_name": "深圳华星电子有限公司",
            "email": "li.na@huaxing.example",
            "phone": "139 0000 1111",
            "city": "深圳",
            "source_channel": "trade_fair",
        }
    )


def test_a_new_lead_has_status_new(lead: Any) -> None:
    assert lead.status == "new"


def test_converting_a_lead_creates_a_contact_an_account_and_a_deal(
    crm: crmkit.CRM, lead: Any
) -> None:
    result = crm.leads.convert(lead.id)

    contact = crm.contacts.get(result.contact_id)
    account = crm.accounts.get(result.account_id)
    deal = crm.deals.get(result.deal_id)
    assert (contact.full_name, contact.email, contact.phone, contact.city) == (
        "李娜",
        "li.na@huaxing.example",
        "+8613900001111",
        "深圳",
    )
    assert (account.name, account.source_channel) == ("深圳华星电子有限公司", "trade_fair")
    assert deal.name == "深圳华星电子有限公司"


def test_the_records_a_lead_becomes_are_linked_to_each_other(crm: crmkit.CRM, lead: Any) -> None:
    result = crm.leads.convert(lead.id)

    contact = crm.contacts.get(result.contact_id)
    deal = crm.deals.get(result.deal_id)
    assert contact.account_id == result.account_id
    assert (deal.account_id, deal.contact_id) == (result.account_id, result.contact_id)


def test_a_converted_lead_records_what_it_became(crm: crmkit.CRM, lead: Any) -> None:
    result = crm.leads.convert(lead.id)

    converted = crm.leads.get(lead.id)
    assert converted.status == "converted"
    assert converted.converted_at is not None
    assert (
        converted.converted_contact_id,
        converted.converted_account_id,
        converted.converted_deal_id,
    ) == (result.contact_id, result.account_id, result.deal_id)


def test_converting_a_lead_emits_lead_converted(crm: crmkit.CRM, lead: Any) -> None:
    result = crm.leads.convert(lead.id)

    (event,) = outbox_events(crm, "lead.converted")
    assert event.record_id == lead.id
    assert event.payload == {
        "contact_id": result.contact_id,
        "account_id": result.account_id,
        "deal_id": result.deal_id,
    }


def test_converting_a_lead_twice_is_a_conflict(crm: crmkit.CRM, lead: Any) -> None:
    crm.leads.convert(lead.id)

    with pytest.raises(crmkit.ConflictError, match="already converted"):
        crm.leads.convert(lead.id)

    assert (crm.contacts.count(), crm.accounts.count(), crm.deals.count()) == (1, 1, 1)


def test_a_lead_converted_onto_an_existing_account_creates_no_account(
    crm: crmkit.CRM, lead: Any
) -> None:
    existing = crm.accounts.create({"name": "华星电子"})

    result = crm.leads.convert(lead.id, account_id=existing.id)

    assert result.account_id == existing.id
    assert crm.accounts.count() == 1
    assert crm.contacts.get(result.contact_id).account_id == existing.id


def test_converting_onto_a_deleted_account_is_refused_and_writes_nothing(
    crm: crmkit.CRM, lead: Any
) -> None:
    gone = crm.accounts.create({"name": "华星电子"})
    crm.accounts.delete(gone.id)

    with pytest.raises(crmkit.NotFoundError):
        crm.leads.convert(lead.id, account_id=gone.id)

    assert (crm.contacts.count(), crm.deals.count()) == (0, 0)
    assert crm.leads.get(lead.id).status == "new"


def test_a_lead_can_be_converted_without_a_deal(crm: crmkit.CRM, lead: Any) -> None:
    result = crm.leads.convert(lead.id, create_deal=False)

    assert result.deal_id is None
    assert crm.deals.count() == 0


def test_deal_values_given_at_conversion_are_used(crm: crmkit.CRM, lead: Any) -> None:
    result = crm.leads.convert(lead.id, deal={"name": "首批订单", "amount": "20000"})

    deal = crm.deals.get(result.deal_id)
    assert (deal.name, str(deal.amount)) == ("首批订单", "20000.00")


def test_a_conversion_that_fails_half_way_writes_nothing(crm: crmkit.CRM, lead: Any) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.leads.convert(lead.id, deal={"amount": "a lot"})

    assert "amount" in field_errors(error)
    assert (crm.contacts.count(), crm.accounts.count(), crm.deals.count()) == (0, 0, 0)
    assert crm.leads.get(lead.id).status == "new"
    assert outbox_events(crm, "lead.converted") == []


def test_a_lead_without_a_company_converts_without_an_account(crm: crmkit.CRM) -> None:
    lead = crm.leads.create({"full_name": "Walk-in customer"})

    result = crm.leads.convert(lead.id)

    assert result.account_id is None
    assert crm.deals.get(result.deal_id).name == "Walk-in customer"


def test_the_leads_owner_owns_what_it_becomes(crm: crmkit.CRM) -> None:
    crm.users.create_team("East")
    owner = crm.users.create("alice", team="East")
    manager = crm.users.create("boss", admin=True)
    lead = crm.leads.create({"full_name": "李娜", "company_name": "华星"}, actor=owner)

    result = crm.leads.convert(lead.id, actor=manager)

    owners = {
        crm.contacts.get(result.contact_id).owner_id,
        crm.accounts.get(result.account_id).owner_id,
        crm.deals.get(result.deal_id).owner_id,
    }
    assert owners == {owner.id}


def test_what_a_lead_becomes_stays_in_the_leads_team(crm: crmkit.CRM) -> None:
    crm.users.create_team("East")
    crm.users.create_team("HQ")
    owner = crm.users.create("alice", team="East")
    manager = crm.users.create("boss", team="HQ", admin=True)
    lead = crm.leads.create({"full_name": "李娜", "company_name": "华星"}, actor=owner)

    result = crm.leads.convert(lead.id, actor=manager)

    teams = {
        crm.contacts.get(result.contact_id).team_id,
        crm.accounts.get(result.account_id).team_id,
        crm.deals.get(result.deal_id).team_id,
    }
    assert teams == {owner.team_id}


def test_a_deleted_lead_cannot_be_converted(crm: crmkit.CRM, lead: Any) -> None:
    crm.leads.delete(lead.id)

    with pytest.raises(crmkit.NotFoundError):
        crm.leads.convert(lead.id)


def test_a_plain_update_cannot_mark_a_lead_converted(crm: crmkit.CRM) -> None:
    lead = crm.leads.create({"full_name": "周杰"})
    with pytest.raises(crmkit.ValidationError, match="status: is set by converting"):
        crm.leads.update(lead.id, {"status": "converted"})
    assert crm.leads.get(lead.id).status == "new"


def test_conversion_links_cannot_be_written_by_hand(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "周杰"})
    with pytest.raises(crmkit.ValidationError, match="converted_contact_id"):
        crm.leads.create({"full_name": "周杰", "converted_contact_id": contact.id})
    assert crm.leads.count() == 0
