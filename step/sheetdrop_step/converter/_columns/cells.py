"""A cell and a column as the reader gives them, and the Excel facts both are read with: serial
numbers as dates (1900 and 1904 systems), column letters. Pure Python: the reader process imports
this before it parses a sheet, and pyarrow only after (``_reading.reader``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

#: (kind, value): number float, text str, bool, datetime (a time of day: on day 0), duration timedelta,
#: error str. The kinds are the ``kind`` column of ``sheetdrop_contract.column_types``, and ``error``.
Cell = tuple[str, Any]
#: Day 0 of each date system, as the reader maps serial numbers (1900: serial 0 is 1899-12-31).
EPOCH = {False: dt.datetime(1899, 12, 31), True: dt.datetime(1904, 1, 1)}
MS_PER_DAY = 86_400_000
#: The last moment a serial number can be a date (Excel's and Python's last day), as the readers' timestamps.
LAST_DATE_MS = int(dt.datetime(9999, 12, 31, 23, 59, 59, 999000).replace(tzinfo=dt.UTC).timestamp() * 1000)


@dataclass
class ColumnRead:
    index: int  # absolute column index, 0 = A
    native: pa.Array | None  # values of the native kind, null elsewhere (one entry per row read)
    kind: str | None  # the native kind: number | text | bool | datetime | duration
    foreign: dict[int, Cell] = field(default_factory=dict)  # row → a cell of another kind


def serial_datetime(days: float, date1904: bool) -> dt.datetime:
    """An Excel serial number as the reader maps it (the 1900 system's phantom 1900-02-29 skipped)."""
    ms = round(days * MS_PER_DAY)
    if not date1904 and ms >= 60 * MS_PER_DAY:
        ms -= MS_PER_DAY
    return EPOCH[date1904] + dt.timedelta(milliseconds=ms)


def date_cell(days: float, date1904: bool) -> Cell:
    """A date-formatted number: its date, or the number itself when no date is that far (after
    9999-12-31, where Excel shows ##### and Python has no datetime; a stray 1E+12 in a date column)."""
    try:
        return "datetime", serial_datetime(days, date1904)
    except (OverflowError, ValueError):
        return "number", float(days)


def column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters
