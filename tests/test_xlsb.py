""".xlsb conversion, on workbooks written by tests/workbooks/make_xlsb.py (nothing else here writes .xlsb).

References: the Python values handed to ``write_xlsb``, and pyxlsb's reading of the same
file (a second, independent BIFF12 parser) when it is installed.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import struct
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sheetdrop_step.converter import Limits, WorkbookRejected, convert_workbook
from tests.workbooks.make_xlsb import (
    BRT_BEGIN_BOOK,
    SAMPLE_HEADER,
    SAMPLE_ROWS,
    SAMPLE_SECOND_ROWS,
    SAMPLE_SECOND_SHEET,
    CellError,
    record,
    rk_number,
    sample_sheets,
    write_xlsb,
)

FIXTURE = Path(__file__).resolve().parent / "workbooks" / "sample.xlsb"

SAMPLE_TYPES = {
    "id": "int64", "amount": "float64", "code": "string", "when": "timestamp", "ok": "bool", "ratio": "float64",
}


def read(path: Path) -> dict[str, list]:
    return pq.read_table(path).to_pydict()


def column(rows: list[list], header: list[str], name: str) -> list:
    i = header.index(name)
    return [row[i] for row in rows]


def expected_sample() -> dict[str, list]:
    """The fixture's values as written, under the column rules (error cells → null)."""
    return {
        name: [None if isinstance(v, CellError) else v for v in column(SAMPLE_ROWS, SAMPLE_HEADER, name)]
        for name in SAMPLE_HEADER
    }


# ---------------------------------------------------------------- the writer itself


def test_record_header_encoding() -> None:
    # Type and size are 7 bits a byte with a continuation bit ([MS-XLSB] 2.1.4).
    assert record(BRT_BEGIN_BOOK) == b"\x83\x01\x00"  # type 131 takes two bytes
    assert record(0, b"x" * 200)[:3] == b"\x00\xc8\x01"  # size 200 takes two bytes
    assert len(record(5, b"\0" * 20_000)) == 1 + 3 + 20_000


@pytest.mark.parametrize("value", [0, 1, -1, 2**29 - 1, -(2**29), 1.5, -0.125, 2.25, 0.1, 44197.0, 2.0**40])
def test_rk_numbers_decode_to_the_value_written(value: float) -> None:
    rk = rk_number(value)
    assert rk is not None
    # Decoded as [MS-XLSB] 2.5.122 says (and calamine/pyxlsb do): bit 1 integer, bit 0 divide by 100.
    if rk & 2:
        decoded = float(struct.unpack("<i", struct.pack("<I", rk))[0] >> 2)
    else:
        decoded = struct.unpack("<d", struct.pack("<Q", (rk & 0xFFFFFFFC) << 32))[0]
    if rk & 1:
        decoded /= 100
    assert decoded == value


def test_numbers_without_an_exact_rk_form_have_none() -> None:
    assert rk_number(3.141592653589793) is None
    assert rk_number(2**29) & 2 == 0  # beyond the 30-bit integers: the truncated-double form
    assert rk_number(40_000_000_000) is None


def test_committed_fixture_is_what_make_xlsb_writes(tmp_path: Path) -> None:
    # Deterministic bytes: a stale or hand-edited fixture shows up here.
    fresh = write_xlsb(tmp_path / "sample.xlsb", sample_sheets())
    assert fresh.read_bytes() == FIXTURE.read_bytes(), "run python tests/workbooks/make_xlsb.py"


# ---------------------------------------------------------------- the committed fixture


def test_sample_xlsb_converts_by_the_column_rules(tmp_path: Path) -> None:
    outs = convert_workbook(FIXTURE, tmp_path / "out")
    assert [(o.sheet, o.slug) for o in outs] == [("Data", "data"), (SAMPLE_SECOND_SHEET, "notes_ete")]
    data, notes = outs

    assert data.column_types == SAMPLE_TYPES
    got = read(data.path)
    assert got == expected_sample()
    assert got["code"][:2] == ["00123", "00456"]  # leading zeros survive
    assert got["id"][-1] == 40_000_000_000  # a BrtCellReal holding a whole number is still an integer
    assert got["when"][0] == dt.datetime(2021, 3, 4, 5, 6, 7)  # to the second
    assert data.rows == len(SAMPLE_ROWS)
    assert data.errors == 1 and data.error_counts["ratio"] == 1  # the #DIV/0! cell
    assert data.null_counts["ratio"] == 1
    meta = pq.read_schema(data.path).metadata
    assert json.loads(meta[b"sheetdrop.column_types"]) == SAMPLE_TYPES
    assert meta[b"sheetdrop.sheet"] == b"Data"

    # Second sheet: an empty row inside the data stays a row of nulls.
    assert notes.column_types == {"note": "string", "n": "int64"}
    assert read(notes.path) == {"note": ["first", None, "third"], "n": [10, None, 30]}
    assert [r[0] for r in SAMPLE_SECOND_ROWS[1:]] == ["first", None, "third"]


