"""The online duplicate check (core fallback and the hook) and the collision policy."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from sqlalchemy import event

import crmkit


@pytest.fixture
def reps(crm: crmkit.CRM) -> tuple[crmkit.User, crmkit.User]:
    return (
        crm.users.create("alice", roles=["sales_rep"]),
        crm.users.create("bob", roles=["sales_rep"]),
    )


def test_duplicate_error_is_a_conflict_error() -> None:
    assert issubclass(crmkit.DuplicateError, crmkit.ConflictError)


def test_the_fallback_flags_a_same_phone_contact_and_notifies_its_owner(
    crm: crmkit.CRM, reps
) -> None:
    alice, bob = reps
    mine = crm.contacts.create({"full_name": "张伟", "phone": "138 1234 5678"}, actor=alice)
    seen: list[crmkit.Event] = []
    crm.subscribe(["contact.duplicate_suspected", "contact.collision"], seen.append)
    theirs = crm.contacts.create({"full_name": "張偉", "phone": "+86 13812345678"}, actor=bob)
    # bob may not read alice's customer: he learns that one matches and whose it is, no more
    [warning] = theirs.duplicate_warnings
    assert (warning.entity, warning.visible, warning.record_id) == ("contact", False, None)
    assert (warning.owner_id, warning.owner_name) == (alice.id, "alice")
    assert (warning.label, warning.score, warning.reasons) == (None, None, ())
    # the events (for admins' sinks) carry the whole match
    assert [e.name for e in seen] == ["contact.duplicate_suspected", "contact.collision"]
    assert seen[0].payload["matches"][0]["record_id"] == mine.id
    # alice's notice names her own record and the field that matched; bob's contact is
    # outside her scope, so neither its id nor what bob typed is in it
    [notice] = crm.audit.inbox("alice")
    assert notice.kind == "contact.collision"
    assert notice.title == "bob entered a contact you cannot see, which matches your customer"
    assert notice.body == f"张伟 (contact {mine.id}): matched on phone"
    assert str(theirs.id) not in notice.title + notice.body


class QuotingPlugin:
    """A duplicate plugin whose reason quotes the typed name next to the stored one, as the
    dedupe plugin's fuzzy reasons do (``name 張偉 ~ 张伟 (0.83)``)."""

    @crmkit.hookimpl
    def crmkit_find_duplicates(
        self, op: crmkit.Operation, entity: str, values: Mapping[str, Any], record_id: int | None
    ) -> Sequence[crmkit.DuplicateMatch] | None:
        phone = values.get("phone")
        if entity != "contact" or not phone:
            return None
        with op.elevated():  # a duplicate check compares with every record
            same = op.records("contact").list(filters={"phone": phone}).items
        return [
            crmkit.DuplicateMatch(
                "contact",
                r.id,
                0.8,
                "warn",
                [f"full_name {values['full_name']} ~ {r.full_name}", f"same phone {phone}"],
                owner_id=r.owner_id,
                label=f"{r.full_name} (contact {r.id})",
                reason_fields=[("full_name",), ("phone",)],
            )
            for r in same
            if r.id != record_id
        ]


