"""Run history and the workspace's datastore, as the workspace stand-in (tests/aml2/workspace.py) answers them for
azure-ai-ml and for `sheetdrop smoke`.

* ``…/history/v1.0/…/runs/{id}``: a batch job's pipeline job and its step job as ``Run`` (azure-ai-ml
  ``_restclient/runhistory/models``: ``runId``, ``parentRunId``, ``status``, ``createdUtc``, ``startTimeUtc``,
  ``endTimeUtc``, ``tags``, ``properties``). A job's MLflow run is the job itself in AzureML, so a job's tags are its
  MLflow tags (docs/azureml-v2.md, "Tags and metrics"), read from the stand-in's MLflow store.
* ``…/runs/{id}/children``: ``{"value": [Run], "continuationToken"}``; the pipeline job's child is its step job.
* ``…/runs/{id}/details``: ``RunDetails`` whose ``logFiles`` maps ``user_logs/std_log.txt`` to a URL (a SAS URL in
  Azure) that this stand-in serves without a token (what azure-ai-ml's log streaming reads).
* ``…/datastores/{name}`` (ARM): ``workspaceblobstore`` as an ``AzureBlobDatastore`` on the test's storage account
  (azure-ai-ml ``_restclient/v2024_01_01_preview/models``: ``datastoreType``, ``accountName``, ``containerName``,
  ``endpoint``, ``protocol``, ``credentials``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from loopback import Recorded, Reply

if TYPE_CHECKING:
    from tests.aml2.workspace import Job, Workspace

LOGS = "/sas/logs/"
ACCOUNT = "devstoreaccount1"


def iso(when: float | None) -> str | None:
    if when is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1e7):07d}Z"


def _tags(workspace: Workspace, run_id: str) -> dict[str, str]:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return dict(MlflowClient(tracking_uri=workspace.tracking_uri).get_run(run_id).data.tags)
    except MlflowException:
        return {}


def run(workspace: Workspace, job: Job, step: bool) -> dict[str, Any]:
    if step:
        return {"runId": job.step_name, "parentRunId": job.name, "rootRunId": job.name, "status": job.status,
                "displayName": "extract", "tags": _tags(workspace, job.step_name),
                "properties": {"azureml.nodeid": "extract"}, "computeTarget": "sheetdrop-cpu",
                "experimentId": "sheetdrop-extract", "createdUtc": iso(job.started or job.created),
                "startTimeUtc": iso(job.started), "endTimeUtc": iso(job.ended)}
    return {"runId": job.name, "parentRunId": None, "rootRunId": job.name, "status": job.status,
            "displayName": job.name, "tags": _tags(workspace, job.name), "properties": {},
            "experimentId": "sheetdrop-extract", "createdUtc": iso(job.created),
            "startTimeUtc": iso(job.started), "endTimeUtc": iso(job.ended and job.ended + 0.5)}


def answer(workspace: Workspace, recorded: Recorded) -> Reply:
    tail = recorded.path.split("/runs/", 1)[1] if "/runs/" in recorded.path else ""
    run_id, _, what = tail.partition("/")
    for job in workspace.jobs:
        for step, name in ((False, job.name), (True, job.step_name)):
            if run_id != name:
                continue
            if what == "children":
                return 200, {}, {"value": [] if step else [run(workspace, job, True)], "continuationToken": None}
            if what == "details":
                files = {"user_logs/std_log.txt": f"{workspace.service.url}{LOGS}{job.step_name}"} if step and \
                    job.log else {}
                return 200, {}, {**run(workspace, job, step), "logFiles": files}
            if not what:
                return 200, {}, run(workspace, job, step)
    return 404, {}, {"error": {"code": "NotFound", "message": recorded.path}}


def log(workspace: Workspace, recorded: Recorded) -> Reply:
    name = recorded.path.removeprefix(LOGS)
    found = [job.log for job in workspace.jobs if job.step_name == name]
    if not found:
        return 404, {}, {"error": {"code": "BlobNotFound", "message": name}}
    return 200, {"Content-Type": "text/plain"}, found[0].encode("utf-8")


def datastore(workspace: Workspace, path: str) -> Reply:
    name = path.rsplit("/", 1)[1]
    if name != "workspaceblobstore":
        return 404, {}, {"error": {"code": "UserError", "message": f"datastore {name} not found"}}
    return 200, {}, {"id": path, "name": name, "properties": {
        "datastoreType": "AzureBlob", "accountName": ACCOUNT, "containerName": workspace.blobstore_container,
        "endpoint": "core.windows.net", "protocol": "https", "isDefault": True,
        "credentials": {"credentialsType": "None"}}}
