"""CSV import and export through the transfer service: streaming, per-row errors with physical
line numbers, column checks before anything is written, and export → import round trips."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import crmkit
from crmkit.services.transfer import (
    REIMPORT_SKIP,
    ImportRejected,
    csv_cell,
    entity_from_file_name,
    export_csv,
    export_fields,
    import_csv,
)


def csv_file(
    tmp_path: Path, text: str, name: str = "contacts.csv", encoding: str = "utf-8"
) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def names(crm: crmkit.CRM) -> list[str]:
    return [contact.full_name for contact in crm.contacts.list().items]


def exported(crm: crmkit.CRM, entity: str = "contact", **options: Any) -> str:
    stream = io.StringIO()
    export_csv(crm, entity, stream, **options)
    return stream.getvalue()


# -- import ----------------------------------------------------------------------------------


def test_import_creates_one_record_per_row_with_normalised_values(
    crm: crmkit.CRM, tmp_path: Path
) -> None:
    path = csv_file(
        tmp_path, "full_name,phone,city\n张伟,138 1234 5678,上海\nGrace Lin,+886 912 345 678,台北\n"
    )
    report = import_csv(crm, "contact", path)
    assert (report.rows, report.created, report.errors) == (2, 2, [])
    first = crm.contacts.get(report.ids[0])
    assert (first.full_name, first.phone, first.city) == ("张伟", "+8613812345678", "上海")


def test_bad_rows_are_reported_with_line_column_and_reason_and_good_rows_imported(
    crm: crmkit.CRM, tmp_path: Path
) -> None:
    path = csv_file(
        tmp_path, "full_name,phone\n张伟,138 1234 5678\n,139 0000 0000\n李娜,123\n王芳,\n"
    )
    report = import_csv(crm, "contact", path)
    assert report.created == 2
    assert [str(error) for error in report.errors] == [
        "line 3, column full_name: is required",
        "line 4, column phone: '123' is not a possible phone number (read with region CN)",
    ]
    assert names(crm) == ["张伟", "王芳"]


def test_line_numbers_count_physical_lines_across_quoted_newlines_and_blank_lines(
    crm: crmkit.CRM, tmp_path: Path
) -> None:
    text = 'full_name,notes\n张伟,"first line\nsecond line"\n\n,missing name\n'
    report = import_csv(crm, "contact", csv_file(tmp_path, text))
    assert [(error.line, error.field) for error in report.errors] == [(5, "full_name")]
    assert report.rows == 2


def test_all_or_nothing_imports_nothing_when_one_row_is_bad(
    crm: crmkit.CRM, tmp_path: Path
) -> None:
    path = csv_file(tmp_path, "full_name,email\n张伟,zw@example.cn\n李娜,not-an-email\n")
    with pytest.raises(ImportRejected) as rejected:
        import_csv(crm, "contact", path, all_or_nothing=True)
    assert rejected.value.report.rows == 2
    assert [(e.line, e.field) for e in rejected.value.report.errors] == [(3, "email")]
    assert names(crm) == []


def test_an_unknown_column_stops_the_import_before_anything_is_written(
    crm: crmkit.CRM, tmp_path: Path
) -> None:
    path = csv_file(tmp_path, "full_name,微信\n张伟,zw88\n")
    with pytest.raises(crmkit.CRMError) as raised:
        import_csv(crm, "contact", path)
    message = str(raised.value)
    assert "'微信' is not a field of contact" in message
    assert "--map '微信=FIELD'" in message
    assert "--skip '微信'" in message
    assert names(crm) == []


def test_a_mapping_reads_chinese_headers_into_fields(crm: crmkit.CRM, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "姓名,手机,城市\n陳志明,+852 2345 6789,香港\n")
    mapping = {"姓名": "full_name", "手机": "phone", "城市": "city"}
    report = import_csv(crm, "contact", path, mapping=mapping)
    contact = crm.contacts.get(report.ids[0])
    assert (contact.full_name, contact.phone, contact.city) == ("陳志明", "+85223456789", "香港")


def test_a_mapping_to_a_field_that_does_not_exist_is_refused(
    crm: crmkit.CRM, tmp_path: Path
) -> None:
    path = csv_file(tmp_path, "姓名\n张伟\n")
    with pytest.raises(crmkit.CRMError, match="--map 姓名=name: contact has no field 'name'"):
        import_csv(crm, "contact", path, mapping={"姓名": "name"})


def test_skipped_columns_are_ignored(crm: crmkit.CRM, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "full_name,备注\n张伟,VIP 客户\n")
    report = import_csv(crm, "contact", path, skip=["备注"])
    assert report.created == 1


def test_skipping_a_column_the_file_does_not_have_is_refused(
    crm: crmkit.CRM, tmp_path: Path
) -> None:
    path = csv_file(tmp_path, "full_name\n张伟\n")
    with pytest.raises(crmkit.CRMError, match="--skip 备注: the file has no column '备注'"):
        import_csv(crm, "contact", path, skip=["备注"])


def test_empty_cells_mean_no_value(crm: crmkit.CRM, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "full_name,email,city\n张伟,,  \n")
    contact = crm.contacts.get(import_csv(crm, "contact", path).ids[0])
    assert (contact.email, contact.city) == (None, None)


def test_custom_fields_are_columns_like_built_in_fields(
    make_crm: Callable[..., crmkit.CRM], tmp_path: Path
) -> None:
    crm = make_crm(custom_fields=[{"entity": "contact", "name": "wechat_id", "type": "text"}])
    path = csv_file(tmp_path, "full_name,wechat_id\n张伟,zw88\n")
    contact = crm.contacts.get(import_csv(crm, "contact", path).ids[0])
    assert contact.custom == {"wechat_id": "zw88"}


def test_a_cell_beyond_the_header_is_a_row_error(crm: crmkit.CRM, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "full_name\n张伟,extra\n李娜\n")
    report = import_csv(crm, "contact", path)
    assert [str(error) for error in report.errors] == [
        "line 2: cell 2 holds 'extra' but has no header"
    ]
    assert names(crm) == ["李娜"]


def test_a_file_in_another_encoding_names_the_line_and_the_fix(
    crm: crmkit.CRM, tmp_path: Path
) -> None:
    path = csv_file(tmp_path, "full_name\n张伟\n", encoding="gb18030")
    with pytest.raises(crmkit.CRMError) as raised:
        import_csv(crm, "contact", path)
    assert str(raised.value).startswith(f"{path}, line 2: not UTF-8 text")
    assert "--encoding gb18030" in str(raised.value)


def test_a_gb18030_file_imports_when_its_encoding_is_given(crm: crmkit.CRM, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "full_name,city\n张伟,上海\n", encoding="gb18030")
    import_csv(crm, "contact", path, encoding="gb18030")
    assert names(crm) == ["张伟"]


def test_a_byte_order_mark_is_not_part_of_the_first_header(crm: crmkit.CRM, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "full_name\n张伟\n", encoding="utf-8-sig")
    assert import_csv(crm, "contact", path).created == 1


def test_an_unclosed_quote_is_a_clear_error_naming_where_it_opened(
    crm: crmkit.CRM, tmp_path: Path
) -> None:
    path = csv_file(tmp_path, 'full_name,city\n张伟,上海\n"李娜,北京\n王芳,深圳\n')
    with pytest.raises(crmkit.CRMError, match=r"not valid CSV.*opened on line 3 is never closed"):
        import_csv(crm, "contact", path)
    assert names(crm) == []


def test_an_empty_file_is_a_clear_error(crm: crmkit.CRM, tmp_path: Path) -> None:
    with pytest.raises(crmkit.CRMError, match="is empty: the first line must name the columns"):
        import_csv(crm, "contact", csv_file(tmp_path, ""))


def test_another_delimiter_can_be_named(crm: crmkit.CRM, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "full_name;city\n张伟;上海\n")
    import_csv(crm, "contact", path, delimiter=";")
    assert crm.contacts.list().items[0].city == "上海"


def test_a_text_stream_can_be_imported(crm: crmkit.CRM) -> None:
    report = import_csv(crm, "account", io.StringIO("name\n上海锦程贸易有限公司\n"))
    assert crm.accounts.get(report.ids[0]).name == "上海锦程贸易有限公司"


def test_progress_is_reported_for_every_row_read(crm: crmkit.CRM, tmp_path: Path) -> None:
    rows = "".join(f"客户{i}\n" for i in range(25)) + "\n"  # one row missing a name
    steps: list[int] = []
    import_csv(
        crm,
        "contact",
        csv_file(tmp_path, "full_name\n" + rows),
        batch_size=10,
        progress=steps.append,
    )
    assert steps == [10, 10, 5]


def test_an_import_issues_no_query_per_row(crm: crmkit.CRM, tmp_path: Path) -> None:
    def statements_for(rows: int) -> int:
        text = "full_name,account_id\n" + "".join(f"客户{i},{account.id}\n" for i in range(rows))
        count = 0

        def counter(*args: object) -> None:
            nonlocal count
            count += 1

        sa.event.listen(crm.engine, "before_cursor_execute", counter)
        try:
            import_csv(crm, "contact", csv_file(tmp_path, text, name=f"c{rows}.csv"))
        finally:
            sa.event.remove(crm.engine, "before_cursor_execute", counter)
        return count

    account = crm.accounts.create({"name": "上海锦程贸易有限公司"})
    statements_for(2)  # the first bulk insert reads and caches table details
    # Below COPY_FROM_ROWS a batch is one multi-row INSERT per table (one round trip), from
    # it on COPY; on either side of the threshold the count does not grow with the rows.
    from crmkit.db.engine import COPY_FROM_ROWS

    assert statements_for(COPY_FROM_ROWS) == statements_for(300)
    assert statements_for(2) == statements_for(COPY_FROM_ROWS - 1)


def test_the_entity_is_read_from_the_file_name(crm: crmkit.CRM) -> None:
    guesses = {
        name: entity_from_file_name(crm, Path(name))
        for name in (
            "contacts.csv",
            "Leads-2025-06.csv",
            "all_deals.csv",
            "leads-to-deals.csv",
            "客户.csv",
        )
    }
    assert guesses == {
        "contacts.csv": "contact",
        "Leads-2025-06.csv": "lead",
        "all_deals.csv": "deal",
        "leads-to-deals.csv": None,
        "客户.csv": None,
    }


# -- export ----------------------------------------------------------------------------------


def test_export_writes_id_fields_custom_fields_and_timestamps_in_that_order(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(custom_fields=[{"entity": "account", "name": "erp_code", "type": "text"}])
    columns = export_fields(crm, "account")
    assert columns[0] == "id"
    assert columns[-4:] == ["erp_code", "created_at", "updated_at", "version"]
    assert {"name", "phone", "owner_id", "city"} <= set(columns)
    assert "deleted_at" not in columns


def test_cells_join_lists_and_mappings_and_write_dates_in_iso_format() -> None:
    assert csv_cell(["+8613812345678", "+85223456789"]) == "+8613812345678;+85223456789"
    assert csv_cell({"wechat": "zw88", "line": "grace"}) == "wechat=zw88;line=grace"
    assert csv_cell(dt.date(1980, 2, 3)) == "1980-02-03"
    assert csv_cell(dt.datetime(2025, 6, 1, 8, 30, tzinfo=dt.UTC)) == "2025-06-01T08:30:00+00:00"
    assert (csv_cell(None), csv_cell(True)) == ("", "true")


def test_export_applies_filters_and_search(crm: crmkit.CRM) -> None:
    for name, city in (("张伟", "上海"), ("李娜", "北京"), ("张芳", "上海")):
        crm.contacts.create({"full_name": name, "city": city})
    text = exported(crm, filters={"city": "上海"}, search="张伟", fields=["full_name", "city"])
    assert text.splitlines() == ["full_name,city", "张伟,上海"]


def test_export_of_a_field_that_does_not_exist_is_refused(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.CRMError, match="cannot export 'wechat': not a field of contact"):
        exported(crm, fields=["full_name", "wechat"])


def test_an_export_that_fails_leaves_no_file(crm: crmkit.CRM, tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    with pytest.raises(crmkit.ValidationError):
        export_csv(crm, "contact", folder / "out.csv", filters={"wechat": "x"})
    assert list(folder.iterdir()) == []


def test_an_exported_file_imports_back_to_the_same_records(
    make_crm: Callable[..., crmkit.CRM], tmp_path: Path
) -> None:
    crm = make_crm(
        custom_fields=[
            {
                "entity": "contact",
                "name": "tags",
                "type": "multi_choice",
                "choices": ["vip", "new"],
            },
            {"entity": "contact", "name": "score", "type": "decimal"},
        ]
    )
    account = crm.accounts.create({"name": "宏達資訊股份有限公司"})
    crm.contacts.create(
        {
            "full_name": "陳大文 Peter",
            "account_id": account.id,
            "phone": "021-6288 1234 转 8021",
            "extra_phones": ["+852 2345 6789 ext. 12", "138 1234 5678"],
            "extra_emails": ["peter@example.hk", "dw.chan@example.com"],
            "social": {"wechat": "pchan", "line": "peter.c"},
            "birthday": "1980-02-03",
            "notes": '说 "你好", 然后离开',
            "tags": "vip;new",
            "score": "1.50",
        }
    )
    crm.contacts.create({"full_name": "王芳"})
    path = tmp_path / "contacts.csv"
    assert export_csv(crm, "contact", path) == 2
    report = import_csv(crm, "contact", path, skip=REIMPORT_SKIP)
    assert (report.created, report.errors) == (2, [])

    def without_system_columns(text: str) -> list[dict[str, str]]:
        rows = csv.DictReader(io.StringIO(text))
        return [{k: v for k, v in row.items() if k not in REIMPORT_SKIP} for row in rows]

    originals = exported(crm, filters={"id__lte": 2})
    copies = exported(crm, filters={"id__gt": 2})
    assert without_system_columns(copies) == without_system_columns(originals)
