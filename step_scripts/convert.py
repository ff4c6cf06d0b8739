"""Workbook → parquet conversion: pure logic, no AzureML.

Self-contained: this folder is uploaded to AzureML as the step's snapshot, so
nothing here imports from ``sheetdrop`` or ``pipeline``. Importing this module
is cheap (standard library only); the readers run in child processes.

How a workbook is converted:

1. ``convert_guard.quick_inspect`` (milliseconds) decides the format from the
   bytes and checks, before any reader sees the file, the file size, the zip
   central directory (entry count, declared sizes and ratios, encryption), every
   small part as inflated (sizes, CRCs, XML prologs: no DTD/entities) and the
   sheets' names and visibility.
2. ``convert_worker.py`` starts reading right away in one child process (its
   sheets parsed in a pool of one thread per core) under an address-space limit
   and a timeout. A reader abort (SIGABRT on a failed allocation), a kill or a
   timeout becomes a rejection.
3. Meanwhile, on the other core, ``convert_guard.deep_check`` inflates the
   sheets and large parts once, with bounds (actual sizes and ratios, CRCs,
   prologs) and scans the sheet XML (its real extent against the cell limit, its
   boolean cells). If it fails, the reader child is killed and its rejection is the
   answer; if it passes, the child gets the go-ahead (with the boolean counts)
   on stdin. It writes nothing before that.
4. The child writes into a staging folder on local disk; files are moved
   into ``outdir`` only when every sheet succeeded, so a rejection leaves nothing.

One large sheet (a workbook with a single sheet to read, its XML at least
``SPLIT_SHEET_BYTES``, two or more cores) is parsed on both cores instead: this
process inflates the sheet part with the deep check's bounds, and
``convert_split`` writes it as two stored packages cut at a row boundary (the
head; the tail with a copy of the header row). One child is started as soon as
the head is written and parses head and tail in two threads; it merges them only
when that provably equals the single read (same columns, row counts matching the
row numbers, per column the same type or no value in one half) and reads the
original workbook otherwise. The deep check then scans the sheet from memory, so
every guard above applies unchanged.

Column rules (the documented contract, applied to the *whole* column):
all integers → int64 (whole numbers up to 2**53); integers and floats → float64;
dates/datetimes → timestamp[us] (1900 and 1904 systems); times of day → time64;
durations → duration; booleans → bool; anything mixed → string with each cell
as text (text as typed, ``00123`` stays; numbers without a spurious ``.0``;
datetimes ISO ``YYYY-MM-DD HH:MM:SS``; booleans ``TRUE``/``FALSE`` as Excel shows them); empty text
and error cells (``#DIV/0!``, ``#N/A``…) → null, error cells counted; formulas →
their cached values. The header is the first non-empty row of the used range.

Rejection codes (``WorkbookRejected.code``): encrypted, not-a-workbook, corrupt,
too-large, unsafe, empty.

Run as a script (``python convert.py INPUT OUTDIR``) it converts without any
storage: exit 0 on success, 2 with one line ``error: <code>: <reason>`` on a
rejected workbook.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from contract import StepSettingError, read_step_settings, slug
from convert_guard import Inspection, Limits, deep_check, inflate_part, quick_inspect
from convert_split import SheetSplitter, SplitPlan
from rejection import OUT_OF_MEMORY, WorkbookRejected

#: Sheets parsed at once in the reader process (they share its memory limit).
MAX_READER_THREADS = 2
CONVERTER_VERSION = "1.0.0"
WORKER = Path(__file__).resolve().parent / "convert_worker.py"
#: A single sheet whose XML is at least this large is parsed in two halves by two readers
#: (on two or more cores). Below it the split's cost (~0.1 s per 20 MB of XML to write the
#: halves) outweighs half a parse; 100k rows x 20 columns is ~80 MB of XML.
SPLIT_SHEET_BYTES = 32 * 1024**2
#: Above this the sheet is not split: the split keeps the inflated XML in this (unlimited)
#: process until the deep check has scanned it, and writes it again to local disk.
SPLIT_MAX_BYTES = 256 * 1024**2
#: Share of the sheet XML given to the head: its reader starts while the rest is still
#: being inflated and written, so it gets more rows for both readers to end together.
SPLIT_HEAD_FRACTION = 0.52
log = logging.getLogger("sheetdrop.convert")

__all__ = [
    "CONVERTER_VERSION",
    "Limits",
    "SheetOutput",
    "WorkbookRejected",
    "convert_workbook",
]


@dataclass
class SheetOutput:
    sheet: str
    slug: str
    path: Path
    rows: int
    columns: int
    column_types: dict[str, str] = field(default_factory=dict)
    nulls: int = 0
    errors: int = 0
    bytes: int = 0
    null_counts: dict[str, int] = field(default_factory=dict)
    error_counts: dict[str, int] = field(default_factory=dict)


def _unique_slugs(names: list[str]) -> list[str]:
    used: set[str] = set()
    out = []
    for name in names:
        base = slug(name, "sheet")
        unique, n = base, 1
        while unique in used:
            n += 1
            unique = f"{base}_{n}"
        used.add(unique)
        out.append(unique)
    return out


def convert_workbook(
    src: Path,
    outdir: Path,
    *,
    source: str | None = None,
    include_hidden: bool = False,
    limits: Limits | None = None,
    workers: int | None = None,
    split_sheet_bytes: int | None = None,
) -> list[SheetOutput]:
    """Write one ``<sheet-slug>.parquet`` per visible non-empty worksheet of ``src`` into ``outdir``.

    Raises :class:`WorkbookRejected` (leaving ``outdir`` untouched) when the
    workbook cannot be converted. ``split_sheet_bytes`` overrides
    :data:`SPLIT_SHEET_BYTES` (tests force the two-reader path with a low value).
    """
    src, outdir = Path(src), Path(outdir)
    limits = limits or Limits()
    inspection = quick_inspect(src, limits)

    tasks, skipped = _plan(inspection, include_hidden)
    if inspection.sheets is not None and not tasks:
        raise WorkbookRejected("empty", _empty_reason(skipped))

    # Staged on local disk, not next to outdir: in AzureML outdir is a blob mount, where symlinks
    # and renames are not to be relied on and a killed step would leave staging blobs behind.
    staging = Path(tempfile.mkdtemp(prefix="sheetdrop-staging-"))
    try:
        # The reader picks its parser from the extension; give it the one the content has.
        link = staging / f"input.{inspection.fmt}"
        os.symlink(src.resolve(), link)
        results, more_skipped = _run_workers(
            src, link, staging, inspection, tasks, include_hidden, limits, source or src.name, workers,
            SPLIT_SHEET_BYTES if split_sheet_bytes is None else split_sheet_bytes,
        )
        skipped += more_skipped
        if not results:
            raise WorkbookRejected("empty", _empty_reason(skipped))
        results.sort(key=lambda r: r["index"])
        outdir.mkdir(parents=True, exist_ok=True)
        outputs = []
        for result, slug in zip(results, _unique_slugs([r["sheet"] for r in results]), strict=True):
            path = outdir / f"{slug}.parquet"
            shutil.move(staging / result["file"], path)
            outputs.append(SheetOutput(
                sheet=result["sheet"], slug=slug, path=path, rows=result["rows"], columns=result["columns"],
                column_types=result["column_types"], nulls=result["nulls"], errors=result["errors"],
                bytes=result["bytes"], null_counts=result["null_counts"], error_counts=result["error_counts"],
            ))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for item in skipped:
        log.info("skipped sheet %r of %s: %s", item["sheet"], src.name, item["why"])
    return outputs


def _empty_reason(skipped: list[dict[str, str]]) -> str:
    detail = "; ".join(f"{s['sheet']!r}: {s['why']}" for s in skipped[:5])
    return "the workbook has no visible worksheet with data" + (f" ({detail})" if detail else "")


def _plan(inspection: Inspection, include_hidden: bool) -> tuple[list[dict] | None, list[dict[str, str]]]:
    """Sheets to read, when the guard could list them (xlsx/xlsm); ``None`` lets the worker list them."""
    if inspection.sheets is None:
        return None, []
    tasks, skipped = [], []
    for index, sheet in enumerate(inspection.sheets):
        if sheet.kind != "worksheet":
            skipped.append({"sheet": sheet.name, "why": sheet.kind})
        elif sheet.state != "visible" and not include_hidden:
            skipped.append({"sheet": sheet.name, "why": f"{sheet.state} sheet"})
        else:
            tasks.append({"index": index, "state": "visible"})
    return tasks, skipped


def _limit_child(max_memory: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an abort should not dump gigabytes of core


def _run_workers(
    src: Path, link: Path, staging: Path, inspection: Inspection, tasks: list[dict] | None, include_hidden: bool,
    limits: Limits, source: str, workers: int | None, split_sheet_bytes: int,
) -> tuple[list[dict], list[dict[str, str]]]:
    base_job = {
        "src": str(link), "staging": str(staging), "date1904": inspection.date1904,
        "include_hidden": include_hidden, "source": source, "version": CONVERTER_VERSION,
    }
    # MALLOC_ARENA_MAX: glibc reserves an arena per thread (64 MiB of address space each), which
    # counts against the reader's RLIMIT_AS without holding any data.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "MALLOC_ARENA_MAX": "2"}
    procs: list[tuple[subprocess.Popen, Path, Path]] = []
    deadline = time.monotonic() + limits.timeout_seconds

    def start(job: dict) -> None:
        n = len(procs)
        # Files, not pipes, for the child's output: nothing can block on a full pipe
        # while this process is busy with the deep check.
        out_path, err_path = staging / f"child-{n}.out", staging / f"child-{n}.err"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, str(WORKER), json.dumps(job)],
                stdin=subprocess.PIPE, stdout=out, stderr=err, env=env,
                preexec_fn=lambda: _limit_child(limits.max_memory_bytes),
            )
        procs.append((proc, out_path, err_path))

    try:
        preinflated: dict[str, list[bytes]] = {}
        split = _split_sheet(
            src, staging, inspection, tasks, limits, workers or os.cpu_count() or 1, split_sheet_bytes,
            preinflated, base_job, start,
        )
        if split is not None:
            # The reader started on the head as soon as it was written; now the tail is ready.
            _send(procs[0][0], (json.dumps({"tail": str(split.tail), "last_row": split.last_row}) + "\n").encode(),
                  close=False)
        elif tasks is None:
            # The reader lists the sheets itself (xls, xlsb, ods). One thread: calamine parses the
            # whole xls/ods workbook when a reader opens it, so a reader per thread would multiply
            # the memory under the one address-space limit.
            start({**base_job, "sheets": None, "threads": 1})
        else:
            # One child for every sheet, parsing them in a pool of one thread per core
            # (fastexcel parses without the GIL): one interpreter start and one pyarrow
            # import (~0.4 s CPU each) instead of one per child, which on two cores
            # competed with the parses themselves.
            # At most MAX_READER_THREADS: the threads share the child's address-space limit, and
            # os.cpu_count() on a large AzureML node would otherwise make "too-large" depend on
            # the machine the step happens to run on.
            threads = max(1, min(workers or os.cpu_count() or 1, MAX_READER_THREADS, len(tasks)))
            start({**base_job, "sheets": tasks, "threads": threads})
        # The expensive checks run here while the children parse. Their verdict comes
        # first: a workbook that fails them is rejected for that reason, whatever the
        # reader made of it meanwhile.
        # With a split, both cores parse; the reader then waits for this verdict to merge
        # and write, so the scan is on the critical path and must not yield to the parse.
        failure = _deep_check_yielding(src, inspection, limits, preinflated, yielding=split is None)
        preinflated.clear()
        if failure is not None:
            raise WorkbookRejected(failure.code, failure.reason) from None
        verdict = {"bool_cells": {str(i): s.bool_cells for i, s in enumerate(inspection.sheets or [])}}
        line = (json.dumps(verdict) + "\n").encode()
        for proc, _, _ in procs:
            _send(proc, line, close=True)
        results: list[dict] = []
        skipped: list[dict[str, str]] = []
        for proc, out_path, err_path in procs:
            _wait(proc, deadline, limits)
            result = _child_result(proc.returncode, out_path.read_bytes(), err_path.read_bytes(), limits)
            if result.get("split"):
                log.info("sheet read in two halves: %s", result["split"])
            results += result["sheets"]
            skipped += result["skipped"]
    finally:
        for proc, _, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdin is not None and not proc.stdin.closed:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
    return results, skipped


def _split_sheet(
    src: Path, staging: Path, inspection: Inspection, tasks: list[dict] | None, limits: Limits, cores: int,
    split_sheet_bytes: int, preinflated: dict[str, list[bytes]], base_job: dict, start: Callable[[dict], None],
) -> SplitPlan | None:
    """Split the only sheet to read into a head and a tail package, when that pays; else None.

    The sheet part is inflated here, with the guard's bounds (a zip bomb is refused
    before its reader gets far), and the deep check scans it from memory later.
    The reader child is started (``start``) as soon as the head is written, while
    the rest is still being inflated; it parses the head and the tail in two
    threads (fastexcel parses without the GIL), one process with one set of imports.
    """
    if tasks is None or len(tasks) != 1 or cores < 2 or inspection.sheets is None:
        return None
    part = inspection.sheets[tasks[0]["index"]].part
    if part is None or part not in inspection.deferred:
        return None
    try:
        with zipfile.ZipFile(src) as zf:
            info = zf.getinfo(part)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        return None  # the reader and the deep check report it as they would without a split
    if not split_sheet_bytes <= info.file_size <= SPLIT_MAX_BYTES or info.compress_type not in (
        zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED,
    ):
        return None

    def head_ready(path: Path) -> None:
        start({**base_job, "src": str(path), "sheets": tasks, "split": {
            "full": base_job["src"], "header_row": splitter.header_row, "seam_row": splitter.seam_row,
        }})

    splitter = SheetSplitter(src, part, info.file_size, staging, SPLIT_HEAD_FRACTION, head_ready)
    chunks: list[bytes] = []

    def sink(chunk: bytes) -> None:
        chunks.append(chunk)
        splitter.feed(chunk)

    inflate_part(src, inspection, part, limits, sink)
    preinflated[part] = chunks
    return splitter.finish()


def _send(proc: subprocess.Popen, line: bytes, *, close: bool) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(line)
        proc.stdin.flush()
        if close:
            proc.stdin.close()
    except BrokenPipeError:
        pass  # the child already ended; its exit status tells why


def _wait(proc: subprocess.Popen, deadline: float, limits: Limits) -> None:
    try:
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise WorkbookRejected(
            "too-large",
            f"reading the workbook took longer than the {limits.timeout_seconds:.0f} s limit; "
            "split it into smaller workbooks",
        ) from None


def _deep_check_yielding(
    src: Path, inspection: Inspection, limits: Limits, preinflated: dict[str, list[bytes]] | None = None,
    yielding: bool = True,
) -> WorkbookRejected | None:
    """``deep_check`` in a thread of lower CPU priority, so that the readers keep their cores.

    On two cores the scan, a child's parse and its background imports compete;
    the scan's answer is needed only once a child has finished parsing, so the
    scan is the one to yield. On Linux the nice value is per thread, so only this
    short-lived thread is affected.
    """
    outcome: list[BaseException | None] = []

    def run() -> None:
        if sys.platform == "linux" and yielding:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        try:
            deep_check(src, inspection, limits, preinflated)
            outcome.append(None)
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=run, name="sheetdrop-deep-check", daemon=True)
    thread.start()
    thread.join()
    error = outcome[0] if outcome else RuntimeError("the safety scan thread ended without an outcome")
    if error is None or isinstance(error, WorkbookRejected):
        return error
    raise error


def _child_result(returncode: int, out: bytes, err: bytes, limits: Limits) -> dict:
    if returncode < 0:
        sig = -returncode
        if sig in (signal.SIGABRT, signal.SIGKILL, signal.SIGSEGV, signal.SIGBUS):
            raise WorkbookRejected(
                "too-large",
                f"the reader ran out of its {_gib(limits.max_memory_bytes)} memory budget or crashed "
                f"({signal.Signals(sig).name}) on this workbook; it most likely declares a far larger area "
                "than its data — delete stray cells far from the data, save again and re-upload",
            )
        raise WorkbookRejected("corrupt", f"the reader stopped with signal {sig} on this workbook")
    try:
        result = json.loads(out.decode() or "null")
    except ValueError:
        result = None
    if not isinstance(result, dict):
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        if "MemoryError" in err.decode(errors="replace"):
            raise WorkbookRejected("too-large", OUT_OF_MEMORY)
        raise WorkbookRejected("corrupt", f"the reader failed on this workbook ({tail[0][:300]})")
    if "rejected" in result:
        raise WorkbookRejected.from_wire(result)
    return result


def _gib(n: int) -> str:
    return f"{n / 1024**3:.0f} GiB"


def options_from_env(env: dict[str, str] | None = None) -> dict[str, object]:
    """``convert_workbook`` keyword options from the step settings (the contract names them and
    gives their defaults); a bad value raises ``contract.StepSettingError`` naming the setting."""
    values = read_step_settings(os.environ if env is None else env)
    limits = Limits(
        max_file_bytes=int(values["SHEETDROP_MAX_FILE_MB"] * 1024**2),
        max_cells=int(values["SHEETDROP_MAX_CELLS"]),
        max_memory_bytes=int(values["SHEETDROP_READER_MEMORY_MB"] * 1024**2),
        timeout_seconds=float(values["SHEETDROP_READER_TIMEOUT_S"]),
    )
    return {"include_hidden": bool(values["SHEETDROP_INCLUDE_HIDDEN"]), "limits": limits}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Convert a workbook to one parquet file per sheet.")
    parser.add_argument("input", type=Path)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--source", help="source name recorded in the parquet metadata (default: file name)")
    parser.add_argument("--include-hidden", action="store_true", help="also convert hidden sheets")
    parser.add_argument("--json", action="store_true", help="print the outputs as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        options = options_from_env()
    except StepSettingError as exc:
        print(f"error: settings: {exc}", file=sys.stderr)
        return 2
    options["include_hidden"] = options["include_hidden"] or args.include_hidden
    try:
        outputs = convert_workbook(args.input, args.outdir, source=args.source, **options)
    except WorkbookRejected as exc:
        print(f"error: {exc.code}: {' '.join(exc.reason.split())}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([{**o.__dict__, "path": str(o.path)} for o in outputs], indent=2))
    else:
        for out in outputs:
            print(f"{out.path}\t{out.rows} rows\t{out.columns} columns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
