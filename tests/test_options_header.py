"""Header detection: a title block above the table is skipped by one deterministic rule; a table without
one keeps its first row as the header; ``header_rows`` says how many rows name the columns (0: none;
several: joined, an upper cell merged across columns naming each of them)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import xlsxwriter

from sheetdrop_contract.read_options import parse
from sheetdrop_step.converter import convert_workbook
from sheetdrop_step.converter._table.header import HeaderChoice, find_header


def options(text: str):
    return parse(text, "reports/sheetdrop.json")


def report(path: Path, *, gap: bool = True, upper: bool = False) -> Path:
    """A finance report: a title and a date line, (an empty row), a table of three regions."""
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("Sales")
    day = wb.add_format({"num_format": "yyyy-mm-dd"})
    ws.write_string(0, 0, "ACME Corp — Q3 2026 Sales Report")
    ws.write_string(1, 0, "Generated 2026-10-01")
    top = 3 if gap else 2
    if upper:
        ws.merge_range(top, 2, top, 4, "Q3 2026", wb.add_format({"bold": True}))
        top += 1
    ws.write_row(top, 0, ["Region", "Rep", "Jul", "Aug", "Sep", "Order date"])
    for i, (region, rep, *months, day_) in enumerate([("North", "Ann", 10, 12, 14, dt.date(2026, 7, 3)),
                                                       ("South", "Bob", 8, 9, 11, dt.date(2026, 7, 9))]):
        ws.write_row(top + 1 + i, 0, [region, rep, *months])
        ws.write_datetime(top + 1 + i, 5, dt.datetime.combine(day_, dt.time()), day)
    wb.close()
    return path


TABLE = {"Region": ["North", "South"], "Rep": ["Ann", "Bob"], "Jul": [10, 8], "Aug": [12, 9], "Sep": [14, 11],
         "Order_date": [dt.datetime(2026, 7, 3), dt.datetime(2026, 7, 9)]}


@pytest.mark.parametrize("gap", [True, False])
def test_a_title_block_above_the_table_is_skipped(tmp_path: Path, gap: bool, caplog: pytest.LogCaptureFixture) -> None:
    src = report(tmp_path / "report.xlsx", gap=gap)
    with caplog.at_level(logging.INFO, logger="sheetdrop.convert"):
        out = convert_workbook(src, tmp_path / "out")[0]
    assert pq.read_table(out.path).to_pydict() == TABLE
    assert out.column_types == {"Region": "string", "Rep": "string", "Jul": "int64", "Aug": "int64", "Sep": "int64",
                                "Order_date": "timestamp"}
    header = f"header in row {4 if gap else 3}; title rows 1, 2 skipped"
    assert out.header == header
    assert pq.read_schema(out.path).metadata[b"sheetdrop.header"] == header.encode()
    assert [r.getMessage() for r in caplog.records] == [f"report.xlsx: sheet 'Sales': {header}"]


def test_without_a_title_block_the_first_row_is_the_header(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "plain.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["id", "note"])  # two short cells: a header, not a title (nothing wider below)
    ws.write_row(1, 0, [1, "a"])
    ws.write_row(2, 0, [2, "b"])
    wb.close()
    with caplog.at_level(logging.INFO, logger="sheetdrop.convert"):
        out = convert_workbook(src, tmp_path / "out")[0]
    assert pq.read_table(out.path).to_pydict() == {"id": [1, 2], "note": ["a", "b"]}
    assert out.header == "header in row 1"
    assert caplog.records == []  # the usual case is not news


def cells(*rows: dict[int, object]) -> dict[int, dict[int, tuple[str, object]]]:
    kinds = {str: "text", int: "number", float: "number", dt.datetime: "datetime"}
    return {r: {c: (kinds[type(v)], v) for c, v in row.items()} for r, row in enumerate(rows) if row}


@pytest.mark.parametrize(("grid", "choice"), [
    # A title, an empty row, a header of distinct texts with data under it.
    (cells({0: "Report"}, {}, {0: "a", 1: "b"}, {0: 1, 1: 2}), HeaderChoice(2, 1, (0,))),
    # Two title cells side by side and a header of only two names: not wider, so no title block.
    (cells({0: "Report", 1: "Q3"}, {}, {0: "a", 1: "b"}, {0: 1, 1: 2}), HeaderChoice(0, 1)),
    # The candidate header repeats a name, as exports repeat a group's names: still a header row...
    (cells({0: "Report"}, {}, {0: "a", 1: "a", 2: "b"}, {0: 1, 1: 2, 2: 3}), HeaderChoice(2, 1, (0,))),
    # ... unless no more than half of its names are distinct.
    (cells({0: "Report"}, {}, {0: "a", 1: "a", 2: "a", 3: "b"}, {0: 1, 1: 2, 2: 3, 3: 4}), HeaderChoice(0, 1)),
    # A number in the first row: not a title.
    (cells({0: 2026}, {}, {0: "a", 1: "b"}, {0: 1, 1: 2}), HeaderChoice(0, 1)),
    # Two values in a title row right above the header (no empty row): kept as the header.
    (cells({0: "Report", 2: "Q3"}, {0: "a", 1: "b", 2: "c"}, {0: 1, 1: 2, 2: 3}), HeaderChoice(0, 1)),
    # Nothing under the candidate's columns: not a table.
    (cells({0: "Report"}, {}, {0: "a", 1: "b"}), HeaderChoice(0, 1)),
    # A header naming one column over rows of text: a table, not a title (nothing typed under it).
    (cells({0: "Name"}, {0: "Alice", 1: "Paris", 2: "x"}, {0: "Bob", 1: "London", 2: "y"}), HeaderChoice(0, 1)),
    # The same over numbers, right under the title: a title.
    (cells({0: "Report"}, {0: "a", 1: "b"}, {0: 1, 1: 2}), HeaderChoice(1, 1, (0,))),
    # Group names right under the title, the names of every column under them: the last is the header.
    (cells({0: "Report"}, {1: "Units", 3: "Revenue"}, {0: "Region", 1: "Jul", 2: "Aug", 3: "Jul", 4: "Aug"},
           {0: "North", 1: 1, 2: 2, 3: 3, 4: 4}), HeaderChoice(2, 1, (0, 1))),
    # Six title rows: more than a title block.
    (cells(*[{0: f"line {i}"} for i in range(6)], {}, {0: "a", 1: "b"}, {0: 1, 1: 2}), HeaderChoice(0, 1)),
])
def test_the_rule(grid: dict[int, dict[int, tuple[str, object]]], choice: HeaderChoice) -> None:
    assert find_header(grid, None) == choice


def test_header_rows_zero_names_the_columns_by_letter(tmp_path: Path) -> None:
    src = tmp_path / "raw.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    for r in range(3):
        ws.write_row(r + 1, 1, [r, f"x{r}"])
    wb.close()
    out = convert_workbook(src, tmp_path / "out", options=options('{"header_rows": 0}'))[0]
    assert pq.read_table(out.path).to_pydict() == {"column_B": [0, 1, 2], "column_C": ["x0", "x1", "x2"]}
    assert out.header == "no header row; data from row 2"


def test_two_header_rows_are_joined_and_a_merged_upper_cell_names_each_column(tmp_path: Path) -> None:
    src = report(tmp_path / "report.xlsx", upper=True)
    out = convert_workbook(src, tmp_path / "out", options=options('{"header_rows": 2}'))[0]
    assert list(pq.read_table(out.path).to_pydict()) == [
        "Region", "Rep", "Q3_2026_Jul", "Q3_2026_Aug", "Q3_2026_Sep", "Order_date"]
    assert pq.read_table(out.path).column("Q3_2026_Aug").to_pylist() == [12, 9]
    assert out.header == "header in rows 4-5 (joined); title rows 1, 2 skipped"


def test_without_header_rows_the_upper_row_of_a_two_row_header_is_taken_for_a_title(tmp_path: Path) -> None:
    # What the option is for: detection alone finds the row that names every column.
    src = report(tmp_path / "report.xlsx", upper=True)
    out = convert_workbook(src, tmp_path / "out")[0]
    assert list(pq.read_table(out.path).to_pydict()) == ["Region", "Rep", "Jul", "Aug", "Sep", "Order_date"]
    assert out.header == "header in row 5; title rows 1, 2, 4 skipped"


def test_two_header_rows_under_a_title_without_an_empty_row(tmp_path: Path) -> None:
    src = tmp_path / "groups.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    ws.write_string(0, 0, "ACME report")
    ws.merge_range(1, 1, 1, 2, "Units", wb.add_format())
    ws.merge_range(1, 3, 1, 4, "Revenue", wb.add_format())
    ws.write_row(2, 0, ["Region", "Jul", "Aug", "Jul", "Aug"])
    ws.write_row(3, 0, ["North", 1, 2, 10.5, 20.5])
    wb.close()
    out = convert_workbook(src, tmp_path / "out", options=options('{"header_rows": 2}'))[0]
    assert pq.read_table(out.path).to_pydict() == {
        "Region": ["North"], "Units_Jul": [1], "Units_Aug": [2], "Revenue_Jul": [10.5], "Revenue_Aug": [20.5]}
    assert out.header == "header in rows 2-3 (joined); title row 1 skipped"
    # A range that starts inside a merged group name still names its columns with it.
    out = convert_workbook(src, tmp_path / "cut", options=options('{"header_rows": 2, "range": "C2:E4"}'))[0]
    assert list(pq.read_table(out.path).to_pydict()) == ["Units_Aug", "Revenue_Jul", "Revenue_Aug"]
