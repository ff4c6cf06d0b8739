"""Cells as Excel shows them, as text: in a text column, in ``_rescued_data``, in header names; each
kind as the ``text`` of its type in the vocabulary (``sheetdrop_contract.column_types``) says: numbers
at Excel's 15 significant digits (General), booleans ``TRUE``/``FALSE``, durations ``[h]:mm:ss``, dates
by the date, datetime and time types' patterns (a date on day 0 is a time of day; at midnight, a date), and
a fraction of a second, when a date, time or duration has one, after its seconds: never lost in text."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from sheetdrop_contract.column_types import AUTO, BY_OPTION
from sheetdrop_step.converter._columns.arrays import cells_type
from sheetdrop_step.converter._columns.cells import EPOCH, Cell

_POWERS = pa.array([float(10**i) for i in range(23)])  # exact as doubles


def texts(values: pa.Array, kind: str, date1904: bool) -> pa.Array:
    """Cells of one kind as Excel shows them, as text (vectorized; null stays null)."""
    if kind == "datetime":  # and times of day: on day 0
        return _dates(values, date1904)
    return _RENDER[AUTO[kind].text](values)


def _numbers(values: pa.Array, exact: bool = False) -> pa.Array:
    # The shortest text that reads back as the same number; past 15 significant digits (Excel's
    # precision) the number nearest at 15, unless ``exact``. Never -0; exponents as Excel writes them (1E+20).
    values = values.cast(pa.float64())
    out = (values if exact else at_15_digits(values)).cast(pa.string())
    out = pc.replace_substring(out, "e", "E")
    return pc.if_else(pc.equal(out, "-0"), "0", out)


def exact_numbers(values: list[float]) -> list[str]:
    """Numbers as the shortest text that reads back as each (all their digits, where 15 would make two
    distinct numbers one: header names)."""
    return _numbers(pa.array(values, pa.float64()), exact=True).to_pylist()


def _bools(values: pa.Array) -> pa.Array:
    true, false = AUTO["bool"].text.split("/")
    return pc.if_else(values, true, false)


def _dates(values: pa.Array, date1904: bool) -> pa.Array:
    # In microseconds, Arrow's %S writes the seconds with six decimals: the fraction is kept, its
    # trailing zeros (and a point left alone) dropped (10:10:10.123456, 09:53:12.391, 10:10:10).
    stamps = values.cast(pa.timestamp("us"))
    day = pc.floor_temporal(stamps, unit="day")
    epoch = pa.scalar(EPOCH[date1904], pa.timestamp("us"))
    time, date, stamp = (BY_OPTION[option].text for option in ("time", "date", "datetime"))
    shown = pc.if_else(pc.equal(day, epoch), pc.strftime(stamps, time), pc.if_else(
        pc.equal(stamps, day), pc.strftime(stamps, date), pc.strftime(stamps, stamp)))
    return pc.replace_substring_regex(shown, r"\.0+$|(\.\d*[1-9])0+$", r"\1")


def _durations(values: pa.Array) -> pa.Array:
    return pa.array([None if v is None else _duration_text(v) for v in values.to_pylist()], pa.string())


def _as_written(values: pa.Array) -> pa.Array:
    return values.cast(pa.string())


#: A type's ``text`` (Excel's format) → how a column of its cells is shown.
_RENDER: dict[str, Callable[[pa.Array], pa.Array]] = {
    "General": _numbers, "TRUE/FALSE": _bools, "[h]:mm:ss": _durations, "@": _as_written}


def at_15_digits(values: pa.Array) -> pa.Array:
    """Numbers rounded to 15 significant digits, each as ``float("%.15g" % x)``: r = round(x * 10**k)
    with 15 digits before the point, then r / 10**k. With 10**k exact (|k| <= 22) each step rounds
    once: x * 10**k is off by half its last bit at most, and a half (n + 0.5) lies on the same grid of
    bits, so r is right unless the product is exactly a half; r / 10**k is the double nearest r's
    decimal. Exact halves, |k| > 22 and a misjudged exponent (|r| outside (10**14, 10**15]) go through
    Python's correctly rounded formatting; zero and inf stay as they are."""
    plain = pc.or_(pc.equal(values, 0), pc.invert(pc.is_finite(values)))
    k = pc.subtract(14, pc.floor(pc.log10(pc.if_else(plain, 1.0, pc.abs(values)))).cast(pa.int64()))
    scale = pc.take(_POWERS, pc.min_element_wise(pc.abs(k), len(_POWERS) - 1))
    up = pc.greater_equal(k, 0)
    scaled = pc.if_else(up, pc.multiply(values, scale), pc.divide(values, scale))
    r = pc.round(scaled)
    near_half = pc.equal(pc.subtract(scaled, pc.floor(scaled)), 0.5)
    size = pc.abs(r)
    unsure = pc.and_not(pc.or_(pc.or_(near_half, pc.greater(pc.abs(k), len(_POWERS) - 1)),
                               pc.or_(pc.less_equal(size, 1e14), pc.greater(size, 1e15))), plain)
    out = pc.if_else(plain, values, pc.if_else(up, pc.divide(r, scale), pc.multiply(r, scale)))
    if pc.any(unsure).as_py():
        exact = [float(f"{x:.15g}") for x in values.filter(unsure).to_pylist()]
        out = pc.replace_with_mask(out, unsure, pa.array(exact, pa.float64()))
    return out


def _duration_text(value: dt.timedelta) -> str:
    """``[h]:mm:ss``, and a fraction of a second when the duration has one (trailing zeros dropped)."""
    micros = abs(value) // dt.timedelta(microseconds=1)
    seconds, fraction = divmod(micros, 1_000_000)
    sign = "-" if value < dt.timedelta(0) else ""
    text = f"{sign}{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return text + f".{fraction:06d}".rstrip("0") if fraction else text


def cell_texts(cells: list[Cell], date1904: bool) -> list[str | None]:
    """Single cells as :func:`texts` shows them (a time of day is a date on day 0), error cells None."""
    cells = [("datetime", v) if k == "time" else (k, v) for k, v in cells]
    out: list[str | None] = [None] * len(cells)
    for kind in {k for k, _ in cells} - {"error"}:
        at = [i for i, (k, _) in enumerate(cells) if k == kind]
        values = pa.array([cells[i][1] for i in at], cells_type(kind))
        for i, text in zip(at, texts(values, kind, date1904).to_pylist(), strict=True):
            out[i] = text or None
    return out
