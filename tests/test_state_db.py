"""The run store's database opened by several processes at once, as a dev host and a backfill do."""
from __future__ import annotations

import multiprocessing
from pathlib import Path

from sheetdrop_local import db


def _open(state_dir: str, barrier: multiprocessing.synchronize.Barrier, errors: multiprocessing.Queue) -> None:
    barrier.wait()
    try:
        conn = db.connect(Path(state_dir))
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        conn.close()
        errors.put(None if mode == "wal" else f"journal mode {mode}")
    except Exception as error:  # the test reports whatever a process met
        errors.put(repr(error))


def test_a_fresh_state_folder_opened_by_six_processes_at_once(tmp_path: Path) -> None:
    # Before the WAL switch waited, about one round in three had a process fail with "database is locked".
    ctx = multiprocessing.get_context("spawn")
    found: list[str] = []
    for round_ in range(12):
        state_dir = tmp_path / f"state-{round_}"
        barrier, errors = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_open, args=(str(state_dir), barrier, errors)) for _ in range(6)]
        for proc in procs:
            proc.start()
        outcomes = [errors.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(timeout=60)
        found += [outcome for outcome in outcomes if outcome is not None]
    assert found == []
