"""The portal workbook's own queries, run against the deployment's Log Analytics workspace, as the workbook runs them.

Route, body, scope and answer are azure-monitor-query's (2.0; ``LogsQueryClient.query_workspace``):
``POST {endpoint}/v1/workspaces/{workspaceId}/query`` (``_operations/_operations.py``,
``build_monitor_query_logs_execute_request``; api version ``v1`` in the path, ``_patch.py``) with
``{"query", "timespan"}`` (``_patch.py``: ``body = {"query": query, "timespan": timespan_iso, …}``, the timespan
in ISO 8601 as ``_helpers.construct_iso8601`` writes a duration), a token for ``{endpoint}/.default``
(``audience.rstrip("/") + "/.default"``), and an answer of ``{"tables": [{"name", "columns": [{"name", "type"}],
"rows": [[…]]}]}`` (``_models.py``, ``LogsTable``); tests/test_smoke_routes.py compares with the SDK
itself. The workspace id is the workspace's customer id (azd's LOG_ANALYTICS_WORKSPACE_ID).
"""

from __future__ import annotations

import json
from typing import Any

from sheetdrop.submit.service import ServiceClient, service_error
from sheetdrop_local import REPO
from sheetdrop_local.smoke.facts import SmokeFailure

ENDPOINT = "https://api.loganalytics.io"
WORKBOOK = REPO / "infra" / "app" / "workbook.json"


def workbook_query(name: str) -> str:
    """The query of one of the workbook's panels, exactly as the portal runs it (infra/app/workbook.json)."""
    workbook = json.loads(WORKBOOK.read_text(encoding="utf-8"))
    for item in workbook["items"]:
        if item.get("name") == name and item.get("type") == 3:
            return item["content"]["query"]
    raise KeyError(f"the workbook has no query panel {name!r}")


def query(service: ServiceClient, workspace_id: str, text: str, hours: float, endpoint: str = ENDPOINT
          ) -> list[dict[str, Any]]:
    """The first table's rows, each as {column: value}."""
    base = endpoint.rstrip("/")
    # A duration as construct_iso8601 writes a timedelta: "PT" + its total seconds + "S" (PT86400.0S for a day).
    body = json.dumps({"query": text, "timespan": f"PT{float(hours * 3600)}S"}).encode("utf-8")
    response = service.send("POST", f"{base}/v1/workspaces/{workspace_id}/query", scope=f"{base}/.default",
                            what="query Log Analytics", data=body, headers={"Content-Type": "application/json"})
    if response.status_code >= 400:
        raise SmokeFailure(f"the Log Analytics query was refused: HTTP {response.status_code}: "
                           f"{service_error(response)}; the signed-in identity needs read access to workspace "
                           f"{workspace_id} (Reader or Log Analytics Reader on it or its resource group)")
    tables = response.json().get("tables") or []
    if not tables:
        return []
    names = [column["name"] for column in tables[0].get("columns") or []]
    return [dict(zip(names, row, strict=False)) for row in tables[0].get("rows") or []]
