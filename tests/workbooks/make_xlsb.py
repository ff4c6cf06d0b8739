"""A small XLSB (BIFF12, [MS-XLSB]) writer for test fixtures, and the committed ``sample.xlsb``.

No tool on this machine writes .xlsb (LibreOffice cannot export it, and no Python
library does), so the converter's .xlsb path would otherwise go untested. This
writes the smallest package the readers accept: the record ids and payload
layouts follow [MS-XLSB] and were checked against what calamine (the converter's
reader, through fastexcel) and pyxlsb actually parse.

Honest limits: Excel itself has not opened these files. The styles part holds
only number formats and cell XFs (what the readers look at), not the fonts,
fills, borders and cell styles Excel always writes; no BrtFileVersion, views,
column info or calc properties either. Formulas are not written (a cell holds
its value only).

What is written, per value type (as Excel does where the readers can tell):

* ``bool`` → BrtCellBool;
* ``int``/``float`` → BrtCellRk when the RK form holds the value exactly (30-bit
  integers, x100 integers, doubles whose low 34 bits are zero), else BrtCellReal;
* ``str`` → BrtCellIsst into xl/sharedStrings.bin (``inline_strings=True``:
  BrtCellSt, which pyxlsb 1.0.10 does not read);
* ``datetime.datetime``/``date``/``time`` → the serial number (1900 or 1904
  system) as BrtCellReal, styled with a date, datetime or time format
  (``rk_dates=True``: as BrtCellRk when exact, which calamine reads as a plain
  integer for whole days: it ignores the format of integer RK cells);
* :class:`CellError` → BrtCellError; ``None`` → no record (an empty cell).

Regenerate the fixture with ``python tests/workbooks/make_xlsb.py``.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Record types ([MS-XLSB] 2.3.2, numbered as the spec does: the 7-bit groups joined, no
# continuation bits; pyxlsb's recordtypes show the same ids with those bits left in).
BRT_ROW_HDR = 0
BRT_CELL_BLANK = 1
BRT_CELL_RK = 2
BRT_CELL_ERROR = 3
BRT_CELL_BOOL = 4
BRT_CELL_REAL = 5
BRT_CELL_ST = 6
BRT_CELL_ISST = 7
BRT_SST_ITEM = 19
BRT_FMT = 44
BRT_XF = 47
BRT_BEGIN_SHEET = 129
BRT_END_SHEET = 130
BRT_BEGIN_BOOK = 131
BRT_END_BOOK = 132
BRT_BEGIN_BUNDLE_SHS = 143
BRT_END_BUNDLE_SHS = 144
BRT_BEGIN_SHEET_DATA = 145
BRT_END_SHEET_DATA = 146
BRT_WS_DIM = 148
BRT_WB_PROP = 153
BRT_BUNDLE_SH = 156
BRT_BEGIN_SST = 159
BRT_END_SST = 160
BRT_BEGIN_STYLE_SHEET = 278
BRT_END_STYLE_SHEET = 279
BRT_BEGIN_FMTS = 615
BRT_END_FMTS = 616
BRT_BEGIN_CELL_XFS = 617
BRT_END_CELL_XFS = 618

# Excel's error codes ([MS-XLSB] 2.5.97.2 BErr), the byte a BrtCellError holds.
ERROR_CODES = {
    "#NULL!": 0x00, "#DIV/0!": 0x07, "#VALUE!": 0x0F, "#REF!": 0x17,
    "#NAME?": 0x1D, "#NUM!": 0x24, "#N/A": 0x2A, "#GETTING_DATA": 0x2B,
}

# Cell XF indexes in styles.bin. 14 is Excel's built-in short-date format; the others are
# custom formats (ids from 164 up), so both ways a reader learns "this is a date" are used.
XF_GENERAL, XF_DATE, XF_DATETIME, XF_TIME = 0, 1, 2, 3
CUSTOM_FORMATS = {164: "yyyy-mm-dd hh:mm:ss", 165: "hh:mm:ss"}
CELL_XF_FORMATS = [0, 14, 164, 165]  # iFmt of each XF, in XF order

_EPOCH_1900 = dt.datetime(1899, 12, 30)  # serial 0 as Excel counts from 1900-03-01 on
_EPOCH_1904 = dt.datetime(1904, 1, 1)
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip entry timestamps: the fixture's bytes stay the same


@dataclass(frozen=True)
class CellError:
    """An Excel error value such as ``#DIV/0!``, written as a BrtCellError."""

    code: str

    def __post_init__(self) -> None:
        if self.code not in ERROR_CODES:
            raise ValueError(f"unknown Excel error {self.code!r}; one of {sorted(ERROR_CODES)}")


