"""The local run store: what the local backend submitted and what became of each run.

Every SQL statement on the ``runs`` table is here; the read model (:mod:`sheetdrop_local.readmodel`)
shapes what these return for the CLI and the studio.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sheetdrop.submit import SubmitRequest


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    #: The step found its blob version replaced before it read it: nothing registered (the step's own check).
    SUPERSEDED = "superseded"


ENDED = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.SUPERSEDED)


@dataclass(frozen=True)
class Run:
    run_id: str
    status: RunStatus
    experiment: str
    dataset_name: str
    datastore_name: str
    relative_path: str
    source_container: str
    source_blob: str
    source_etag: str
    description: str
    tags: dict[str, str]
    submitted_at: float
    started_at: float | None
    ended_at: float | None
    attempts: int
    not_before: float
    step_run_id: str | None
    output_path: str | None
    metrics: dict[str, Any]
    error: str | None
    log_path: str | None
    abandoned_attempts: list[str]
    read_options: str
    #: Which attempt of its blob version (1, then one more per re-run).
    source_attempt: int = 1

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Run:
        data = dict(row)
        data["tags"] = json.loads(data["tags"])
        data["metrics"] = json.loads(data["metrics"])
        data["status"] = RunStatus(data["status"])
        data["abandoned_attempts"] = json.loads(data["abandoned_attempts"])
        return cls(**data)

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "seconds": self.seconds}


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def enqueue(conn: sqlite3.Connection, request: SubmitRequest) -> str:
    run_id = str(uuid.uuid4())
    conn.execute(
        """INSERT INTO runs (run_id, status, experiment, dataset_name, datastore_name, relative_path,
               source_container, source_blob, source_etag, description, tags, submitted_at, read_options,
               source_attempt)
           VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            run_id, request.experiment_name, request.dataset_name, request.datastore_name, request.relative_path,
            request.source_container, request.source_blob, request.source_etag, request.description,
            json.dumps(request.tags, sort_keys=True), time.time(), request.read_options, request.attempt,
        ),
    )
    return run_id


def take_next(conn: sqlite3.Connection) -> Run | None:
    """Move the oldest due queued run to running and return it (atomic: one taker per run)."""
    now = time.time()
    row = conn.execute(
        """UPDATE runs SET status = 'running', started_at = ?, attempts = attempts + 1, step_run_id = ?
           WHERE run_id = (SELECT run_id FROM runs WHERE status = 'queued' AND not_before <= ?
                           ORDER BY submitted_at LIMIT 1)
           RETURNING *""",
        (now, str(uuid.uuid4()), now),
    ).fetchone()
    return Run.from_row(row) if row else None


#: Back to the queue, remembering the attempt cut short so that its partial output is deleted.
_REQUEUE = """UPDATE runs SET status = 'queued', started_at = NULL, ended_at = NULL,
    abandoned_attempts = json_insert(abandoned_attempts, '$[#]', step_run_id), step_run_id = NULL"""


def requeue_interrupted(conn: sqlite3.Connection) -> int:
    """Runs left 'running' by a host that stopped: queue them again (nothing was registered for
    them, because registration and completion commit together)."""
    return conn.execute(f"{_REQUEUE} WHERE status = 'running'").rowcount


def requeue(conn: sqlite3.Connection, run_id: str, note: str, delay: float = 0.0) -> None:
    """Back to the queue after an infrastructure failure; ``error`` keeps the note until it ends."""
    conn.execute(f"{_REQUEUE}, error = ?, not_before = ? WHERE run_id = ?", (note, time.time() + delay, run_id))


def forget_abandoned(conn: sqlite3.Connection, run_id: str) -> None:
    conn.execute("UPDATE runs SET abandoned_attempts = '[]' WHERE run_id = ?", (run_id,))


def completed_since(conn: sqlite3.Connection, since: float) -> list[Run]:
    rows = conn.execute("SELECT * FROM runs WHERE status = 'completed' AND ended_at >= ? ORDER BY ended_at",
                        (since,)).fetchall()
    return [Run.from_row(r) for r in rows]


