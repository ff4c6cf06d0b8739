"""The local state database (SQLite): the run store and the dataset registry share one file so
that "register the datasets" and "mark the run completed" commit together."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    experiment TEXT NOT NULL,
    dataset_name TEXT NOT NULL,
    datastore_name TEXT NOT NULL,
    relative_path TEXT NOT NULL,
    source_container TEXT NOT NULL,
    source_blob TEXT NOT NULL,
    source_etag TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '{}',
    submitted_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    step_run_id TEXT,
    output_path TEXT,
    metrics TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    log_path TEXT,
    -- step run ids of attempts that were cut short: their partial outputs are deleted before the
    -- next attempt (JSON list)
    abandoned_attempts TEXT NOT NULL DEFAULT '[]',
    read_options TEXT NOT NULL DEFAULT '{}',
    -- which attempt of its blob version the run is: 1, then one more per re-run (`sheetdrop rerun`)
    source_attempt INTEGER NOT NULL DEFAULT 1,
    -- 'single' (one version), 'batch' (a run of many: sheetdrop_contract.batch) or 'version' (one version of a
    -- batch: its outcome, metrics and datasets; the batch run is what was submitted and runs)
    kind TEXT NOT NULL DEFAULT 'single',
    batch_id TEXT,
    batch_position INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_source ON runs (source_container, source_blob, source_etag);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, submitted_at);
CREATE TABLE IF NOT EXISTS datasets (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    datastore TEXT NOT NULL,
    relative_path TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '{}',
    run_id TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (name, version)
);
-- Blob versions that got no run (skipped, an options file, poisoned, options invalid): a copy of what
-- the trigger noted in the claims container's indexes, kept by the read model (runlist.py) so that
-- the run list is one query over these and the runs.
CREATE TABLE IF NOT EXISTS unrun (
    index_name TEXT PRIMARY KEY,
    -- the index entry's etag (a skipped record) or its claim's (poisoned, options invalid): read again when it changes
    seen_etag TEXT NOT NULL,
    status TEXT NOT NULL,
    source_container TEXT NOT NULL,
    source_blob TEXT NOT NULL,
    source_etag TEXT NOT NULL,
    at REAL NOT NULL,
    reason TEXT,
    -- an options file's mistakes (JSON list; [] valid), NULL for anything else
    options_errors TEXT
);
CREATE INDEX IF NOT EXISTS unrun_by_source ON unrun (source_container, source_blob, source_etag);
CREATE TABLE IF NOT EXISTS host_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def connect(state_dir: Path) -> sqlite3.Connection:
    state_dir.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE) where they matter.
    conn = sqlite3.connect(state_dir / "sheetdrop.db", timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=30000")
    _use_wal(conn, deadline=time.monotonic() + 30)
    conn.executescript(SCHEMA)
    _add_missing_columns(conn)
    return conn


def _use_wal(conn: sqlite3.Connection, deadline: float) -> None:
    """Put the database in WAL mode, waiting for other processes doing the same.

    Several processes open a fresh state folder at once (a dev host and a backfill, say). Switching
    the journal mode needs the file to itself, and SQLite answers "database is locked" at once then
    instead of waiting on busy_timeout (tests/test_state_db.py opens one from six processes). The
    mode is the file's, so once any of them has switched it the others only need to see it.
    """
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            # The pragma answers with the mode the file is in after it, which is the old one if it could not switch.
            if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                return
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError("the state database could not be put in WAL mode")
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(0.02)


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """State folders outlive upgrades: add columns that newer versions introduced."""
    have = {row["name"] for row in conn.execute("PRAGMA table_info(runs)")}
    if "not_before" not in have:
        conn.execute("ALTER TABLE runs ADD COLUMN not_before REAL NOT NULL DEFAULT 0")
    if "abandoned_attempts" not in have:
        conn.execute("ALTER TABLE runs ADD COLUMN abandoned_attempts TEXT NOT NULL DEFAULT '[]'")
    if "read_options" not in have:
        conn.execute("ALTER TABLE runs ADD COLUMN read_options TEXT NOT NULL DEFAULT '{}'")
    if "source_attempt" not in have:
        conn.execute("ALTER TABLE runs ADD COLUMN source_attempt INTEGER NOT NULL DEFAULT 1")
    if "kind" not in have:
        conn.execute("ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'single'")
        conn.execute("ALTER TABLE runs ADD COLUMN batch_id TEXT")
        conn.execute("ALTER TABLE runs ADD COLUMN batch_position INTEGER")
    conn.execute("CREATE INDEX IF NOT EXISTS runs_by_batch ON runs (batch_id, batch_position)")


def get_state(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM host_state WHERE key = ?", (key,)).fetchone()
    return row["value"] if row else None


def set_state(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO host_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                 (key, value, value))
