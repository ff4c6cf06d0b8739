"""Per-folder read options: what a ``sheetdrop.json`` in the input container says about the workbooks
below it, validated with messages a person can act on.

Read by the Function (which finds the nearest file up the blob's folders and passes it on as the
``read_options`` pipeline parameter, so the portal shows it on the run) and by the step (which
validates it again and fails the run before converting if it is invalid). Standard library only:
this file is in the step's snapshot and in the Function's bundle. README, "Read options".
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from sheetdrop_contract.column_types import OPTIONS

OPTIONS_FILE = "sheetdrop.json"

#: What a column that holds values of more than one type becomes: text (each cell as Excel shows it),
#: or the type of its majority (or hint) with the cells that do not fit in ``_rescued_data``.
MixedRule = Literal["text", "rescue"]
#: What a new version whose columns differ from the previous version's does: record the difference
#: and go on, fail the run (no new version), or keep the previous types and rescue what does not fit.
SchemaRule = Literal["evolve", "fail", "rescue"]

MIXED_RULES: tuple[MixedRule, ...] = get_args(MixedRule)
SCHEMA_RULES: tuple[SchemaRule, ...] = get_args(SchemaRule)
#: What a dataset version is: one workbook's sheet (``file``, the default), or the whole folder so far
#: (``table``: sheetdrop_contract.table).
VersionsRule = Literal["file", "table"]
VERSIONS_RULES: tuple[VersionsRule, ...] = get_args(VersionsRule)
KEYS = ("sheets", "range", "header_rows", "footer", "types", "mixed_columns", "schema_changes", "dataset",
        "versions")
#: ``B3``, ``B3:H200``, ``B3:H`` (to the last row), ``A:H`` (whole columns).
RANGE = re.compile(r"^(?P<c1>[A-Z]{1,3})(?P<r1>[1-9][0-9]*)?(?::(?P<c2>[A-Z]{1,3})(?P<r2>[1-9][0-9]*)?)?$")


class OptionsError(ValueError):
    """An invalid options file; the message names the file and every mistake (the key and what is
    allowed), ``problems`` lists them."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


@dataclass(frozen=True)
class CellRange:
    """Zero-based, inclusive bounds; ``None`` where the range is open."""

    first_col: int
    first_row: int
    last_col: int | None
    last_row: int | None


@dataclass(frozen=True)
class ReadOptions:
    #: The options file these came from (its blob name), or None for the defaults.
    file: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    range: str | None = None
    #: None: detect the header (title rows above it are skipped); 0: no header; n: n rows joined.
    header_rows: int | None = None
    footer_rows: int = 0
    stop_at_empty_row: bool = False
    #: Column name → a hint: an ``option`` of ``column_types.COLUMN_TYPES``.
    types: dict[str, str] = field(default_factory=dict)
    mixed_columns: MixedRule = "text"
    schema_changes: SchemaRule = "evolve"
    dataset: str | None = None
    versions: VersionsRule = "file"

    @property
    def table(self) -> bool:
        """Whether each new version of the folder's datasets is the whole folder so far."""
        return self.versions == "table"

    def excludes(self, sheet: str) -> str | None:
        """Why these options leave a sheet out (None: they keep it). Patterns as in file names, any
        letter case (Excel's sheet names are unique regardless of case)."""
        name = sheet.casefold()
        for pattern in self.exclude:
            if fnmatch.fnmatchcase(name, pattern.casefold()):
                return f"excluded by sheets.exclude {pattern!r}"
        if self.include and not any(fnmatch.fnmatchcase(name, p.casefold()) for p in self.include):
            return f"not in sheets.include ({', '.join(map(repr, self.include))})"
        return None

    @property
    def multirow_header(self) -> bool:
        """Whether the header has several rows (whose upper cells may be merged across columns)."""
        return (self.header_rows or 1) > 1

    def cell_range(self) -> CellRange | None:
        return parse_range(self.range) if self.range else None


def column_number(letters: str) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - ord("A") + 1
    return number - 1


def parse_range(text: str) -> CellRange:
    match = RANGE.match(text.strip().upper())
    if not match:
        raise ValueError("not a cell range like B3, B3:H200, B3:H or A:H")
    first_col, last_col = column_number(match["c1"]), column_number(match["c2"]) if match["c2"] else None
    first_row = int(match["r1"]) - 1 if match["r1"] else 0
    last_row = int(match["r2"]) - 1 if match["r2"] else None
    if (last_col is not None and last_col < first_col) or (last_row is not None and last_row < first_row):
        raise ValueError("its end comes before its start")
    return CellRange(first_col, first_row, last_col, last_row)


def parse(text: str, file: str) -> ReadOptions:
    """A ``sheetdrop.json``'s text as ReadOptions; an OptionsError names ``file`` and every mistake in
    it at once (the key and what is allowed)."""
    options, problems = check(text, file)
    if problems or options is None:
        raise OptionsError(f"{file}: {'; '.join(problems)}", problems)
    return options