def test_sample_xlsb_reads_the_same_in_pyxlsb(tmp_path: Path) -> None:
    pyxlsb = pytest.importorskip("pyxlsb")
    with pyxlsb.open_workbook(str(FIXTURE)) as wb:
        assert wb.sheets == ["Data", SAMPLE_SECOND_SHEET]
        with wb.get_sheet("Data") as sheet:
            rows = [[cell.v for cell in row] for row in sheet.rows()]
    # pyxlsb reads no styles: numbers (all as float), dates as serials, errors as their hex code.
    assert rows[0] == SAMPLE_HEADER
    body = rows[1:]
    expected = expected_sample()
    assert column(body, SAMPLE_HEADER, "id") == [float(v) for v in expected["id"]]
    assert column(body, SAMPLE_HEADER, "amount") == expected["amount"]
    assert column(body, SAMPLE_HEADER, "code") == expected["code"]
    assert column(body, SAMPLE_HEADER, "ok") == expected["ok"]
    assert column(body, SAMPLE_HEADER, "ratio") == [0.5, "0x7", 0.25, 1.75]  # 0x07 is #DIV/0!
    when = [pyxlsb.convert_date(v) for v in column(body, SAMPLE_HEADER, "when")]
    assert [w.replace(microsecond=0) + dt.timedelta(seconds=round(w.microsecond / 1e6)) for w in when] == (
        expected["when"]
    )
    # And the converter's parquet agrees with pyxlsb, value for value.
    got = read(convert_workbook(FIXTURE, tmp_path / "out")[0].path)
    assert [float(v) for v in got["id"]] == column(body, SAMPLE_HEADER, "id")
    assert got["amount"] == column(body, SAMPLE_HEADER, "amount")
    assert got["code"] == column(body, SAMPLE_HEADER, "code")


def test_renamed_xlsb_still_converts_format_from_content(tmp_path: Path) -> None:
    renamed = tmp_path / "upload.xlsx"
    shutil.copy(FIXTURE, renamed)
    outs = convert_workbook(renamed, tmp_path / "out")
    assert [o.sheet for o in outs] == ["Data", SAMPLE_SECOND_SHEET]
    assert outs[0].column_types == SAMPLE_TYPES
    assert read(outs[0].path) == expected_sample()


# ---------------------------------------------------------------- workbooks written here


def test_xlsb_written_here_mixed_times_inline_text_errors_and_hidden(tmp_path: Path) -> None:
    sheets = {
        "Mixed": [
            ["mixed", "words", "n", "at", "label", "big"],
            [1.5, "s", 1, dt.time(1, 30), "a", 2**40],
            ["x", "t", 2, dt.time(12, 0), CellError("#N/A"), 2.0**40 + 0.5],
            [True, True, 3, dt.time(23, 59, 59), "c", -7],
            ["true", "u", -(2**29), dt.time(0, 0, 1), "d", 0.1],
            [2, "v", 2**29, dt.time(6, 0), "", 1e-3],
            [False, "w", 6, dt.time(18, 15), "f", CellError("#VALUE!")],
        ],
        "Secret": [["h"], [9]],
    }
    src = write_xlsb(tmp_path / "here.xlsb", sheets, inline_strings=True, hidden=["Secret"])
    outs = convert_workbook(src, tmp_path / "out")
    assert [o.sheet for o in outs] == ["Mixed"]  # the hidden sheet is skipped
    out = outs[0]
    assert out.column_types == {
        "mixed": "string", "words": "string", "n": "int64", "at": "time", "label": "string", "big": "float64",
    }
    got = read(out.path)
    # Mixed text: numbers without ".0", booleans as Excel shows them, a typed "true" as typed.
    assert got["mixed"] == ["1.5", "x", "TRUE", "true", "2", "FALSE"]
    assert got["words"] == ["s", "t", "TRUE", "u", "v", "w"]
    assert got["n"] == [1, 2, 3, -(2**29), 2**29, 6]  # RK integers and, beyond 30 bits, BrtCellReal
    assert got["at"] == [dt.time(1, 30), dt.time(12, 0), dt.time(23, 59, 59), dt.time(0, 0, 1),
                         dt.time(6, 0), dt.time(18, 15)]
    assert got["label"] == ["a", None, "c", "d", None, "f"]  # error and empty text → null
    assert got["big"] == [2.0**40, 2.0**40 + 0.5, -7.0, 0.1, 1e-3, None]
    assert out.error_counts == {"mixed": 0, "words": 0, "n": 0, "at": 0, "label": 1, "big": 1}

    both = convert_workbook(src, tmp_path / "all", include_hidden=True)
    assert [o.sheet for o in both] == ["Mixed", "Secret"]
    assert read(both[1].path) == {"h": [9]}


def test_xlsb_1904_dates(tmp_path: Path) -> None:
    days = [dt.datetime(1904, 1, 5, 1), dt.datetime(2023, 12, 24, 0, 30), dt.datetime(2000, 2, 29, 12)]
    src = write_xlsb(tmp_path / "mac.xlsb", {"S": [["day"], *[[d] for d in days]]}, date1904=True)
    out = convert_workbook(src, tmp_path / "out")[0]
    assert out.column_types == {"day": "timestamp"}
    assert read(out.path)["day"] == days


