"""Converts every workbook of the corpus and compares the parquet, cell by cell, with the reference.

``python -m tests.corpus.compare [--json OUT] [--workers N] [--write-expectations] [FILE ...]`` (from the
checkout's root; default: every workbook under tests/corpus/). Each conversion runs through
``convert_workbook`` with the reader's time limit at 60 s, in this process or ``--workers`` of them; the
reference is :mod:`reference` (readers not built on calamine). For each file it prints the sheets, the
cells compared and every difference by class, with examples; ``--json`` writes the same as data. A
difference is not judged here: each class is one of the converter's documented rules, recorded with
its explanation in ``expectations.json`` (its "rules"), or a bug. ``--write-expectations`` records every
file's classes and counts there ("files"), which ``tests/test_corpus.py`` checks: it refuses a class no
rule explains.

How a parquet cell is placed on the sheet: its data rows start below the header the converter
reports (``sheetdrop.header``); its first column is the one that lines up best with the reference's
header and first rows (leading empty columns are trimmed, ``column_<letter>`` names the letter).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
import unicodedata
import warnings
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sheetdrop_step.converter import WorkbookRejected, convert_workbook, options_from_env
from tests.corpus.reference import Cell, Sheet, Unreadable, read_workbook

CORPUS = Path(__file__).resolve().parent

TIMEOUT_S = 60
SLOW_S = 5.0
EXAMPLES = 5
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")


@dataclass
class FileResult:
    file: str
    reference: str = ""  # the reference reader, or why there is none
    status: str = "ok"  # ok, rejected, exception
    code: str = ""  # the rejection's code
    reason: str = ""
    seconds: float = 0.0
    sheets: list[dict[str, Any]] = field(default_factory=list)
    cells: int = 0  # cells compared (reference cell or parquet cell, at least one not empty)
    matched: int = 0
    differences: dict[str, dict[str, Any]] = field(default_factory=dict)  # class → count, examples

    def note(self, kind: str, example: str, count: int = 1) -> None:
        entry = self.differences.setdefault(kind, {"count": 0, "examples": []})
        entry["count"] += count
        if len(entry["examples"]) < EXAMPLES:
            entry["examples"].append(example)


def letter(col: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(col + 1)


def a1(row: int, col: int) -> str:
    return f"{letter(col)}{row + 1}"


# -- one workbook -------------------------------------------------------------------------------------------


def compare_file(path: Path) -> FileResult:
    result = FileResult(str(path.relative_to(CORPUS)) if path.is_relative_to(CORPUS) else str(path))
    try:
        book = read_workbook(path)
        result.reference = book.reader
    except Unreadable as exc:
        book = None
        result.reference = f"none: {exc}"
    options = options_from_env({**os.environ, "SHEETDROP_READER_TIMEOUT_S": str(TIMEOUT_S)})
    with tempfile.TemporaryDirectory(prefix="corpus-") as out:
        start = time.monotonic()
        try:
            outputs = convert_workbook(path, Path(out), **options)
        except WorkbookRejected as exc:
            result.seconds = time.monotonic() - start
            result.status, result.code, result.reason = "rejected", exc.code, " ".join(exc.reason.split())
            if "took longer than" in exc.reason:
                result.note("timeout", f"{result.file}: {result.reason[:160]}")
            elif book is not None and any(kind != "error" for s in book.sheets if _expected(s)
                                          for kind, _ in s.cells.values()):
                result.note(f"rejected ({exc.code}) though the reference reads values",
                            f"{result.file}: {result.reason[:160]}")
            _timing(result)
            return result
        except Exception as exc:  # a crash of the converter itself, not a rejection
            result.seconds = time.monotonic() - start
            result.status, result.reason = "exception", f"{type(exc).__name__}: {exc}"[:300]
            result.note("converter exception", f"{result.file}: {result.reason}")
            return result
        result.seconds = time.monotonic() - start
        _timing(result)
        if book is None:
            for output in outputs:
                result.sheets.append({"sheet": output.sheet, "rows": output.rows, "columns": output.columns,
                                      "header": output.header, "compared": False})
            return result
        _compare_sheets(result, book.sheets, outputs)
    return result


def _timing(result: FileResult) -> None:
    if result.seconds > SLOW_S:
        result.note("slow (> 5 s)", f"{result.file}: {result.seconds:.1f} s")


def _expected(sheet: Sheet) -> bool:
    """A sheet the converter should write by default: a visible worksheet."""
    return sheet.kind == "worksheet" and sheet.state == "visible"


def _name_key(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def _compare_sheets(result: FileResult, sheets: list[Sheet], outputs: list[Any]) -> None:
    by_name = {_name_key(s.name): s for s in sheets}
    matched: set[str] = set()
    skipped = {_name_key(name): why for name, why in outputs.skipped}
    for output in outputs:
        sheet = by_name.get(_name_key(output.sheet))
        if sheet is None:
            # A name read differently: pair it with the one expected sheet no output has taken.
            left = [s for s in sheets if _expected(s) and _name_key(s.name) not in matched
                    and _name_key(s.name) not in {_name_key(o.sheet) for o in outputs}]
            if len(left) == 1:
                sheet = left[0]
                result.note("sheet name differs",
                            f"{result.file}: converter {output.sheet!r}, reference {sheet.name!r}")
            else:
                result.note("sheet the reference does not have (converted)",
                            f"{result.file}: {output.sheet!r} → {output.slug}.parquet "
                            f"({output.rows} rows, {output.columns} columns)")
                continue
        matched.add(_name_key(sheet.name))
        if sheet.kind != "worksheet":
            result.note(f"{sheet.kind} converted as a worksheet",
                        f"{result.file}: {sheet.name!r} → {output.slug}.parquet "
                        f"({output.rows} rows, {output.columns} columns)")
            continue
        if sheet.state != "visible":
            result.note("hidden sheet converted", f"{result.file}: {sheet.name!r} ({sheet.state})")
        _compare_sheet(result, sheet, output)
    for sheet in sheets:
        key = _name_key(sheet.name)
        if key in matched:
            continue
        why = skipped.get(key, "")
        if _expected(sheet) and sheet.cells:
            result.note("sheet with values not converted",
                        f"{result.file}: {sheet.name!r} ({len(sheet.cells)} cells); converter: {why or 'not listed'}")
        result.sheets.append({"sheet": sheet.name, "state": sheet.state, "kind": sheet.kind,
                              "reference_cells": len(sheet.cells), "skipped": why or "not listed"})


# -- one sheet ------------------------------------------------------------------------------------------------

_HEADER = re.compile(r"header in rows? (\d+)(?:-(\d+))?")
_NO_HEADER = re.compile(r"no header row; data from row (\d+)")
_BLANK_NAME = re.compile(r"column_([A-Z]{1,3})(?:_\d+)?$")


def _header(description: str) -> tuple[int, int]:
    """(first row of the table, header rows) from the converter's description, rows from 0."""
    if match := _NO_HEADER.search(description):
        return int(match.group(1)) - 1, 0
    match = _HEADER.search(description)
    if match is None:
        raise ValueError(f"unknown header description {description!r}")
    first = int(match.group(1)) - 1
    last = int(match.group(2) or match.group(1)) - 1
    return first, last - first + 1


