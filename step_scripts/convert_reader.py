"""The reader process: ``python convert_reader.py`` with a Job (``convert_job``, JSON) on stdin; the
parquet files and ``outcome.json`` go into the job's staging folder.

``convert.py`` starts it under an address-space limit and a timeout, because the Rust readers abort
the whole process when an allocation fails and some files are hostile. Everything that touches the
workbook's content happens here, in this order:

1. the quick guard (``convert_guard``) classifies the file and lists its sheets;
2. the bounded scan (``convert_scan``) starts on a thread of its own, at a lower CPU priority;
3. the sheets are read once each (``convert_sheet``) in a pool of threads, as many as the cores the
   job may use and as the memory limit allows (the parse runs in Rust, without the GIL);
4. nothing is written before the scan has passed; a scan rejection wins over whatever the readers
   made of the file: it is written as the outcome at once and the process ends;
5. each sheet goes through the column rules (``convert_columns``) into a parquet file.

Only the standard library is loaded before the first parse starts; pyarrow's imports (~0.2 s) run on
a background thread meanwhile.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

from convert_guard import Inspection, quick_inspect
from convert_job import Job, Limits, Outcome, SheetResult, Skip, job_from_json, to_json
from convert_package import PartWriter, normalize, patch_errors
from convert_scan import TEXT_TYPES, SheetCounts, deep_check
from convert_sheet import (
    FastexcelBook,
    Head,
    NeedsPatch,
    SheetSkipped,
    Task,
    XlsBook,
    check,
    head_types,
    merge_parts,
    xls_globals,
)
from rejection import OUT_OF_MEMORY, WorkbookRejected

OUTCOME = "outcome.json"
#: Address space a parse takes per byte of sheet XML (measured 1.9 on 100k rows x 20 columns), and
#: what the process holds before any (interpreter, pyarrow, thread stacks and malloc arenas).
PARSE_FACTOR = 2.5
BASELINE_BYTES = 512 * 1024**2
#: Parts of a split sheet: at least this much XML each, and at most two per core (more parts mean more
#: packages and readers, each parsing the shared strings again; two per core keep both busy until the
#: last part is written).
PART_BYTES = 8 * 1024**2
_FINISHING = threading.Lock()


def main() -> None:
    # pyarrow imports pandas, when installed, the first time it converts a Python value: ~0.4 s for
    # nothing this process needs, and a different process depending on the environment.
    sys.meta_path.insert(0, _NoPandas)  # type: ignore[arg-type]
    job = job_from_json(sys.stdin.read())
    threading.Thread(target=_import_pyarrow, name="sheetdrop-imports", daemon=True).start()
    try:
        outcome = run(job)
    except BaseException as exc:  # a reader's failure outside any one sheet is a verdict on the file too
        outcome = Outcome(rejected=_classify(exc).to_wire())
    finish(job, outcome)


def finish(job: Job, outcome: Outcome) -> NoReturn:
    """Write the outcome and end the process (from any thread; the first caller wins). Everything is
    written and closed by then; skipping the interpreter's teardown (~0.1 s) ends it sooner."""
    _FINISHING.acquire()
    path = Path(job.staging) / OUTCOME
    path.with_suffix(".tmp").write_text(to_json(outcome), encoding="utf-8")
    os.replace(path.with_suffix(".tmp"), path)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run(job: Job) -> Outcome:
    src, staging = Path(job.src), Path(job.staging)
    inspection = quick_inspect(src, job.limits)
    path, reading = _prepare(src, inspection, staging, job.limits)
    tasks, skipped = _plan(reading, job.include_hidden)
    notes: list[str] = []
    xls = None
    if reading.fmt in ("xls", "ods"):
        import fastexcel

        try:
            if reading.fmt == "xls":
                untrusted, reading.date1904 = xls_globals(path)
                if untrusted:
                    raise ValueError("a substream inside a worksheet (an embedded chart), or not BIFF8")
            names = fastexcel.read_excel(str(path)).sheet_names
        except BaseException as exc:
            if reading.fmt != "xls" or not _recoverable(exc):
                raise
            notes.append(f"read by xlrd: {' '.join(str(exc).split())[:200]}")
            xls = XlsBook(path)
            names = xls.names
        tasks = [Task(i, name) for i, name in enumerate(names)]
    # The sheets of xls and ods live in one stream that their reader parses whole: one thread.
    threads = max(1, min(job.cores, len(tasks))) if reading.sheets is not None else 1
    split = _split_choice(tasks, reading, job)
    pool = ThreadPoolExecutor(max_workers=max(threads, job.cores if split else 1), thread_name_prefix="sheetdrop")
    parts = _Parts(path, reading, split, staging, job, pool) if split else None
    scan = _Scan(job, inspection, {inspection.entries[split.part or ""].filename: parts} if parts and split else {})
    scan.start()
    budget = _Budget(job.limits.max_memory_bytes - BASELINE_BYTES)
    books = threading.local()

    def table(task: Task) -> tuple[Any, bool]:
        if xls is not None:
            return xls.read(task)[0], xls.date1904
        if parts is not None and task is split:
            columns = parts.columns(scan, notes)
            if columns is not None:
                return columns, reading.date1904
        try:
            with budget.take(int(task.size * PARSE_FACTOR)):
                return _read_whole(task, path, reading, job, books, scan, notes, staging), reading.date1904
        except BaseException as exc:
            if reading.fmt != "xls" or not _recoverable(exc):
                raise
            notes.append(f"sheet {task.name!r} read by xlrd: {' '.join(str(exc).split())[:200]}")
            book = XlsBook(path)
            return book.read(task)[0], book.date1904

    def outcome(task: Task) -> SheetResult | Skip | WorkbookRejected:
        try:
            columns, date1904 = table(task)
            from convert_columns import build_table

            sheet = build_table(columns, date1904)
            if sheet is None:
                raise SheetSkipped("empty")
        except SheetSkipped as exc:
            return Skip(task.name, str(exc))
        except BaseException as exc:  # a reader error (or panic) is a verdict on the file
            scan.wait()  # the scan's verdict comes first: the file may be a bomb the reader choked on
            return _classify(exc)
        scan.wait()  # nothing is written before the scan has passed
        return _write(task, sheet, job, staging)

    with pool:
        if threads == 1 and not split:
            outcomes = []
            for task in tasks:
                outcomes.append(outcome(task))
                if isinstance(outcomes[-1], WorkbookRejected):
                    break  # the workbook is refused: the sheets after it are not needed
        else:
            # In sheet order, as a one-by-one read would give them; the split sheet on this thread
            # (its parts go to the pool).
            futures = [None if task is split else pool.submit(outcome, task) for task in tasks]
            outcomes = [outcome(task) if future is None else future.result() for task, future in zip(
                tasks, futures, strict=True)]
    scan.wait()
    results = []
    for item in outcomes:
        if isinstance(item, WorkbookRejected):
            raise item
        (skipped if isinstance(item, Skip) else results).append(item)
    if not results:
        detail = "; ".join(f"{s.sheet!r}: {s.why}" for s in skipped[:5])
        raise WorkbookRejected("empty", "the workbook has no visible worksheet with data" + (
            f" ({detail})" if detail else ""))
    return Outcome(sheets=results, skipped=skipped, notes=notes)


