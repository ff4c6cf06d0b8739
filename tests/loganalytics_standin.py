"""Log Analytics' query API on loopback, for `sheetdrop smoke`'s workbook check (both environments).

It answers ``POST /v1/workspaces/{id}/query`` in the shape azure-monitor-query reads (``{"tables": [{"name",
"columns": [{"name", "type"}], "rows"}]}``; tests/test_smoke_routes.py drives azure-monitor-query's real
``LogsQueryClient`` against it) for a bearer token of its own audience. No KQL engine runs here: it answers only the
workbook's own `runs` query, byte for byte as infra/app/workbook.json holds it (anything else is a 400, as a query
the service cannot parse would be), with the rows a test gives it — the rows that query returns once the Function's
outcome record and the workspace's run status events are ingested (README, "The workbook"). What the real query
returns for a real run is `workbook-finds-run`, which only a real workspace confirms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopback import LoopbackService, Recorded, Reply
from sheetdrop_local.smoke.loganalytics import workbook_query

WORKSPACE_ID = "0b0c0d0e-1f2a-4b3c-8d4e-5f6a7b8c9d0e"
TOKEN = "loganalytics-standin-token"
#: The `runs` panel's columns (its final `project`), with Log Analytics' column types.
RUNS_COLUMNS = (("submitted", "datetime"), ("run_id", "string"), ("status", "string"), ("status_time", "datetime"),
                ("container", "string"), ("blob", "string"), ("etag", "string"), ("run_url", "string"))


@dataclass
class LogAnalytics:
    service: LoopbackService
    rows: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.service.default = self.reply

    def ingest_run(self, run_id: str, status: str, blob: str, etag: str, container: str = "input") -> None:
        """What the `runs` query returns for a run once its outcome record and status events are in."""
        self.rows.append({"submitted": "2026-12-07T10:00:00Z", "run_id": run_id, "status": status,
                          "status_time": "2026-12-07T10:05:00Z", "container": container, "blob": blob,
                          "etag": etag, "run_url": f"https://ml.azure.com/runs/{run_id}"})

    def reply(self, recorded: Recorded) -> Reply:
        if recorded.method != "POST" or recorded.path != f"/v1/workspaces/{WORKSPACE_ID}/query":
            return 404, {}, {"error": {"code": "PathNotFoundError", "message": recorded.path}}
        if recorded.headers.get("authorization") != f"Bearer {TOKEN}":
            return 403, {}, {"error": {"code": "InsufficientAccessError", "message": "no or wrong token"}}
        body = recorded.json()
        if body.get("query") != workbook_query("runs"):
            return 400, {}, {"error": {"code": "BadArgumentError", "message": "the stand-in runs the workbook's "
                                       "`runs` query only"}}
        return 200, {}, {"tables": [{"name": "PrimaryResult",
                                     "columns": [{"name": n, "type": t} for n, t in RUNS_COLUMNS],
                                     "rows": [[row.get(n) for n, _ in RUNS_COLUMNS] for row in self.rows]}]}
