"""Type hints (``types``): a hinted column has the hinted type; cells of that kind stay, text that reads as
one exactly is converted, and every other cell is kept as text in ``_rescued_data`` (never dropped)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import xlsxwriter

from sheetdrop_contract.column_types import AUTO, BY_NAME, BY_OPTION, COLUMN_TYPES, OPTIONS
from sheetdrop_contract.read_options import parse
from sheetdrop_step.converter import convert_workbook
from tests.workbooks.cells import write

HINTS = {"Qty": "int", "Price": "float", "Code": "string", "Day": "date", "Stamp": "datetime", "Paid": "bool",
         "Opens": "time", "Took": "duration"}


def test_the_vocabulary_names_each_type_once_and_gives_each_kind_one_type() -> None:
    assert len(BY_OPTION) == len(BY_NAME) == len(COLUMN_TYPES)
    assert sorted(AUTO) == sorted({t.kind for t in COLUMN_TYPES})
    assert sum(t.auto for t in COLUMN_TYPES) == len(AUTO)
    for column_type in COLUMN_TYPES:
        pa.type_for_alias(column_type.arrow)  # a type pyarrow knows by that name
    # The one test below covers every hint: a type added to the vocabulary needs its cells there.
    assert sorted(HINTS.values()) == sorted(OPTIONS)


def test_each_type_hint(tmp_path: Path) -> None:
    rows = [  # a value of the type, text that reads as one, a cell that does not fit
        [7, 1.25, 5, dt.datetime(2026, 7, 1), dt.datetime(2026, 7, 1, 10), True, dt.time(9, 30),
         dt.timedelta(hours=250, minutes=10, seconds=10)],
        ["12", "3.5", "x", "2026-07-02", "2026-07-02 11:30:00", "false", "17:45", "1:30:00"],
        [2.5, "abc", True, dt.datetime(2026, 7, 3, 9, 30), dt.time(9, 30), 1, "noon", "later"],
    ]
    src = tmp_path / "hints.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet("Items")
    ws.write_row(0, 0, list(HINTS))
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            write(ws, wb, r, c, value)
    wb.close()
    out = convert_workbook(src, tmp_path / "out", options=parse(json.dumps({"types": HINTS}), "sheetdrop.json"))[0]
    assert out.column_types == {"Qty": "int64", "Price": "float64", "Code": "string", "Day": "date",
                                "Stamp": "timestamp", "Paid": "bool", "Opens": "time", "Took": "duration",
                                "_rescued_data": "string"}
    schema = pq.read_schema(out.path)
    assert {name: schema.field(name).type for name in HINTS} == {
        name: pa.type_for_alias(BY_OPTION[hint].arrow) for name, hint in HINTS.items()}
    got = pq.read_table(out.path).to_pydict()
    assert got == {
        "Qty": [7, 12, None], "Price": [1.25, 3.5, None], "Code": ["5", "x", "TRUE"],
        "Day": [dt.date(2026, 7, 1), dt.date(2026, 7, 2), None],
        "Stamp": [dt.datetime(2026, 7, 1, 10), dt.datetime(2026, 7, 2, 11, 30), None],
        "Paid": [True, False, None], "Opens": [dt.time(9, 30), dt.time(17, 45), None],
        "Took": [dt.timedelta(hours=250, minutes=10, seconds=10), dt.timedelta(hours=1, minutes=30), None],
        "_rescued_data": [None, None, got["_rescued_data"][2]]}
    # Every cell that did not fit, readable back with its column, as Excel shows it.
    assert json.loads(got["_rescued_data"][2]) == {
        "Qty": "2.5", "Price": "abc", "Day": "2026-07-03 09:30:00", "Stamp": "09:30:00", "Paid": "1",
        "Opens": "noon", "Took": "later"}
    assert out.rescued == {"Qty": 1, "Price": 1, "Day": 1, "Stamp": 1, "Paid": 1, "Opens": 1, "Took": 1}
    assert out.warnings[0] == "column Qty (A): 1 cell did not fit int64 and is in _rescued_data (A4 '2.5')"
    assert len(out.warnings) == 7


def test_a_hint_names_a_column_as_written_in_any_case_and_a_hint_naming_none_is_said(tmp_path: Path) -> None:
    src = tmp_path / "prices.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["Unit price", "Units"])
    ws.write_row(1, 0, [3, 1])
    ws.write_row(2, 0, [4, 2])
    wb.close()
    chosen = parse('{"types": {"unit PRICE": "float", "Discount": "float"}}', "sales/sheetdrop.json")
    out = convert_workbook(src, tmp_path / "out", options=chosen)[0]
    assert out.column_types == {"Unit_price": "float64", "Units": "int64", "_rescued_data": "string"}
    assert pq.read_table(out.path).to_pydict() == {"Unit_price": [3.0, 4.0], "Units": [1, 2],
                                                    "_rescued_data": [None, None]}
    assert out.warnings == ["types: no column named 'Discount' (the columns are Unit_price, Units)"]


def test_text_is_read_exactly_or_rescued(tmp_path: Path) -> None:
    # Whole numbers past 2**53 stay exact; the shape of a date that is no date, and a number past
    # the doubles, do not fit: rescued, never an error.
    src = tmp_path / "exact.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["Id", "Due", "Ratio"])
    ws.write_row(1, 0, ["1234567890123456789", "2026-02-30", "1e400"])
    ws.write_row(2, 0, ["9007199254740993", "2026-02-28", "0.5"])
    ws.write_row(3, 0, ["99999999999999999999", "2026-13-01", "-1E-3"])
    wb.close()
    chosen = parse('{"types": {"Id": "int", "Due": "date", "Ratio": "float"}}', "sheetdrop.json")
    out = convert_workbook(src, tmp_path / "out", options=chosen)[0]
    assert pq.read_table(out.path).to_pydict() == {
        "Id": [1234567890123456789, 9007199254740993, None],
        "Due": [None, dt.date(2026, 2, 28), None],
        "Ratio": [None, 0.5, -0.001],
        "_rescued_data": ['{"Due": "2026-02-30", "Ratio": "1e400"}', None,
                          '{"Id": "99999999999999999999", "Due": "2026-13-01"}']}
