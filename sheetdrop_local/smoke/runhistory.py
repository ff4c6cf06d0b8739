"""AzureML run history as both SDKs read it: a run, its children, its details and its step log. v1 pipeline runs and
v2 jobs alike are runs there (azure-ai-ml reads a pipeline child job from run history: ``operations/
_job_operations.py``, "Child jobs are no longer available through MFE, fetch through run history instead").

Routes (``{ws}`` = ``subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/
workspaces/{name}``), each the SDK's own:

* ``GET {api}/history/v1.0/{ws}/runs/{runId}``: a ``Run``/``RunDto`` (azure-ai-ml ``_restclient/runhistory/
  operations/_runs_operations.py``, ``build_get_request``; azureml-core ``_restclient/operations/run_operations.py``,
  ``get_workspace_run``);
* ``GET {api}/history/v1.0/{ws}/runs/{runId}/children``: ``{"value": [Run…], "continuationToken"}`` (azure-ai-ml
  ``build_get_child_request``, what ``RunOperations.get_run_children`` sends);
* ``GET {api}/history/v1.0/{ws}/runs/{runId}/details``: ``RunDetails`` with ``runDefinition`` and ``logFiles``
  (azure-ai-ml ``build_get_details_request``, read by ``_job_ops_helper.stream_logs_until_completion``);
* ``GET {api}/artifact/v2.0/{ws}/artifacts/prefix/contentinfo/ExperimentRun/{dataContainerId}/user_logs``: the
  common runtime's logs, which run history no longer lists (azureml-core ``core/run.py``,
  ``_get_common_runtime_logs``: "backfill common runtime logs as RH should no longer be proxying these";
  ``_restclient/operations/artifact_operations.py``, ``list_sas_by_prefix``; ``PaginatedArtifactContentInformationDto``
  ``{"value": [{"path", "contentUri"}]}``).

A log's ``contentUri`` is a SAS URL the service hands out; it is fetched with a plain GET, as azureml-core's
``download_file_stream`` and azure-ai-ml's log streaming do, and never printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from sheetdrop.submit.service import ServiceClient, service_error
from sheetdrop.submit.workspace import Workspace
from sheetdrop_local.smoke.facts import SmokeFailure

#: What azure-ai-ml's run-history client sends with each request (its ``api_version``, "v1.0").
API_VERSION = {"api-version": "v1.0"}
#: Which log to read, best first: the common runtime's user log, then the 2020 runtime's driver log.
LOG_NAMES = ("user_logs/std_log.txt", "std_log.txt", "azureml-logs/70_driver_log.txt")
MAX_PAGES = 10


@dataclass
class RunHistory:
    api_url: str
    workspace: Workspace
    service: ServiceClient
    #: The ARM audience the SDK asks for (v1: management.core.windows.net, v2: management.azure.com).
    scope: str

    def _url(self, service: str, tail: str) -> str:
        return f"{self.api_url.rstrip('/')}/{service}/{self.workspace.path()}/{tail}"

    def _get(self, url: str, what: str, params: dict[str, str] | None = None) -> requests.Response:
        if "/history/" in url:
            params = {**API_VERSION, **(params or {})}
        response = self.service.send("GET", url, scope=self.scope, what=what, params=params)
        if response.status_code >= 400 and response.status_code != 404:
            raise SmokeFailure(f"{what}: HTTP {response.status_code}: {service_error(response)}")
        return response

    def run(self, run_id: str) -> dict[str, Any] | None:
        response = self._get(self._url("history/v1.0", f"runs/{quote(run_id, safe='')}"), f"read run {run_id}")
        return None if response.status_code == 404 else response.json()

    def children(self, run_id: str) -> list[dict[str, Any]]:
        url: str | None = self._url("history/v1.0", f"runs/{quote(run_id, safe='')}/children")
        found: list[dict[str, Any]] = []
        params: dict[str, str] | None = None
        for _ in range(MAX_PAGES):
            if url is None:
                break
            response = self._get(url, f"read the child runs of {run_id}", params)
            if response.status_code == 404:
                break
            page = response.json()
            found += page.get("value") or []
            token = page.get("continuationToken")
            params = {"$continuationToken": token} if token else None
            url = url if token else None
        return found

    def details(self, run_id: str) -> dict[str, Any]:
        response = self._get(self._url("history/v1.0", f"runs/{quote(run_id, safe='')}/details"),
                             f"read the details of run {run_id}")
        return {} if response.status_code == 404 else response.json()

    def log(self, run: dict[str, Any], details: dict[str, Any]) -> tuple[str, str] | None:
        """The step's log (its name, its text), from the run's details or the common runtime's artifacts."""
        files = dict(details.get("logFiles") or {})
        container = run.get("dataContainerId")
        if container and not any(name.endswith("std_log.txt") for name in files):
            tail = f"artifacts/prefix/contentinfo/ExperimentRun/{quote(container, safe='')}/user_logs"
            response = self._get(self._url("artifact/v2.0", tail), f"list the logs of run {run.get('runId')}")
            if response.status_code == 200:
                files.update({item["path"]: item["contentUri"] for item in response.json().get("value") or []
                              if item.get("path") and item.get("contentUri")})
        for wanted in LOG_NAMES:
            for name, url in files.items():
                if name == wanted or name.endswith("/" + wanted):
                    text = requests.get(url, timeout=60)
                    if text.status_code >= 400:
                        raise SmokeFailure(f"read the log {name} of run {run.get('runId')}: HTTP {text.status_code}")
                    return name, text.content.decode("utf-8", errors="replace")
        return None