def _unknown(key: str, known: tuple[str, ...]) -> str:
    near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"unknown key, did you mean {near[0]}?" if near else f"unknown key (the keys are {', '.join(known)})"


def check(text: str, file: str) -> tuple[ReadOptions | None, list[str]]:
    """The options a file's text gives, and every mistake in it (``key: what is allowed``, a near-miss
    key with the key it was probably meant to be); the options are None when there is a mistake."""
    try:
        data = json.loads(text.removeprefix("\ufeff"))  # Notepad saves UTF-8 with a byte-order mark
    except ValueError as exc:
        return None, [f"not valid JSON ({exc})"]
    if not isinstance(data, dict):
        return None, [f"must be a JSON object with any of the keys {', '.join(KEYS)}"]
    problems: list[str] = []

    def bad(key: str, problem: str) -> None:
        problems.append(f"{key}: {problem}")

    def section(key: str, keys: tuple[str, ...], shape: str) -> dict[str, Any]:
        """The object under ``key``, its own keys checked; {} when it is not an object."""
        found = data.get(key, {})
        if not isinstance(found, dict):
            bad(key, shape)
            return {}
        for inner in found:
            if inner not in keys:
                bad(f"{key}.{inner}", _unknown(inner, keys))
        return found

    for key in data:
        if key not in KEYS:
            bad(key, _unknown(key, KEYS))
    values: dict[str, Any] = {"file": file}
    sheets = section("sheets", ("include", "exclude"),
                     'an object {"include": [names or patterns], "exclude": [names or patterns]}')
    for key in ("include", "exclude"):
        patterns = sheets.get(key, [])
        if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
            bad(f"sheets.{key}", "a list of sheet names or patterns (* and ? as in file names)")
        else:
            values[key] = tuple(patterns)
    if "range" in data:
        if not isinstance(data["range"], str):
            bad("range", "a cell range like B3, B3:H200, B3:H or A:H")
        else:
            try:
                parse_range(data["range"])
                values["range"] = data["range"].strip().upper()
            except ValueError as exc:
                bad("range", f"{data['range']!r} is {exc}")
    if "header_rows" in data:
        rows = data["header_rows"]
        if not isinstance(rows, int) or isinstance(rows, bool) or not 0 <= rows <= 10:
            bad("header_rows", "a whole number from 0 (no header) to 10 (rows joined into one name)")
        else:
            values["header_rows"] = rows
    footer = section("footer", ("drop_rows", "stop_at_empty_row"), '{"drop_rows": n} or {"stop_at_empty_row": true}')
    drop = footer.get("drop_rows", 0)
    if not isinstance(drop, int) or isinstance(drop, bool) or drop < 0:
        bad("footer.drop_rows", "a whole number of rows to drop at the end, 0 or more")
    stop = footer.get("stop_at_empty_row", False)
    if not isinstance(stop, bool):
        bad("footer.stop_at_empty_row", "true or false")
    values["footer_rows"], values["stop_at_empty_row"] = drop, stop
    types = data.get("types", {})
    if not isinstance(types, dict):
        bad("types", "an object of column name to one of " + ", ".join(OPTIONS))
        types = {}
    for column, kind in types.items():
        if kind not in OPTIONS:
            bad(f"types.{column}", f"{kind!r} is not one of {', '.join(OPTIONS)}")
    values["types"] = dict(types)
    for key, allowed in (("mixed_columns", MIXED_RULES), ("schema_changes", SCHEMA_RULES),
                         ("versions", VERSIONS_RULES)):
        if key in data:
            if data[key] not in allowed:
                bad(key, f"{data[key]!r} is not one of {', '.join(allowed)}")
            values[key] = data[key]
    if "dataset" in data:
        if not isinstance(data["dataset"], str) or not data["dataset"].strip():
            bad("dataset", "a dataset name (it is made lowercase letters, digits and _)")
        else:
            values["dataset"] = data["dataset"].strip()
    return (None if problems else ReadOptions(**values)), problems


def to_parameter(file: str | None, text: str | None) -> str:
    """The ``read_options`` pipeline parameter: the options file's name and text as written (the
    portal shows them on the run; the step parses them with :func:`parse`, so an invalid file fails
    the run with the same message the Function logged). ``{}``: no options file."""
    return json.dumps({"file": file, "text": text}, ensure_ascii=False) if file else "{}"


def from_parameter(value: str) -> ReadOptions:
    try:
        data = json.loads(value or "{}")
    except ValueError:
        raise OptionsError(f"the read_options parameter is not JSON: {value[:200]!r}") from None
    return parse(data["text"], data["file"]) if data.get("file") else ReadOptions()
