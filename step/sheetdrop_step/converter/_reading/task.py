"""A sheet to read, and the two ways its reading ends before a table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Task:
    index: int  # position among the workbook's sheets
    name: str
    part: str | None = None  # zip entry of the sheet (xlsx, xlsm, xlsb)
    size: int = 0  # the part's uncompressed size


class SheetSkipped(Exception):
    """The sheet gives no table: a chart sheet, a hidden sheet, no value in any cell."""


class NeedsPatch(Exception):
    """The reader refuses error values it does not know (#SPILL!, #CALC!, ...) in this sheet."""
