"""The bounded scan: every zip part the quick guard left alone, inflated once with bounds, and each
sheet's XML measured by its actual cells (the readers inflate without bounds and allocate a sheet's
whole range). It also counts each sheet's boolean and text cells for the count check
(``_reading.counts``), and runs on a thread of its own in the reader process (:class:`ScanThread`).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import zipfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sheetdrop_contract.read_options import CellRange
from sheetdrop_step.converter._job import Limits
from sheetdrop_step.converter._rejection import WorkbookRejected
from sheetdrop_step.converter._safety.guard import Inspection
from sheetdrop_step.converter._safety.parts import inflate_entry

EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLS = 16_384
# A cell that holds something (a value or inline text), with its reference: cells that are only
# styled take no room in the reader, so they do not widen the area. Whitespace between the elements
# (Gnumeric writes its XML indented) is allowed.
_HOLDS_VALUE = rb'"[^>]*>\s*(?:<(?:\w+:)?f\b[^>]*(?:/>|>[^<]*</(?:\w+:)?f>)\s*)?<(?:\w+:)?(?:v|is)\b'
_CELL_AT = rb'<(?:\w+:)?c\b[^>]*?\br="'
_VALUED_CELL = re.compile(_CELL_AT + rb"([A-Z]{1,3})(\d+)" + _HOLDS_VALUE)
# Literal prefix first, so that re skips quickly to the candidates: only references of two or
# three letters can widen the area past column Z.
_WIDE_REF = re.compile(rb'r="([A-Z]{2,3})\d')
_VALUED_WIDE = re.compile(_CELL_AT + rb"([A-Z]{2,3})\d+" + _HOLDS_VALUE)
#: Wide columns looked up one by one in a chunk before one pass finds them all.
WIDE_LOOKUPS = 4
TEXT_TYPES = (b't="s"', b't="str"', b't="inlineStr"')
_REF = re.compile(rb"([A-Z]{1,3})(\d+)")
_MERGE = re.compile(rb'<(?:\w+:)?mergeCell\s+ref="([A-Z]{1,3})(\d+):([A-Z]{1,3})(\d+)"')
# A formula cell without a cached value: the tool that wrote it did not compute it, so a reader sees
# an empty cell (an empty <v> in a t="str" cell is a cached empty string).
_UNCACHED = re.compile(rb'<(?:\w+:)?c\b([^>]*?\br="([A-Z]{1,3}\d+)"[^>]*)>(?:<(?:\w+:)?f\b[^>]*/>|<(?:\w+:)?f\b[^>]*>'
                       rb'[^<]*</(?:\w+:)?f>)(<(?:\w+:)?v\s*/>|<(?:\w+:)?v></(?:\w+:)?v>)?</(?:\w+:)?c>')
_UNCACHED_ENDS = (b"</f></c>", b"/></c>", b"<v></v></c>")
MAX_MERGES = 10_000


@dataclass
class SheetCounts:
    """What the scan learned about one sheet part."""

    bools: int = 0  # cells of type t="b"
    texts: int = 0  # cells of type s, str or inlineStr
    rows: int = 0  # the last row holding a value
    columns: int = 0  # the last column holding a value
    marks: SheetMarks = field(default_factory=lambda: SheetMarks())


def col_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ch - 64)
    return n


class SheetMarks:
    """What only the whole sheet's XML tells the table: formula cells without a value, and (asked for
    with ``merges``: a header of several rows) merged areas, written after the cells. Fed chunk by
    chunk, by the scan or by the cutter of a sheet read in pieces; a match counts where it ends past
    the previous chunk's tail, so none counts twice. Each search is a pass over the sheet on the
    scan's thread, which feeds the pieces: formulas are looked for in every chunk of a sheet read by
    a range (``area``: only the formulas inside it count), else only in a sheet whose first chunk has
    one (a sheet of formulas has them from its first rows; one computed last, under a long export,
    may go unreported)."""

    def __init__(self, merges: bool = False, area: CellRange | None = None) -> None:
        self.want_merges, self.area = merges, area
        self.merges: list[tuple[int, int, int, int]] = []  # zero-based, inclusive
        self.uncached = 0
        self.uncached_at: list[str] = []  # the first few
        self.tail = b""
        self.formulas: bool | None = None  # decided on the first chunk
        self.prefixed = False  # cells as <x:c>: the quick look for endings only knows the usual spelling

    def feed(self, chunk: bytes) -> None:
        if self.formulas is None:
            self.prefixed = b":sheetData" in chunk
            self.formulas = self.prefixed or self.area is not None or b"<f" in chunk
        merges = self.want_merges and len(self.merges) < MAX_MERGES and self._has(chunk, b"mergeCell")
        uncached = self.formulas and (self.prefixed or any(self._has(chunk, end) for end in _UNCACHED_ENDS))
        if merges or uncached:
            data, seam = self.tail + chunk, len(self.tail)
            for m in _MERGE.finditer(data) if merges else ():
                if m.end() > seam:
                    self.merges.append((int(m[2]) - 1, col_number(m[1]) - 1, int(m[4]) - 1, col_number(m[3]) - 1))
            for m in _UNCACHED.finditer(data) if uncached else ():
                if m.end() > seam and not (m[3] and b't="str"' in m[1]) and self._inside(m[2]):
                    self.uncached += 1
                    if len(self.uncached_at) < 5:
                        self.uncached_at.append(m[2].decode())
        self.tail = chunk[-4096:] if len(chunk) >= 4096 else (self.tail + chunk)[-4096:]

    def _has(self, chunk: bytes, pattern: bytes) -> bool:
        return pattern in chunk or pattern in self.tail[1 - len(pattern):] + chunk[:len(pattern) - 1]

    def _inside(self, ref: bytes) -> bool:
        if self.area is None:
            return True
        letters, row = _REF.fullmatch(ref).groups()  # type: ignore[union-attr] # the pattern matched it
        column, row_index, area = col_number(letters) - 1, int(row) - 1, self.area
        return area.first_col <= column and (area.last_col is None or column <= area.last_col) and (
            area.first_row <= row_index and (area.last_row is None or row_index <= area.last_row))


class SheetScan:
    """Streaming scan of one sheet's XML. The reader allocates ``rows x columns`` of the range holding
    values (one value at XFD1048576 asks for ~17 billion cells); the declared ``<dimension>`` is not
    trusted either way (Gnumeric declares A1:XFD1048576 for a few cells): only cells holding a value
    count. C-speed passes only; rows are taken to come in order (a hostile file with rows out of order
    is left to the reader's memory limit)."""

    def __init__(self, marks: SheetMarks | None = None) -> None:
        self.counts = SheetCounts(marks=marks or SheetMarks())
        self.tail = b""

    def feed(self, chunk: bytes) -> None:
        counts = self.counts
        bools, texts = chunk_kinds(self.tail, chunk)
        counts.bools, counts.texts = counts.bools + bools, counts.texts + texts
        region = self.tail + chunk if len(chunk) < 65536 else chunk
        wide = set(_WIDE_REF.findall(chunk)) | set(_WIDE_REF.findall(self.tail[-256:] + chunk[:256]))
        wider = sorted((letters for letters in wide if col_number(letters) > counts.columns), key=col_number,
                       reverse=True)
        # A wider column than seen so far counts only if one of its cells holds a value: the widest few
        # are looked up one by one (a table's widest column holds values: found at its first row); past
        # them, one pass over the chunk finds every wide cell holding a value. Each lookup is a pass:
        # one per distinct column, on a row of 16,384 styled empty cells, took minutes.
        for letters in wider[:WIDE_LOOKUPS]:
            if re.search(_CELL_AT + letters + rb"\d+" + _HOLDS_VALUE, region):
                counts.columns = col_number(letters)
                break
        else:
            if len(wider) > WIDE_LOOKUPS:
                valued = set(_VALUED_WIDE.findall(region))
                counts.columns = max((col_number(letters) for letters in valued), default=0) or counts.columns
        counts.marks.feed(chunk)
        # The last row holding a value: the last such cell in the chunk's end, in ends four times longer
        # each until one has one (at most about 1.3 passes over the chunk).
        size, last = 16384, None
        while last is None:
            end = self.tail[-4096:] + chunk[-size:] if len(chunk) < size else chunk[-size:]
            last = next(iter(deque(_VALUED_CELL.finditer(end), maxlen=1)), None)
            if size >= len(chunk):
                break
            size *= 4
        if last is not None:
            counts.rows = max(counts.rows, int(last.group(2)))
            counts.columns = max(counts.columns, col_number(last.group(1)))
        self.tail = chunk[-4096:] if len(chunk) >= 4096 else (self.tail + chunk)[-4096:]


def area_checked(sheet: str, counts: SheetCounts, limits: Limits) -> SheetCounts:
    """The counts of a sheet whose area (rows x columns holding values) the reader may allocate."""
    rows, columns = counts.rows, counts.columns
    if rows > EXCEL_MAX_ROWS or columns > EXCEL_MAX_COLS:
        raise WorkbookRejected("corrupt", f"sheet {sheet!r} refers to cells beyond Excel's grid; the file is damaged")
    if rows * max(columns, 1) > limits.max_cells:
        raise WorkbookRejected(
            "too-large",
            f"sheet {sheet!r} spans {rows} rows x {columns} columns ({rows * columns:,} cells), above the "
            f"{limits.max_cells:,}-cell limit; delete stray cells far from the data (Ctrl+End shows the last "
            "one) and save again",
        )
    return counts


# A number cell written with all its digits, 16 and more (past 2**53 a double may not hold it): its
# attributes (a type other than n makes it no number), reference and digits.
_WHOLE_NUMBER = re.compile(rb'<(?:\w+:)?c\b([^>]*?\br="([A-Z]{1,3})(\d+)"[^>]*)>\s*(?:<(?:\w+:)?f\b[^>]*(?:/>|>[^<]*'
                           rb"</(?:\w+:)?f>)\s*)?<(?:\w+:)?v>(-?\d{16,})</")
_NOT_NUMBER = re.compile(rb'\bt="(?!n")')
EXACT_UP_TO = 2**53


def whole_numbers(path: Path, info: zipfile.ZipInfo, limits: Limits) -> dict[tuple[int, int], int]:
    """The sheet part's whole numbers that a double would change (beyond 2**53, written with all their
    digits, as exports write IDs), by (row, column) from 0: one more bounded pass over the sheet, made
    only for a sheet a double read such a number from."""
    found: dict[tuple[int, int], int] = {}
    tail = b""

    def feed(chunk: bytes) -> None:
        nonlocal tail
        data = tail + chunk
        for m in _WHOLE_NUMBER.finditer(data):
            if m.end() > len(tail) and abs(number := int(m[4])) > EXACT_UP_TO and not _NOT_NUMBER.search(m[1]):
                found[int(m[3]) - 1, col_number(m[2]) - 1] = number
        tail = data[-4096:]

    with path.open("rb") as fh:
        inflate_entry(fh, info, limits, 0, feed)
    return found


def chunk_kinds(tail: bytes, chunk: bytes) -> tuple[int, int]:
    """The boolean and the text cells whose type attribute ends in ``chunk`` (what came before it ends in
    ``tail``): each count looks at the chunk, plus the few bytes around its start where a pattern may
    have been cut (fewer than the pattern's length on each side, so nothing is counted twice). Counted
    chunk by chunk, as it is inflated: a chunk is still in the processor's cache (counting a piece of
    8 MiB afterwards, four times, took half a second of a 100k-row sheet)."""
    found = []
    for pattern in (b't="b"', *TEXT_TYPES):
        seam = tail[-len(pattern) + 1:] + chunk[:len(pattern) - 1]
        found.append(chunk.count(pattern) + seam.count(pattern))
    return found[0], sum(found[1:])


def scan_sheet(path: Path, info: zipfile.ZipInfo, name: str, limits: Limits, marks: SheetMarks) -> SheetCounts:
    """One sheet part inflated (bounded) and scanned on its own: for a sheet the scan left to its
    cutter and that is read whole after all."""
    scan = SheetScan(marks)
    with path.open("rb") as fh:
        inflate_entry(fh, info, limits, 0, scan.feed)
    return area_checked(name, scan.counts, limits)


class Cutter(Protocol):
    """What cuts a sheet into pieces as the scan inflates it (``_reading.pieces.SheetPieces``)."""

    def feed(self, chunk: bytes) -> None: ...

    def finish(self) -> None: ...


def deep_check(path: Path, deferred: list[zipfile.ZipInfo], sheets: dict[str, str], limits: Limits,
               inflated: int = 0, counted: Callable[[str, SheetCounts], None] | None = None,
               pieces: dict[str, Cutter] | None = None,
               marks: Callable[[], SheetMarks] = SheetMarks) -> dict[str, SheetCounts]:
    """Inflate every deferred part once (bounded) and scan the sheet parts among them. ``sheets`` maps a
    sheet part's zip name to the sheet's name. Returns the counts per part, each also handed to
    ``counted`` as soon as it is known. The sheets of ``pieces`` (by zip name) are cut instead.
    ``marks``: what each sheet's :class:`SheetMarks` looks for."""
    counts: dict[str, SheetCounts] = {}
    if not deferred:
        return counts
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise WorkbookRejected("corrupt", f"the workbook's zip container is damaged ({exc})") from exc
    with zf, path.open("rb") as fh:
        for info in deferred:
            # A sheet in pieces is measured and counted by them.
            cut = (pieces or {}).get(info.filename)
            scan = SheetScan(marks()) if info.filename in sheets and cut is None else None
            inflated += inflate_entry(fh, info, limits, inflated, cut.feed if cut else scan.feed if scan else None, zf)
            if cut is not None:
                cut.finish()
            if scan is not None:
                counts[info.filename] = area_checked(sheets[info.filename], scan.counts, limits)
                if counted is not None:
                    counted(info.filename, counts[info.filename])
    return counts


class ScanThread(threading.Thread):
    """The bounded scan of every part the quick guard deferred, cutting the sheets of ``pieces`` as it
    inflates them. A rejection goes to ``rejected`` at once (the reader process ends with it: it wins
    over whatever a reader was doing); any other failure is handed to the threads that wait for it."""

    def __init__(self, src: Path, limits: Limits, inspection: Inspection, pieces: dict[str | None, Cutter],
                 marks: Callable[[], SheetMarks], rejected: Callable[[WorkbookRejected], None]) -> None:
        super().__init__(name="sheetdrop-scan", daemon=True)
        self.src, self.limits, self.inspection, self.pieces, self.marks = src, limits, inspection, pieces, marks
        self.rejected = rejected
        entries = inspection.entries
        self.parts = {s.part: entries[s.part].filename for s in inspection.sheets or []
                      if s.part in entries and inspection.fmt in ("xlsx", "xlsm")}
        self.counts: dict[str, SheetCounts] = {}
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.counted = threading.Condition()

    def run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # nice values are per thread: the parses keep their cores
            if not self.pieces:  # (unless they wait for the pieces it cuts)
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        names = {self.parts[s.part]: s.name for s in self.inspection.sheets or [] if s.part in self.parts}
        try:
            deep_check(self.src, self.inspection.deferred, names, self.limits, self.inspection.inflated,
                       self._counted, {self.parts[p]: w for p, w in self.pieces.items()}, self.marks)
        except WorkbookRejected as exc:
            self.rejected(exc)
        except BaseException as exc:  # handed to the threads that wait for the verdict
            self.error = exc
        finally:
            self.done.set()
            with self.counted:
                self.counted.notify_all()

    def _counted(self, part: str, counts: SheetCounts) -> None:
        with self.counted:
            self.counts[part] = counts
            self.counted.notify_all()

    def wait(self) -> None:
        self.done.wait()
        if self.error is not None:
            raise self.error

    def counts_for(self, part: str | None) -> SheetCounts | None:
        """A sheet's counts, as soon as the scan has them (the scan goes on with the other parts)."""
        name = self.parts.get(part or "")
        if name is None:
            return None
        with self.counted:
            self.counted.wait_for(lambda: name in self.counts or self.done.is_set())
        if name not in self.counts:
            self.wait()
        return self.counts.get(name)