def test_xlsb_whole_day_dates_as_real_are_timestamps(tmp_path: Path) -> None:
    days = [dt.date(2021, 3, 4), dt.date(1999, 12, 31)]
    src = write_xlsb(tmp_path / "d.xlsb", {"S": [["day"], *[[d] for d in days]]})
    out = convert_workbook(src, tmp_path / "out")[0]
    assert out.column_types == {"day": "timestamp"}
    assert read(out.path)["day"] == [dt.datetime(d.year, d.month, d.day) for d in days]


# ---------------------------------------------------------------- known gaps (strict: a fix turns them red)


def test_xlsb_1904_times_of_day_are_times(tmp_path: Path) -> None:
    src = write_xlsb(tmp_path / "t.xlsb", {"S": [["at"], [dt.time(1, 30)], [dt.time(12, 0)]]}, date1904=True)
    out = convert_workbook(src, tmp_path / "out")[0]
    assert out.column_types == {"at": "time"}


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "calamine reads a BrtCellRk integer (fX100=0) as Int without looking at the cell's number format, "
    "so a date-formatted whole-day serial stored that way is an int64 column"
))
def test_xlsb_whole_day_dates_stored_as_rk_integers_are_timestamps(tmp_path: Path) -> None:
    days = [dt.date(2021, 3, 4), dt.date(1999, 12, 31)]
    src = write_xlsb(tmp_path / "rk.xlsb", {"S": [["day"], *[[d] for d in days]]}, rk_dates=True)
    out = convert_workbook(src, tmp_path / "out")[0]
    assert out.column_types == {"day": "timestamp"}


def test_xlsb_sheet_area_is_held_to_max_cells(tmp_path: Path) -> None:
    rows = [["a", *[None] * 25], *[[None] * 25 + [i] for i in range(1, 100)]]  # A1:Z100, 2,600 cells
    src = write_xlsb(tmp_path / "area.xlsb", {"S": rows})
    try:
        convert_workbook(src, tmp_path / "out", limits=Limits(max_cells=100))
    except WorkbookRejected as exc:
        assert exc.code == "too-large"
    else:
        raise AssertionError("a 2,600-cell sheet passed a 100-cell limit")


def test_xlsb_far_corner_cell_is_too_large_not_a_crash(tmp_path: Path) -> None:
    # The dense range up to XFD1048576 cannot be allocated: the reader's memory limit turns that into a rejection.
    rows: list[list] = [["a", "b"], *[[]] * 1_048_574, [*[None] * 16_383, 1]]
    src = write_xlsb(tmp_path / "far.xlsb", {"S": rows})
    with pytest.raises(WorkbookRejected) as info:
        convert_workbook(src, tmp_path / "out")
    assert info.value.code == "too-large"
    assert not (tmp_path / "out").exists()


def test_xlsb_records_are_read_only_as_far_as_needed() -> None:
    from sheetdrop_step.converter._reading import xlsb
    from tests.workbooks.make_xlsb import BRT_WB_PROP, BRT_WS_DIM, record

    prop = record(BRT_WB_PROP, struct.pack("<II", 1, 0))
    assert xlsb.date1904(prop) is True
    assert xlsb.date1904(prop[:-1]) is False  # an incomplete record is not guessed at
    dim = record(BRT_WS_DIM, struct.pack("<IIII", 0, 1_048_575, 0, 16_383))
    assert xlsb.sheet_area(dim) == 1_048_576 * 16_384


def test_xlsb_sheet_part_with_an_unsupported_compression_method_is_corrupt(tmp_path: Path) -> None:
    import zipfile

    from sheetdrop_step.converter._safety.parts import QUICK_ENTRY_BYTES

    # A sheet part above the quick-check size (so only the xlsb head check opens it), then its
    # compression method patched to deflate64 (9), which zipfile cannot read.
    src = zipfile.ZipFile(FIXTURE)
    path = tmp_path / "deflate64.xlsb"
    with zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.startswith("xl/worksheets/"):
                out.writestr(zipfile.ZipInfo(info.filename), data + b"\0" * (QUICK_ENTRY_BYTES + 10))
            else:
                out.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    raw = bytearray(path.read_bytes())
    for info in zipfile.ZipFile(path).infolist():
        if info.filename.startswith("xl/worksheets/"):
            raw[info.header_offset + 8:info.header_offset + 10] = struct.pack("<H", 9)
    central = raw.find(b"PK\x01\x02")
    while central != -1:
        name_len = struct.unpack_from("<H", raw, central + 28)[0]
        if bytes(raw[central + 46:central + 46 + name_len]).startswith(b"xl/worksheets/"):
            raw[central + 10:central + 12] = struct.pack("<H", 9)
        central = raw.find(b"PK\x01\x02", central + 4)
    path.write_bytes(raw)
    with pytest.raises(WorkbookRejected) as rejected:
        convert_workbook(path, tmp_path / "out")
    assert rejected.value.code == "corrupt"
    assert not (tmp_path / "out").exists()
