"""The embedded default's backend: a submission becomes a queued run of the local pipeline runner.

Like a PipelineEndpoint submission it returns at once with a run id; the run
itself happens in the dev host's runner workers.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from sheetdrop import db, runstore
from sheetdrop.backends import SubmitRequest, SubmitResult
from sheetdrop.settings import Settings


@dataclass
class LocalBackend:
    conn: sqlite3.Connection

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalBackend:
        return cls(db.connect(settings.state_dir))

    def submit(self, request: SubmitRequest) -> SubmitResult:
        return SubmitResult(run_id=runstore.enqueue(self.conn, request))

    def find_runs(self, source_container: str, source_blob: str, source_etag: str) -> list[str]:
        return runstore.find_by_source(self.conn, source_container, source_blob, source_etag)
