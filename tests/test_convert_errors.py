"""Every error value is a null cell, counted; none rejects a workbook. Beyond the classic seven
(#DIV/0!, #N/A, #NAME?, #NULL!, #NUM!, #REF!, #VALUE!), Excel writes #SPILL!, #CALC!, #GETTING_DATA,
#FIELD!, #BLOCKED!, #CONNECT!, #BUSY! and #UNKNOWN! as error cells (t="e"): calamine 0.36 refuses
them in xlsx, and fastexcel's type inference refuses #NAME? (and, in xlsb, #GETTING_DATA).
"""

from __future__ import annotations

import datetime as dt
import logging
import zipfile
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pytest
import xlsxwriter

from sheetdrop_step.converter import convert_workbook
from tests.workbooks.make_xls import CellError as XlsError
from tests.workbooks.make_xls import write_xls
from tests.workbooks.make_xlsb import CellError as XlsbError
from tests.workbooks.make_xlsb import write_xlsb

CLASSIC = ["#DIV/0!", "#N/A", "#NAME?", "#NULL!", "#NUM!", "#REF!", "#VALUE!"]
NEWER = ["#SPILL!", "#CALC!", "#GETTING_DATA", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!"]


def error_workbook(path: Path, rows_before: int = 0) -> Path:
    """Each error value once, in turn in a column of numbers, of text and of dates, written as Excel
    writes them: cells of type "e" (xlsxwriter writes the newer ones as formula text: rewritten)."""
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("Data")
    day = wb.add_format({"num_format": "yyyy-mm-dd"})
    ws.write_row(0, 0, ["n", "label", "when"])
    for i in range(rows_before + len(CLASSIC + NEWER)):
        r, error = i + 1, (CLASSIC + NEWER)[i - rows_before] if i >= rows_before else None
        for col, value in enumerate([r, f"t{r}", dt.datetime(2020, 1, 1) + dt.timedelta(days=r)]):
            if error and col == i % 3:
                ws.write_formula(r, col, "=1/0", None, error)
            elif col == 2:
                ws.write_datetime(r, col, value, day)
            else:
                ws.write(r, col, value)
    wb.close()
    with zipfile.ZipFile(path) as z:
        parts = {i.filename: z.read(i.filename) for i in z.infolist()}
    parts["xl/worksheets/sheet1.xml"] = parts["xl/worksheets/sheet1.xml"].replace(b't="str"', b't="e"')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)
    return path


@pytest.mark.parametrize("rows_before", [0, 1500])  # errors among the first rows, and after them
def test_every_error_value_is_a_counted_null(tmp_path: Path, rows_before: int, caplog: pytest.LogCaptureFixture
                                             ) -> None:
    src = error_workbook(tmp_path / "errors.xlsx", rows_before)
    sheet = zipfile.ZipFile(src).read("xl/worksheets/sheet1.xml").decode()
    for error in CLASSIC + NEWER:
        assert f't="e"><f>1/0</f><v>{error}</v>' in sheet, error
    # The reference: openpyxl reads every error cell as its text.
    ref = list(openpyxl.load_workbook(src, data_only=True)["Data"].iter_rows(min_row=2, values_only=True))
    errors = {c: [r for r, row in enumerate(ref) if row[c] in CLASSIC + NEWER] for c in range(3)}
    assert sorted(row[c] for c in range(3) for row in ref if row[c] in CLASSIC + NEWER) == sorted(CLASSIC + NEWER)
    with caplog.at_level(logging.INFO, logger="sheetdrop.convert"):
        out = convert_workbook(src, tmp_path / "out")[0]
    got = pq.read_table(out.path).to_pydict()
    assert out.column_types == {"n": "int64", "label": "string", "when": "timestamp"}
    assert out.error_counts == {"n": len(errors[0]), "label": len(errors[1]), "when": len(errors[2])}
    assert out.errors == len(CLASSIC + NEWER)
    for c, name in enumerate(["n", "label", "when"]):
        assert [r for r, v in enumerate(got[name]) if v is None] == errors[c], name
        assert [v for r, v in enumerate(got[name]) if r not in errors[c]] == [
            row[c] for r, row in enumerate(ref) if r not in errors[c]]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        "errors.xlsx: sheet 'Data': 8 error values the reader does not know read as #N/A"]


def test_error_cells_in_xlsb_and_xls(tmp_path: Path) -> None:
    rows = [["n", "label"], [1, "a"], [XlsbError("#NAME?"), "b"], [3, XlsbError("#GETTING_DATA")],
            [XlsbError("#N/A"), "d"]]
    out = convert_workbook(write_xlsb(tmp_path / "e.xlsb", {"S": rows}), tmp_path / "b")[0]
    assert pq.read_table(out.path).to_pydict() == {"n": [1, None, 3, None], "label": ["a", "b", None, "d"]}
    assert out.error_counts == {"n": 2, "label": 1}
    rows = [["n", "label"], [1, "a"], [XlsError("#NAME?"), "b"], [3, XlsError("#REF!")], [XlsError("#NULL!"), "d"]]
    out = convert_workbook(write_xls(tmp_path / "e.xls", {"S": rows}), tmp_path / "s")[0]
    assert pq.read_table(out.path).to_pydict() == {"n": [1, None, 3, None], "label": ["a", "b", None, "d"]}
    assert out.error_counts == {"n": 2, "label": 1}