def _compare_sheet(result: FileResult, sheet: Sheet, output: Any) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(output.path)
    names = table.column_names
    types = [str(t) for t in table.schema.types]
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    first, count = _header(output.header)
    data = first + count
    cells = sheet.cells
    info: dict[str, Any] = {"sheet": sheet.name, "rows": output.rows, "columns": output.columns,
                            "header": output.header, "compared": True}
    result.sheets.append(info)
    if not cells:
        result.note("sheet converted though the reference has no value", f"{result.file}: {sheet.name!r}")
        return
    top = min(r for r, _ in cells)
    if first != top:
        rows = [cells[k][1] for k in sorted(cells) if k[0] == top][:3]
        result.note("header below the first row holding a value",
                    f"{result.file}: {sheet.name!r}: {output.header}; first row {top + 1}: {rows!r}"[:300])
    header_values = [cells[k] for k in cells if k[0] == first] if count else []
    if count and len(header_values) == 1 and len(names) >= 3:
        result.note("header row holds one value over 3+ columns (a title taken for the header?)",
                    f"{result.file}: {sheet.name!r}: {output.header}: {header_values[0][1]!r} over "
                    f"{len(names)} columns"[:300])
    offset = _align(cells, names, columns, first, count, data)
    info["first_column"] = letter(offset)
    in_table = [(r, c) for r, c in cells if r >= first and offset <= c < offset + len(names)]
    wide = [(r, c) for r, c in cells if r >= first and (c < offset or c >= offset + len(names))]
    if wide:
        r, c = min(wide, key=lambda k: (k[1], k[0]))
        result.note("cells outside the converted columns",
                    f"{result.file}: {sheet.name!r}: {len(wide)} cells, e.g. {a1(r, c)} {cells[r, c][1]!r}"[:300],
                    len(wide))
    last = max((r for r, _ in in_table), default=data - 1)
    expected = max(0, last - data + 1)
    if count == 1:
        _compare_names(result, sheet, names, cells, first, offset)
    kinds_by_column = [Counter(cells[r, offset + j][0] for r in range(data, last + 1)
                               if (r, offset + j) in cells and cells[r, offset + j][0] != "error")
                       for j in range(len(names))]
    for j, kinds in enumerate(kinds_by_column):
        if types[j] == "string" and len(kinds) == 1 and "text" not in kinds:
            result.note(f"type: a column of {next(iter(kinds))} cells became text",
                        f"{result.file}: {sheet.name!r} column {names[j]} ({letter(offset + j)}): "
                        f"{sum(kinds.values())} cells")
        elif types[j] == "string" and len(kinds) > 1:
            result.note("type: a mixed column became text (documented: mixed_columns text)",
                        f"{result.file}: {sheet.name!r} column {names[j]}: {dict(kinds)}")
    if output.rows == 0:
        result.note("no data rows: the sheet's values are all in its header (documented: header is the first row)",
                    f"{result.file}: {sheet.name!r}: {output.header}, {len(names)} columns")
    if output.rows < expected:
        lost = [(r, c) for r, c in in_table if r >= data + output.rows]
        r, c = min(lost)
        result.note("rows missing at the end", f"{result.file}: {sheet.name!r}: {expected - output.rows} rows, "
                    f"{len(lost)} cells from {a1(r, c)} {cells[r, c][1]!r}"[:300], len(lost))
    for i in range(output.rows):
        row = data + i
        for j, column in enumerate(columns):
            ref = cells.get((row, offset + j))
            got = column[i]
            if ref is None and got is None:
                continue
            result.cells += 1
            kind = _classify(ref, got, types[j], kinds_by_column[j])
            if kind is None:
                result.matched += 1
            else:
                result.note(kind, f"{result.file}: {sheet.name!r} {a1(row, offset + j)} ({types[j]}): "
                            f"reference {_show(ref)}, converter {got!r}"[:300])


