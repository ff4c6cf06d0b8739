"""The embedded default's backend: a submission becomes a queued run of the local pipeline runner.

Like a PipelineEndpoint submission it returns at once with a run id; the run itself happens in
the dev host's runner workers. Not deployed: the dev host registers it with ``install()``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from sheetdrop.submit import BatchRequest, SubmitRequest, SubmitResult
from sheetdrop.submit.backends import register_backend
from sheetdrop_local import db, runstore
from sheetdrop_local.settings import LocalSettings


@dataclass
class LocalBackend:
    conn: sqlite3.Connection

    @classmethod
    def from_settings(cls, settings: LocalSettings) -> LocalBackend:
        return cls(db.connect(settings.state_dir))

    def submit(self, request: SubmitRequest) -> SubmitResult:
        # The claims make submissions exactly-once; but Azurite, which holds them, can lose its last
        # seconds of writes in a crash, while this run store cannot. So one run per attempt of a blob version here too.
        with runstore.transaction(self.conn):
            existing = runstore.submitted_runs(self.conn, request.source_container, request.source_blob,
                                               request.source_etag, request.attempt)
            if existing:
                return SubmitResult(run_id=existing[0], existing=True)
            return SubmitResult(run_id=runstore.enqueue(self.conn, request))

    def submit_batch(self, batch: BatchRequest) -> SubmitResult:
        """One queued run for the batch; the runner runs the batch step on the cores it may use. The same batch
        again is the same run; a version that has a run already (a crash between two writes of a submitter) keeps
        it and is left out, so no version runs twice here either."""
        with runstore.transaction(self.conn):
            existing = runstore.find_batch(self.conn, batch.batch_id)
            if existing:
                return SubmitResult(run_id=existing)
            had = [runstore.submitted_runs(self.conn, r.source_container, r.source_blob, r.source_etag, r.attempt)
                   for r in batch.requests]
            todo = tuple(r for r, runs in zip(batch.requests, had, strict=True) if not runs)
            if not todo:
                return SubmitResult(run_id=had[0][0], existing=True)
            return SubmitResult(run_id=runstore.enqueue_batch(self.conn, BatchRequest(batch.batch_id, todo)))

    def find_runs(self, source_container: str, source_blob: str, source_etag: str, attempt: int = 1) -> list[str]:
        return runstore.submitted_runs(self.conn, source_container, source_blob, source_etag, attempt)

    def ended(self, run_ids: list[str]) -> set[str]:
        """Which of these runs have ended (a backfill's pace)."""
        return runstore.ended_of(self.conn, run_ids)


def install(settings: LocalSettings) -> None:
    """Let the Function submit to this state folder's runner. The Function reads only its own
    settings, so the local ones (the state folder) come from whoever installs the backend."""
    register_backend("local", lambda _: LocalBackend.from_settings(settings))
