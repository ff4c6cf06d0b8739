"""The workbook `sheetdrop smoke` drops: small, one sheet of every common column type, and a marker (the upload's
own label) that the smoke test finds again in the parquet it reads back."""

from __future__ import annotations

import datetime as dt
import io

#: The sheet, and so the dataset of the smoke folder (one sheet: the folder's name is the dataset's).
SHEET = "Smoke"
COLUMNS = ("id", "marker", "amount", "day")
ROWS = 3


def smoke_workbook(marker: str) -> bytes:
    import xlsxwriter

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = book.add_worksheet(SHEET)
    day = book.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_row(0, 0, COLUMNS)
    for row in range(1, ROWS + 1):
        sheet.write_number(row, 0, row)
        sheet.write_string(row, 1, marker)
        sheet.write_number(row, 2, row * 1.25)
        sheet.write_datetime(row, 3, dt.datetime(2026, 1, row), day)
    book.close()
    return buffer.getvalue()