def _align(cells: dict[tuple[int, int], Cell], names: list[str], columns: list[list[Any]], first: int,
           count: int, data: int) -> int:
    """The sheet column of the parquet's first column."""
    for j, name in enumerate(names):
        if match := _BLANK_NAME.match(name):
            from openpyxl.utils import column_index_from_string

            col = column_index_from_string(match.group(1)) - 1
            if col - j >= 0:
                return col - j
    below = [c for r, c in cells if r >= first]
    # In the order ties go: the leftmost column holding a value in the table's rows, in the sheet, A.
    candidates = list(dict.fromkeys([*(min(below) for _ in below[:1]), min(c for _, c in cells), 0]))

    def score(offset: int) -> int:
        hits = 0
        for j in range(len(names)):
            if count == 1 and _loose(_render(cells.get((first, offset + j)))) == _loose(names[j]):
                hits += 1
            for i in range(min(20, len(columns[j]) if columns else 0)):
                ref = cells.get((data + i, offset + j))
                got = columns[j][i]
                if ref is not None and got is not None and _classify(ref, got, "", Counter()) is None:
                    hits += 1
        return hits

    return max(candidates, key=score)


def _loose(text: str) -> str:
    return re.sub(r"[\W_]+", "_", unicodedata.normalize("NFC", text).casefold()).strip("_")


