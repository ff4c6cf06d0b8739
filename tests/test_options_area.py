"""Which cells are the table: ``range`` (a cell range, open ended or not), ``footer`` (rows dropped at the
end, or the data ending at the first empty row) and ``sheets`` (names or patterns to include and
exclude); what they leave out is said, never silently lost."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import xlsxwriter

from sheetdrop_contract.read_options import parse
from sheetdrop_step.converter import WorkbookRejected, convert_workbook
from sheetdrop_step.converter._table.header import HeaderChoice


def options(text: str):
    return parse(text, "sales/sheetdrop.json")


def sheet_with_totals(path: Path) -> Path:
    """Orders with a date column, an empty row, a totals row and a note below it."""
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("Orders")
    day = wb.add_format({"num_format": "yyyy-mm-dd"})
    ws.write_row(0, 0, ["Order date", "Amount"])
    for r, amount in enumerate([10.5, 20.25, 30.0], start=1):
        ws.write_datetime(r, 0, dt.datetime(2026, 7, r), day)
        ws.write_number(r, 1, amount)
    ws.write_row(5, 0, ["TOTAL", 60.75])
    wb.close()
    return path


def test_a_totals_row_is_dropped_by_footer_drop_rows(tmp_path: Path) -> None:
    src = sheet_with_totals(tmp_path / "orders.xlsx")
    out = convert_workbook(src, tmp_path / "out", options=options('{"footer": {"drop_rows": 1}}'))[0]
    assert pq.read_table(out.path).to_pydict() == {
        "Order_date": [dt.datetime(2026, 7, 1), dt.datetime(2026, 7, 2), dt.datetime(2026, 7, 3)],
        "Amount": [10.5, 20.25, 30.0]}
    assert out.column_types == {"Order_date": "timestamp", "Amount": "float64"}
    assert out.warnings == []


def test_without_the_option_a_totals_row_stays_and_is_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = sheet_with_totals(tmp_path / "orders.xlsx")
    with caplog.at_level(logging.INFO, logger="sheetdrop.convert"):
        out = convert_workbook(src, tmp_path / "out")[0]
    assert pq.read_table(out.path).to_pydict() == {
        "Order_date": ["2026-07-01", "2026-07-02", "2026-07-03", None, "TOTAL"],
        "Amount": [10.5, 20.25, 30.0, None, 60.75]}
    assert out.warnings == [
        "column Order_date (A) became text: 1 of 4 cells is not a date (A6 'TOTAL'); \"mixed_columns\": \"rescue\" "
        "keeps its type and moves them to _rescued_data",
        "row 6 looks like a totals row (A6 'TOTAL'); \"footer\": {\"drop_rows\": 1} leaves it out"]
    assert [r.getMessage() for r in caplog.records] == [f"warning: sheet 'Orders': {w}" for w in out.warnings]


def test_stop_at_empty_row(tmp_path: Path) -> None:
    src = sheet_with_totals(tmp_path / "orders.xlsx")
    out = convert_workbook(src, tmp_path / "out", options=options('{"footer": {"stop_at_empty_row": true}}'))[0]
    assert pq.read_table(out.path).to_pydict() == {
        "Order_date": [dt.datetime(2026, 7, 1), dt.datetime(2026, 7, 2), dt.datetime(2026, 7, 3)],
        "Amount": [10.5, 20.25, 30.0]}
    assert out.column_types == {"Order_date": "timestamp", "Amount": "float64"}


def test_stop_at_empty_row_looks_past_empty_rows_under_the_header(tmp_path: Path) -> None:
    src = tmp_path / "spaced.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["id", "name"])
    ws.write_row(2, 0, [1, "a"])
    ws.write_row(3, 0, [2, "b"])
    ws.write_string(5, 0, "note: figures are provisional")
    wb.close()
    out = convert_workbook(src, tmp_path / "out", options=options('{"footer": {"stop_at_empty_row": true}}'))[0]
    assert pq.read_table(out.path).to_pydict() == {"id": [None, 1, 2], "name": [None, "a", "b"]}


def test_options_that_leave_no_data_rows_say_so(tmp_path: Path) -> None:
    src = sheet_with_totals(tmp_path / "orders.xlsx")
    out = convert_workbook(src, tmp_path / "out", options=options('{"footer": {"drop_rows": 9}}'))[0]
    assert (out.rows, out.column_types) == (0, {"Order_date": "string", "Amount": "string"})
    assert out.warnings == ["no data rows (header in row 1; read options: footer.drop_rows 9)"]


def boxed(path: Path) -> Path:
    """A table in C4:E6 with notes around it: left of it, above it, below it and right of it."""
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("Box")
    ws.write_string(0, 0, "Prepared by finance; do not edit")
    ws.write_string(4, 0, "note left")
    ws.write_row(3, 2, ["id", "name", "qty"])
    ws.write_row(4, 2, [1, "a", 5])
    ws.write_row(5, 2, [2, "b", 6])
    ws.write_string(4, 6, "note right")
    ws.write_string(9, 2, "source: ERP export")
    wb.close()
    return path


@pytest.mark.parametrize(("area", "table"), [
    ("C4:E6", {"id": [1, 2], "name": ["a", "b"], "qty": [5, 6]}),
    # To the last row: the note in C10 is a data row, and makes its column text.
    ("C4:E", {"id": ["1", "2", None, None, None, "source: ERP export"], "name": ["a", "b", None, None, None, None],
              "qty": [5, 6, None, None, None, None]}),
    ("D:E", {"name": ["a", "b"], "qty": [5, 6]}),
    ("c5:d6", {"1": [2], "a": ["b"]}),  # the first row of a range is its header
])
def test_range(tmp_path: Path, area: str, table: dict[str, list[object]]) -> None:
    src = boxed(tmp_path / "box.xlsx")
    out = convert_workbook(src, tmp_path / "out", options=options(f'{{"range": "{area}"}}'))[0]
    assert pq.read_table(out.path).to_pydict() == table


def test_sheets_include_and_exclude(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "book.xlsx"
    wb = xlsxwriter.Workbook(src)
    for name in ("Sales 2025", "Sales 2026", "Notes", "sales archive"):
        wb.add_worksheet(name).write_row(0, 0, ["a", "b"])
        wb.get_worksheet_by_name(name).write_row(1, 0, [1, 2])
    wb.close()
    chosen = options('{"sheets": {"include": ["SALES*"], "exclude": ["*archive"]}}')
    with caplog.at_level(logging.INFO, logger="sheetdrop.convert"):
        outs = convert_workbook(src, tmp_path / "out", options=chosen)
    assert [o.sheet for o in outs] == ["Sales 2025", "Sales 2026"]
    assert outs.skipped == [("Notes", "not in sheets.include ('SALES*')"),
                            ("sales archive", "excluded by sheets.exclude '*archive'")]
    assert [r.getMessage() for r in caplog.records] == [
        "skipped sheet 'Notes' of book.xlsx: not in sheets.include ('SALES*')",
        "skipped sheet 'sales archive' of book.xlsx: excluded by sheets.exclude '*archive'"]


@pytest.mark.parametrize(("text", "why"), [
    ('{"sheets": {"include": ["Sales"]}}', "not in sheets.include ('Sales')"),
    ('{"range": "F10:H20"}', "no values in range F10:H20"),
])
def test_options_that_leave_no_sheet_reject_the_workbook_saying_why(tmp_path: Path, text: str, why: str) -> None:
    src = tmp_path / "book.xlsx"
    wb = xlsxwriter.Workbook(src)
    wb.add_worksheet("Orders").write_row(0, 0, ["a", "b"])
    wb.close()
    with pytest.raises(WorkbookRejected) as caught:
        convert_workbook(src, tmp_path / "out", options=options(text))
    assert (caught.value.code, caught.value.reason) == (
        "empty", f"the workbook has no visible worksheet with data ('Orders': {why})")
    assert not (tmp_path / "out").exists()


def test_a_range_far_down_the_sheet_is_typed_from_its_own_first_rows(tmp_path: Path) -> None:
    # Its first rows, not the sheet's (which hold another table): text columns are read as text.
    from sheetdrop_step.converter import Limits
    from sheetdrop_step.converter._reading.head import head_types
    from sheetdrop_step.converter._reading.task import Task
    from sheetdrop_step.converter._safety.guard import quick_inspect

    src = tmp_path / "deep.xlsx"
    wb = xlsxwriter.Workbook(src, {"constant_memory": True})
    ws = wb.add_worksheet("Log")
    for r in range(3000):
        ws.write_row(r, 0, [r, r * 2])  # an older table above the one the folder wants
    ws.write_row(3000, 0, ["code", "city"])
    for r in range(3001, 3400):
        ws.write_row(r, 0, [f"{r:05d}", "Lyon"])
    wb.close()
    chosen = options('{"range": "A3001:B"}')
    inspection = quick_inspect(src)
    [sheet] = inspection.sheets or []
    head = head_types(src, inspection, Task(0, sheet.name, sheet.part), Limits(), options=chosen)
    assert (head.types, head.choice) == ({0: ("string", "text"), 1: ("string", "text")}, HeaderChoice(3000, 1))
    out = convert_workbook(src, tmp_path / "out", options=chosen)[0]
    table = pq.read_table(out.path).to_pydict()
    assert (table["code"][:2], table["city"][-1], out.rows) == (["03001", "03002"], "Lyon", 399)


def test_a_range_that_starts_where_the_first_rows_end_finds_its_header_in_its_own_rows(tmp_path: Path) -> None:
    # The sheet's first 1000 rows hold one row of the range: its own rows decide its header and types.
    src = tmp_path / "late.xlsx"
    wb = xlsxwriter.Workbook(src, {"constant_memory": True})
    ws = wb.add_worksheet()
    for r in range(997):
        ws.write_row(r, 0, [r, r * 2, r * 3])
    ws.write_string(999, 0, "Sales by region")
    ws.write_row(1001, 0, ["Region", "Units", "Price"])
    for r in range(1002, 1500):
        ws.write_row(r, 0, [f"region {r % 7}", r, r / 4])
    wb.close()
    out = convert_workbook(src, tmp_path / "out", options=options('{"range": "A1000:C"}'))[0]
    assert out.header == "header in row 1002; title row 1000 skipped"
    assert out.column_types == {"Region": "string", "Units": "int64", "Price": "float64"}


def test_a_column_left_out_by_the_range_is_not_read_twice(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "flags.xlsx"
    wb = xlsxwriter.Workbook(src, {"constant_memory": True})
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["a", "b", "flag"])
    for r in range(1, 1500):
        ws.write_row(r, 0, [r, f"t{r % 13}", r % 2 == 0])
    wb.close()
    with caplog.at_level(logging.INFO, logger="sheetdrop.convert"):
        out = convert_workbook(src, tmp_path / "out", options=options('{"range": "A:B"}'))[0]
    assert out.column_types == {"a": "int64", "b": "string"}
    assert caplog.records == []  # its booleans typed as such: nothing silently coerced, no second read


@pytest.mark.parametrize("name", ["sample.xls", "sample.ods"])
def test_a_range_past_every_sheet_is_empty_not_corrupt(name: str, tmp_path: Path) -> None:
    src = Path(__file__).parent / "workbooks" / name
    with pytest.raises(WorkbookRejected) as caught:
        convert_workbook(src, tmp_path / "out", options=options('{"range": "A60:B"}'))
    assert (caught.value.code, caught.value.reason) == ("empty", (
        "the workbook has no visible worksheet with data ('Data': no values in range A60:B; 'Secret': hidden "
        "sheet; 'Blank': no values in range A60:B)"))