Cell = bool | int | float | str | dt.datetime | dt.date | dt.time | CellError | None


# ---------------------------------------------------------------- record encoding


def _varint(value: int, max_bytes: int) -> bytes:
    """7 bits a byte, low group first, the high bit saying another byte follows."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            break
    if len(out) > max_bytes:
        raise ValueError(f"{value} does not fit in {max_bytes} variable-length bytes")
    return bytes(out)


def record(rtype: int, payload: bytes = b"") -> bytes:
    """One BIFF12 record: type (1-2 bytes), size (1-4 bytes), payload."""
    if rtype >= 1 << 14:
        raise ValueError(f"record type {rtype} is beyond the two-byte range")
    return _varint(rtype, 2) + _varint(len(payload), 4) + payload


def wide_str(text: str) -> bytes:
    """XLWideString: the count of UTF-16 code units, then UTF-16LE."""
    data = text.encode("utf-16-le")
    return struct.pack("<I", len(data) // 2) + data


def _cell(col: int, xf: int) -> bytes:
    # Cell ([MS-XLSB] 2.5.9): column, then a 24-bit style index and a flags byte (0).
    return struct.pack("<II", col, xf & 0xFFFFFF)


# ---------------------------------------------------------------- numbers and dates


def rk_number(value: float) -> int | None:
    """The RkNumber ([MS-XLSB] 2.5.122) that reads back as exactly ``value``, if there is one.

    Excel stores most numbers this way, so the fixture should make the readers decode it.
    """
    if isinstance(value, int) or value.is_integer():
        n = int(value)
        if -(1 << 29) <= n < (1 << 29):
            return ((n << 2) | 0x2) & 0xFFFFFFFF
    if isinstance(value, float) and not math.isfinite(value):
        return None
    value = float(value)
    cents = round(value * 100)
    if cents / 100 == value and -(1 << 29) <= cents < (1 << 29):
        return ((cents << 2) | 0x3) & 0xFFFFFFFF  # fX100 with an integer
    bits = struct.unpack("<Q", struct.pack("<d", value))[0]
    if bits & ((1 << 34) - 1) == 0:
        return bits >> 32  # the top 30 bits of the double; the two flag bits are 0
    return None


def excel_serial(value: dt.datetime | dt.date | dt.time, date1904: bool) -> float:
    """Days since the epoch of the workbook's date system, the time as a fraction of a day."""
    if isinstance(value, dt.time):
        # A time of day alone is the fraction, on day 0 of either system.
        return (value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6) / 86400
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    epoch = _EPOCH_1904 if date1904 else _EPOCH_1900
    if not date1904 and value < dt.datetime(1900, 3, 1):
        raise ValueError("dates before 1900-03-01 need Excel's fictitious 1900-02-29; not supported here")
    delta = value - epoch
    return delta.days + (delta.seconds + delta.microseconds / 1e6) / 86400


def _number_record(col: int, value: float, xf: int, rk: bool = True) -> bytes:
    rk = rk_number(value) if rk else None
    if rk is not None:
        return record(BRT_CELL_RK, _cell(col, xf) + struct.pack("<I", rk))
    return record(BRT_CELL_REAL, _cell(col, xf) + struct.pack("<d", float(value)))


# ---------------------------------------------------------------- parts


class _SharedStrings:
    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.total = 0

    def add(self, text: str) -> int:
        self.total += 1
        return self.index.setdefault(text, len(self.index))

    def part(self) -> bytes:
        items = b"".join(
            # RichStr: a flags byte (no rich runs, no phonetics), then the text.
            record(BRT_SST_ITEM, b"\x00" + wide_str(text)) for text in self.index
        )
        return (record(BRT_BEGIN_SST, struct.pack("<II", self.total, len(self.index)))
                + items + record(BRT_END_SST))