def _render(cell: Cell | None) -> str:
    """A header cell as Excel's General format shows it, near enough to compare names."""
    if cell is None:
        return ""
    kind, value = cell
    if kind == "number":
        return f"{value:.15g}"
    if kind == "datetime":
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    if kind == "time":
        return value.isoformat().rstrip("0").rstrip(".") if value.microsecond else value.isoformat()
    if kind == "duration":
        seconds = value.total_seconds()
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{seconds % 60:06.3f}".rstrip("0").rstrip(".")
    return str(value)


def _compare_names(result: FileResult, sheet: Sheet, names: list[str], cells: dict[tuple[int, int], Cell],
                   first: int, offset: int) -> None:
    for j, name in enumerate(names):
        ref = cells.get((first, offset + j))
        if name == _render(ref).strip():
            continue
        want = _loose(_render(ref)) or _loose(f"column_{letter(offset + j)}")  # blank: column_<letter>
        got = _loose(name)
        if got != want and re.sub(r"_\d+$", "", got) != want:
            result.note("header name differs from the header cell",
                        f"{result.file}: {sheet.name!r} {a1(first, offset + j)}: reference {_show(ref)}, "
                        f"column {name!r}"[:300])


def _show(cell: Cell | None) -> str:
    return "empty" if cell is None else f"{cell[0]} {cell[1]!r}"


# -- one cell ---------------------------------------------------------------------------------------------------

_NUMERIC = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float", "double")


