"""A column of mixed kinds is text, each cell as Excel shows it at full precision: numbers in their
shortest form that reads back as the same number, cut to 15 significant digits (Excel's precision),
never ``-0``; booleans TRUE/FALSE; ``YYYY-MM-DD HH:MM:SS`` (``YYYY-MM-DD`` without a time; no ``T``,
in xlsx as in ods); times of day ``HH:MM:SS``; durations ``[h]:mm:ss``.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import zipfile
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xlsxwriter

from sheetdrop_step.converter import convert_workbook
from tests.workbooks.cells import write

CELLS = [  # (value written, text expected)
    (0.652027207027097, "0.652027207027097"),
    (6.02214076e-23, "6.02214076E-23"),
    (-0.0, "0"),
    (0.1 + 0.2, "0.3"),  # 0.30000000000000004: 17 significant digits, Excel keeps 15
    (1e20, "1E+20"),
    (123456789012345678, "1.23456789012346E+17"),
    (-1234.5, "-1234.5"),
    (7, "7"),
    (True, "TRUE"),
    (False, "FALSE"),
    ("00123", "00123"),
    (dt.datetime(2021, 1, 2, 3, 4, 5), "2021-01-02 03:04:05"),
    (dt.datetime(2021, 1, 2), "2021-01-02"),
    (dt.time(9, 30), "09:30:00"),
    (dt.timedelta(hours=250, minutes=10, seconds=10), "250:10:10"),
]


def test_every_kind_of_cell_in_a_text_column(tmp_path: Path) -> None:
    src = tmp_path / "mixed.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    ws.write_string(0, 0, "mixed")
    for r, (value, _) in enumerate(CELLS, start=1):
        write(ws, wb, r, 0, value)
    wb.close()
    out = convert_workbook(src, tmp_path / "out")[0]
    assert out.column_types == {"mixed": "string"}
    assert pq.read_table(out.path).to_pydict() == {"mixed": [text for _, text in CELLS]}


@pytest.mark.parametrize("where", [3, 1800])  # the text among the first rows, or after them
def test_a_numeric_column_with_one_text_cell_keeps_every_digit(tmp_path: Path, where: int,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "late.xlsx"
    wb = xlsxwriter.Workbook(src, {"constant_memory": True})
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["ratio", "n"])
    values = [r / 7 if r % 5 else r * 1e-25 for r in range(1, 2001)]
    for r, value in enumerate(values, start=1):
        ws.write_string(r, 0, "n/a") if r == where else ws.write_number(r, 0, value)
        ws.write_number(r, 1, r)
    wb.close()
    with caplog.at_level(logging.INFO, logger="sheetdrop.convert"):
        out = convert_workbook(src, tmp_path / "out")[0]
    got = pq.read_table(out.path).to_pydict()["ratio"]
    assert out.column_types == {"ratio": "string", "n": "int64"}
    assert got[where - 1] == "n/a"
    # The reference: the numbers the file holds (xlsxwriter writes 16 significant digits), as openpyxl reads them.
    held = [row[0] for row in openpyxl.load_workbook(src, read_only=True).active.iter_rows(min_row=2, values_only=True)]
    assert held[where - 1] == "n/a" and len(held) == len(values)
    for text, value in zip(got[:where - 1] + got[where:], held[:where - 1] + held[where:], strict=True):
        # At most 15 significant digits, and the number nearest to the value with 15: no digit lost.
        digits = text.split("E")[0].replace("-", "").replace(".", "").lstrip("0")
        assert len(digits) <= 15 and float(text) == float(f"{value:.15g}"), (text, value)
    assert "0.142857142857143" in got and "5E-25" in got
    # One read: no second parse for the mixed column; and the cell that made it text is named.
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [(
        "WARNING", f"warning: sheet 'Sheet1': column ratio (A) became text: 1 of 2000 cells is not a number "
                   f"(A{where + 1} 'n/a'); \"mixed_columns\": \"rescue\" keeps its type and moves them to "
                   "_rescued_data")]


def test_numbers_cut_to_15_digits_without_python_formatting_are_the_same() -> None:
    """``at_15_digits`` rounds with Arrow kernels where that provably gives what Python's correctly
    rounded formatting gives: numbers near a half at the 15th digit, near a power of ten, and beyond
    the exact powers of ten included."""
    from sheetdrop_step.converter._columns.text import at_15_digits

    rnd = random.Random(11)
    values = [1234567890123.125, -1234567890123.125, 0.1 + 0.2, 999999999999999.9, 9.999999999999999e5,
              1e15 - 1, 1e14 + 0.5, 123456789012345678.0, 6.02214076e-23, 0.652027207027097, 5e-324,
              1.7976931348623157e308, 0.0, -0.0, float("inf")]
    values += [rnd.random() * 10 ** rnd.randint(-40, 40) * rnd.choice((1, -1)) for _ in range(20_000)]
    values += [10.0 ** rnd.randint(-30, 30) * (1 + rnd.choice((1, -1)) * rnd.random() * 1e-13) for _ in range(2_000)]
    values += [(n + 0.5 + rnd.choice((1, -1)) * rnd.random() * 1e-3) / 10**9 for n in range(10**14, 10**14 + 2_000)]
    got = at_15_digits(pa.array(values, pa.float64())).to_pylist()
    assert [repr(v) for v in got] == [repr(float(f"{v:.15g}")) for v in values]


def _ods(path: Path, rows: list[list[str]]) -> Path:
    """An OpenDocument spreadsheet written by hand, with LibreOffice's date and float cells."""
    def cell(v: str) -> str:
        if v[:4].isdigit() and "-" in v:
            kind = f'office:value-type="date" office:date-value="{v}"'
        elif v.replace(".", "").isdigit():
            kind = f'office:value-type="float" office:value="{v}"'
        else:
            kind = 'office:value-type="string"'
        return f"<table:table-cell {kind}><text:p>{v}</text:p></table:table-cell>"

    body = "".join("<table:table-row>" + "".join(cell(v) for v in row) + "</table:table-row>" for row in rows)
    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        f'<office:body><office:spreadsheet><table:table table:name="Data">{body}</table:table>'
        "</office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("content.xml", content)
        z.writestr("META-INF/manifest.xml", manifest)
    return path


def test_ods_dates_in_a_text_column_have_no_t(tmp_path: Path) -> None:
    src = _ods(tmp_path / "d.ods", [["when", "day"], ["2021-03-04T05:06:07", "2021-03-04"], ["later", "2024-02-29"],
                                    ["1.5", "2000-01-01"]])
    out = convert_workbook(src, tmp_path / "out")[0]
    assert out.column_types == {"when": "string", "day": "timestamp"}
    assert pq.read_table(out.path).to_pydict() == {
        "when": ["2021-03-04 05:06:07", "later", "1.5"],
        "day": [dt.datetime(2021, 3, 4), dt.datetime(2024, 2, 29), dt.datetime(2000, 1, 1)],
    }