def _cell_record(
    col: int, value: Cell, date1904: bool, strings: _SharedStrings | None, rk_dates: bool = False
) -> bytes:
    if isinstance(value, CellError):
        return record(BRT_CELL_ERROR, _cell(col, XF_GENERAL) + bytes([ERROR_CODES[value.code]]))
    if isinstance(value, bool):  # before int: bool is an int to Python
        return record(BRT_CELL_BOOL, _cell(col, XF_GENERAL) + bytes([int(value)]))
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value} cannot be stored in a cell (Excel has no NaN/inf)")
        return _number_record(col, value, XF_GENERAL)
    if isinstance(value, dt.datetime):
        return _number_record(col, excel_serial(value, date1904), XF_DATETIME, rk_dates)
    if isinstance(value, dt.date):
        return _number_record(col, excel_serial(value, date1904), XF_DATE, rk_dates)
    if isinstance(value, dt.time):
        return _number_record(col, excel_serial(value, date1904), XF_TIME, rk_dates)
    if isinstance(value, str):
        if strings is None:
            return record(BRT_CELL_ST, _cell(col, XF_GENERAL) + wide_str(value))
        return record(BRT_CELL_ISST, _cell(col, XF_GENERAL) + struct.pack("<I", strings.add(value)))
    raise TypeError(f"cannot write a {type(value).__name__} to a cell: {value!r}")


def _sheet_part(
    rows: Sequence[Sequence[Cell]], date1904: bool, strings: _SharedStrings | None, rk_dates: bool
) -> bytes:
    used = [(r, c) for r, row in enumerate(rows) for c, v in enumerate(row) if v is not None]
    if used:
        first_row, last_row = used[0][0], used[-1][0]
        first_col, last_col = min(c for _, c in used), max(c for _, c in used)
    else:
        first_row = last_row = first_col = last_col = 0
    body = bytearray()
    for r, row in enumerate(rows):
        cols = [c for c, v in enumerate(row) if v is not None]
        if not cols:
            continue  # Excel writes no row header for a row without cells
        # BrtRowHdr: row, style, height in twips (15 pt), two flag fields, then one
        # column span (first, last) covering the row's cells.
        body += record(BRT_ROW_HDR, struct.pack("<IIHHBIII", r, 0, 300, 0, 0, 1, cols[0], cols[-1]))
        for c in cols:
            body += _cell_record(c, row[c], date1904, strings, rk_dates)
    return b"".join([
        record(BRT_BEGIN_SHEET),
        # BrtWsDim: rwFirst, rwLast, colFirst, colLast (calamine's and pyxlsb's used range).
        record(BRT_WS_DIM, struct.pack("<IIII", first_row, last_row, first_col, last_col)),
        record(BRT_BEGIN_SHEET_DATA),
        bytes(body),
        record(BRT_END_SHEET_DATA),
        record(BRT_END_SHEET),
    ])


def _workbook_part(names: Iterable[str], date1904: bool, hidden: set[str]) -> bytes:
    sheets = b"".join(
        # BrtBundleSh: hsState (0 visible, 1 hidden), iTabID, relationship id, name.
        record(BRT_BUNDLE_SH, struct.pack("<II", 1 if name in hidden else 0, n)
               + wide_str(f"rId{n}") + wide_str(name))
        for n, name in enumerate(names, start=1)
    )
    # BrtWbProp: flags (bit 0: f1904), dwThemeVersion, strName (the VBA code name, empty).
    # Excel always writes it; the readers take the date system from it.
    wb_prop = record(BRT_WB_PROP, struct.pack("<II", 1 if date1904 else 0, 0) + wide_str(""))
    return b"".join([
        record(BRT_BEGIN_BOOK), wb_prop,
        record(BRT_BEGIN_BUNDLE_SHS), sheets, record(BRT_END_BUNDLE_SHS),
        record(BRT_END_BOOK),
    ])


def _styles_part() -> bytes:
    fmts = b"".join(record(BRT_FMT, struct.pack("<H", code) + wide_str(text)) for code, text in CUSTOM_FORMATS.items())
    # BrtXF (16 bytes): ixfeParent, iFmt, iFont, iFill, ixBorder, trot, indent, flags,
    # xfGrbitAtr (bit 0: the number format is applied). Parent 0 names a cell style XF
    # that is not written (see the module's limits); the readers only look at iFmt.
    xfs = b"".join(record(BRT_XF, struct.pack("<HHHHHBBHH", 0, ifmt, 0, 0, 0, 0, 0, 0, 0x01))
                   for ifmt in CELL_XF_FORMATS)
    return b"".join([
        record(BRT_BEGIN_STYLE_SHEET),
        record(BRT_BEGIN_FMTS, struct.pack("<I", len(CUSTOM_FORMATS))), fmts, record(BRT_END_FMTS),
        # calamine stops reading styles at BrtBeginCellXFs and fails if there is none.
        record(BRT_BEGIN_CELL_XFS, struct.pack("<I", len(CELL_XF_FORMATS))), xfs, record(BRT_END_CELL_XFS),
        record(BRT_END_STYLE_SHEET),
    ])