def _close(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def _same_time(a: dt.datetime, b: dt.datetime) -> bool:
    return abs((a - b).total_seconds()) < 0.0015


def _seconds(value: dt.time) -> float:
    return value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6


def _classify(ref: Cell | None, got: Any, arrow: str, kinds: Counter) -> str | None:
    """None when the parquet cell says what the reference cell says; else the difference's class."""
    if ref is None:
        return None if got in (None, "") else "value where the reference is empty"
    kind, value = ref
    if kind == "error":
        if got is None:
            return None  # documented: error cells → null, counted in sheetdrop.errors
        return "error cell not null"
    if got is None:
        if kind == "text" and not value.strip():
            return "whitespace-only text read as null"
        return f"{kind} cell read as null"
    if isinstance(got, str):
        return _classify_text(kind, value, got, arrow, kinds)
    if kind == "number":
        if isinstance(got, bool) or not isinstance(got, int | float):
            return f"number read as {type(got).__name__}"
        return None if _close(float(got), value) else "number differs"
    if kind == "bool":
        return None if isinstance(got, bool) and got == value else f"bool read as {type(got).__name__}"
    if kind == "datetime":
        if isinstance(got, dt.datetime):
            if _same_time(got, value):
                return None
            if min(got, value) < dt.datetime(1900, 3, 1) and abs((got - value).total_seconds()) < 86401:
                return "datetime a day apart before 1900-03-01"
            return "datetime differs"
        if isinstance(got, dt.date):
            return None if value == dt.datetime(got.year, got.month, got.day) else "datetime differs"
        if isinstance(got, int | float):
            return "date read as a number"
        return f"datetime read as {type(got).__name__}"
    if kind == "time":
        if isinstance(got, dt.time):
            return None if abs(_seconds(got) - _seconds(value)) < 0.0015 else "time differs"
        if isinstance(got, dt.timedelta):
            same = abs(got.total_seconds() - _seconds(value)) < 0.0015
            return "time of day read as a duration" if same else "time differs"
        if isinstance(got, dt.datetime):
            same = got.time() == value or abs(_seconds(got.time()) - _seconds(value)) < 0.0015
            return "time of day read as a datetime" if same else "time differs"
        if isinstance(got, int | float):
            return "time read as a number"
        return f"time read as {type(got).__name__}"
    if kind == "duration":
        if isinstance(got, dt.timedelta):
            return None if abs((got - value).total_seconds()) < 0.0015 else "duration differs"
        if isinstance(got, dt.time):
            same = abs(_seconds(got) - value.total_seconds()) < 0.0015
            return "duration read as a time of day" if same else "duration differs"
        if isinstance(got, int | float):
            return "duration read as a number"
        return f"duration read as {type(got).__name__}"
    if kind == "text":
        return f"text read as {type(got).__name__}"
    return f"{kind} read as {type(got).__name__}"


_CLOCK = re.compile(r"^(-?\d+):(\d\d)(?::(\d\d)(?:\.(\d+))?)?$")


def _classify_text(kind: str, value: Any, got: str, arrow: str, kinds: Counter) -> str | None:
    mixed = len(kinds) > 1
    tag = "" if mixed or arrow != "string" else " (in a column of one kind)"
    if kind == "text":
        if got == value:
            return None
        if got == value.strip():
            return "text: leading/trailing whitespace trimmed"
        return "text differs"
    if kind == "number":
        try:
            number = float(got)
        except ValueError:
            return "number as text: rendered otherwise than its value" + tag
        if _close(number, value):
            return None
        if abs(value) > 2**53 and value.is_integer():
            return "number as text: whole number beyond 2^53 not exact" + tag
        return "number as text: value differs" + tag
    if kind == "bool":
        return None if got == ("TRUE" if value else "FALSE") else "bool as text: rendered otherwise" + tag
    if kind == "error":
        return "error as text"
    if kind == "datetime":
        try:
            parsed = dt.datetime.fromisoformat(got)
        except ValueError:
            parsed = None
        if parsed is not None:
            if _same_time(parsed, value):
                return None
            if abs((parsed - value).total_seconds()) < 1:
                return "date as text: shown to whole seconds" + tag
            if min(parsed, value) < dt.datetime(1900, 3, 1) and abs((parsed - value).total_seconds()) < 86401:
                return "date as text: a day apart before 1900-03-01" + tag
            return "date as text: value differs" + tag
        try:
            float(got)
            return "date as text: rendered as a serial number" + tag
        except ValueError:
            return "date as text: rendered otherwise" + tag
    if kind in ("time", "duration"):
        match = _CLOCK.match(got)
        if match is None:
            try:
                float(got)
                return f"{kind} as text: rendered as a serial number" + tag
            except ValueError:
                return f"{kind} as text: rendered otherwise" + tag
        hours, minutes, seconds, fraction = match.groups()
        sign = -1 if hours.startswith("-") else 1
        total = abs(int(hours)) * 3600 + int(minutes) * 60 + int(seconds or 0) + float(f"0.{fraction or 0}")
        want = _seconds(value) if kind == "time" else value.total_seconds()
        if abs(sign * total - want) < 1e-6:
            return None
        if abs(sign * total - want) < 1:
            return f"{kind} as text: shown to whole seconds" + tag
        return f"{kind} as text: value differs" + tag
    return f"{kind} as text" + tag


# -- the corpus ---------------------------------------------------------------------------------------------------

EXPECTATIONS = CORPUS / "expectations.json"
#: Classes that say how long a conversion took: the machine's, not the converter's output.
TIMING = {"slow (> 5 s)"}


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.suffix.lower() in WORKBOOK_SUFFIXES)


