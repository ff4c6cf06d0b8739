"""The one type vocabulary: every name a column type goes by, in one table.

A column type is spelled by five parties: a folder's ``types`` hints (``option``: ``int``), the readers'
cells (``kind``: ``number``), fastexcel's dtypes (``reader``: ``float``), Arrow (``arrow``: ``int64``)
and the parquet metadata, schema tags and schema changes (``name``: ``int64``); and each type shows its
cells as text one way (``text``). This table is the only place that pairs them: the read options'
schema takes its allowed hints from it, the reader its dtypes, the column rules their kinds and Arrow
types, schema rescue the hint for a recorded type name, the warnings their words. Adding a type is a
row here, its rule for which cells fit it (the converter's ``_columns.hints``) and their tests.

It lives in the contract, beside ``read_options``, because the Function validates the hints and has
neither pyarrow nor the step: strings only, standard library only. The converter makes ``arrow`` a
pyarrow type (``pyarrow.type_for_alias``) and ``text`` a rendering (``_columns.text``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ColumnType:
    option: str  # its name in a folder's "types" (README, "Read options")
    name: str  # its name in the parquet metadata (sheetdrop.column_types), schema tags and schema changes
    kind: str  # the kind of cell it holds, as the readers report cells
    auto: bool  # what a column holding only cells of its kind is without a hint (one per kind)
    reader: str  # fastexcel's dtype a column of its kind is read with
    arrow: str  # the Arrow type written, as pyarrow names it
    #: How a cell of it shows as text (a text column, _rescued_data, a header name): a strftime pattern
    #: for dates and times of day (a date cell on day 0 is a time of day; at midnight, a date), else
    #: Excel's format: General (15 significant digits), @ (as written), TRUE/FALSE, [h]:mm:ss.
    text: str
    called: tuple[str, str]  # one cell of it and several, as a warning says them ("is not a number")


COLUMN_TYPES = (
    ColumnType("int", "int64", "number", False, "float", "int64", "General", ("a whole number", "whole numbers")),
    ColumnType("float", "float64", "number", True, "float", "double", "General", ("a number", "numbers")),
    ColumnType("string", "string", "text", True, "string", "string", "@", ("text", "text")),
    ColumnType("date", "date", "datetime", False, "duration", "date32[day]", "%Y-%m-%d", ("a date", "dates")),
    ColumnType("datetime", "timestamp", "datetime", True, "duration", "timestamp[us]", "%Y-%m-%d %H:%M:%S",
               ("a date", "dates")),
    ColumnType("bool", "bool", "bool", True, "boolean", "bool", "TRUE/FALSE", ("a boolean", "booleans")),
    ColumnType("time", "time", "time", True, "duration", "time64[us]", "%H:%M:%S",
               ("a time of day", "times of day")),
    ColumnType("duration", "duration", "duration", True, "duration", "duration[us]", "[h]:mm:ss",
               ("a duration", "durations")),
)
#: The hints a folder's ``types`` may name, in the table's order.
OPTIONS = tuple(t.option for t in COLUMN_TYPES)
BY_OPTION = {t.option: t for t in COLUMN_TYPES}
BY_NAME = {t.name: t for t in COLUMN_TYPES}
#: Kind → the type a column holding only that kind is (its number type narrows to int64 when every
#: value is whole: the column rules).
AUTO = {t.kind: t for t in COLUMN_TYPES if t.auto}
TEXT = BY_OPTION["string"]
