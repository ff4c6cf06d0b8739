"""The reader process: workbook sheets → typed Arrow tables → parquet files.

Runs as a child of ``convert.py`` (``python convert_worker.py JOB_JSON``, a
JSON result on stdout) under memory and time limits, because the calamine
reader aborts the whole process when an allocation fails. Everything that can
fail in a classified way is reported as ``{"rejected": code, ...}``.

The child starts before the parent's deep safety scan has finished: it parses,
then waits for the parent's verdict on stdin (one JSON line, which also carries
the boolean-cell counts the scan found) before it writes anything. A failed scan
kills it instead. Only ``fastexcel`` is imported before parsing starts; pyarrow
(~0.4 s of imports) loads in a thread while the parse runs in Rust without the
GIL. A workbook's sheets are read by this one process, in a pool of ``threads``
threads (one per core), for the same reason: one interpreter and one set of
imports, while the parses run side by side.

Reading is done by ``fastexcel`` (calamine, Rust) straight into Arrow. Its type
inference is used only as a first guess: it is run over the whole column
(``schema_sample_rows=None``) and every cell it could not convert comes back as
a ``CellError``. Those tell apart Excel error cells (``#DIV/0!`` → null,
counted) from cells of another type (the column is mixed → re-read as text).
The column rules themselves live in :func:`finish_column`.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

from rejection import OUT_OF_MEMORY, WorkbookRejected

# Day serials 0..1 of each date system: a column whose timestamps all fall in
# that first day holds times of day, not dates.
_TIME_DAY_1900 = ("1899-12-30", "1900-01-01")  # calamine maps serial 0 to 1899-12-31
_TIME_DAY_1904 = ("1904-01-01", "1904-01-02")
MAX_EXACT_INT = 2**53
_SPARK_UNSAFE = " ,;{}()\n\t\r=."


def column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def safe_name(raw: str | None, absolute_index: int) -> str:
    """Trimmed, and without the characters Spark refuses in parquet column names."""
    name = " ".join((raw or "").split())
    name = "".join("_" if ch in _SPARK_UNSAFE or ord(ch) < 32 else ch for ch in name)
    name = "_".join(part for part in name.split("_") if part) if name.strip("_") else ""
    return name or f"column_{column_letter(absolute_index)}"


def unique_names(names: list[str]) -> list[str]:
    # Spark resolves columns case-insensitively, so "Amount" and "amount" collide.
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        candidate, n = name, 0
        while candidate.lower() in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate.lower())
        out.append(candidate)
    return out


def finish_column(array: Any, date1904: bool, iso_dates: bool = False) -> tuple[Any, str]:
    """Apply the column rules to one column as read; returns (array, type name)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = array.type
    if pa.types.is_null(t):
        return pa.nulls(len(array), pa.string()), "string"
    if pa.types.is_floating(t):
        valid = array.drop_null()
        if len(valid) == 0:
            return array.cast(pa.float64()), "float64"
        whole = pc.all(pc.equal(pc.floor(valid), valid)).as_py()
        small = pc.max(pc.abs(valid)).as_py() <= MAX_EXACT_INT
        if whole and small:
            return array.cast(pa.int64()), "int64"
        return array.cast(pa.float64()), "float64"
    if pa.types.is_timestamp(t):
        array = array.cast(pa.timestamp("us"))
        valid = array.drop_null()
        lo, hi = _TIME_DAY_1904 if date1904 else _TIME_DAY_1900
        if len(valid) and pc.min(valid).as_py() >= _ts(lo) and pc.max(valid).as_py() < _ts(hi):
            # Times of day: keep the time, the day is only Excel's epoch.
            day = pc.floor_temporal(array, unit="day")
            micros = pc.subtract(array.cast(pa.int64()), day.cast(pa.int64()))
            return micros.cast(pa.time64("us")), "time"
        return array, "timestamp"
    if pa.types.is_date(t):
        return array.cast(pa.timestamp("us")), "timestamp"
    if pa.types.is_duration(t):
        return array.cast(pa.duration("us")), "duration"
    if pa.types.is_boolean(t):
        return array, "bool"
    if pa.types.is_integer(t):
        return array.cast(pa.int64()), "int64"
    # Text: an empty string is an empty cell to a person looking at the sheet.
    array = array.cast(pa.string())
    array = pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array)
    if iso_dates and array.null_count < len(array):
        # The ODS reader hands dates over as ISO text; a column made only of them is dates.
        valid = array.drop_null()
        if pc.all(pc.match_substring_regex(valid, r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?)?$")).as_py():
            try:
                return array.cast(pa.timestamp("us")), "timestamp"
            except pa.ArrowInvalid:
                pass
    return array, "string"


def _ts(day: str) -> Any:
    import datetime as dt

    return dt.datetime.fromisoformat(day)


def _is_cell_error(detail: str) -> bool:
    # fastexcel reports "Expected <type> but got 'Error(Div0)'" for Excel error cells.
    return "got 'Error(" in detail or 'got "Error(' in detail


class SheetSkipped(Exception):
    pass


class NeedFullRead(Exception):
    """The halves of a split sheet cannot be merged as they are: read the original instead."""


def _load(reader: Any, index: int) -> Any:
    try:
        return reader.load_sheet(index, header_row=0, schema_sample_rows=None, dtype_coercion="coerce")
    except Exception as exc:
        text = str(exc)
        if "not a valid worksheet" in text or "chartsheet" in text.lower():
            raise SheetSkipped("chart sheet") from exc
        raise


def _read_batch(sheet: Any) -> tuple[Any, dict[int, int], set[int]]:
    """The sheet as an Arrow batch, with its error cells per column and its mixed columns."""
    _ARROW.wait()  # the batch is a pyarrow object
    batch, cell_errors = sheet.to_arrow_with_errors()
    error_cols: dict[int, int] = defaultdict(int)
    mixed: set[int] = set()
    for err in cell_errors.errors if cell_errors is not None else []:
        col = err.offset_position[1]
        if _is_cell_error(err.detail):
            error_cols[col] += 1
        else:
            mixed.add(col)
    return batch, error_cols, mixed


def convert_sheet(
    reader: Any, index: int, *, date1904: bool, bool_cells: int | None, iso_dates: bool = False
) -> dict[str, Any]:
    """Read one sheet; returns the table and its type decisions, or raises SheetSkipped."""
    sheet = _load(reader, index)
    columns = sheet.available_columns()
    if not columns:
        raise SheetSkipped("empty")
    batch, error_cols, mixed = _read_batch(sheet)
    bool_cells = _VERDICT.wait(index, bool_cells)
    return _finish_sheet(reader, index, columns, batch, error_cols, mixed, bool_cells, date1904, iso_dates)


def _finish_sheet(
    reader: Any | None, index: int, columns: list[Any], batch: Any, error_cols: dict[int, int], mixed: set[int],
    bool_cells: int | None, date1904: bool, iso_dates: bool,
) -> dict[str, Any]:
    """The column rules on a sheet as read. Without a ``reader`` (merged halves), a
    second read is impossible here: raises NeedFullRead instead."""
    import pyarrow as pa
    import pyarrow.compute as pc

    types = [f.type for f in batch.schema]
    # calamine folds TRUE/FALSE into 1.0/0.0 in a numeric column and into "true"/"false"
    # in a text column, without a word. When the scan's count of boolean cells equals
    # the booleans read in boolean columns, none is hidden and no second read is needed.
    seen = sum(len(batch.column(i)) - batch.column(i).null_count for i, t in enumerate(types)
               if pa.types.is_boolean(t))
    suspects: set[int] = set()
    if bool_cells is None or seen != bool_cells:
        for i, t in enumerate(types):
            col = batch.column(i)
            if i in mixed:
                continue
            if pa.types.is_floating(t):
                hiding = pa.array([0.0, 1.0])
            elif pa.types.is_string(t) or pa.types.is_large_string(t):
                hiding = pa.array(["true", "false"])
            else:
                continue
            if pc.any(pc.is_in(col, hiding)).as_py():
                suspects.add(i)
    reread: dict[int, Any] = {}
    if (mixed or suspects) and reader is None:
        raise NeedFullRead("a column needs a second read")
    if mixed or suspects:
        wanted = sorted(mixed | suspects)
        # One more read of just those columns, each under the other view: text columns
        # as numbers (a real boolean reads as a number, the text "true" does not), the
        # others as text (which shows where the booleans are).
        text_view = {i: not (pa.types.is_string(types[i]) or pa.types.is_large_string(types[i])) for i in wanted}
        again = reader.load_sheet(
            index, header_row=0, schema_sample_rows=None, use_columns=[columns[i].name for i in wanted],
            dtypes={columns[i].name: ("string" if text_view[i] else "float") for i in wanted},
        )
        other_batch, other_errors = again.to_arrow_with_errors()
        other_error_cols: dict[int, int] = defaultdict(int)
        for err in other_errors.errors if other_errors is not None else []:
            # Positions count columns of the sheet's range, not of the selection.
            if _is_cell_error(err.detail):
                other_error_cols[err.offset_position[1]] += 1
        for pos, col in enumerate(wanted):
            first, other = batch.column(col), other_batch.column(pos)
            text, number = (other, first) if text_view[col] else (first, other)
            is_bool = pc.and_kleene(pc.is_in(text, pa.array(["true", "false"])), pc.is_valid(number))
            has_bool = pc.any(is_bool).as_py()
            if col in mixed:
                error_cols[col] = other_error_cols.get(col, 0)
            elif not has_bool:
                continue  # a suspect without a hidden boolean keeps its first reading
            # Excel shows booleans as TRUE/FALSE; a text cell "true" stays as typed.
            reread[col] = pc.if_else(is_bool, pc.utf8_upper(text), text) if has_bool else text

    raw_names = []
    earlier: set[str] = set()
    for info in columns:
        from_header = getattr(info, "column_name_from", "") == "looked_up"
        name = info.name if from_header else None
        if name is not None:
            # fastexcel already suffixed repeated headers ("a", "a_1"); undo it so the
            # one suffixing rule below applies to every collision alike.
            base, sep, digits = name.rpartition("_")
            if sep and digits.isdigit() and base in earlier:
                name = base
            earlier.add(name)
        raw_names.append(safe_name(name, info.absolute_index))
    names = unique_names(raw_names)

    arrays = []
    types: dict[str, str] = {}
    nulls: dict[str, int] = {}
    errors: dict[str, int] = {}
    for i, name in enumerate(names):
        arr = reread.get(i, batch.column(i))
        arr, kind = finish_column(arr, date1904, iso_dates=iso_dates and i not in reread)
        arrays.append(arr)
        types[name] = kind
        errors[name] = error_cols.get(i, 0)
    table = pa.Table.from_arrays(arrays, names=names)
    table = _trim(table, columns)
    if table.num_rows == 0 and table.num_columns == 0:
        raise SheetSkipped("empty")
    for name in table.column_names:
        nulls[name] = table.column(name).null_count
    types = {n: types[n] for n in table.column_names}
    errors = {n: errors[n] for n in table.column_names}
    return {"table": table, "types": types, "nulls": nulls, "errors": errors}


def _trim(table: Any, columns: list[Any]) -> Any:
    """Drop trailing all-empty rows, and leading/trailing columns with neither header nor data."""
    import pyarrow.compute as pc

    if table.num_columns == 0:
        return table
    keep_cols = [
        getattr(info, "column_name_from", "") == "looked_up" or table.column(i).null_count < table.num_rows
        for i, info in enumerate(columns)
    ]
    first = next((i for i, k in enumerate(keep_cols) if k), None)
    if first is None:
        return table.select([])
    last = max(i for i, k in enumerate(keep_cols) if k)
    table = table.select(list(range(first, last + 1)))
    if table.num_rows:
        any_value = None
        for col in table.columns:
            valid = pc.is_valid(col)
            any_value = valid if any_value is None else pc.or_(any_value, valid)
        indices = pc.indices_nonzero(any_value)
        end = indices[-1].as_py() + 1 if len(indices) else 0
        if end < table.num_rows:
            table = table.slice(0, end)
    return table


def write_parquet(table: Any, path: Path, metadata: dict[str, str]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = table.replace_schema_metadata(metadata)
    # Dictionary encoding pays off for repeated text (cities, categories, codes); for
    # numbers and timestamps it mostly costs time (hashing every value) for little size.
    text_columns = [f.name for f in table.schema if pa.types.is_string(f.type)]
    # Fixed writer options (and no timestamps anywhere) keep reruns byte-identical.
    pq.write_table(
        table, path, compression="zstd", compression_level=1, version="2.6",
        use_dictionary=text_columns, write_statistics=True, store_schema=True,
    )
    return path.stat().st_size


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    import fastexcel

    src = job["src"]
    split: dict[str, Any] | None = job.get("split")
    try:
        reader = fastexcel.read_excel(src)
    except Exception as exc:
        return classify_reader_error(exc)
    names = reader.sheet_names
    tasks = job["sheets"] if job["sheets"] is not None else [{"index": i} for i in range(len(names))]
    tasks = [task for task in tasks if task["index"] < len(names)]
    threads = max(1, min(int(job.get("threads") or 1), len(tasks)))
    if split is not None or threads == 1:
        outcomes = []
        for task in tasks:
            outcomes.append(_run_task(reader, task, names, job))
            if outcomes[-1][0] == "rejected":
                break  # the workbook is refused: the sheets after it are not needed
    else:
        from concurrent.futures import ThreadPoolExecutor

        # An ExcelReader is not shareable across threads (fastexcel raises "Already
        # borrowed" on a concurrent load_sheet), so each pool thread opens its own;
        # opening only reads the package's directory and workbook part (< 1 ms here).
        local = threading.local()

        def run(task: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
            if not hasattr(local, "reader"):
                local.reader = fastexcel.read_excel(src)
            return _run_task(local.reader, task, names, job)

        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sheetdrop-sheet") as pool:
            # map keeps the sheet order: skips and the first rejection are those of a
            # one-by-one run. result() re-raises a thread's MemoryError or SystemExit here.
            outcomes = list(pool.map(run, tasks))
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    how = ""
    for kind, payload, task_how in outcomes:
        if kind == "rejected":
            return payload
        if kind == "skipped":
            skipped.append(payload)
            continue
        results.append(payload)
        how = how or task_how
    return {"sheets": results, "skipped": skipped, **({"split": how} if how else {})}


def _run_task(
    reader: Any, task: dict[str, Any], names: list[str], job: dict[str, Any]
) -> tuple[str, dict[str, Any], str]:
    """Read, convert and write one sheet: ("result" | "skipped" | "rejected", payload, split how)."""
    src = job["src"]
    staging = Path(job["staging"])
    split: dict[str, Any] | None = job.get("split")
    how = ""
    index = task["index"]
    name = names[index]
    try:
        if not job["include_hidden"]:
            visible = _visibility(src, index, task)
            if visible != "visible":
                return "skipped", {"sheet": name, "why": f"{visible} sheet"}, ""
        if split is not None:
            out, how = convert_split(reader, index, job, split, task.get("bool_cells"))
        else:
            out = convert_sheet(
                reader, index, date1904=job["date1904"], bool_cells=task.get("bool_cells"),
                iso_dates=src.endswith(".ods"),
            )
    except SheetSkipped as exc:
        return "skipped", {"sheet": name, "why": str(exc)}, ""
    except Exception as exc:
        return "rejected", classify_reader_error(exc), ""
    table = out["table"]
    meta = {
        "sheetdrop.source": job["source"],
        "sheetdrop.sheet": name,
        "sheetdrop.converter_version": job["version"],
        "sheetdrop.column_types": json.dumps(out["types"], ensure_ascii=False),
        "sheetdrop.nulls": json.dumps(out["nulls"], ensure_ascii=False),
        "sheetdrop.errors": json.dumps(out["errors"], ensure_ascii=False),
        "sheetdrop.rows": str(table.num_rows),
    }
    tmp = staging / f"sheet-{index}.parquet"
    size = write_parquet(table, tmp, meta)
    return "result", {
        "index": index, "sheet": name, "file": tmp.name, "rows": table.num_rows, "columns": table.num_columns,
        "column_types": out["types"], "nulls": sum(out["nulls"].values()),
        "errors": sum(out["errors"].values()), "null_counts": out["nulls"], "error_counts": out["errors"],
        "bytes": size,
    }, how


def convert_split(
    head_reader: Any, index: int, job: dict[str, Any], split: dict[str, Any], bool_cells: int | None
) -> tuple[dict[str, Any], str]:
    """A sheet split in two packages (``convert_split.py``): the head (``head_reader``) parsed
    here while a thread parses the tail, both merged; or else the original read whole.
    Returns (result, how).

    The tail's package path arrives on stdin (before the verdict) once the parent has
    written it. The merge is taken only when it provably equals the single read: the
    same columns (names, positions, header origin) in both halves, each half exactly as
    tall as its row numbers say (no row lost or added at the seam), no column that needs
    a second read, and per column the same type in both halves or no value at all in
    one of them. fastexcel's whole-column inference then gives the merged column that
    same type, and the column rules run on the merged column.
    """
    import fastexcel

    tail: dict[str, Any] = {}

    def read_tail() -> None:
        try:
            line = "" if _VERDICT.standalone else sys.stdin.readline()
            message = json.loads(line) if line else {}
            tail["last_row"] = message.get("last_row", -1)
            if message.get("tail"):
                tail["sheet"] = _load(fastexcel.read_excel(message["tail"]), index)
                tail["read"] = _read_batch(tail["sheet"])
        except Exception as exc:  # the original decides whether the workbook is readable
            tail["error"] = f"{exc.__class__.__name__}"

    thread = threading.Thread(target=read_tail, name="sheetdrop-tail", daemon=True)
    thread.start()
    try:
        try:
            head = _load(head_reader, index)
            # Converted while the tail may still be parsing.
            head_read = _read_batch(head)
        finally:
            thread.join()
        merged = _merge_halves(head, head_read, tail, split)
        bools = _VERDICT.wait(index, bool_cells)
        if merged is None:
            raise NeedFullRead(tail.get("error") or "the halves do not line up")
        columns, batch, error_cols = merged
        return _finish_sheet(None, index, columns, batch, error_cols, set(), bools, job["date1904"], False), "merged"
    except (NeedFullRead, SheetSkipped) as exc:
        why = str(exc) or exc.__class__.__name__
    except Exception as exc:  # a reader error on a half: the original decides
        why = exc.__class__.__name__
    tail.clear()
    full = fastexcel.read_excel(split["full"])
    out = convert_sheet(full, index, date1904=job["date1904"], bool_cells=bool_cells)
    return out, f"read whole ({why[:200]})"


def _merge_halves(
    head: Any, head_read: tuple[Any, dict[int, int], set[int]], tail: dict[str, Any], split: dict[str, Any]
) -> tuple[list[Any], Any, dict[int, int]] | None:
    import pyarrow as pa

    if "read" not in tail:
        return None
    columns = head.available_columns()
    if _describe(columns) != _describe(tail["sheet"].available_columns()):
        return None
    batch, error_cols, mixed = head_read
    tail_batch, tail_errors, tail_mixed = tail["read"]
    if mixed or tail_mixed:
        return None
    if batch.num_rows != split["seam_row"] - split["header_row"] or (
        tail_batch.num_rows != tail["last_row"] - split["seam_row"]
    ):
        return None
    if tail_batch.num_columns != batch.num_columns:
        return None
    arrays = []
    for i in range(batch.num_columns):
        head_col, tail_col = batch.column(i), tail_batch.column(i)
        if head_col.type != tail_col.type:
            # A half without any value (and no error cell) adds nothing to the column's type;
            # fastexcel types such a column null or, with a warning, string.
            if head_col.null_count == len(head_col) and not error_cols.get(i):
                head_col = pa.nulls(len(head_col), tail_col.type)
            elif tail_col.null_count == len(tail_col) and not tail_errors.get(i):
                tail_col = pa.nulls(len(tail_col), head_col.type)
            else:
                return None
        arrays.append(pa.concat_arrays([head_col, tail_col]))
        error_cols[i] = error_cols.get(i, 0) + tail_errors.get(i, 0)
    merged = pa.RecordBatch.from_arrays(arrays, schema=pa.schema(
        [pa.field(f.name, a.type) for f, a in zip(batch.schema, arrays, strict=True)]
    ))
    return columns, merged, error_cols


def _describe(columns: list[Any]) -> list[tuple[Any, ...]]:
    return [(c.name, c.absolute_index, getattr(c, "column_name_from", "")) for c in columns]


def _visibility(src: str, index: int, task: dict[str, Any]) -> str:
    if task.get("state"):
        return "visible" if task["state"] == "visible" else "hidden"
    import python_calamine

    # Sheet metadata only (no cell parsing); fastexcel reports it only after a full load.
    wb = python_calamine.CalamineWorkbook.from_path(src)
    meta = wb.sheets_metadata[index]
    if meta.typ != python_calamine.SheetTypeEnum.WorkSheet:
        raise SheetSkipped("chart sheet")
    return "visible" if meta.visible == python_calamine.SheetVisibleEnum.Visible else "hidden"


def classify_reader_error(exc: BaseException) -> dict[str, Any]:
    text = f"{exc.__class__.__name__}: {exc}"
    low = text.lower()
    if isinstance(exc, MemoryError):
        return WorkbookRejected("too-large", OUT_OF_MEMORY).to_wire()
    if "password" in low or "encrypt" in low:
        return WorkbookRejected(
            "encrypted", "the workbook is password-protected; save it without a password and upload it again").to_wire()
    return WorkbookRejected(
        "corrupt", f"the workbook could not be read ({text[:300]}); open it in Excel or LibreOffice, save it again "
        "and re-upload").to_wire()


class _Background:
    """pyarrow's imports, run while the first sheet parses (fastexcel releases the GIL)."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        # With a split sheet both cores parse, and the merge right after needs pyarrow:
        # yielding would only push the imports behind both parses.
        self.yielding = True

    def _run(self) -> None:
        if sys.platform == "linux" and self.yielding:  # per-thread nice: the parse keeps its core
            try:
                import os

                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
            except OSError:
                pass
        try:
            for module in ("pyarrow", "pyarrow.compute", "pyarrow.parquet"):
                importlib.import_module(module)
        except BaseException as exc:  # re-raised in the main thread by wait()
            self.error = exc

    def start(self) -> None:
        self.thread.start()

    def wait(self) -> None:
        if self.thread.is_alive() or self.thread.ident is not None:
            self.thread.join()
        if self.error is not None:
            raise self.error


class _Verdict:
    """The parent's answer to its deep safety scan, read once from stdin.

    Nothing is written before it arrives. It carries, per sheet index, the
    boolean-cell counts of the scan. A closed stdin without a verdict means the
    parent is gone or gave up: stop without output.
    """

    def __init__(self) -> None:
        self.counts: dict[str, int | None] | None = None
        self.standalone = False  # set when run without a parent (tests, debugging)
        # The sheets' pool threads all wait here; exactly one of them reads the line.
        self.lock = threading.Lock()

    def wait(self, index: int, fallback: int | None) -> int | None:
        if self.standalone:
            return fallback
        with self.lock:
            if self.counts is None:
                line = sys.stdin.readline()
                if not line:
                    raise SystemExit(3)
                self.counts = json.loads(line).get("bool_cells") or {}
        value = self.counts.get(str(index), fallback)
        return value if isinstance(value, int) else None


class _NoPandas:
    """Import finder that reports pandas as absent (see ``main``)."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is not used by the reader process")
        return None


_ARROW = _Background()
_VERDICT = _Verdict()
_VERDICT.standalone = True  # until main() runs as the child of convert.py


def main() -> int:
    global _VERDICT
    # pyarrow imports pandas, when installed, the first time it converts a Python value
    # (pa.scalar, pc.equal(array, "")): ~0.4 s for nothing this process needs. Hiding
    # it also makes the child behave the same whether or not the environment happens
    # to have pandas.
    sys.meta_path.insert(0, _NoPandas)  # type: ignore[arg-type]
    job = json.loads(sys.argv[1])
    _ARROW.yielding = not job.get("split")
    _ARROW.start()
    _VERDICT = _Verdict()
    try:
        result = run_job(job)
    except MemoryError:
        result = WorkbookRejected("too-large", OUT_OF_MEMORY).to_wire()
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is written and closed; skipping the interpreter's teardown (freeing the
    # parsed sheet and pyarrow's modules, ~0.1-0.2 s) ends the child sooner.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
