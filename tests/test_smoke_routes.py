"""`sheetdrop smoke`'s Log Analytics query is azure-monitor-query's own: its real ``LogsQueryClient`` and the smoke's
REST call (sheetdrop_local/smoke/loganalytics.py) ask the Log Analytics stand-in (tests/loganalytics_standin.py, on
a TLS loopback: azure-core sends no bearer token over http) the same request and read the same rows."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest

from loganalytics_standin import TOKEN, WORKSPACE_ID, LogAnalytics
from loopback import serve
from sheetdrop.submit.service import ServiceClient
from sheetdrop_local.smoke import loganalytics
from sheetdrop_local.smoke.facts import parse_time
from tls import self_signed

AZ = """#!{python}
import json, sys, time
print(json.dumps({{"accessToken": {token!r}, "expires_on": int(time.time()) + 3600, "tokenType": "Bearer"}}))
"""


def test_the_workbook_query_is_sent_and_read_as_azure_monitor_query_does(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.identity import AzureCliCredential
    from azure.monitor.query import LogsQueryClient

    certificate = self_signed(tmp_path / "tls")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate.cert))
    (tmp_path / "az").write_text(AZ.format(python=sys.executable, token=TOKEN))
    (tmp_path / "az").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    with serve(certificate) as service:
        logs = LogAnalytics(service)
        logs.ingest_run("run-1", "Completed", "sheetdrop_smoke/a.xlsx", '"0x1"')
        query = loganalytics.workbook_query("runs")
        theirs = LogsQueryClient(AzureCliCredential(), endpoint=service.url).query_workspace(
            WORKSPACE_ID, query, timespan=dt.timedelta(hours=24))
        ours = loganalytics.query(ServiceClient(AzureCliCredential()), WORKSPACE_ID, query, hours=24,
                                  endpoint=service.url)
        sdk, smoke = service.requests
    assert (smoke.method, smoke.path) == (sdk.method, sdk.path) == ("POST", f"/v1/workspaces/{WORKSPACE_ID}/query")
    assert smoke.headers["authorization"] == sdk.headers["authorization"] == f"Bearer {TOKEN}"
    assert {k: v for k, v in json.loads(sdk.body).items() if v is not None} == json.loads(smoke.body)
    table = theirs.tables[0]
    # The same rows; azure-monitor-query turns datetime columns into datetimes, the smoke keeps their text.
    as_sdk = [{k: dt.datetime.fromtimestamp(parse_time(v), dt.UTC) if isinstance(row[k], dt.datetime) else v
               for k, v in mine.items()} for mine, row in zip(ours, table.rows, strict=True)]
    assert as_sdk == [dict(zip(table.columns, row, strict=True)) for row in table.rows]
    assert ours[0]["run_id"] == "run-1" and ours[0]["status"] == "Completed"