def _quiet() -> None:
    logging.basicConfig(level=logging.ERROR)
    warnings.simplefilter("ignore")  # openpyxl's notes on what it leaves out of a stylesheet


def run(files: list[Path], workers: int = 1) -> list[FileResult]:
    """Each file compared, in ``workers`` processes at once (spawned: the caller may hold threads);
    in the files' order."""
    if workers <= 1:
        _quiet()
        return [compare_file(path) for path in files]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_quiet) as pool:
        # The longest first, so that no long one starts last (the files' size stands for their time).
        order = sorted(files, key=lambda p: -p.stat().st_size)
        done = dict(zip(order, pool.map(compare_file, order), strict=True))
    return [done[path] for path in files]


def summary(result: FileResult) -> dict[str, Any]:
    """What a file's expectation records: how its conversion ended, the cells compared and matched, and
    each class of difference with its count (timing left out)."""
    return {"status": result.status, "code": result.code, "cells": result.cells, "matched": result.matched,
            "differences": {kind: entry["count"] for kind, entry in sorted(result.differences.items())
                            if kind not in TIMING}}


def unexplained(results: list[FileResult], rules: dict[str, str]) -> dict[str, list[str]]:
    """Classes of difference that no rule of the expectations file explains, with the files."""
    found: dict[str, list[str]] = defaultdict(list)
    for result in results:
        for kind in result.differences:
            if kind not in TIMING and kind not in rules:
                found[kind].append(result.file)
    return dict(found)


def write_expectations(results: list[FileResult]) -> None:
    """The files' summaries into the expectations file, its rules kept; refused while a class of
    difference has no rule (write the rule, or fix the converter, first)."""
    recorded = json.loads(EXPECTATIONS.read_text(encoding="utf-8"))
    missing = unexplained(results, recorded["rules"])
    if missing:
        raise SystemExit(f"no rule for: {json.dumps(missing, indent=1)}")
    recorded["files"] = {r.file: {**summary(r), "examples": {kind: entry["examples"][0] for kind, entry in
                                                             sorted(r.differences.items()) if kind not in TIMING}}
                         for r in results}
    EXPECTATIONS.write_text(json.dumps(recorded, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    parser.add_argument("--workers", type=int, default=1, help="files compared at once (processes)")
    parser.add_argument("--write-expectations", action="store_true",
                        help=f"record every file's differences in {EXPECTATIONS.name} (the whole corpus only)")
    args = parser.parse_args(argv)
    files = [p.resolve() for p in args.files] or corpus_files()
    if args.write_expectations and args.files:
        parser.error("--write-expectations records the whole corpus")
    results = run(files, args.workers)
    totals: Counter = Counter()
    examples: dict[str, list[str]] = defaultdict(list)
    for result in results:
        diff = sum(d["count"] for d in result.differences.values())
        state = result.status + (f" {result.code}" if result.code else "")
        print(f"{result.file}: {state}, {result.seconds:.2f} s, reference {result.reference[:60]}, "
              f"{len(result.sheets)} sheets, {result.cells} cells compared, {diff} differences", flush=True)
        for kind, entry in sorted(result.differences.items()):
            print(f"    {kind}: {entry['count']} — {entry['examples'][0]}")
            totals[kind] += entry["count"]
            examples[kind].extend(entry["examples"][:2])
    print(f"\n{len(results)} files, {sum(r.cells for r in results)} cells compared, "
          f"{sum(r.matched for r in results)} the same; "
          f"{sum(r.status == 'rejected' for r in results)} rejected, {sum(r.status == 'exception' for r in results)} "
          "exceptions")
    for kind, n in totals.most_common():
        print(f"  {n:7d}  {kind}  (e.g. {examples[kind][0]})")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1, ensure_ascii=False, default=str))
    if args.write_expectations:
        write_expectations(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