def finish(
    conn: sqlite3.Connection,
    run_id: str,
    status: RunStatus,
    *,
    metrics: dict[str, Any] | None = None,
    error: str | None = None,
    output_path: str | None = None,
    log_path: str | None = None,
) -> None:
    if status not in ENDED:
        raise ValueError(f"a run finishes as {', '.join(ENDED)}, not {status!r}")
    conn.execute(
        """UPDATE runs SET status = ?, ended_at = ?, metrics = ?, error = ?, output_path = ?, log_path = ?
           WHERE run_id = ?""",
        (status, time.time(), json.dumps(metrics or {}, sort_keys=True), error, output_path, log_path, run_id),
    )


def get(conn: sqlite3.Connection, run_id: str) -> Run | None:
    row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return Run.from_row(row) if row else None


def list_runs(conn: sqlite3.Connection, limit: int | None = 50, *, status: str | None = None) -> list[Run]:
    """The newest ``limit`` runs (None: all), newest first; only those with ``status`` if given."""
    sql, params = "SELECT * FROM runs", []
    if status:
        sql, params = sql + " WHERE status = ?", [status]
    sql += " ORDER BY submitted_at DESC"
    if limit is not None:
        sql, params = sql + " LIMIT ?", [*params, limit]
    return [Run.from_row(r) for r in conn.execute(sql, params)]


def with_id_prefix(conn: sqlite3.Connection, prefix: str) -> list[Run]:
    """The run whose id is ``prefix`` and those whose id begins with it, oldest first."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = conn.execute("SELECT * FROM runs WHERE run_id = ? OR run_id LIKE ? ESCAPE '\\' ORDER BY submitted_at",
                        (prefix, escaped + "%")).fetchall()
    return [Run.from_row(r) for r in rows]


def dataset_names(conn: sqlite3.Connection) -> set[str]:
    """Every workbook-level dataset name a run was submitted for."""
    return {row["dataset_name"] for row in conn.execute("SELECT DISTINCT dataset_name FROM runs")}


def ended_of(conn: sqlite3.Connection, run_ids: list[str]) -> set[str]:
    """Those of ``run_ids`` that have ended."""
    ended = [str(status) for status in ENDED]
    found: set[str] = set()
    for start in range(0, len(run_ids), 500):  # SQLite's limit on variables per statement
        chunk = run_ids[start:start + 500]
        found |= {row[0] for row in conn.execute(
            f"SELECT run_id FROM runs WHERE run_id IN ({', '.join('?' * len(chunk))}) "
            f"AND status IN ({', '.join('?' * len(ended))})", (*chunk, *ended))}
    return found


def find_by_source(conn: sqlite3.Connection, container: str, blob: str, etag: str,
                   attempt: int | None = 1) -> list[str]:
    """The runs of this attempt of a blob version (``attempt=None``: of every attempt), oldest first."""
    rows = conn.execute(
        "SELECT run_id FROM runs WHERE source_container = ? AND source_blob = ? AND source_etag = ? "
        "AND (? IS NULL OR source_attempt = ?) ORDER BY submitted_at",
        (container, blob, etag, attempt, attempt),
    ).fetchall()
    return [r["run_id"] for r in rows]


def blob_has_runs(conn: sqlite3.Connection, container: str, blob: str) -> bool:
    """Whether any version of the blob was ever submitted here."""
    return conn.execute("SELECT 1 FROM runs WHERE source_container = ? AND source_blob = ? LIMIT 1",
                        (container, blob)).fetchone() is not None


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])


def later_completed(conn: sqlite3.Connection, run: Run) -> Run | None:
    """The first run of the same blob submitted after ``run`` that completed (a failed run's successor)."""
    row = conn.execute(
        """SELECT * FROM runs WHERE source_container = ? AND source_blob = ? AND submitted_at > ?
           AND status = 'completed' ORDER BY submitted_at LIMIT 1""",
        (run.source_container, run.source_blob, run.submitted_at)).fetchone()
    return Run.from_row(row) if row else None