def _read_whole(task: Task, path: Path, inspection: Inspection, job: Job, books: threading.local,
                scan: _Scan, notes: list[str], staging: Path) -> list[Any]:
    if not hasattr(books, "book"):  # a fastexcel reader cannot be shared between threads
        books.book = FastexcelBook(path, inspection, job.include_hidden)
    book = books.book
    try:
        head = head_types(path, inspection, task, job.limits, book if inspection.fmt in ("xls", "ods") else None)
        columns = book.load(task, head.types)[0]
    except NeedsPatch:
        # Error values the reader refuses (#SPILL!, #CALC!, ...): a copy with each made #N/A, read instead.
        source, path = path, staging / f"patched-{task.index}{path.suffix}"
        count = patch_errors(source, inspection, task.part or "", path, job.limits)
        notes.append(f"sheet {task.name!r}: {count} error values the reader does not know read as #N/A")
        inspection = quick_inspect(path, job.limits)
        book = FastexcelBook(path, inspection, job.include_hidden)
        head = head_types(path, inspection, task, job.limits)
        columns = book.load(task, head.types)[0]
    columns, more = check(columns, head, scan.counts_for(task.part), lambda strict: book.load(task, strict)[0],
                          task.name)
    notes.extend(more)
    return columns


def _split_choice(tasks: list[Task], inspection: Inspection, job: Job) -> Task | None:
    """The sheet to read in parts: with fewer sheets than cores, the largest xlsx sheet from
    ``split_bytes`` of XML up (the scan inflates it anyway, and writes the parts as it goes)."""
    if inspection.fmt not in ("xlsx", "xlsm") or job.cores < 2 or not tasks or len(tasks) >= job.cores:
        return None
    largest = max(tasks, key=lambda t: t.size)
    return largest if largest.size >= job.split_bytes else None


