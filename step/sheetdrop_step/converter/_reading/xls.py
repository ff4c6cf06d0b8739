""".xls, where calamine cannot be trusted with it (in the reader process): :func:`xls_globals` tells
from the workbook stream, and :class:`XlsBook` reads it with xlrd instead.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import struct
from pathlib import Path
from typing import Any

from sheetdrop_step.converter._columns.cells import MS_PER_DAY, Cell, ColumnRead, serial_datetime
from sheetdrop_step.converter._reading.task import SheetSkipped, Task


def xls_globals(path: Path) -> tuple[bool, bool]:
    """(whether calamine cannot be trusted with this .xls, its 1904 date system), from the workbook
    stream. calamine 0.36 reads the cached values of a chart embedded in a worksheet as cells and
    ends the sheet at the chart's end: any BIFF8 BOF record that does not start a sheet (found by
    its bytes; a false match only costs speed) sends the workbook to xlrd, as does BIFF5."""
    from xlrd import compdoc

    doc = compdoc.CompDoc(path.read_bytes(), logfile=open(os.devnull, "w"))  # noqa: SIM115 - gone with doc
    stream = doc.get_named_stream("Workbook") or doc.get_named_stream("Book") or b""
    bof = b"\x09\x08\x10\x00\x00\x06"
    if not stream.startswith(bof):
        return True, False
    starts, date1904, pos = {0}, False, 0
    while pos + 4 <= len(stream):
        kind, size = struct.unpack_from("<HH", stream, pos)
        if kind == 0x0085 and size >= 4:  # BOUNDSHEET: where a sheet's substream starts
            starts.add(struct.unpack_from("<I", stream, pos + 4)[0])
        elif kind == 0x0022 and size >= 2:  # DATEMODE
            date1904 = bool(struct.unpack_from("<H", stream, pos + 4)[0])
        elif kind == 0x000A:
            break
        pos += 4 + size
    at = stream.find(bof, 1)
    while at >= 0:
        if at not in starts:
            return True, date1904
        at = stream.find(bof, at + 1)
    return False, date1904


class XlsBook:
    """An .xls, read by xlrd where calamine cannot be trusted with it: xlrd keeps every cell's kind,
    skips the records of embedded charts and does not parse formulas it only has to show values of
    (calamine 0.36 panics on a formula record cut short)."""

    def __init__(self, path: Path) -> None:
        import xlrd

        self.xlrd = xlrd
        self.book = xlrd.open_workbook(str(path), formatting_info=True, on_demand=True,
                                       logfile=open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the book
        self.date1904, self.names = bool(self.book.datemode), self.book.sheet_names()

    def read(self, task: Task) -> list[ColumnRead]:
        from sheetdrop_step.converter._columns.arrays import column_from_cells

        x = self.xlrd
        sheet = self.book.sheet_by_index(task.index)
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
                return "datetime", serial_datetime(value, self.date1904)
            return None

        columns = [column_from_cells(c, [cell(k, v, r, c) for r, (k, v) in
                                         enumerate(zip(sheet.col_types(c), sheet.col_values(c), strict=True))])
                   for c in range(sheet.ncols)]
        self.book.unload_sheet(task.index)
        return columns
