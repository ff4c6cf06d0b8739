"""What a cell holds reaches the parquet whole: whole numbers beyond 2**53 exactly (int64 while they fit,
text as Excel shows them past it), distinct numeric headers under distinct names, the fraction of a
second of a date, time or duration shown as text, a date-formatted number past 9999-12-31 as its number
(not the loss of the workbook). Each workbook is written part by part (``tests/workbooks``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sheetdrop_step.converter import convert_workbook
from tests.workbooks.make_ods import write_ods
from tests.workbooks.make_xlsx import Raw, Sheet, row, write_xlsx


def digits(text: str) -> Raw:
    """A number cell as an export writes an ID: every digit."""
    return Raw(f"<v>{text}</v>")


def convert_one(src: Path, out: Path) -> tuple[dict[str, list], dict[str, str], list[str]]:
    (sheet,) = convert_workbook(src, out)
    return pq.read_table(sheet.path).to_pydict(), sheet.column_types, sheet.warnings


def test_whole_numbers_beyond_2_53_are_exact(tmp_path: Path) -> None:
    data = row(1, ["id", "huge", "mixed", "ratio"])
    data += row(2, [digits("9007199254740993"), digits("12345678901234567890"), digits("9007199254740993"), 1.5])
    data += row(3, [digits("-9223372036854775808"), digits("1"), "code", digits("9007199254740993")])
    data += row(4, [digits("123"), digits("2"), digits("5"), 2])
    table, types, warnings = convert_one(write_xlsx(tmp_path / "ids.xlsx", [Sheet("S", data)]), tmp_path / "out")
    # int64 while every one fits, each as written (a double holds 9007199254740992 for …993).
    assert types["id"] == "int64" and table["id"] == [9007199254740993, -9223372036854775808, 123]
    # Past int64 no type holds them all: text, each as Excel shows it, and a warning saying why.
    assert types["huge"] == "string" and table["huge"] == ["1.23456789012346E+19", "1", "2"]
    assert any("column huge (B) became text: its whole numbers reach 1.23456789012346E+19" in w for w in warnings)
    # Text beside them (a mixed column) shows numbers as Excel does: 15 digits.
    assert table["mixed"] == ["9.00719925474099E+15", "code", "5"]
    # A column with a fraction in it is float64, which holds what a double holds.
    assert types["ratio"] == "float64" and table["ratio"] == [1.5, 9007199254740992.0, 2.0]


def test_an_int_hint_keeps_the_digits_too(tmp_path: Path) -> None:
    from sheetdrop_contract.read_options import ReadOptions

    data = row(1, ["id"]) + row(2, [digits("9007199254740993")]) + row(3, [4.0])
    src = write_xlsx(tmp_path / "ids.xlsx", [Sheet("S", data)])
    (out,) = convert_workbook(src, tmp_path / "out", options=ReadOptions(types={"id": "int"}))
    assert pq.read_table(out.path).column("id").to_pylist() == [9007199254740993, 4]


def test_distinct_numeric_headers_keep_distinct_names(tmp_path: Path) -> None:
    # Shown at Excel's 15 digits both are 1.23456789012346E+15: they were one name, and its _1.
    header = [digits("1234567890123456"), digits("1234567890123457"), 0.3, digits("0.30000000000000004"), 7, 7]
    data = row(1, header) + row(2, [1, 2, 3, 4, 5, 6])
    table, _, _ = convert_one(write_xlsx(tmp_path / "headers.xlsx", [Sheet("S", data)]), tmp_path / "out")
    assert list(table) == ["1_234567890123456E+15", "1_234567890123457E+15", "0_3", "0_30000000000000004",
                           "7", "7_1"]  # the same number twice is one name twice: made unique as before


def iso(text: str) -> Raw:
    return Raw(f"<v>{text}</v>", ' t="d"')


def test_fractions_of_a_second_are_kept_in_text(tmp_path: Path) -> None:
    # A column made text by one cell shows the others as Excel does, but not at the cost of what they hold
    # (Excel's formats hold dates as serial numbers, read to the millisecond).
    data = row(1, ["at", "when", "spent"])
    data += row(2, [iso("10:10:10.125"), 45310.41194897, 10.5 / 86400], styles={1: 1, 2: 2})
    data += row(3, ["n/a", "n/a", "n/a"])
    data += row(4, [iso("10:10:10"), 45310.5, 250 + 10.5 / 86400], styles={1: 1, 2: 2})
    src = write_xlsx(tmp_path / "fractions.xlsx", [Sheet("S", data)], formats=["yyyy-mm-dd hh:mm:ss", "[h]:mm:ss"])
    table, _, _ = convert_one(src, tmp_path / "out")
    assert table == {"at": ["10:10:10.125", "n/a", "10:10:10"],
                     "when": ["2024-01-19 09:53:12.391", "n/a", "2024-01-19 12:00:00"],
                     "spent": ["0:00:10.5", "n/a", "6000:00:10.5"]}


def test_an_ods_time_with_microseconds_keeps_them_in_text(tmp_path: Path) -> None:
    # calamine's date.ods: 10:10:10.123456 in a column of mixed cells showed as 10:10:10.
    rows = [["at"], [dt.time(10, 10, 10, 123456)], ["n/a"], [dt.datetime(2021, 1, 1, 10, 10, 10, 500000)]]
    table, _, _ = convert_one(write_ods(tmp_path / "times.ods", {"S": rows}), tmp_path / "out")
    assert table == {"at": ["10:10:10.123456", "n/a", "2021-01-01 10:10:10.5"]}


@pytest.mark.parametrize("late", [False, True])
def test_a_date_formatted_number_past_9999_is_its_number(tmp_path: Path, late: bool) -> None:
    # ExcelDataReader's InvalidOADate (1E+12) and python-calamine's issue 139 (2994626, in 10098): the
    # date failed and the workbook was rejected as corrupt. ``late``: past the first rows, which a
    # column's type is read by, so the reader reads it as a date first.
    before = [row(r, [45000 + r], {0: 1}) for r in range(2, 1100 if late else 3)]
    data = row(1, ["when", "far"]) + "".join(before)
    at = 1100 if late else 3
    data += row(at, [2994626, 2994626], {0: 1, 1: 1}) + row(at + 1, [1.0e12, 1.0e12], {0: 1, 1: 1})
    src = write_xlsx(tmp_path / "far.xlsx", [Sheet("S", data)], formats=["yyyy-mm-dd"])
    table, types, _ = convert_one(src, tmp_path / "out")
    assert table["when"][-2:] == ["2994626", "1E+12"]  # beside dates: text, each as Excel would show it
    assert types["far"] == "int64" and table["far"][-2:] == [2994626, 10**12]
    if late:
        assert table["when"][0] == "2023-03-17"
