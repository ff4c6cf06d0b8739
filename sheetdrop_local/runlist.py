"""The run list's SQL: every statement on the ``unrun`` table (the blob versions that got no run, as
the trigger noted them in storage) and the one query that pages through runs and those versions
together, filtered by status, dataset, blob and time. The read model (``readmodel/runs.py``) keeps
``unrun`` up to date and shapes the rows; the CLI and the studio ask it, never this module.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from sheetdrop_local.runstore import Run


@dataclass(frozen=True)
class Unrun:
    """One blob version without a run, as stored."""

    index_name: str
    seen_etag: str
    status: str
    container: str
    blob: str
    etag: str
    at: float
    reason: str | None
    #: An options file's mistakes ([] when valid); None for anything else.
    options_errors: list[str] | None = None


def known(conn: sqlite3.Connection) -> dict[str, str]:
    """Index name -> the etag it was last read at."""
    return {row["index_name"]: row["seen_etag"] for row in conn.execute("SELECT index_name, seen_etag FROM unrun")}


def store(conn: sqlite3.Connection, rows: list[Unrun], gone: set[str]) -> None:
    """Add or replace ``rows``, forget the index entries in ``gone``, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            """INSERT OR REPLACE INTO unrun (index_name, seen_etag, status, source_container, source_blob,
                   source_etag, at, reason, options_errors) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [(r.index_name, r.seen_etag, r.status, r.container, r.blob, r.etag, r.at, r.reason,
              None if r.options_errors is None else json.dumps(r.options_errors)) for r in rows])
        conn.executemany("DELETE FROM unrun WHERE index_name = ?", [(name,) for name in gone])
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def like(text: str) -> str:
    """``text`` anywhere, as a LIKE pattern (its own ``%``, ``_`` and ``\\`` taken literally)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    #: Part of a dataset's name, any letter case: the workbook's (``sales``) or a sheet's (``sales_orders``).
    dataset: str | None = None
    #: Part of ``<container>/<blob>``, any letter case.
    blob: str | None = None
    #: Unix times: rows at or after ``since``, before ``until``.
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True)
class Row:
    """A row of the run list as the query returns it: a run, or a blob version without one."""

    status: str
    container: str
    blob: str
    etag: str
    at: float
    reason: str | None
    run: Run | None
    options_errors: list[str] | None


#: Runs, and the versions without one that have not got one since (a re-run of an `options invalid`
#: version makes a run, which is then its row).
ROWS = """
WITH rows AS (
    SELECT run_id, status, source_container, source_blob, source_etag, submitted_at AS at, error AS reason,
           dataset_name, NULL AS options_errors
    FROM runs
    UNION ALL
    SELECT NULL, u.status, u.source_container, u.source_blob, u.source_etag, u.at, u.reason, NULL, u.options_errors
    FROM unrun u
    WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.source_container = u.source_container
                      AND r.source_blob = u.source_blob AND r.source_etag = u.source_etag)
)
SELECT rows.status AS row_status, rows.source_container AS row_container, rows.source_blob AS row_blob,
       rows.source_etag AS row_etag, rows.at AS row_at, rows.reason AS row_reason,
       rows.options_errors AS row_options_errors, COUNT(*) OVER () AS row_total, r.*
FROM rows LEFT JOIN runs r ON r.run_id = rows.run_id
WHERE (:status IS NULL OR rows.status = :status)
  AND (:dataset IS NULL OR rows.run_id IS NOT NULL AND (rows.dataset_name LIKE :dataset ESCAPE '\\'
       OR rows.run_id IN (SELECT run_id FROM datasets WHERE name LIKE :dataset ESCAPE '\\')))
  AND (:blob IS NULL OR rows.source_container || '/' || rows.source_blob LIKE :blob ESCAPE '\\')
  AND (:since IS NULL OR rows.at >= :since)
  AND (:until IS NULL OR rows.at < :until)
ORDER BY rows.at DESC, rows.source_blob, rows.run_id
LIMIT :limit OFFSET :offset
"""


def page(conn: sqlite3.Connection, filters: Filters, limit: int, offset: int = 0) -> tuple[list[Row], int]:
    """One page of the run list, newest first, and how many rows match in all."""
    params = {"status": filters.status, "dataset": like(filters.dataset) if filters.dataset else None,
              "blob": like(filters.blob) if filters.blob else None, "since": filters.since,
              "until": filters.until, "limit": limit, "offset": offset}
    found, total = [], 0
    for row in conn.execute(ROWS, params):
        data = dict(row)
        total = data.pop("row_total")
        head = {key: data.pop(key) for key in list(data) if key.startswith("row_")}
        errors = head["row_options_errors"]
        found.append(Row(head["row_status"], head["row_container"], head["row_blob"], head["row_etag"],
                         head["row_at"], head["row_reason"],
                         Run.from_row(data) if data.get("run_id") else None,  # type: ignore[arg-type]
                         None if errors is None else json.loads(errors)))
    if not found and offset:  # past the last page: the total is still worth saying
        total = page(conn, filters, 1)[1]
    return found, total