def test_a_collision_notice_quotes_no_typed_value_to_an_owner_who_cannot_read_it(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(plugins={"quoting": QuotingPlugin()})
    alice = crm.users.create("alice", roles=["sales_rep"])
    bob = crm.users.create("bob", roles=["sales_rep"])
    mine = crm.contacts.create({"full_name": "张伟", "phone": "13812345678"}, actor=alice)
    theirs = crm.contacts.create({"full_name": "張小偉 VIP", "phone": "13812345678"}, actor=bob)
    [notice] = crm.audit.inbox("alice")
    assert "張小偉" not in notice.title + notice.body
    assert notice.body == f"张伟 (contact {mine.id}): matched on full_name, phone"
    assert str(theirs.id) not in notice.title


def test_a_collision_notice_quotes_the_reasons_to_an_owner_who_may_read_the_new_record(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(plugins={"quoting": QuotingPlugin()})
    crm.users.create_team("east")
    boss = crm.users.create("boss", roles=["manager"], team="east")
    rep = crm.users.create("rep", roles=["sales_rep"], team="east")
    mine = crm.contacts.create({"full_name": "张伟", "phone": "13812345678"}, actor=boss)
    theirs = crm.contacts.create(
        {"full_name": "張小偉", "phone": "13812345678", "team_id": rep.team_id}, actor=rep
    )
    [notice] = crm.audit.inbox("boss")
    assert notice.title == f"rep entered contact {theirs.id}, which matches your customer"
    assert notice.body == (
        f"张伟 (contact {mine.id}): full_name 張小偉 ~ 张伟, same phone +8613812345678"
    )


def test_a_lead_is_compared_with_contacts_too(crm: crmkit.CRM, reps) -> None:
    alice, bob = reps
    crm.contacts.create({"full_name": "李娜", "email": "Li.Na@Example.cn"}, actor=alice)
    lead = crm.leads.create({"full_name": "李娜", "email": "li.na@example.cn"}, actor=bob)
    assert [w.entity for w in lead.duplicate_warnings] == ["contact"]


def test_own_duplicates_are_warned_but_are_no_collision(crm: crmkit.CRM, reps) -> None:
    alice, _ = reps
    crm.contacts.create({"full_name": "a", "email": "a@x.cn"}, actor=alice)
    seen: list[crmkit.Event] = []
    crm.subscribe("contact.collision", seen.append)
    again = crm.contacts.create({"full_name": "a2", "email": "a@x.cn"}, actor=alice)
    assert len(again.duplicate_warnings) == 1
    assert seen == []
    assert crm.audit.inbox("alice") == []


def test_a_clean_record_has_no_warnings(crm: crmkit.CRM, reps) -> None:
    alice, _ = reps
    assert (
        crm.contacts.create({"full_name": "x", "email": "x@x.cn"}, actor=alice).duplicate_warnings
        == ()
    )


def test_the_block_collision_policy_refuses_and_writes_nothing(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(assignment={"collision": {"account": "block"}})
    alice = crm.users.create("alice", roles=["sales_rep"])
    bob = crm.users.create("bob", roles=["sales_rep"])
    crm.accounts.create({"name": "华为", "phone": "0755 2878 0808"}, actor=alice)
    with pytest.raises(
        crmkit.DuplicateError, match=r"owned by alice.*policy of account is 'block'"
    ) as caught:
        crm.accounts.create({"name": "华为技术", "phone": "075528780808"}, actor=bob)
    assert [m.owner_id for m in caught.value.matches] == [alice.id]
    assert crm.accounts.count() == 1


def test_allow_and_notify_writes_without_warning_but_tells_the_owner(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(
        assignment={
            "collision": {"default": "allow_and_notify"},
            "fallback_duplicate_action": "allow",
        }
    )
    alice = crm.users.create("alice", roles=["sales_rep"])
    bob = crm.users.create("bob", roles=["sales_rep"])
    crm.leads.create({"full_name": "a", "email": "a@x.cn"}, actor=alice)
    lead = crm.leads.create({"full_name": "b", "email": "a@x.cn"}, actor=bob)
    assert lead.duplicate_warnings == ()
    assert [n.kind for n in crm.audit.inbox("alice")] == ["lead.collision"]


class BlockingPlugin:
    """A duplicate plugin that blocks same-name contacts (and answers for contacts only)."""

    @crmkit.hookimpl
    def crmkit_find_duplicates(
        self, op: crmkit.Operation, entity: str, values: Mapping[str, Any], record_id: int | None
    ) -> Sequence[crmkit.DuplicateMatch] | None:
        if entity != "contact":
            return None
        same = op.records("contact").list(filters={"full_name": values["full_name"]}).items
        return [
            crmkit.DuplicateMatch("contact", r.id, 0.9, "block", ["same name"], owner_id=r.owner_id)
            for r in same
            if r.id != record_id
        ]


def test_a_plugin_answers_before_the_fallback_and_block_refuses(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(plugins={"blocker": BlockingPlugin()})
    crm.contacts.create({"full_name": "王芳"})
    with pytest.raises(crmkit.DuplicateError, match=r"王芳.*same name"):
        crm.contacts.create({"full_name": "王芳"})
    # the plugin's empty answer stops the search: the fallback does not run
    crm.contacts.create({"full_name": "陈静", "email": "c@x.cn"})
    other = crm.contacts.create({"full_name": "陈静2", "email": "c@x.cn"})
    assert other.duplicate_warnings == ()
    # entities it passes on fall through to the core fallback
    crm.leads.create({"full_name": "l", "email": "l@x.cn"})
    assert len(crm.leads.create({"full_name": "l2", "email": "l@x.cn"}).duplicate_warnings) == 1


def test_a_deleted_record_is_not_a_duplicate_on_create_or_import(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(assignment={"fallback_duplicate_action": "block"})
    gone = crm.contacts.create({"full_name": "旧", "email": "old@x.cn", "phone": "13800000000"})
    crm.contacts.delete(gone.id)

    again = crm.contacts.create({"full_name": "新", "email": "OLD@x.cn"})
    result = crm.contacts.create_many(enumerate([{"full_name": "再", "phone": "138 0000 0000"}], 2))

    assert again.duplicate_warnings == ()
    assert (result.created, result.errors) == (1, [])


def test_an_update_that_makes_a_duplicate_is_checked_but_a_handover_is_not(
    crm: crmkit.CRM, reps
) -> None:
    alice, bob = reps
    crm.contacts.create({"full_name": "a", "email": "a@x.cn"}, actor=alice)
    other = crm.contacts.create({"full_name": "b"}, actor=bob)
    changed = crm.contacts.update(other.id, {"email": "a@x.cn"}, actor=bob)
    assert len(changed.duplicate_warnings) == 1
    moved = crm.contacts.update(other.id, {"owner_id": alice.id})
    assert moved.duplicate_warnings == ()


def test_an_import_blocks_rows_one_by_one_with_one_query_per_batch(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(assignment={"fallback_duplicate_action": "block"})
    crm.contacts.create({"full_name": "old", "email": "old@x.cn"})
    rows = [{"full_name": f"n{i}", "email": f"n{i}@x.cn"} for i in range(50)]
    rows[10] = {"full_name": "dup", "email": "OLD@x.cn"}
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        flat = statement.replace("\n", " ")
        if "FROM contacts" in flat and ("json_each" in flat or "ANY (" in flat):
            statements.append(statement)

    event.listen(crm.engine, "before_cursor_execute", count)
    result = crm.contacts.create_many(enumerate(rows, 2), batch_size=25)
    event.remove(crm.engine, "before_cursor_execute", count)
    assert result.created == 49
    assert [(e.line, "old@x.cn" in e.message) for e in result.errors] == [(12, True)]
    assert len(statements) == 2  # one fallback query per batch of 25


def test_an_import_flags_warned_rows(crm: crmkit.CRM) -> None:
    crm.contacts.create({"full_name": "old", "phone": "13800000000"})
    result = crm.contacts.create_many(
        enumerate([{"full_name": "a", "phone": "138 0000 0000"}, {"full_name": "b"}], 2)
    )
    assert result.created == 2
    assert [w.line for w in result.warnings] == [2]


def test_two_rows_of_one_import_batch_with_the_same_phone_are_flagged(crm: crmkit.CRM) -> None:
    rows = [
        {"full_name": "张伟", "phone": "138 0013 8000"},
        {"full_name": "李娜", "email": "li.na@x.cn"},
        {"full_name": "張偉", "phone": "+86 138-0013-8000"},
    ]

    result = crm.contacts.create_many(enumerate(rows, 2), batch_size=100)

    assert result.created == 3
    assert [(w.line, "张伟" in w.message) for w in result.warnings] == [(4, True)]
    with crm.engine.connect() as connection:
        flagged = list(
            connection.exec_driver_sql(
                "SELECT record_id, payload FROM event_outbox"
                " WHERE name = 'contact.duplicate_suspected'"
            )
        )
    assert [record_id for record_id, _ in flagged] == [result.ids[2]]
    assert str(result.ids[0]) in str(flagged[0][1])


def test_a_blocked_duplicate_within_one_import_batch_is_a_row_error(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(assignment={"fallback_duplicate_action": "block"})
    rows = [{"full_name": f"n{i}", "email": f"n{i}@x.cn"} for i in range(10)]
    rows[7] = {"full_name": "again", "email": "N2@X.CN"}

    result = crm.contacts.create_many(enumerate(rows, 2), batch_size=100)

    assert result.created == 9
    assert [(e.line, "n2@x.cn" in e.message) for e in result.errors] == [(9, True)]
    assert sorted(c.email for c in crm.contacts.list(limit=20).items) == sorted(
        f"n{i}@x.cn" for i in range(10) if i != 7
    )


def test_an_all_or_nothing_import_with_a_duplicate_within_the_file_writes_nothing(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(assignment={"fallback_duplicate_action": "block"})
    rows = [{"full_name": "a", "email": "a@x.cn"}, {"full_name": "b", "email": "a@x.cn"}]

    with pytest.raises(crmkit.BulkRejected):
        crm.contacts.create_many(enumerate(rows, 2), all_or_nothing=True)

    assert crm.contacts.count() == 0


def test_converting_a_lead_does_not_flag_its_contact_as_a_duplicate_of_the_lead(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(assignment={"fallback_duplicate_action": "block"})
    crm.pipelines.create("Sales")
    lead = crm.leads.create({"full_name": "周杰", "email": "zhou@x.cn", "company_name": "周氏"})
    conversion = crm.leads.convert(lead.id)
    assert crm.contacts.get(conversion.contact_id).email == "zhou@x.cn"
