"""Which cells fit a column's type, for a type the folder's options ask for (``"types"``) or one a
column keeps (``"mixed_columns": "rescue"``, ``"schema_changes": "rescue"``).

A cell fits when it is of the type's kind, or, for a type asked for by name, text that reads as one
exactly: a plain decimal number (``12.5``, ``-3``, ``1E+20``: no thousands separators, no currency),
``TRUE``/``FALSE``, an ISO date or date and time (``2026-07-01``, ``2026-07-01 09:30:00``), a time of
day ``09:30[:00]``, a duration ``[-]250:10:10``. A kept type takes its own kind only (``00123`` stays
text, in ``_rescued_data``). An ``int`` takes whole numbers only, a ``date`` dates without a time of day, a
``datetime`` no bare time of day. A cell that does not fit is left out of the column and kept as
text in ``_rescued_data`` (``_table.build``), never dropped. README, "Read options".
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sheetdrop_contract.column_types import ColumnType
from sheetdrop_step.converter._columns.cells import Cell

_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?")
_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_DURATION = re.compile(r"(-?)(\d+):(\d{2}):(\d{2})")
_BOOLS = {"true": True, "false": False}
INT64_BOUND = 2.0**63


def convert(cell: Cell, want: ColumnType, read_text: bool = True) -> Any:
    """The cell as a value of the wanted type's Arrow type (float for numbers, int for ``int``, datetime
    for dates, time, timedelta, bool), or None when it does not fit. ``cell`` kinds: number, text,
    bool, datetime, time (a datetime on day 0), duration. ``read_text``: text that reads as the type
    fits too (a type the options ask for by name; a kept majority takes its own kind only)."""
    kind, value = cell
    if kind == "text":
        kind, value = _read_text(value.strip(), want) if read_text else (None, None)
    return FITS[want.option](value) if kind == want.kind else None


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def fits_int64(value: int) -> bool:
    return -INT64_BOUND <= value < INT64_BOUND


def _whole(value: float) -> int | None:
    if not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() and -INT64_BOUND <= value < INT64_BOUND else None


def _midnight(value: dt.datetime) -> dt.datetime | None:
    return value if value.time() == dt.time() else None


def _time_of_day(value: dt.datetime) -> dt.time:
    return value.time()


def _as_is(value: Any) -> Any:
    return value


#: Each type's rule for a cell of its kind (or text read as one): the value it is held as, or None
#: when it does not fit (every type of ``column_types.COLUMN_TYPES`` has one).
FITS: dict[str, Callable[[Any], Any]] = {
    "int": _whole, "float": _finite, "string": _as_is, "date": _midnight, "datetime": _as_is, "bool": _as_is,
    "time": _time_of_day, "duration": _as_is}


def _read_text(text: str, want: ColumnType) -> tuple[str | None, Any]:
    if want.option == "int" and _INTEGER.fullmatch(text):
        return "number", int(text)  # exactly: past 2**53 a float would change it
    if want.kind == "number" and _NUMBER.fullmatch(text):
        return "number", float(text)
    if want.kind == "bool" and text.lower() in _BOOLS:
        return "bool", _BOOLS[text.lower()]
    if want.kind == "datetime" and _DATETIME.fullmatch(text):
        try:
            return "datetime", dt.datetime.fromisoformat(text)
        except ValueError:  # 2026-02-30: the shape of a date, not a date
            return None, None
    if want.kind == "time" and (m := _TIME.fullmatch(text)) and int(m[1]) < 24 and int(m[2]) < 60 and (
            int(m[3] or 0) < 60):
        return "time", dt.datetime.combine(dt.date(1899, 12, 31), dt.time(int(m[1]), int(m[2]), int(m[3] or 0)))
    if want.kind == "duration" and (m := _DURATION.fullmatch(text)) and int(m[3]) < 60 and int(m[4]) < 60:
        value = dt.timedelta(hours=int(m[2]), minutes=int(m[3]), seconds=int(m[4]))
        return "duration", -value if m[1] else value
    return None, None


def misfits(native: pa.Array, kind: str, want: ColumnType, day_zero: pa.Array | None) -> dict[int, Any]:
    """Rows of a native array of the wanted type's kind whose value may still not fit it (a fraction in
    an ``int`` column, a time of day in a date column...), with their values; :func:`convert` decides.
    ``day_zero``: for dates, where they fall on the date system's day 0 (times of day)."""
    valid = pc.is_valid(native)
    if want.option == "int":
        odd = pc.or_(pc.not_equal(pc.floor(native), native), pc.greater_equal(pc.abs(native), INT64_BOUND))
    elif kind == "datetime" and day_zero is not None and want.kind in ("datetime", "time"):
        midnight = pc.equal(pc.floor_temporal(native, unit="day"), native)
        odd = {"datetime": day_zero, "time": pc.invert(day_zero),
               "date": pc.or_(day_zero, pc.invert(midnight))}[want.option]
    else:
        return {}
    rows = pc.indices_nonzero(pc.and_(valid, pc.fill_null(odd, False))).to_pylist()
    return {r: native[r].as_py() for r in rows}
