""".xls, where calamine cannot be trusted with it (in the reader process): :func:`xls_globals` reads the
workbook stream's globals (the sheets, their kinds and names, the date system, whether calamine can be
trusted), :func:`garbled` tells text calamine decoded wrong, and :class:`XlsBook` reads with xlrd instead.
"""

from __future__ import annotations

import codecs
import datetime as dt
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sheetdrop_step.converter._columns.cells import MS_PER_DAY, Cell, ColumnRead, date_cell
from sheetdrop_step.converter._reading.task import SheetSkipped, Task

#: A BOUNDSHEET's sheet type ([MS-XLS] 2.4.28 dt) → the kind of sheet, as the guard names xlsx's.
SHEET_KINDS = {0x00: "worksheet", 0x01: "macrosheet", 0x02: "chartsheet", 0x06: "module"}
STATES = {0: "visible", 1: "hidden", 2: "veryHidden"}
BOF, EOF, BOUNDSHEET, DATEMODE, CODEPAGE = 0x0809, 0x000A, 0x0085, 0x0022, 0x0042
#: The BOF of an Excel 2.x, 3.0 and 4.0 file (a BIFF stream of its own, no compound file): its record
#: type, by BIFF version.
LEGACY_BOFS = {0x0009: 2, 0x0209: 3, 0x0409: 4}


@dataclass
class XlsSheet:
    name: str
    state: str  # visible | hidden | veryHidden
    kind: str  # worksheet | chartsheet | macrosheet | module


@dataclass
class XlsGlobals:
    untrusted: bool  # calamine cannot be trusted with the workbook (not BIFF8, or a substream in a sheet)
    date1904: bool
    sheets: list[XlsSheet] = field(default_factory=list)


def xls_globals(path: Path) -> XlsGlobals:
    """The workbook stream's globals. calamine 0.36 reads the cached values of a chart embedded in a
    worksheet as cells and ends the sheet at the chart's end: any BIFF8 BOF record that does not start
    a sheet (found by its bytes; a false match only costs speed) sends the workbook to xlrd, as does
    BIFF5. Raises when the compound file cannot be read (calamine may still read it)."""
    from xlrd import compdoc

    doc = compdoc.CompDoc(path.read_bytes(), logfile=open(os.devnull, "w"))  # noqa: SIM115 - gone with doc
    stream = doc.get_named_stream("Workbook") or doc.get_named_stream("Book") or b""
    bof = b"\x09\x08\x10\x00\x00\x06"
    biff8 = stream.startswith(bof)
    found = XlsGlobals(untrusted=not biff8, date1904=False)
    starts, pos, codepage = {0}, 0, 1252
    while pos + 4 <= len(stream):
        kind, size = struct.unpack_from("<HH", stream, pos)
        payload = stream[pos + 4:pos + 4 + size]
        if kind == BOUNDSHEET and size >= 8:  # where a sheet's substream starts, its state, kind and name
            starts.add(struct.unpack_from("<I", payload)[0])
            state, sheet_kind = STATES.get(payload[4] & 3, "hidden"), SHEET_KINDS.get(payload[5], "worksheet")
            found.sheets.append(XlsSheet(_sheet_name(payload[6:], biff8, codepage), state, sheet_kind))
        elif kind == DATEMODE and size >= 2:
            found.date1904 = bool(struct.unpack_from("<H", payload)[0])
        elif kind == CODEPAGE and size >= 2:
            codepage = struct.unpack_from("<H", payload)[0]
        elif kind == EOF:
            break
        pos += 4 + size
    at = stream.find(bof, 1)
    while at >= 0 and not found.untrusted:
        found.untrusted = at not in starts
        at = stream.find(bof, at + 1)
    return found


def _sheet_name(data: bytes, biff8: bool, codepage: int) -> str:
    """A BOUNDSHEET's name: BIFF8's ShortXLUnicodeString (Latin-1 bytes, or UTF-16 with its high-byte
    flag), BIFF5's bytes in the workbook's code page."""
    if not data:
        return ""
    count = data[0]
    if biff8:
        wide = len(data) > 1 and data[1] & 1
        raw = data[2:2 + count * (2 if wide else 1)]
        return raw.decode("utf-16-le" if wide else "latin-1", errors="replace")
    try:
        encoding = codecs.lookup(f"cp{codepage}").name
    except LookupError:
        encoding = "latin-1"
    return data[1:1 + count].decode(encoding, errors="replace")


def legacy_biff(head: bytes) -> int | None:
    """The BIFF version of a file that is a BIFF stream of its own, without a compound file (Excel 2.x,
    3.0 and 4.0 write them; a few tools write BIFF5 or 8 so), from its first record: a BOF, a payload of
    4 to 16 bytes, a sheet kind (worksheet, chart, macro sheet, BIFF4 workbook); else None."""
    if len(head) < 8:
        return None
    kind, size, version, substream = struct.unpack_from("<HHHH", head)
    if not 4 <= size <= 16 or substream not in (0x0005, 0x0010, 0x0020, 0x0040, 0x0100):
        return None
    return LEGACY_BOFS.get(kind) or ({0x0500: 5, 0x0600: 8}.get(version) if kind == BOF else None)


def garbled(columns: list[ColumnRead]) -> str | None:
    """Text calamine decoded wrong, if any: a NUL between the characters, as ``T\\x00i\\x00t\\x00e\\x00l``
    for ``Titel`` (calamine 0.36 pads an 8-bit BIFF8 string to UTF-16 and decodes that with the
    workbook's code page when it is not UTF-16, as some writers other than Excel set it)."""
    import pyarrow.compute as pc

    for col in columns:
        if col.kind == "text" and col.native is not None and pc.any(pc.match_substring(col.native, "\x00")).as_py():
            return pc.filter(col.native, pc.match_substring(col.native, "\x00"))[0].as_py()
        for kind, value in col.foreign.values():
            if kind == "text" and "\x00" in value:
                return str(value)
    return None


class XlsBook:
    """An .xls, read by xlrd where calamine cannot be trusted with it: xlrd keeps every cell's kind,
    skips the records of embedded charts, decodes every string by the BIFF version's rules, reads
    Excel 2.x-4.0 files, and does not parse formulas it only has to show values of (calamine 0.36
    panics on a formula record cut short). Sheets by name (xlrd lists worksheets only)."""

    def __init__(self, path: Path) -> None:
        import xlrd

        self.xlrd = xlrd
        self.book = xlrd.open_workbook(str(path), formatting_info=True, on_demand=True,
                                       logfile=open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the book
        self.date1904, self.names = bool(self.book.datemode), self.book.sheet_names()

    def read(self, task: Task) -> list[ColumnRead]:
        from sheetdrop_step.converter._columns.arrays import column_from_cells

        x = self.xlrd
        index = self.names.index(task.name)
        sheet = self.book.sheet_by_index(index)
        if sheet.visibility:
            raise SheetSkipped(f"{'hidden' if sheet.visibility == 1 else 'veryHidden'} sheet")
        durations: dict[int, bool] = {}

        def cell(kind: int, value: Any, row: int, col: int) -> Cell | None:
            if kind == x.XL_CELL_TEXT:
                return "text", value
            if kind == x.XL_CELL_NUMBER:
                return "number", float(value)
            if kind == x.XL_CELL_BOOLEAN:
                return "bool", bool(value)
            if kind == x.XL_CELL_ERROR:
                return "error", x.error_text_from_code.get(value, "#ERROR")
            if kind == x.XL_CELL_DATE:
                xf = sheet.cell_xf_index(row, col)
                if xf not in durations:
                    fmt = self.book.format_map.get(self.book.xf_list[xf].format_key)
                    durations[xf] = bool(fmt and re.search(r"\[[hms]+\]", fmt.format_str, re.IGNORECASE))
                if durations[xf]:
                    return "duration", dt.timedelta(milliseconds=round(value * MS_PER_DAY))
                return date_cell(value, self.date1904)
            return None

        columns = [column_from_cells(c, [cell(k, v, r, c) for r, (k, v) in
                                         enumerate(zip(sheet.col_types(c), sheet.col_values(c), strict=True))])
                   for c in range(sheet.ncols)]
        self.book.unload_sheet(index)
        return columns
