"""The embedded default's backend: a submission becomes a queued run of the local pipeline runner.

Like a PipelineEndpoint submission it returns at once with a run id; the run itself happens in
the dev host's runner workers. Not deployed: the dev host registers it with ``install()``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from sheetdrop.submit import SubmitRequest, SubmitResult
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
            existing = runstore.find_by_source(self.conn, request.source_container, request.source_blob,
                                               request.source_etag, request.attempt)
            if existing:
                return SubmitResult(run_id=existing[0], existing=True)
            return SubmitResult(run_id=runstore.enqueue(self.conn, request))

    def find_runs(self, source_container: str, source_blob: str, source_etag: str, attempt: int = 1) -> list[str]:
        return runstore.find_by_source(self.conn, source_container, source_blob, source_etag, attempt)

    def ended(self, run_ids: list[str]) -> set[str]:
        """Which of these runs have ended (a backfill's pace)."""
        return runstore.ended_of(self.conn, run_ids)


def install(settings: LocalSettings) -> None:
    """Let the Function submit to this state folder's runner. The Function reads only its own
    settings, so the local ones (the state folder) come from whoever installs the backend."""
    register_backend("local", lambda _: LocalBackend.from_settings(settings))
