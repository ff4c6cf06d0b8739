"""One large sheet read in parts, by several readers at once: calamine parses a sheet on one thread,
and a sheet is most of a workbook's conversion.

The bounded scan inflates the sheet anyway; as it does, :class:`PartWriter` writes the sheet's rows
as several packages (``convert_package``), and each is read by the pool as soon as it is complete,
with the types the sheet's first rows chose (``convert_sheet.head_types``): the same for every part,
so that merging is only putting rows one after the other (:func:`merge_parts`), and the column rules
then run on the whole columns. Anything unexpected (rows without their number, a part whose rows do
not line up) turns the split off, and the sheet is read whole.
"""

from __future__ import annotations

import re
import threading
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convert_guard import Inspection
from convert_job import Job
from convert_package import Writer, other_sheets
from convert_scan import TEXT_TYPES, SheetCounts
from convert_sheet import FastexcelBook, Head, Task, check, head_types

if TYPE_CHECKING:
    from convert_columns import ColumnRead

_SHEET_DATA = re.compile(rb"<((?:\w+:)?)sheetData\b")
_ROOT = re.compile(rb"<((?:\w+:)?worksheet)\b")
_ROW_NUMBER = re.compile(rb'<(?:\w+:)?row\b[^>]*?\br="(\d+)"')
_HOLDS_VALUE = re.compile(rb"<(?:\w+:)?(?:v>[^<]|is>)")
#: Bytes of sheet XML kept back for the seam search: longer rows turn a split off.
ROW_CONTEXT = 256 * 1024
#: Parts of at least this much XML, and at most two per core: more parts mean more packages and
#: readers (each parsing the shared strings again); two per core keep both busy until the last part.
PART_BYTES = 8 * 1024**2


