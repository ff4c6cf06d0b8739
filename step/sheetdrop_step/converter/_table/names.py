"""Column names: the header's cells as Excel shows them (:func:`header_names`), made safe for Spark
(:func:`safe_name`) and unique regardless of letter case (:func:`unique_names`)."""

from __future__ import annotations

from sheetdrop_step.converter._columns.cells import ColumnRead, column_letter
from sheetdrop_step.converter._columns.text import cell_texts, exact_numbers
from sheetdrop_step.converter._table.area import cell_at
from sheetdrop_step.converter._table.header import HeaderChoice

_SPARK_UNSAFE = " ,;{}()\n\t\r=."


def header_names(columns: list[ColumnRead], choice: HeaderChoice, merges: tuple[tuple[int, int, int, int], ...],
                 date1904: bool, whole: list[ColumnRead] | None = None) -> list[str | None]:
    """Each column's name: its header cells as Excel shows them, joined with spaces (a name repeated
    down the rows once; numbers with all their digits where 15 would show two distinct ones alike); with
    several header rows an upper cell names every column it is merged across (its own column may be
    outside the range: ``whole`` has every column)."""
    rows = range(choice.first, choice.data)
    cells = {(r, c.index): cell for c in columns for r in rows if (cell := cell_at(c, r)) is not None}
    by_index = {c.index: c for c in whole or columns}
    if len(rows) > 1:
        for r0, c0, r1, c1 in merges:
            top = cell_at(by_index[c0], r0) if c0 in by_index and r0 in rows else None
            if top is not None:
                for r in range(r0, min(r1, rows[-1]) + 1):
                    for c in range(c0, c1 + 1):
                        cells.setdefault((r, c), top)
    keys = sorted(cells)
    shown = dict(zip(keys, cell_texts([cells[k] for k in keys], date1904), strict=True))
    # Distinct numbers that Excel's 15 digits show alike (1234567890123456 and …457) keep their digits.
    numbers: dict[str | None, set[float]] = {}
    for key in keys:
        if cells[key][0] == "number":
            numbers.setdefault(shown[key], set()).add(cells[key][1])
    alike = [key for key in keys if cells[key][0] == "number" and len(numbers[shown[key]]) > 1]
    shown.update(zip(alike, exact_numbers([cells[key][1] for key in alike]), strict=True))
    names: list[str | None] = []
    for col in columns:
        parts: list[str] = []
        for r in rows:
            text = shown.get((r, col.index))
            if text and (not parts or parts[-1] != text):
                parts.append(text)
        names.append(" ".join(parts) or None)
    return names


def safe_name(raw: str | None, absolute_index: int) -> str:
    """Trimmed, and without the characters Spark refuses in parquet column names."""
    name = " ".join((raw or "").split())
    name = "".join("_" if ch in _SPARK_UNSAFE or ord(ch) < 32 else ch for ch in name)
    name = "_".join(part for part in name.split("_") if part) if name.strip("_") else ""
    return name or f"column_{column_letter(absolute_index)}"


def unique_names(names: list[str]) -> list[str]:
    """Each name, or ``<name>_<n>`` with the first n that no earlier name has taken (Spark resolves
    columns case-insensitively, so "Amount" and "amount" collide). A name's search goes on where its
    last one stopped (the names taken only grow): linear, where 16,384 equal names took 50 s."""
    seen: set[str] = set()
    tried: dict[str, int] = {}  # a name (lowercase) → the last n its search reached
    out: list[str] = []
    for name in names:
        key = name.lower()
        candidate, n = name, tried.get(key, 0)
        if n:
            candidate = f"{name}_{n}"
        while candidate.lower() in seen:
            n += 1
            candidate = f"{name}_{n}"
        tried[key] = n
        seen.add(candidate.lower())
        out.append(candidate)
    return out
