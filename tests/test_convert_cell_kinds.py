"""One read per sheet, on every kind of cell.

fastexcel converts each cell to its column's type and reports, with its original value, every cell
it could not convert (``to_arrow_with_errors``). The first test pins down, kind by kind, which cells
it reports and which it coerces silently under each type the converter reads with: the converter's
single read rests on exactly this table (``_reading.fastexcel``, ``_reading.counts``). The second puts
every kind of cell into a column of every other kind, among a sheet's first rows and after them: each
column must come out as the column rules say, in one read where the first rows show the mix, and exact
after them too (the scan's counts catch a silent coercion) but for one gap, named.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import logging
from pathlib import Path

import fastexcel
import pyarrow.parquet as pq
import pytest
import xlsxwriter
from xlsxwriter.utility import xl_col_to_name

from sheetdrop_step.converter import convert_workbook
from sheetdrop_step.converter._reading.fastexcel import FASTEXCEL_VERSIONS, original
from tests.workbooks.empty_text import typed_as_text

ROOT = Path(__file__).resolve().parent.parent
VALUES: dict[str, object] = {
    "number": 0.652027207027097, "text": "TBD", "numeric text": "00123", "bool": True,
    "datetime": dt.datetime(2021, 1, 2, 3, 4, 5), "date": dt.datetime(2021, 1, 2), "time": dt.time(9, 30),
    "duration": dt.timedelta(hours=250, minutes=10, seconds=10), "error": "#DIV/0!", "empty text": "",
}
TEXT = {"number": "0.652027207027097", "text": "TBD", "numeric text": "00123", "bool": "TRUE",
        "datetime": "2021-01-02 03:04:05", "date": "2021-01-02", "time": "09:30:00", "duration": "250:10:10"}
# The cell each kind is, as the converter represents it (kind, value).
CELLS = {"number": ("number", 0.652027207027097), "text": ("text", "TBD"), "numeric text": ("text", "00123"),
         "bool": ("bool", True), "datetime": ("datetime", VALUES["datetime"]), "date": ("datetime", VALUES["date"]),
         "time": ("datetime", dt.datetime(1899, 12, 31, 9, 30)), "duration": ("duration", VALUES["duration"]),
         "error": ("error", "Div0"), "empty text": ("text", "")}
# Under each type the converter reads with: native (its own kind), reported (with its exact value),
# silent (converted to the column's type without a word).
EXPECTED = {
    "float": {"number": "native", "text": "reported", "numeric text": "silent", "bool": "silent",
              "datetime": "reported", "date": "reported", "time": "reported", "duration": "reported",
              "error": "reported", "empty text": "reported"},
    "string": {"number": "silent", "text": "native", "numeric text": "native", "bool": "silent",
               "datetime": "silent", "date": "silent", "time": "silent", "duration": "silent",
               "error": "reported", "empty text": "native"},
    "boolean": {"number": "silent", "text": "reported", "numeric text": "reported", "bool": "native",
                "datetime": "reported", "date": "reported", "time": "reported", "duration": "reported",
                "error": "reported", "empty text": "reported"},
    "duration": {"number": "reported", "text": "reported", "numeric text": "reported", "bool": "reported",
                 "datetime": "silent", "date": "silent", "time": "silent", "duration": "native",
                 "error": "reported", "empty text": "reported"},
}
NATIVE = {"float": {"number"}, "string": {"text", "numeric text", "empty text"}, "boolean": {"bool"},
          "duration": {"duration"}}


def write(wb: xlsxwriter.Workbook, ws: object, r: int, c: int, kind: str) -> None:
    value = VALUES[kind]
    formats = {"datetime": "yyyy-mm-dd hh:mm:ss", "date": "yyyy-mm-dd", "time": "hh:mm:ss", "duration": "[h]:mm:ss"}
    if kind == "error":
        ws.write_formula(r, c, "=1/0", None, value)
    elif kind == "duration":
        ws.write_number(r, c, value.total_seconds() / 86400, wb.add_format({"num_format": formats[kind]}))
    elif kind in formats:
        ws.write_datetime(r, c, value, wb.add_format({"num_format": formats[kind]}))
    elif kind == "empty text":
        ws.write_formula(r, c, '=""', None, "")
    elif isinstance(value, str):
        ws.write_string(r, c, value)
    else:
        ws.write(r, c, value)


def test_the_installed_fastexcel_is_one_whose_error_details_the_converter_reads() -> None:
    # The error details are the text of Rust's Debug of calamine's values: a fastexcel outside the
    # range the parser was written for may word them otherwise. The step's requirements pin that range.
    low, high = FASTEXCEL_VERSIONS
    installed = tuple(int(part) for part in importlib.metadata.version("fastexcel").split(".")[:2])
    assert low <= installed < high, (installed, FASTEXCEL_VERSIONS)
    pins = [line.split("#")[0].strip() for line in (ROOT / "step" / "requirements.txt").read_text().splitlines()]
    assert f"fastexcel>={'.'.join(map(str, low))},<{'.'.join(map(str, high))}" in pins


def test_what_fastexcel_reports_under_each_type(tmp_path: Path) -> None:
    src = tmp_path / "kinds.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    for c, kind in enumerate(VALUES):
        write(wb, ws, 0, c, kind)
    wb.close()
    reader = fastexcel.read_excel(str(typed_as_text(src)))
    found: dict[str, dict[str, str]] = {}
    for dtype in EXPECTED:
        batch, errors = reader.load_sheet(0, header_row=None, dtypes=dtype).to_arrow_with_errors()
        reported = {e.position[1]: original(e.detail, False) for e in (errors.errors if errors else [])}
        found[dtype] = {}
        for c, kind in enumerate(VALUES):
            if c in reported:
                assert reported[c] == CELLS[kind], (dtype, kind)  # the original value, exactly
                found[dtype][kind] = "reported"
            else:
                assert batch.column(c)[0].is_valid, (dtype, kind)
                found[dtype][kind] = "native" if kind in NATIVE[dtype] else "silent"
    assert found == EXPECTED


BASES = ["number", "text", "bool", "datetime", "date", "time", "duration"]
INTRUDERS = ["number", "text", "numeric text", "bool", "datetime", "date", "time", "duration", "error"]
CLASS = {"numeric text": "text", "date": "datetime"}  # kinds that make one column type together
TYPES = {"number": "float64", "text": "string", "bool": "bool", "datetime": "timestamp", "time": "time",
         "duration": "duration"}
# After the first rows, a date column is read as serial days, which cannot tell a duration from a date;
# so is, when the sheet has to be read again, a text column (the first read took the cell as text).
GAPS = {(base, "duration") for base in ("datetime", "date", "time", "text")} | {
    ("duration", other) for other in ("datetime", "date", "time")}


def expected(base: str, intruder: str, at: int, rows: int) -> list[object]:
    if CLASS.get(base, base) == CLASS.get(intruder, intruder) or intruder == "error":
        typed = {"time": VALUES["time"]}.get(base, VALUES[base])
        column = [typed] * rows
        column[at] = None if intruder == "error" else {"time": VALUES["time"]}.get(intruder, VALUES[intruder])
        return column
    column = [TEXT[base]] * rows
    column[at] = TEXT[intruder]
    return column


@pytest.mark.parametrize(("at", "gaps"), [(2, set()), (1500, GAPS)])
def test_every_kind_in_a_column_of_every_other(tmp_path: Path, at: int, gaps: set[tuple[str, str]],
                                               caplog: pytest.LogCaptureFixture) -> None:
    rows = at + 3
    pairs = [(b, i) for b in BASES for i in INTRUDERS if b != i]
    src = tmp_path / "pairs.xlsx"
    wb = xlsxwriter.Workbook(src, {"constant_memory": True})
    ws = wb.add_worksheet()
    for c, (base, intruder) in enumerate(pairs):
        ws.write_string(0, c, f"{base} with {intruder}")
    for r in range(1, rows + 1):
        for c, (base, intruder) in enumerate(pairs):
            write(wb, ws, r, c, intruder if r - 1 == at else base)
    wb.close()
    with caplog.at_level(logging.INFO, logger="sheetdrop.convert"):
        out = convert_workbook(src, tmp_path / "out")[0]
    got = pq.read_table(out.path).to_pydict()
    wrong = set()
    for base, intruder in pairs:
        name = f"{base}_with_{intruder}".replace(" ", "_")
        if got[name] != expected(base, intruder, at, rows):
            wrong.add((base, intruder))
        elif intruder == "error":
            assert out.error_counts[name] == 1 and out.column_types[name] == TYPES[CLASS.get(base, base)]
    assert wrong == gaps
    notes = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    # Among the first rows every mix is seen before the read: one read. After them, the silent ones
    # (a boolean or numeric text among numbers, a number among text...) are caught by the counts, and
    # the columns that can hide one are read again: numbers, booleans, text holding what looks like a
    # rendered number, date or boolean.
    again = [xl_col_to_name(c) for c, (base, intruder) in enumerate(pairs) if base in ("number", "bool") or (
        base == "text" and intruder not in ("text", "error"))]
    assert notes == ([] if at < 1000 else [
        f"pairs.xlsx: sheet 'Sheet1': columns {', '.join(again)} read again with every cell checked: the first "
        "1000 rows did not show every kind of cell they hold"])