class SplitSheet:
    """The split of one sheet: fed by the scan (``feed``, ``finish``), read by the pool."""

    def __init__(self, path: Path, inspection: Inspection, task: Task, job: Job, pool: ThreadPoolExecutor) -> None:
        self.path, self.inspection, self.task, self.pool, self.limits = path, inspection, task, pool, job.limits
        self.head = Head()
        self.typed = threading.Event()
        self.futures: list[Any] = []
        self.failed = ""
        size = max(min(PART_BYTES, job.split_bytes), task.size // (2 * job.cores) + 1)
        self.writer = PartWriter(path, inspection, task.part or "", Path(job.staging), size, self._ready)

    def feed(self, chunk: bytes) -> None:
        self._guard(self.writer.feed, chunk)

    def finish(self) -> None:
        self._guard(self.writer.finish)

    def _guard(self, step: Callable[..., None], *args: Any) -> None:
        if not self.failed:
            try:
                step(*args)
            except Exception as exc:  # the sheet is then read whole
                self.failed = f"{exc.__class__.__name__}: {exc}"

    def _ready(self, part: Path) -> None:
        self.futures.append(self.pool.submit(self._read, part))

    def _read(self, part: Path) -> tuple[list[ColumnRead], int, int, int]:
        self.typed.wait()
        columns, rows = FastexcelBook(part, self.inspection).load(self.task, self.head.types)
        # The part's cells are counted here, in parallel, rather than by the scan that feeds the parts.
        with zipfile.ZipFile(part) as package:
            xml = package.read(self.task.part or "")
        return columns, rows, xml.count(b't="b"'), sum(xml.count(p) for p in TEXT_TYPES)

    def columns(self, scan: Any, notes: list[str]) -> list[ColumnRead] | None:
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
        columns, more = check(columns, self.head, counts if self.task.part in scan.parts else None,
                              lambda strict: whole.load(self.task, strict)[0], self.task.name)
        notes.extend([f"sheet {self.task.name!r} read in {len(parts)} parts", *more])
        return columns


def merge_parts(parts: list[tuple[list[ColumnRead], int]], seams: list[int]) -> list[ColumnRead] | None:
    """The columns of a sheet read in parts (``convert_package.PartWriter``), sentinel rows dropped;
    None when a part's rows do not line up with its row numbers."""
    import pyarrow as pa
    from convert_columns import ColumnRead

    spans = []
    for k, (_, rows) in enumerate(parts):
        first, last = k > 0, k < len(parts) - 1
        if first and last and rows != seams[k] - seams[k - 1] + 2:
            return None
        spans.append((int(first), rows - int(last)))
    merged: dict[int, ColumnRead] = {}
    offset = 0
    for (columns, _), (start, end) in zip(parts, spans, strict=True):
        for col in columns:
            into = merged.setdefault(col.index, ColumnRead(col.index, None, col.kind, {}))
            into.foreign.update({r - start + offset: c for r, c in col.foreign.items() if start <= r < end})
            native = col.native.slice(start, end - start)
            pieces = [into.native] if into.native is not None else []
            pieces.append(pa.nulls(offset - sum(len(p) for p in pieces), native.type))
            into.native = pa.concat_arrays([*pieces, native])
        offset += end - start
    for col in merged.values():
        if col.native is not None and len(col.native) < offset:
            col.native = pa.concat_arrays([col.native, pa.nulls(offset - len(col.native), col.native.type)])
    return [merged[i] for i in sorted(merged)]


class PartWriter:
    """Fed a sheet's XML as the bounded scan inflates it; writes it as packages of about ``part_bytes``
    of rows each and calls ``ready(path)`` for each one as soon as it is complete.

    A part is cut after a row holding a value (its number goes to ``seams``). So that each part's
    rows line up exactly with the sheet's, a *sentinel* row holding one text cell in column A is
    added just outside the part's rows: at ``seam + 1`` after the rows of every part but the last,
    at the previous seam before the rows of every part but the first. The reader's range then starts
    and ends on known rows, and the sentinel rows are dropped after reading. Anything unexpected
    (a row without its number, a row longer than ``ROW_CONTEXT``) raises ValueError.
    """

    def __init__(self, src: Path, inspection: Inspection, part: str, staging: Path, part_bytes: int,
                 ready: Callable[[Path], None]) -> None:
        self.src, self.inspection, self.part, self.staging = src, inspection, part, staging
        self.part_bytes, self.ready = part_bytes, ready
        self.pending = self.prologue = self.prefix = self.root = b""
        self.written = 0
        self.seams: list[int] = []
        self.writer: Writer | None = None

    def feed(self, chunk: bytes) -> None:
        self.pending += chunk
        if self.writer is None:
            found = _SHEET_DATA.search(self.pending)
            end = self.pending.find(b">", found.end()) + 1 if found else 0
            root = _ROOT.search(self.pending)
            if not end or root is None:
                if len(self.pending) > ROW_CONTEXT:
                    raise ValueError("no sheetData near the start of the sheet")
                return
            self.prologue, self.prefix, self.root = self.pending[:end], found.group(1), root.group(1)
            self.pending = self.pending[end:]
            self._open(None)
        while (cut := self._seam(max(0, self.part_bytes - self.written))) is not None:
            self._close(self.pending[:cut[0]], cut[1])
            self.pending = self.pending[cut[0]:]
            self._open(cut[1])
        if len(self.pending) > ROW_CONTEXT:  # what no seam search needs any more goes to the part now
            with memoryview(self.pending) as view:
                self._emit(view[:-ROW_CONTEXT])
            self.pending = self.pending[-ROW_CONTEXT:]

    def finish(self) -> None:
        if self.writer is None:
            raise ValueError("the sheet has no rows")
        end = self.pending.find(b"</" + self.prefix + b"sheetData>")
        self._close(self.pending[:end if end >= 0 else len(self.pending)], None)

    def _seam(self, start: int) -> tuple[int, int] | None:
        """(offset after the row, its number) of the first row ending past ``start`` that holds a value."""
        close = b"</" + self.prefix + b"row>"
        while start < len(self.pending) and (end := self.pending.find(close, start)) >= 0:
            end += len(close)
            row = self.pending.rfind(b"<" + self.prefix + b"row", 0, end)
            number = _ROW_NUMBER.match(self.pending, row, self.pending.find(b">", row) + 1) if row >= 0 else None
            if number is None or self.pending.find(close, row, end - len(close)) >= 0:
                raise ValueError("a row without its number, or longer than the row context")
            if _HOLDS_VALUE.search(self.pending, row, end):
                return end, int(number.group(1))
            start = end
        return None

    def _emit(self, data: bytes | memoryview) -> None:
        assert self.writer is not None
        self.writer.write(data)
        self.written += len(data)

    def _sentinel(self, row: int) -> bytes:
        p = self.prefix
        return b'<%srow r="%d"><%sc r="A%d" t="inlineStr"><%sis><%st>-</%st></%sis></%sc></%srow>' % (
            p, row, p, row, p, p, p, p, p, p)

    def _open(self, after: int | None) -> None:
        self.path = self.staging / f"part-{len(self.seams)}{self.src.suffix}"
        self.out, self.source = self.path.open("wb"), self.src.open("rb")
        self.writer = Writer(self.out, self.source)
        for name, info in self.inspection.entries.items():
            if name != self.part and name not in other_sheets(self.inspection, self.part):
                self.writer.copy(name, info)
        self.writer.begin(self.part)
        self.writer.write(self.prologue + (self._sentinel(after) if after is not None else b""))
        self.written = 0

    def _close(self, rows: bytes, seam: int | None) -> None:
        assert self.writer is not None
        self._emit(rows + (self._sentinel(seam + 1) if seam is not None else b"")
                   + b"</" + self.prefix + b"sheetData></" + self.root + b">")
        self.writer.end()
        self.writer.close()
        self.out.close()
        self.source.close()
        self.seams.append(seam if seam is not None else -1)
        self.ready(self.path)
