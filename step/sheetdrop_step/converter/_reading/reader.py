"""The reader process: ``main`` with a Job (``_job``, JSON) on stdin; the parquet files and
``outcome.json`` go into the job's staging folder. ``launch`` starts it under an address-space limit and
a timeout: the Rust readers abort the whole process when an allocation fails. Its end of the channel
with the parent is ``channel``; ``serve`` reads job after job with the same :func:`read`.

The quick guard (``_safety.guard``) classifies the file and lists its sheets; the bounded scan
(``_safety.scan.ScanThread``) runs on a thread of its own while the sheets are read once each
(``fastexcel``, ``xls``), as many at once as the cores and the memory limit allow (the parse runs in
Rust, without the GIL). A large xlsx/xlsm sheet is read in pieces parsed at once, cut from the scan's
inflate (``pieces.SheetPieces``) and merged as one read (``_table.merge``); otherwise the scan runs
at a lower CPU priority. Nothing is written before the scan has passed, and a scan rejection wins over
whatever the readers made of the file. Then each sheet goes through the table and column rules
(``_table.build``) into a parquet file (``_table.write``). pyarrow is imported after the first parse:
imported during it, it would add its 60 MiB to the parse's peak.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sheetdrop_step.converter._job import Job, Outcome, SheetResult, Skip, content_line, job_from_json
from sheetdrop_step.converter._reading.channel import connect, finish, started, watched
from sheetdrop_step.converter._reading.counts import check
from sheetdrop_step.converter._reading.fastexcel import FastexcelBook
from sheetdrop_step.converter._reading.head import head_types
from sheetdrop_step.converter._reading.listing import KINDS, classify, list_sheets, recoverable
from sheetdrop_step.converter._reading.packages import SHEET_ONLY, normalize, one_sheet_parts, patch_errors
from sheetdrop_step.converter._reading.pieces import Piece, SheetPieces
from sheetdrop_step.converter._reading.task import NeedsPatch, SheetSkipped, Task
from sheetdrop_step.converter._reading.xls import XlsBook, garbled
from sheetdrop_step.converter._rejection import WorkbookRejected
from sheetdrop_step.converter._safety.guard import Inspection, quick_inspect
from sheetdrop_step.converter._safety.scan import (
    ScanThread,
    SheetCounts,
    SheetMarks,
    area_checked,
    scan_sheet,
    whole_numbers,
)
from sheetdrop_step.converter._table.header import HeaderChoice, Shape

#: Address space a parse takes per byte of sheet XML (measured 1.9 on 100k rows x 20 columns), and
#: what the process holds before any (interpreter, pyarrow, thread stacks and malloc arenas).
PARSE_FACTOR = 2.5
BASELINE_BYTES = 512 * 1024**2


def main() -> None:
    channel = connect()
    with watched():
        # The job is read after the watch started: a parent killed before it wrote the job leaves an empty
        # stdin, and the watch removes the staging folder all the same.
        try:
            job = job_from_json(sys.stdin.read())
        except ValueError:  # no job: its parent died while writing it (the watch ends this process)
            threading.Event().wait()
            raise
        finish(job, read(job, channel))


def read(job: Job, channel: socket.socket) -> Outcome:
    """One job's outcome; the workbook's size said on the channel as soon as it is known (its time bound)."""
    started()
    try:
        return Reader(job, lambda size: channel.sendall(content_line(size))).run()
    except BaseException as exc:  # a reader's failure outside any one sheet is a verdict on the file too
        return Outcome(rejected=classify(exc, job.limits.max_memory_bytes).to_wire())


class Reader:
    """One workbook's reading: its sheets planned (as the guard lists them, or the reader), each read
    once (whole, or in pieces at once), checked against the scan's counts, shaped into its table and
    written; the scan's verdict first."""

    def __init__(self, job: Job, content: Callable[[int], None] = lambda size: None) -> None:
        self.job, self.staging, self.limits = job, Path(job.staging), job.limits
        self.src = Path(job.src)
        self.inspection = quick_inspect(self.src, job.limits)
        # The size the workbook's time bound is reckoned from (``Limits.time_bound``), for the parent.
        entries = self.inspection.entries
        content(sum(i.file_size for i in entries.values()) if entries else self.src.stat().st_size)
        self.notes: list[str] = []
        # What the scan (or a sheet's cutter) looks for besides the counts: merged cells name the
        # columns of a header of several rows; formulas without a value count inside the range.
        self.marks = lambda: SheetMarks(job.options.multirow_header, job.options.cell_range())
        self.books = threading.local()
        self.xls: XlsBook | None = None

    def run(self) -> Outcome:
        self.path, self.reading = self._prepare()
        tasks, skipped = self._plan()
        self.alone = len(tasks) == 1  # then the column rules run on every core
        pieces = {t.index: self._pieces(t) for t in tasks}
        # xls and ods: one stream their reader parses whole, one thread.
        threads = parallel(self.job.cores, [size for sizes in pieces.values() for size in sizes],
                           self.limits.max_memory_bytes) if self.reading.sheets is not None else 1
        with ThreadPoolExecutor(threads, "sheetdrop") as pool:
            self.pool = pool
            # The heads first: a piece's parse waits for its sheet's types.
            self.heads = {t.part: pool.submit(head_types, self.path, self.reading, t, self.limits,
                                              options=self.job.options) for t in tasks if len(pieces[t.index]) > 1}
            self.loads: dict[str | None, list[Future[tuple[int, list[Any], int]]]] = {p: [] for p in self.heads}
            self.scan = ScanThread(self.src, self.limits, self.inspection, {t.part: SheetPieces(
                lambda t=t: one_sheet_parts(self.path, self.reading, t.part, self.limits), t.part or "",
                self.staging / f"piece-{t.index}{self.path.suffix}", pieces[t.index][0],
                lambda piece, t=t: self.loads[t.part].append(pool.submit(self._piece, t, piece)),
                self.marks()) for t in tasks if t.part in self.heads}, self.marks,
                lambda exc: finish(self.job, Outcome(rejected=exc.to_wire())))
            self.scan.start()
            # In sheet order, as a one-by-one read gives them; a sheet in pieces waits here for them.
            reads = [None if t.part in self.heads else pool.submit(self._table, t) for t in tasks]
            tables = [self._table(t) if read is None else read.result() for t, read in zip(tasks, reads, strict=True)]
            self.scan.wait()  # nothing is written before the scan has passed
            for item in tables:
                if isinstance(item, WorkbookRejected):
                    raise item
            outcomes = list(pool.map(self._write, tasks, tables))
        results = []
        for item in outcomes:
            (skipped if isinstance(item, Skip) else results).append(item)
        if not results:
            detail = "; ".join(f"{s.sheet!r}: {s.why}" for s in skipped[:10])
            raise WorkbookRejected("empty", "the workbook has no visible worksheet with data" + (
                f" ({detail})" if detail else ""))
        return Outcome(sheets=results, skipped=skipped, notes=self.notes)

    def _prepare(self) -> tuple[Path, Inspection]:
        """The file the reader opens, and its inspection. fastexcel picks its parser from the extension:
        it gets a link named after the content. A package whose parts are not where the reader looks
        (another tool's layout) is rewritten in Excel's (``packages.normalize``)."""
        inspection, fmt = self.inspection, self.inspection.fmt
        if fmt in ("xlsx", "xlsm") and not inspection.canonical:
            normalize(self.src, inspection, self.staging / f"normalized.{fmt}", self.limits)
            return self.staging / f"normalized.{fmt}", quick_inspect(self.staging / f"normalized.{fmt}", self.limits)
        os.symlink(self.src.resolve(), self.staging / f"input.{fmt}")
        return self.staging / f"input.{fmt}", inspection

    def _pieces(self, task: Task) -> list[int]:
        """The sizes of XML a sheet is parsed in: whole, or in pieces cut as the scan inflates it and
        parsed at once (the reader parses a sheet on one core, and inflates it once more), each of
        ``piece_bytes``, or four times the workbook's other parts, which every piece parses again."""
        if self.reading.fmt not in ("xlsx", "xlsm") or self.job.cores < 2:
            return [task.size]
        others = sum(i.file_size for name, i in self.reading.entries.items() if not name.startswith(SHEET_ONLY))
        size = max(self.limits.piece_bytes, 4 * others, 1)
        return [size] * math.ceil(task.size / size) if task.size >= 2 * size else [task.size]

    def _piece(self, task: Task, piece: Piece) -> tuple[int, list[Any], int]:
        try:
            book = FastexcelBook(piece.path, self.reading, self.job.include_hidden)
            return piece.first, *book.load(task, self.heads[task.part].result().types, first=piece.first,
                                           lacks_before=True)
        finally:
            piece.path.unlink(missing_ok=True)

    def _plan(self) -> tuple[list[Task], list[Skip]]:
        """The sheets to read: as the guard lists them (xlsx, xlsm, xlsb), or as the reader does."""
        tasks, skipped = [], []
        if self.reading.fmt in ("xls", "ods"):
            for i, (name, kind) in enumerate(self._sheet_names()):
                if why := self.job.options.excludes(name):
                    skipped.append(Skip(name, why))
                elif kind != "worksheet":
                    skipped.append(Skip(name, KINDS.get(kind, kind)))
                else:
                    tasks.append(Task(i, name))
            return tasks, skipped
        # As the workbook lists them (a package rewritten for the reader may leave out sheets it refuses).
        for index, sheet in enumerate(self.inspection.sheets or []):
            if why := self.job.options.excludes(sheet.name):
                skipped.append(Skip(sheet.name, why))
            elif sheet.kind != "worksheet":
                skipped.append(Skip(sheet.name, KINDS.get(sheet.kind, sheet.kind)))
            elif sheet.state != "visible" and not self.job.include_hidden:
                skipped.append(Skip(sheet.name, f"{sheet.state} sheet"))
            else:
                info = self.reading.entries.get(sheet.part or "")
                tasks.append(Task(index, sheet.name, sheet.part, info.file_size if info else 0))
        return tasks, skipped

    def _sheet_names(self) -> list[tuple[str, str]]:
        """An .xls's or .ods's sheets (name, kind): ``listing``, which may hand the .xls to xlrd."""
        listing = list_sheets(self.src, self.path, self.reading, self.staging, self.limits)
        self.path, self.xls, self.reading.date1904 = listing.path, listing.xls, listing.date1904
        self.notes.extend(listing.notes)
        return listing.sheets

    def _table(self, task: Task) -> Any:
        """The sheet's table (column rules applied), a Skip, or the rejection its reading ended in."""
        try:
            shape = Shape(self.job.options, previous=self.job.previous.get(task.name, {}))
            try:
                columns, date1904 = (self.xls.read(task), self.xls.date1904) if self.xls else (
                    self._read_pieces(task, shape) if task.part in self.heads else self._read(task, shape),
                    self.reading.date1904)
                if self.reading.fmt == "xls" and not self.xls and (text := garbled(columns)) is not None:
                    raise ValueError(f"calamine decoded text as {text[:40]!r}")
            except BaseException as exc:
                book = self._xlrd(exc, f"sheet {task.name!r} ")
                columns, date1904 = book.read(task), book.date1904
            from sheetdrop_step.converter._table.build import build_table

            if self.reading.fmt in ("xlsx", "xlsm") and task.part and beyond_doubles(columns):
                # A double read a whole number it may not hold: the sheet's XML has its digits.
                shape.digits = whole_numbers(self.path, self.reading.entries[task.part], self.limits)
            sheet = build_table(columns, date1904, self.job.cores if self.alone else 1, shape)
            if sheet is None:
                return Skip(task.name, f"no values in range {self.job.options.range}" if self.job.options.range
                            else "empty")
            sheet.warnings[:0] = shape.warnings
            if sheet.header.titles or sheet.header.count != 1:
                self.notes.append(f"sheet {task.name!r}: {sheet.header.describe()}")
            return sheet
        except SheetSkipped as exc:
            return Skip(task.name, str(exc))
        except BaseException as exc:  # a reader error (or panic) is a verdict on the file
            self.scan.wait()  # the scan's verdict comes first: the file may be a bomb the reader choked on
            return classify(exc, self.limits.max_memory_bytes)

    def _xlrd(self, exc: BaseException, what: str) -> XlsBook:
        """xlrd, for an .xls that calamine failed on (else ``exc`` again)."""
        if self.reading.fmt != "xls" or self.xls is not None or not recoverable(exc):
            raise exc
        self.notes.append(f"{what}read by xlrd: {' '.join(str(exc).split())[:200]}")
        return XlsBook(self.path)

    def _book(self) -> FastexcelBook:
        if not hasattr(self.books, "book"):  # a fastexcel reader cannot be shared between threads
            self.books.book = FastexcelBook(self.path, self.reading, self.job.include_hidden)
        return self.books.book

    def _read_pieces(self, task: Task, shape: Shape) -> list[Any]:
        """A sheet read once in pieces, merged as one read (``_table.merge``); read whole if a
        piece could not be cut or read (measured and counted by a scan of its own then)."""
        try:
            self.scan.wait()  # every piece written
            pieces = self.scan.pieces[task.part]
            if pieces.whole:
                raise ValueError("no row to cut the sheet at, or rows out of order")
            reads = [load.result() for load in self.loads[task.part]]
            from sheetdrop_step.converter._table.merge import merge

            columns = merge(reads)
            self.notes.append(f"sheet {task.name!r}: read in {len(reads)} pieces at once")
        except BaseException as exc:
            if not recoverable(exc):
                raise
            self.notes.append(f"sheet {task.name!r} read whole: {' '.join(str(exc).split())[:200]}")
            counts = scan_sheet(self.path, self.reading.entries[task.part or ""], task.name, self.limits,
                                self.marks())
            return self.pool.submit(self._read, task, shape, counts).result()
        # The sheet's area as the pieces hold values (the scan measures a sheet read whole).
        counts = area_checked(task.name, SheetCounts(pieces.bools, pieces.texts, max(
            (first + rows for first, _, rows in reads if rows), default=0), max(
            (c.index + 1 for c in columns), default=0), pieces.marks), self.limits)
        head = self.heads[task.part].result()
        columns, notes = check(columns, head, counts, lambda types, only: (
            self.pool.submit(lambda: self._book().load(task, types, only=only)[0]).result()), task.name)
        self.notes.extend(notes)
        _learn(shape, head.choice, counts)
        return columns

    def _read(self, task: Task, shape: Shape, counts: SheetCounts | None = None) -> list[Any]:
        """One sheet read whole, once (twice when the count check proves a silent coercion); what its
        first rows and the scan (or ``counts``) tell about its table goes into ``shape``."""
        book, path, inspection = self._book(), self.path, self.reading
        try:
            head = head_types(path, inspection, task, self.limits, book if inspection.fmt in ("xls", "ods") else None,
                              self.job.options)
            columns = book.load(task, head.types)[0]
        except NeedsPatch:
            # Error values the reader refuses (#SPILL!, #CALC!...): a copy with each made #N/A, read instead.
            path = self.staging / f"patched-{task.index}{path.suffix}"
            count = patch_errors(self.path, inspection, task.part or "", path, self.limits)
            self.notes.append(f"sheet {task.name!r}: {count} error values the reader does not know read as #N/A")
            inspection = quick_inspect(path, self.limits)
            book = FastexcelBook(path, inspection, self.job.include_hidden)
            head = head_types(path, inspection, task, self.limits, options=self.job.options)
            columns = book.load(task, head.types)[0]
        counts = counts or self.scan.counts_for(task.part)
        columns, notes = check(columns, head, counts, lambda types, only: book.load(task, types, only=only)[0],
                               task.name)
        self.notes.extend(notes)
        _learn(shape, head.choice, counts)
        return columns

    def _write(self, task: Task, sheet: Any) -> SheetResult | Skip:
        if isinstance(sheet, Skip):
            return sheet
        from sheetdrop_step.converter._table.write import write_parquet

        path = self.staging / f"sheet-{task.index}.parquet"
        write_parquet(sheet, path, source=self.job.source, name=task.name, version=self.job.version)
        table = sheet.table
        return SheetResult(task.index, task.name, path.name, table.num_rows, table.num_columns,
                           path.stat().st_size, sheet.types, sheet.nulls, sheet.errors, sheet.header.describe(),
                           sheet.warnings, sheet.rescued)


