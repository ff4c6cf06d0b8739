"""A large xlsx/xlsm sheet cut into pieces parsed at once: its XML, fed as the scan inflates it, cut at
row starts into packages of about a given size (:class:`SheetPieces`), each a :class:`Piece` the
reader parses on a core of its own; ``_table.merge`` makes the pieces' reads one read again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sheetdrop_step.converter._reading.packages import ROOT, SHEET_DATA, add_sheet
from sheetdrop_step.converter._safety.scan import SheetMarks, chunk_kinds


@dataclass
class Piece:
    path: Path  # a package of the workbook's own parts and some of the sheet's rows
    first: int  # the sheet's row (from 0) its rows start at; the rows before it are in earlier pieces


class SheetPieces:
    """A sheet's XML, fed as it is inflated, cut at row starts into packages of about ``size`` bytes,
    each handed to ``ready`` once written; its boolean and text cells counted on the way. Every piece
    keeps the XML before the rows (the reader needs no more) and ends its sheet; a row starting a piece
    carries its number (a row without one continues the count of the row before it). Where no such cut
    is found within a few pieces' size, or rows are out of order at a cut (invalid OOXML, and a piece
    would hide the earlier row), the sheet is to be read ``whole``: nothing more is kept or written.
    Rows are not checked for order inside a piece (a Python pass over every row number costs 0.2 s per
    100k rows): the row right before a piece's first, if the piece holds it, sends the sheet to a
    whole read (``FastexcelBook.load``'s ``lacks_before``); one numbered earlier still, which no tool
    writes, would be lost."""

    def __init__(self, parts: Callable[[], bytes], part: str, stem: Path, size: int,
                 ready: Callable[[Piece], None], marks: SheetMarks | None = None) -> None:
        self.part, self.stem, self.size, self.ready = part, stem, size, ready
        self.parts: Callable[[], bytes] | bytes = parts  # made when the first piece is written
        self.buffer = bytearray()
        self.prolog: bytes | None = None
        self.rows: re.Pattern[bytes] | None = None
        self.first = self.written = self.bools = self.texts = 0
        self.tail = b""  # the end of the chunk before, where a type attribute may have begun
        self.after, self.whole = size, False
        self.marks = marks or SheetMarks()  # merged cells, formulas without a value

    def feed(self, chunk: bytes) -> None:
        self.marks.feed(chunk)
        if self.whole:
            return
        bools, texts = chunk_kinds(self.tail, chunk)
        self.bools, self.texts, self.tail = self.bools + bools, self.texts + texts, chunk[-16:]
        self.buffer += chunk
        if self.prolog is None:
            data = SHEET_DATA.search(self.buffer, max(0, len(self.buffer) - len(chunk) - 64))
            root = ROOT.search(self.buffer, 0, data.start()) if data else None
            end = self.buffer.find(b">", data.end()) if data and root else -1
            if end >= 0:
                prefix, worksheet = data.group(1), root.group(1)  # (a match reads the buffer, which changes)
                self.prolog = bytes(self.buffer[:end + 1])
                del self.buffer[:end + 1]
                self.start = b"<" + prefix + b"row"
                self.closing = b"</" + prefix + b"sheetData></" + worksheet + b">"
                # A row with its number, or the end of the rows: no cut past it.
                self.rows = None if self.prolog.endswith(b"/>") else re.compile(
                    rb"<" + re.escape(prefix) + rb'row\b[^>]*?\sr="(\d+)"|</' + re.escape(prefix) + rb"sheetData>")
        while self.rows is not None and len(self.buffer) > self.size and self._cut():
            pass
        if len(self.buffer) > 4 * self.size + len(chunk):
            self.whole, self.buffer = True, bytearray()

    def _cut(self) -> bool:
        """A piece written up to the first row start past ``size``; False: none yet, or no more."""
        assert self.rows is not None
        found = self.rows.search(self.buffer, self.after)
        if found is None:
            self.after = max(self.size, len(self.buffer) - 4096)  # searched up to here
            return False
        if found.group(1) is None:
            self.rows = None
            return False
        at, row = found.start(), int(found.group(1))  # (a match reads the buffer, which changes)
        before = self.rows.match(self.buffer, max(0, self.buffer.rfind(self.start, 0, at)))
        if before is not None and before.group(1) and int(before.group(1)) >= row:
            self.whole, self.rows, self.buffer = True, None, bytearray()
            return False
        with memoryview(self.buffer) as view:
            self._write([view[:at], self.closing])
        del self.buffer[:at]
        self.first, self.after = row - 1, self.size
        return True

    def finish(self) -> None:
        if not self.whole:
            self._write([self.buffer])

    def _write(self, rows: list[bytes | memoryview]) -> None:
        path = self.stem.with_name(f"{self.stem.stem}-{self.written}{self.stem.suffix}")
        self.parts = self.parts if isinstance(self.parts, bytes) else self.parts()
        with path.open("w+b") as fh:
            add_sheet(fh, self.parts, self.part, [self.prolog or b"", *rows])
        self.written += 1
        self.ready(Piece(path, self.first))
