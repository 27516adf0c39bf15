"""A plugin's child entity (``EntityType(parent=crmkit.ParentLink(...))``) is visible exactly
as its parent record is: reads, lists, counts, search, exports, the related lists, the REST
API's 404s and every write follow the parent's scope, in SQL, whoever owns the child row
(issue 18, trap 12). On both engines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

import crmkit
from crmkit.testing import ApiClient, CRMFactory, api_client


class ServiceNote(crmkit.RecordMixin, crmkit.Model):
    """A note on a contact, the way a plugin would declare one."""

    __tablename__ = "child_test_notes"
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    body: Mapped[str] = mapped_column(String(200))


class LooseNote(crmkit.RecordMixin, crmkit.Model):
    """A table whose "parent" column is no foreign key."""

    __tablename__ = "child_test_loose_notes"
    contact_id: Mapped[int] = mapped_column(Integer)


NOTE = crmkit.EntityType(
    "service_note",
    ServiceNote,
    search=("body",),
    parent=crmkit.ParentLink("contact", "contact_id"),
)


class Entities:
    def __init__(self, *entities: crmkit.EntityType) -> None:
        self.entities = list(entities)

    @crmkit.hookimpl
    def crmkit_entities(self) -> list[crmkit.EntityType]:
        return self.entities


@pytest.fixture
def crm(make_crm: CRMFactory) -> crmkit.CRM:
    """A CRM with the notes plugin, two teams and four users:

    ``li.na`` and ``wang.fang`` are sales reps in team East, ``zhou.jie`` a sales rep in West,
    ``chen.jing`` the manager of East."""
    crm = make_crm(plugins={"notes": Entities(NOTE)})
    ServiceNote.__table__.create(crm.engine)  # type: ignore[attr-defined]
    crm.users.create_team("East")
    crm.users.create_team("West")
    crm.users.create("li.na", roles=["sales_rep"], team="East")
    crm.users.create("wang.fang", roles=["sales_rep"], team="East")
    crm.users.create("zhou.jie", roles=["sales_rep"], team="West")
    crm.users.create("chen.jing", roles=["manager"], team="East")
    return crm


def user(crm: crmkit.CRM, name: str) -> crmkit.User:
    return crm.users.get(name)


def contact_of(crm: crmkit.CRM, owner: str, name: str = "王芳") -> int:
    actor = user(crm, owner)
    return int(crm.contacts.create({"full_name": name}, actor=actor).id)


def note_on(crm: crmkit.CRM, contact_id: int, body: str = "报修：打印机卡纸") -> int:
    """A note written by the system (owned by no one): only its parent decides who sees it."""
    return int(crm.records("service_note").create({"contact_id": contact_id, "body": body}).id)


def test_a_child_is_visible_to_whoever_sees_its_parent(crm: crmkit.CRM) -> None:
    mine = note_on(crm, contact_of(crm, "li.na"))
    notes = crm.records("service_note")
    assert notes.get(mine, actor=user(crm, "li.na")).body == "报修：打印机卡纸"
    assert notes.get(mine, actor=user(crm, "chen.jing")).id == mine  # East's manager
    for outsider in ("wang.fang", "zhou.jie"):
        with pytest.raises(crmkit.NotFoundError):
            notes.get(mine, actor=user(crm, outsider))


def test_lists_counts_and_search_follow_the_parent(crm: crmkit.CRM) -> None:
    ours = note_on(crm, contact_of(crm, "li.na"), "报修 A")
    theirs = note_on(crm, contact_of(crm, "zhou.jie"), "报修 B")
    notes = crm.records("service_note")
    li_na, chen_jing = user(crm, "li.na"), user(crm, "chen.jing")
    assert [n.id for n in notes.list(actor=li_na).items] == [ours]
    assert notes.count(actor=li_na) == 1
    assert [n.id for n in notes.list(search="报修", actor=li_na).items] == [ours]
    assert notes.count(search="B", actor=li_na) == 0
    assert notes.count({"body": "报修 B"}, actor=li_na) == 0
    assert [n.id for n in notes.list(actor=chen_jing).items] == [ours]  # West is not his
    assert {n.id for n in notes.list().items} == {ours, theirs}  # the system sees both


def test_who_owns_the_child_row_does_not_matter(crm: crmkit.CRM) -> None:
    """li.na writes a note on wang.fang's contact as an admin would hand it over: the note
    goes with the contact, not with its writer."""
    contact = contact_of(crm, "li.na")
    note = crm.records("service_note").create(
        {"contact_id": contact, "body": "回访"}, actor=user(crm, "li.na")
    )
    crm.contacts.update(contact, {"owner_id": user(crm, "wang.fang").id})
    notes = crm.records("service_note")
    assert notes.get(note.id, actor=user(crm, "wang.fang")).owner_id == user(crm, "li.na").id
    with pytest.raises(crmkit.NotFoundError):
        notes.get(note.id, actor=user(crm, "li.na"))
    assert notes.count(actor=user(crm, "li.na")) == 0


def test_an_out_of_scope_child_is_missing_in_the_same_words(crm: crmkit.CRM) -> None:
    theirs = note_on(crm, contact_of(crm, "zhou.jie"))
    missing = theirs + 1000
    notes = crm.records("service_note")
    li_na = user(crm, "li.na")
    errors = []
    for record_id in (theirs, missing):
        with pytest.raises(crmkit.NotFoundError) as caught:
            notes.get(record_id, actor=li_na)
        errors.append(str(caught.value).replace(str(record_id), "N"))
        for write in (
            lambda rid=record_id: notes.update(rid, {"body": "x"}, actor=li_na),
            lambda rid=record_id: notes.delete(rid, actor=li_na),
        ):
            with pytest.raises(crmkit.NotFoundError) as caught:
                write()
            errors.append(str(caught.value).replace(str(record_id), "N"))
    assert errors[:3] == errors[3:]


def test_a_deleted_parent_hides_its_children_from_everyone(crm: crmkit.CRM) -> None:
    contact = contact_of(crm, "li.na")
    note = note_on(crm, contact)
    crm.contacts.delete(contact)
    with pytest.raises(crmkit.NotFoundError):
        crm.records("service_note").get(note)  # the system too
    assert crm.records("service_note").count() == 0


def test_a_child_needs_a_parent_the_actor_may_change(crm: crmkit.CRM) -> None:
    notes = crm.records("service_note")
    li_na = user(crm, "li.na")
    with pytest.raises(crmkit.ValidationError, match="contact_id"):
        notes.create({"body": "无主"}, actor=li_na)  # the parent column is required
    theirs = contact_of(crm, "zhou.jie")
    with pytest.raises(crmkit.ValidationError, match=f"contact {theirs} does not exist"):
        notes.create({"contact_id": theirs, "body": "x"}, actor=li_na)  # as if missing
    # read but not change: a role reading every contact, changing only its own
    crm.roles.create("desk")
    crm.roles.grant("desk", "contact:read", "all")
    crm.roles.grant("desk", "contact:update", "own")
    crm.roles.assign("li.na", "desk")
    with pytest.raises(crmkit.PermissionDenied, match="may not file a service_note under"):
        notes.create({"contact_id": theirs, "body": "x"}, actor=li_na)
    assert notes.count() == 0


def test_moving_a_child_needs_the_new_parent_in_reach(crm: crmkit.CRM) -> None:
    notes = crm.records("service_note")
    li_na = user(crm, "li.na")
    note = notes.create({"contact_id": contact_of(crm, "li.na"), "body": "x"}, actor=li_na)
    theirs = contact_of(crm, "zhou.jie")
    with pytest.raises(crmkit.ValidationError, match=f"contact {theirs} does not exist"):
        notes.update(note.id, {"contact_id": theirs}, actor=li_na)
    assert notes.get(note.id).contact_id != theirs


def test_writing_a_child_needs_update_on_the_parent(crm: crmkit.CRM) -> None:
    """read_only reads every contact and so every note, and changes none."""
    crm.users.create("sun.li", roles=["read_only"])
    note = note_on(crm, contact_of(crm, "li.na"))
    notes = crm.records("service_note")
    sun_li = user(crm, "sun.li")
    assert notes.get(note, actor=sun_li).id == note
    with pytest.raises(crmkit.PermissionDenied, match="contact:update"):
        notes.update(note, {"body": "改"}, actor=sun_li)
    with pytest.raises(crmkit.PermissionDenied, match="contact:update"):
        notes.delete(note, actor=sun_li)


def test_export_follows_the_parents_export(crm: crmkit.CRM) -> None:
    note_on(crm, contact_of(crm, "li.na"))
    note_on(crm, contact_of(crm, "zhou.jie"))
    assert len(list(crm.records("service_note").export(actor=user(crm, "chen.jing")))) == 1
    with pytest.raises(crmkit.PermissionDenied, match="contact:export"):
        list(crm.records("service_note").export(actor=user(crm, "li.na")))


def test_readable_record_ids_follow_the_parent(crm: crmkit.CRM) -> None:
    ours = note_on(crm, contact_of(crm, "li.na"))
    theirs = note_on(crm, contact_of(crm, "zhou.jie"))
    with crm.transaction(user(crm, "li.na")) as op:
        assert crmkit.readable_record_ids(op, "service_note", [ours, theirs]) == {ours}
        query = crmkit.readable_ids_query(op, "service_note")
        assert set(op.session.scalars(query)) == {ours}


def test_a_child_has_no_permissions_of_its_own(crm: crmkit.CRM) -> None:
    assert not [p for p in crm.roles.permissions() if p.startswith("service_note:")]
    with pytest.raises(crmkit.ValidationError, match="grant contact:read"):
        crm.roles.grant("sales_rep", "service_note:read", "all")


@pytest.mark.parametrize(
    ("entity", "message"),
    [
        (
            crmkit.EntityType(
                "loose_note", ServiceNote, parent=crmkit.ParentLink("customer", "contact_id")
            ),
            "parent 'customer' is not an entity",
        ),
        (
            crmkit.EntityType(
                "loose_note", LooseNote, parent=crmkit.ParentLink("contact", "contact_id")
            ),
            "foreign key to contacts.id",
        ),
        (
            crmkit.EntityType(
                "loose_note", ServiceNote, parent=crmkit.ParentLink("contact", "body")
            ),
            "column 'body' must be",
        ),
        (
            crmkit.EntityType(
                "loose_note", ServiceNote, parent=crmkit.ParentLink("service_note", "id")
            ),
            "itself a child of 'contact'",
        ),
    ],
)
def test_a_wrong_parent_is_named_when_the_crm_opens(
    make_crm: CRMFactory, entity: crmkit.EntityType, message: str
) -> None:
    with pytest.raises(crmkit.ConfigError, match=message):
        make_crm(plugins={"notes": Entities(NOTE, entity)})


# -- the REST API ------------------------------------------------------------------------------


@pytest.fixture
def api(crm: crmkit.CRM) -> Iterator[ApiClient]:
    with api_client(crm) as client:
        for name in ("li.na", "zhou.jie"):
            client.token_for(name)
        yield client


def problem_without_ids(response: Any, *ids: int) -> tuple[int, str]:
    text = response.text
    for record_id in sorted(ids, key=lambda i: -len(str(i))):  # 1001 before 1
        text = text.replace(str(record_id), "N")
    return response.status_code, text


def test_the_api_answers_an_out_of_scope_child_like_a_missing_one(
    crm: crmkit.CRM, api: ApiClient
) -> None:
    theirs = note_on(crm, contact_of(crm, "zhou.jie"))
    missing = theirs + 1000
    li_na = api.as_user("li.na")
    for method, body in (("get", None), ("patch", {"body": "x"}), ("delete", None)):
        answers = []
        for record_id in (theirs, missing):
            kwargs = {"json": body} if body else {}
            response = li_na.request(method.upper(), f"/service_notes/{record_id}", **kwargs)
            answers.append(problem_without_ids(response, theirs, missing))
        assert answers[0] == answers[1]
        assert answers[0][0] == 404
    assert api.as_user("zhou.jie").get(f"/service_notes/{theirs}").status_code == 200


def test_the_api_lists_and_related_lists_follow_the_parent(crm: crmkit.CRM, api: ApiClient) -> None:
    ours_contact = contact_of(crm, "li.na")
    ours = note_on(crm, ours_contact)
    theirs_contact = contact_of(crm, "zhou.jie")
    note_on(crm, theirs_contact)
    li_na = api.as_user("li.na")
    listed = li_na.get("/service_notes").json()
    assert [item["id"] for item in listed["items"]] == [ours]
    related = li_na.get(f"/contacts/{ours_contact}/service_notes").json()
    assert [item["id"] for item in related["items"]] == [ours]
    assert li_na.get(f"/contacts/{theirs_contact}/service_notes").status_code == 404
    created = li_na.post("/service_notes", json={"contact_id": theirs_contact, "body": "x"})
    assert created.status_code == 422
    assert f"contact {theirs_contact} does not exist" in created.text
