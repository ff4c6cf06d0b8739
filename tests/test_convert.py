"""The converter's rules (issue 4), each on a small workbook built here."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import xlsxwriter

from sheetdrop_contract import contract
from sheetdrop_step.converter import CONVERTER_VERSION, convert_workbook

FIXTURES = Path(__file__).resolve().parent / "workbooks"


def read(path: Path) -> dict[str, list]:
    return pq.read_table(path).to_pydict()


def types_of(path: Path) -> dict[str, str]:
    import json

    return json.loads(pq.read_schema(path).metadata[b"sheetdrop.column_types"])


def one(outputs):
    assert len(outputs) == 1
    return outputs[0]


# ---------------------------------------------------------------- types


def test_column_types_and_values_round_trip_against_openpyxl(tmp_path: Path) -> None:
    src = tmp_path / "types.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet("Data")
    dfmt = wb.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    tfmt = wb.add_format({"num_format": "hh:mm:ss"})
    ws.write_row(0, 0, ["ints", "floats", "ids", "amounts", "when", "at", "ok", "calc"])
    data = [
        (1, 1.0, "00123", 10, dt.datetime(2020, 1, 2, 3, 4), dt.time(1, 30), True, 2),
        (2, 2.5, "456", "n/a", dt.datetime(2021, 6, 7), dt.time(12, 0), False, 4),
        (-3, -0.125, "0007", 12.5, dt.datetime(1999, 12, 31, 23, 59), dt.time(23, 59, 59), True, 6),
    ]
    for r, (i, f, ident, amount, when, at, ok, calc) in enumerate(data, start=1):
        ws.write_number(r, 0, i)
        ws.write_number(r, 1, f)
        ws.write_string(r, 2, ident)
        ws.write(r, 3, amount)
        ws.write_datetime(r, 4, when, dfmt)
        ws.write_datetime(r, 5, at, tfmt)
        ws.write_boolean(r, 6, ok)
        ws.write_formula(r, 7, f"=A{r + 1}*2", None, calc * 1)
    wb.close()

    out = one(convert_workbook(src, tmp_path / "out"))
    assert out.column_types == {
        "ints": "int64", "floats": "float64", "ids": "string", "amounts": "string",
        "when": "timestamp", "at": "time", "ok": "bool", "calc": "int64",
    }
    got = read(out.path)
    # Reference: openpyxl's reading of the same cells, under the documented rules.
    ref = list(openpyxl.load_workbook(src, data_only=True)["Data"].iter_rows(min_row=2, values_only=True))
    expected_amounts = [str(v) if not isinstance(v, float) or not v.is_integer() else str(int(v)) for v in
                        (row[3] for row in ref)]
    assert got["ints"] == [row[0] for row in ref]
    assert got["floats"] == [row[1] for row in ref]
    assert got["ids"] == ["00123", "456", "0007"]  # leading zeros survive
    assert got["amounts"] == expected_amounts == ["10", "n/a", "12.5"]
    assert got["when"] == [row[4] for row in ref]
    assert got["at"] == [row[5] for row in ref]
    assert got["ok"] == [row[6] for row in ref]
    assert got["calc"] == [row[7] for row in ref] == [2, 4, 6]  # cached formula values


def test_text_at_row_90000_makes_the_column_text(tmp_path: Path) -> None:
    src = tmp_path / "late.xlsx"
    wb = xlsxwriter.Workbook(src, {"constant_memory": True})
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["n", "code"])
    for r in range(1, 90_001):
        ws.write_number(r, 0, r)
        if r == 90_000:
            ws.write_string(r, 1, "X-17")
        else:
            ws.write_number(r, 1, r * 10)
    wb.close()
    out = one(convert_workbook(src, tmp_path / "out"))
    assert out.column_types == {"n": "int64", "code": "string"}
    assert out.rows == 90_000
    got = read(out.path)
    assert got["code"][89_999] == "X-17"  # neither lost nor nulled
    assert got["code"][0] == "10"
    assert out.nulls == 0


def test_boolean_in_a_numeric_column_makes_it_text(tmp_path: Path) -> None:
    # calamine would silently read TRUE as 1.0 there.
    src = tmp_path / "b.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["v", "flag"])
    ws.write_column(1, 0, [1.5, 2, True])
    ws.write_column(1, 1, [True, False, True])
    wb.close()
    out = one(convert_workbook(src, tmp_path / "out"))
    assert out.column_types == {"v": "string", "flag": "bool"}
    assert read(out.path)["v"] == ["1.5", "2", "TRUE"]  # as Excel shows it


def test_booleans_in_text_columns_show_as_excel_does(tmp_path: Path) -> None:
    # In a text column calamine turns TRUE into "true", which looks like a typed word;
    # a real boolean must read TRUE/FALSE while a typed "true" stays as typed.
    src = tmp_path / "t.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    columns = {
        "mixed": [1.5, "x", True, "true", 2, False],
        "words": ["s", "t", True, "u", "v", "w"],
        "n": [1, 2, 3, 4, 5, 6],
        "flags": [True, False, "x", True, True, True],
    }
    for j, (name, values) in enumerate(columns.items()):
        ws.write(0, j, name)
        ws.write_column(1, j, values)
    wb.close()
    out = one(convert_workbook(src, tmp_path / "out"))
    got = read(out.path)
    assert out.column_types == {"mixed": "string", "words": "string", "n": "int64", "flags": "string"}
    assert got["mixed"] == ["1.5", "x", "TRUE", "true", "2", "FALSE"]
    assert got["words"] == ["s", "t", "TRUE", "u", "v", "w"]
    assert got["flags"] == ["TRUE", "FALSE", "x", "TRUE", "TRUE", "TRUE"]
    ref = [row[0] for row in openpyxl.load_workbook(src).active.iter_rows(min_row=2, values_only=True)]
    assert [str(v).upper() if isinstance(v, bool) else str(v) for v in ref] == got["mixed"]


def test_1904_date_system(tmp_path: Path) -> None:
    src = tmp_path / "mac.xlsx"
    wb = xlsxwriter.Workbook(src, {"date_1904": True})
    ws = wb.add_worksheet()
    fmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    ws.write(0, 0, "day")
    days = [dt.datetime(1904, 1, 5), dt.datetime(2023, 12, 24), dt.datetime(2000, 2, 29)]
    for r, d in enumerate(days, start=1):
        ws.write_datetime(r, 0, d, fmt)
    wb.close()
    assert "<v>" in zipfile.ZipFile(src).read("xl/worksheets/sheet1.xml").decode()
    out = one(convert_workbook(src, tmp_path / "out"))
    assert out.column_types == {"day": "timestamp"}
    assert read(out.path)["day"] == days
    ref = [r[0] for r in openpyxl.load_workbook(src).active.iter_rows(min_row=2, values_only=True)]
    assert ref == days


def test_error_cells_become_null_and_are_counted(tmp_path: Path) -> None:
    src = tmp_path / "err.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["ratio", "label"])
    ws.write_number(1, 0, 0.5)
    ws.write_formula(2, 0, "=1/0", None, "#DIV/0!")
    ws.write_formula(3, 0, "=NA()", None, "#N/A")
    ws.write_number(4, 0, 0.25)
    ws.write_column(1, 1, ["a", "b", "c"])
    ws.write_formula(4, 1, '=VLOOKUP("z",A1:A2,1,0)', None, "#N/A")
    wb.close()
    out = one(convert_workbook(src, tmp_path / "out"))
    got = read(out.path)
    assert got["ratio"] == [0.5, None, None, 0.25]
    assert got["label"] == ["a", "b", "c", None]
    assert out.column_types == {"ratio": "float64", "label": "string"}
    assert out.errors == 3
    assert out.error_counts == {"ratio": 2, "label": 1}
    meta = pq.read_schema(out.path).metadata
    assert meta[b"sheetdrop.errors"] == b'{"ratio": 2, "label": 1}'
    assert meta[b"sheetdrop.nulls"] == b'{"ratio": 2, "label": 1}'


def test_column_rules_unit() -> None:
    import pyarrow as pa

    from sheetdrop_step.converter._columns.cells import ColumnRead
    from sheetdrop_step.converter._columns.rules import finish_column

    assert finish_column(ColumnRead(0, pa.array([1.0, None, 3.0]), "number"), False).type == "int64"
    # Whole doubles past 2**53 are the whole numbers they hold: int64 while it holds them, text past it.
    done = finish_column(ColumnRead(0, pa.array([1.0, 2**60 * 1.0]), "number"), False)
    assert (done.type, done.array.to_pylist()) == ("int64", [1, 2**60])
    done = finish_column(ColumnRead(0, pa.array([1.0, 2**64 * 1.0]), "number"), False)
    assert (done.type, done.array.to_pylist()) == ("string", ["1", "1.84467440737096E+19"])
    assert finish_column(ColumnRead(0, pa.array([0.5, 2**64 * 1.0]), "number"), False).type == "float64"
    assert finish_column(ColumnRead(0, pa.array([None, None], pa.null()), None), False).type == "string"
    done = finish_column(ColumnRead(0, pa.array(["", "x", None]), "text"), False)
    assert (done.type, done.array.to_pylist()) == ("string", [None, "x", None])


# ---------------------------------------------------------------- table shape


def test_header_rules(tmp_path: Path) -> None:
    src = tmp_path / "shape.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    # Data starts at C3: two empty rows and two empty columns before it.
    header = ["  Name ", None, "amount", "Amount", "a;b (c)", "amount"]
    for j, h in enumerate(header):
        ws.cell(row=3, column=3 + j, value=h)
    ws.cell(row=4, column=3, value="x")
    ws.cell(row=4, column=4, value=1)
    ws.cell(row=5, column=3, value="y")
    ws.cell(row=5, column=8, value=2)
    ws.cell(row=9, column=3).number_format = "0.00"  # formatted but empty: not data
    wb.save(src)
    out = one(convert_workbook(src, tmp_path / "out"))
    got = read(out.path)
    assert list(got) == ["Name", "column_D", "amount", "Amount_1", "a_b_c", "amount_2"]
    assert out.rows == 2  # trailing empty rows dropped
    assert got["Name"] == ["x", "y"]
    assert got["column_D"] == [1, None]
    assert got["amount_2"] == [None, 2]


def test_sheets_hidden_empty_chart_and_slugs(tmp_path: Path) -> None:
    src = tmp_path / "sheets.xlsx"
    wb = xlsxwriter.Workbook(src)
    a = wb.add_worksheet("Sales 2024")
    a.write_column(0, 0, ["v", 1, 2])
    b = wb.add_worksheet("sales-2024")
    b.write_column(0, 0, ["w", 3])
    wb.add_worksheet("Empty")
    h = wb.add_worksheet("Hidden")
    h.write_column(0, 0, ["h", 9])
    h.hide()
    chart = wb.add_chart({"type": "line"})
    chart.add_series({"values": "='Sales 2024'!$A$2:$A$3"})
    wb.add_chartsheet("Chart").set_chart(chart)
    wb.close()

    outs = convert_workbook(src, tmp_path / "out")
    assert [(o.sheet, o.slug) for o in outs] == [("Sales 2024", "sales_2024"), ("sales-2024", "sales_2024_2")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["sales_2024.parquet", "sales_2024_2.parquet"]

    with_hidden = convert_workbook(src, tmp_path / "all", include_hidden=True)
    assert [o.sheet for o in with_hidden] == ["Sales 2024", "sales-2024", "Hidden"]
    assert read(with_hidden[2].path) == {"h": [9]}


def test_sheets_parsed_in_a_thread_pool_match_one_by_one(tmp_path: Path, caplog) -> None:
    # Multi-sheet workbooks are read by one child with a thread per core; outputs, sheet
    # order and skip logging must be those of reading the sheets one after the other.
    src = tmp_path / "many.xlsx"
    wb = xlsxwriter.Workbook(src)
    for n in range(5):
        ws = wb.add_worksheet(f"S{n}")
        if n == 2:
            continue  # empty: skipped in the middle of the pool's work
        ws.write_row(0, 0, ["id", "when", "flag", "note"])
        for r in range(1, 200 * (n + 1)):
            ws.write_row(r, 0, [r * (n + 1), dt.datetime(2024, 1, 1) + dt.timedelta(days=r), r % 2 == 0, f"n{r % 7}"])
        if n == 3:
            ws.write(5, 0, "text among numbers")  # a mixed column: the second read, in a pool thread
    wb.close()

    outputs = {}
    logs = {}
    for workers in (1, 3):
        caplog.clear()
        with caplog.at_level("INFO", logger="sheetdrop.convert"):
            outputs[workers] = convert_workbook(src, tmp_path / f"w{workers}", workers=workers)
        logs[workers] = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert [o.sheet for o in outputs[3]] == ["S0", "S1", "S3", "S4"]
    assert logs[3] == logs[1] == ["skipped sheet 'S2' of many.xlsx: empty"]
    for one_by_one, pooled in zip(outputs[1], outputs[3], strict=True):
        assert (one_by_one.slug, one_by_one.column_types) == (pooled.slug, pooled.column_types)
        assert one_by_one.path.read_bytes() == pooled.path.read_bytes()
    assert outputs[3][2].column_types["id"] == "string"


def test_sheet_names_follow_the_one_naming_rule() -> None:
    assert contract.slug("Ventes Été / 2024", "sheet") == "ventes_ete_2024"
    assert contract.slug("???", "sheet") == "sheet"


# ---------------------------------------------------------------- determinism, metadata, script


def test_reruns_are_byte_identical_and_carry_metadata(tmp_path: Path) -> None:
    src = tmp_path / "d.xlsx"
    wb = xlsxwriter.Workbook(src)
    for name in ("One", "Two"):
        ws = wb.add_worksheet(name)
        ws.write_row(0, 0, ["a", "b"])
        ws.write_row(1, 0, [1, "x"])
        ws.write_row(2, 0, [2.5, "y"])
    wb.close()
    first = convert_workbook(src, tmp_path / "o1", source="input/sales/d.xlsx")
    second = convert_workbook(src, tmp_path / "o2", source="input/sales/d.xlsx")
    for a, b in zip(first, second, strict=True):
        assert a.path.read_bytes() == b.path.read_bytes()
    meta = pq.read_schema(first[1].path).metadata
    assert meta[b"sheetdrop.source"] == b"input/sales/d.xlsx"
    assert meta[b"sheetdrop.sheet"] == b"Two"
    assert meta[b"sheetdrop.converter_version"] == CONVERTER_VERSION.encode()
    assert types_of(first[1].path) == {"a": "float64", "b": "string"}


def test_script_mode_success_and_rejection(tmp_path: Path) -> None:
    src = tmp_path / "ok.xlsx"
    wb = xlsxwriter.Workbook(src)
    wb.add_worksheet().write_column(0, 0, ["a", 1])
    wb.close()
    ok = subprocess.run([sys.executable, "-m", "sheetdrop_step", src, tmp_path / "out"], capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "out" / "sheet1.parquet").exists()

    bad = tmp_path / "bad.xlsx"
    bad.write_text("a,b\n1,2\n")
    rej = subprocess.run([sys.executable, "-m", "sheetdrop_step", bad, tmp_path / "o2"], capture_output=True,
                         text=True)
    assert rej.returncode != 0
    assert rej.stderr.count("\n") == 1
    assert rej.stderr.startswith("error: not-a-workbook: ")
    assert not (tmp_path / "o2").exists()


# ---------------------------------------------------------------- ODS booleans


def _ods(path: Path, rows: list[list]) -> Path:
    """A minimal OpenDocument spreadsheet, written by hand: no library here writes ODS.

    Booleans are stored the way LibreOffice stores a typed TRUE/FALSE
    (``office:value-type="boolean"``).
    """
    def cell(v) -> str:
        if isinstance(v, bool):
            return (f'<table:table-cell office:value-type="boolean" office:boolean-value="{str(v).lower()}">'
                    f"<text:p>{str(v).upper()}</text:p></table:table-cell>")
        if isinstance(v, int | float):
            return (f'<table:table-cell office:value-type="float" office:value="{v}">'
                    f"<text:p>{v}</text:p></table:table-cell>")
        return f'<table:table-cell office:value-type="string"><text:p>{v}</text:p></table:table-cell>'

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


def test_ods_booleans_become_bool_and_show_as_excel_does_in_text(tmp_path: Path) -> None:
    src = _ods(tmp_path / "b.ods", [
        ["flag", "n", "mix", "word"],
        [True, 1, 1.5, "true"],
        [False, 2, True, "x"],
        [True, 3, "x", False],
    ])
    out = one(convert_workbook(src, tmp_path / "out"))
    assert out.column_types == {"flag": "bool", "n": "int64", "mix": "string", "word": "string"}
    got = read(out.path)
    assert got["flag"] == [True, False, True]  # bool, not 1/0
    assert got["mix"] == ["1.5", "TRUE", "x"]
    assert got["word"] == ["true", "x", "FALSE"]  # the typed word stays as typed