def _learn(shape: Shape, header: HeaderChoice | None, counts: SheetCounts | None) -> None:
    """What the first rows and the whole sheet's XML tell about its table: the header, merged cells,
    formulas without a value (a warning)."""
    shape.header = header
    if counts is not None:
        marks = counts.marks
        shape.merges = tuple(marks.merges)
        if marks.uncached:
            shape.warnings.append(
                f"{marks.uncached} formula cell{'s' if marks.uncached > 1 else ''} without a saved value "
                f"({', '.join(marks.uncached_at)}{', …' if marks.uncached > len(marks.uncached_at) else ''}) "
                "read as empty: the tool that wrote the workbook did not calculate them; open it in Excel or "
                "LibreOffice, save it and upload it again")


def beyond_doubles(columns: list[Any]) -> bool:
    """Whether a number read may stand for a whole number a double does not hold: from 2**53 on (a
    double holds 2**53 for 2**53 + 1)."""
    import pyarrow.compute as pc

    from sheetdrop_step.converter._safety.scan import EXACT_UP_TO

    for col in columns:
        if col.kind == "number" and col.native is not None and col.native.null_count < len(col.native) and (
                pc.max(pc.abs(col.native)).as_py() >= EXACT_UP_TO):
            return True
        if any(kind == "number" and abs(value) >= EXACT_UP_TO for kind, value in col.foreign.values()):
            return True
    return False


def parallel(cores: int, sizes: list[int], memory: int) -> int:
    """Sheets parsed at once: as many as the cores, as long as that many of the largest fit in the
    reader's address space (each parse takes ``PARSE_FACTOR`` times its XML)."""
    need = int(max(sizes, default=0) * PARSE_FACTOR) or 1
    return max(1, min(cores, len(sizes), (memory - BASELINE_BYTES) // need))