class _Parts:
    """One sheet read in parts (``convert_package.PartWriter``): the scan feeds the writer as it
    inflates the sheet, each part is read by the pool as soon as it is written, and the parts are
    merged (``convert_sheet.merge_parts``). Anything unexpected turns the split off: the sheet is then
    read whole, as it would have been without it."""

    def __init__(self, path: Path, inspection: Inspection, task: Task, staging: Path, job: Job,
                 pool: ThreadPoolExecutor) -> None:
        self.path, self.inspection, self.task, self.pool = path, inspection, task, pool
        self.head = Head()
        self.typed = threading.Event()
        self.futures: list[Any] = []
        self.failed = ""
        size = max(min(PART_BYTES, job.split_bytes), task.size // (2 * job.cores) + 1)
        self.writer = PartWriter(path, inspection, task.part or "", staging, size, self._ready)
        self.limits = job.limits

    def feed(self, chunk: bytes) -> None:
        self._guard(self.writer.feed, chunk)

    def finish(self) -> None:
        self._guard(self.writer.finish)

    def _guard(self, step: Any, *args: Any) -> None:
        if not self.failed:
            try:
                step(*args)
            except Exception as exc:  # the sheet is then read whole
                self.failed = f"{exc.__class__.__name__}: {exc}"

    def _ready(self, part: Path) -> None:
        self.futures.append(self.pool.submit(self._read, part))

    def _read(self, part: Path) -> tuple[list[Any], int, int, int]:
        self.typed.wait()
        columns, rows = FastexcelBook(part, self.inspection).load(self.task, self.head.types)
        # The part's cells are counted here, in parallel, rather than by the scan that feeds the parts.
        with zipfile.ZipFile(part) as package:
            xml = package.read(self.task.part or "")
        return columns, rows, xml.count(b't="b"'), sum(xml.count(p) for p in TEXT_TYPES)

    def columns(self, scan: _Scan, notes: list[str]) -> list[Any] | None:
        """The merged, checked columns; None when the sheet is to be read whole."""
        try:
            self.head = head_types(self.path, self.inspection, self.task, self.limits)
        finally:
            self.typed.set()
        scan.wait()  # every part has been written (or the split failed)
        parts = []
        try:
            parts = [future.result() for future in self.futures]
        except Exception as exc:
            self.failed = self.failed or f"{exc.__class__.__name__}: {exc}"
        columns = None if self.failed else merge_parts([p[:2] for p in parts], self.writer.seams)
        if columns is None:
            notes.append(f"sheet {self.task.name!r} read whole ({self.failed[:200] or 'parts not aligned'})")
            return None
        # Each sentinel row (two per seam) is one text cell of the parts that the sheet does not have.
        counts = SheetCounts(sum(p[2] for p in parts), sum(p[3] for p in parts) - 2 * (len(parts) - 1))
        whole = FastexcelBook(self.path, self.inspection)
        scan.wait()
        columns, more = check(columns, self.head, counts if self.task.part in scan.parts else None,
                              lambda strict: whole.load(self.task, strict)[0], self.task.name)
        notes.extend([f"sheet {self.task.name!r} read in {len(parts)} parts", *more])
        return columns


def _prepare(src: Path, inspection: Inspection, staging: Path, limits: Limits) -> tuple[Path, Inspection]:
    """The file the reader opens, and its inspection. fastexcel picks its parser from the extension:
    it gets a link named after the content. A package whose workbook part is elsewhere than where the
    reader looks is rewritten (``convert_package.normalize``)."""
    if inspection.fmt in ("xlsx", "xlsm") and not inspection.canonical:
        normalized = staging / f"normalized.{inspection.fmt}"
        normalize(src, inspection, normalized)
        return normalized, quick_inspect(normalized, limits)
    link = staging / f"input.{inspection.fmt}"
    os.symlink(src.resolve(), link)
    return link, inspection


def _plan(inspection: Inspection, include_hidden: bool) -> tuple[list[Task], list[Skip]]:
    """The sheets to read, when the guard could list them (xlsx, xlsm, xlsb)."""
    tasks, skipped = [], []
    for index, sheet in enumerate(inspection.sheets or []):
        if sheet.kind != "worksheet":
            skipped.append(Skip(sheet.name, sheet.kind.replace("sheet", " sheet")))
        elif sheet.state != "visible" and not include_hidden:
            skipped.append(Skip(sheet.name, f"{sheet.state} sheet"))
        else:
            info = inspection.entries.get(sheet.part or "")
            tasks.append(Task(index, sheet.name, sheet.part, info.file_size if info else 0))
    return tasks, skipped


def _recoverable(exc: BaseException) -> bool:
    """A reader's failure that another reader may not share (calamine's panics are BaseExceptions)."""
    return not isinstance(exc, MemoryError | WorkbookRejected | SheetSkipped | KeyboardInterrupt | SystemExit)


def _classify(exc: BaseException) -> WorkbookRejected:
    if isinstance(exc, WorkbookRejected):
        return exc
    if isinstance(exc, MemoryError):
        return WorkbookRejected("too-large", OUT_OF_MEMORY)
    text = f"{exc.__class__.__name__}: {exc}"
    if "password" in text.lower() or "encrypt" in text.lower():
        return WorkbookRejected("encrypted", "the workbook is password-protected; save it without a password and "
                                             "upload it again")
    return WorkbookRejected("corrupt", f"the workbook could not be read ({' '.join(text.split())[:300]}); open it "
                                       "in Excel or LibreOffice, save it again and re-upload")


def _write(task: Task, sheet: Any, job: Job, staging: Path) -> SheetResult:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = sheet.table.replace_schema_metadata({
        "sheetdrop.source": job.source,
        "sheetdrop.sheet": task.name,
        "sheetdrop.converter_version": job.version,
        "sheetdrop.column_types": json.dumps(sheet.types, ensure_ascii=False),
        "sheetdrop.nulls": json.dumps(sheet.nulls, ensure_ascii=False),
        "sheetdrop.errors": json.dumps(sheet.errors, ensure_ascii=False),
        "sheetdrop.rows": str(sheet.table.num_rows),
    })
    path = staging / f"sheet-{task.index}.parquet"
    # Dictionaries pay off for repeated text (cities, codes); for numbers and timestamps they mostly
    # cost time. Fixed writer options and no timestamps anywhere keep reruns byte-identical.
    pq.write_table(table, path, compression="zstd", compression_level=1, version="2.6", write_statistics=True,
                   use_dictionary=[f.name for f in table.schema if pa.types.is_string(f.type)], store_schema=True)
    return SheetResult(task.index, task.name, path.name, table.num_rows, table.num_columns, path.stat().st_size,
                       sheet.types, sheet.nulls, sheet.errors)


class _Scan(threading.Thread):
    """The bounded scan of every part the quick guard deferred. A rejection ends the process at once
    with that rejection as its outcome: it wins over whatever a reader was doing."""

    def __init__(self, job: Job, inspection: Inspection, sinks: dict[str, Any]) -> None:
        super().__init__(name="sheetdrop-scan", daemon=True)
        self.job, self.inspection, self.sinks = job, inspection, sinks
        entries = inspection.entries
        self.parts = {s.part: entries[s.part].filename for s in inspection.sheets or []
                      if s.part in entries and inspection.fmt in ("xlsx", "xlsm")}
        self.counts: dict[str, SheetCounts] = {}
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        if sys.platform == "linux" and not self.sinks:  # per-thread nice: the parses keep their cores
            with contextlib.suppress(OSError):  # (unless the scan feeds a split sheet's readers)
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        names = {self.parts[s.part]: s.name for s in self.inspection.sheets or [] if s.part in self.parts}
        try:
            self.counts = deep_check(Path(self.job.src), self.inspection.deferred, names, self.job.limits,
                                     self.inspection.inflated, self.sinks)
        except WorkbookRejected as exc:
            finish(self.job, Outcome(rejected=exc.to_wire()))
        except BaseException as exc:  # handed to the threads that wait for the verdict
            self.error = exc
        finally:
            self.done.set()

    def wait(self) -> None:
        self.done.wait()
        if self.error is not None:
            raise self.error

    def counts_for(self, part: str | None) -> SheetCounts | None:
        self.wait()
        return self.counts.get(self.parts.get(part or "", ""))


class _Budget:
    """The reader's address space, shared by the sheets parsed at once: a sheet waits until its
    estimate fits beside the others (one alone always starts)."""

    def __init__(self, total: int) -> None:
        self.total, self.used = total, 0
        self.cond = threading.Condition()

    @contextlib.contextmanager
    def take(self, need: int) -> Any:
        with self.cond:
            while self.used and self.used + need > self.total:
                self.cond.wait()
            self.used += need
        try:
            yield
        finally:
            with self.cond:
                self.used -= need
                self.cond.notify_all()


def _import_pyarrow() -> None:
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    for module in ("pyarrow", "pyarrow.compute", "pyarrow.parquet", "convert_columns"):
        with contextlib.suppress(ImportError):  # a failed import shows again where the module is used
            importlib.import_module(module)


class _NoPandas:
    """Import finder that reports pandas as absent."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is not used by the reader process")
        return None


if __name__ == "__main__":
    main()
