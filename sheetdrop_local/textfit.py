"""Text that fits a terminal: widths as a terminal shows them (a wide East Asian character takes two
columns, a combining mark none), lines cut with ``…``, and tables whose widest columns give way
first. The CLI's tables and the host's start-up summary are written with these; ``--json`` keeps
the full text."""

from __future__ import annotations

import shutil
import textwrap
import unicodedata
from collections.abc import Sequence

ELLIPSIS = "…"
#: A column is never cut narrower than this (or its header, if shorter).
MIN_COLUMN = 6
GAP = "  "


def char_width(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def width(text: str) -> int:
    return sum(char_width(ch) for ch in text)


def cut(text: str, room: int | None) -> str:
    """``text`` in at most ``room`` columns, ending in ``…`` where it was cut (None: as it is)."""
    if room is None or width(text) <= room:
        return text
    if room <= 0:
        return ""
    kept, used = [], 0
    for ch in text:
        w = char_width(ch)
        if used + w > room - 1:
            break
        kept.append(ch)
        used += w
    return "".join(kept) + ELLIPSIS


def pad(text: str, room: int) -> str:
    return text + " " * max(0, room - width(text))


def terminal_width() -> int | None:
    """The columns output may use: ``COLUMNS`` if set, the terminal's width when stdout is one,
    else None (a pipe or a file gets the full text). ``shutil`` reads ``COLUMNS`` itself."""
    columns = shutil.get_terminal_size(fallback=(0, 0)).columns
    return columns if columns > 0 else None


def fit_widths(natural: Sequence[int], floors: Sequence[int], room: int | None) -> list[int]:
    """Column widths whose sum with the gaps between them fits ``room``: the widest columns are
    narrowed first, none below its floor (the table may then still be wider than ``room``)."""
    widths = list(natural)
    if room is None:
        return widths
    excess = sum(widths) + len(GAP) * (len(widths) - 1) - room
    while excess > 0:
        shrinkable = [i for i, w in enumerate(widths) if w > floors[i]]
        if not shrinkable:
            break
        widths[max(shrinkable, key=lambda i: widths[i])] -= 1
        excess -= 1
    return widths


def table(rows: Sequence[dict[str, object]], columns: Sequence[str], room: int | None = None, *,
          keep: Sequence[str] = (), optional: Sequence[str] = ()) -> str:
    """A fixed-width table with a header of the column names in capitals; ``(none)`` for no rows.
    In ``room`` columns: cells cut with ``…``, the widest first, never those of ``keep``; where even
    that is too wide, the ``optional`` columns are left out, in their order."""
    if not rows:
        return "(none)"
    shown = list(columns)
    text = {c: [" ".join(("" if r.get(c) is None else str(r.get(c))).split()) for r in rows] for c in columns}
    natural = {c: max(width(c), *(width(v) for v in text[c])) for c in columns}
    floor = {c: natural[c] if c in keep else min(natural[c], max(MIN_COLUMN, width(c))) for c in columns}
    for column in optional:
        if room is None or sum(floor[c] for c in shown) + len(GAP) * (len(shown) - 1) <= room:
            break
        shown.remove(column)
    widths = fit_widths([natural[c] for c in shown], [floor[c] for c in shown], room)
    grid = [[c.upper() for c in shown], *([text[c][i] for c in shown] for i in range(len(rows)))]
    out = [GAP.join(pad(cut(v, w), w) for v, w in zip(row, widths, strict=True)).rstrip() for row in grid]
    return "\n".join(out)


def lines(text: str, room: int | None) -> str:
    """Every line of ``text`` cut to ``room`` columns."""
    return "\n".join(cut(line, room) for line in text.split("\n"))


def wrap(text: str, room: int | None) -> str:
    """Prose in ``room`` columns, broken between words."""
    return text if room is None else textwrap.fill(text, room, break_on_hyphens=False)