_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def _content_types(n_sheets: int, shared_strings: bool) -> str:
    overrides = [f'<Override PartName="/xl/worksheets/sheet{n}.bin" ContentType="application/vnd.ms-excel.worksheet"/>'
                 for n in range(1, n_sheets + 1)]
    overrides.append('<Override PartName="/xl/styles.bin" ContentType="application/vnd.ms-excel.styles"/>')
    if shared_strings:
        overrides.append(
            '<Override PartName="/xl/sharedStrings.bin" ContentType="application/vnd.ms-excel.sharedStrings"/>'
        )
    return (
        _XML_HEAD + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        # As Excel writes it: every .bin part defaults to the workbook type, the others are overridden.
        '<Default Extension="bin" ContentType="application/vnd.ms-excel.sheet.binary.macroEnabled.main"/>'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        + "".join(overrides) + "</Types>"
    )


def _relationships(rels: list[tuple[str, str, str]]) -> str:
    body = "".join(f'<Relationship Id="{rid}" Type="{_DOC_REL}/{kind}" Target="{target}"/>'
                   for rid, kind, target in rels)
    return _XML_HEAD + f'<Relationships xmlns="{_REL_NS}">{body}</Relationships>'


def write_xlsb(
    path: Path | str,
    sheets: Mapping[str, Sequence[Sequence[Cell]]],
    date1904: bool = False,
    *,
    inline_strings: bool = False,
    hidden: Iterable[str] = (),
    rk_dates: bool = False,
) -> Path:
    """Write ``sheets`` (name → rows of cell values, ``None`` for an empty cell) as an .xlsb.

    ``hidden`` names sheets to mark hidden. The bytes depend only on the arguments
    (fixed zip timestamps and entry order).
    """
    path = Path(path)
    if not sheets:
        raise ValueError("a workbook needs at least one sheet")
    hidden_set = set(hidden)
    strings = None if inline_strings else _SharedStrings()
    sheet_parts = [_sheet_part(rows, date1904, strings, rk_dates) for rows in sheets.values()]
    with_sst = strings is not None and bool(strings.index)
    n = len(sheet_parts)
    wb_rels = [(f"rId{i}", "worksheet", f"worksheets/sheet{i}.bin") for i in range(1, n + 1)]
    wb_rels.append((f"rId{n + 1}", "styles", "styles.bin"))
    if with_sst:
        wb_rels.append((f"rId{n + 2}", "sharedStrings", "sharedStrings.bin"))
    parts: list[tuple[str, bytes]] = [
        ("[Content_Types].xml", _content_types(n, with_sst).encode()),
        ("_rels/.rels", _relationships([("rId1", "officeDocument", "xl/workbook.bin")]).encode()),
        ("xl/workbook.bin", _workbook_part(sheets, date1904, hidden_set)),
        ("xl/_rels/workbook.bin.rels", _relationships(wb_rels).encode()),
        ("xl/styles.bin", _styles_part()),
    ]
    if with_sst and strings is not None:
        parts.append(("xl/sharedStrings.bin", strings.part()))
    parts += [(f"xl/worksheets/sheet{i}.bin", part) for i, part in enumerate(sheet_parts, start=1)]
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in parts:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16  # not the umask of whoever regenerates it
            zf.writestr(info, data)
    return path


# ---------------------------------------------------------------- the committed fixture

SAMPLE_HEADER = ["id", "amount", "code", "when", "ok", "ratio"]
SAMPLE_ROWS: list[list[Cell]] = [
    [1, 1.5, "00123", dt.datetime(2021, 3, 4, 5, 6, 7), True, 0.5],
    [2, -0.125, "00456", dt.datetime(1999, 12, 31, 12, 0), False, CellError("#DIV/0!")],
    [3, 3.141592653589793, "07", dt.datetime(2024, 2, 29, 23, 59, 30), True, 0.25],
    [40_000_000_000, 2.25, "A-17", dt.datetime(1900, 3, 1, 6, 0), False, 1.75],
]
SAMPLE_SECOND_SHEET = "Notes été"  # non-ASCII: the UTF-16 names must survive
SAMPLE_SECOND_ROWS: list[list[Cell]] = [["note", "n"], ["first", 10], [None, None], ["third", 30]]


def sample_sheets() -> dict[str, list[list[Cell]]]:
    return {"Data": [list(SAMPLE_HEADER), *SAMPLE_ROWS], SAMPLE_SECOND_SHEET: SAMPLE_SECOND_ROWS}


def main() -> None:
    out = write_xlsb(HERE / "sample.xlsb", sample_sheets())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
