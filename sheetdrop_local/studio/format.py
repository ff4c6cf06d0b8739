"""How the studio's pages write things: the read model's labels, and what only the pages show."""

from __future__ import annotations

from pathlib import Path

from starlette.templating import Jinja2Templates

from sheetdrop_local.readmodel.labels import ref, short, when
from sheetdrop_local.readmodel.runs import STATUSES


def clock(ts: float | None, day_of: float | None) -> str:
    """A time as its time of day when it falls on ``day_of``'s (UTC) date, in full otherwise."""
    if not ts:
        return ""
    full = when(ts)
    return full[11:] if day_of and when(day_of)[:10] == full[:10] else full


def templates(directory: Path) -> Jinja2Templates:
    found = Jinja2Templates(directory=str(directory))
    found.env.globals.update(when=when, clock=clock, short=short, ref=ref, statuses=STATUSES)
    return found
