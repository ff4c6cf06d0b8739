"""AzureML's services as a v1 step's run reaches them, on loopback, for azureml-core's real ``Run.get_context()``:
the variables AzureML sets in a job point azureml-core here, and what it sends is recorded.

What it answers, and from where each shape comes:

* discovery: every service key azureml-core asks for (``_restclient/service_context.py``, ``_ServiceKeys``);
* run history: a step run and its pipeline run as ``RunDto`` (``_restclient/models/run_dto.py``; the pipeline run
  typed ``azureml.PipelineRun``, which azureml-pipeline-core rehydrates, reading the workspace's data types:
  ``pipeline/core/_aeva_provider.py``, ``ensure_default_datatypes``), ``PATCH`` of tags kept, run details with the
  step's ``runDefinition`` (``RunDetailsDto``), no log artifacts, metrics accepted;
* run history for a client outside the job (`sheetdrop smoke`): a run's children (``{"value": [RunDto]}``), and the
  common runtime's log as the artifact service lists it (``PaginatedArtifactContentInformationDto``: ``path``,
  ``contentUri``, a SAS URL in Azure that this stand-in serves); a managed-identity token by App Service's protocol;
* datastores: ``workspaceblobstore`` as a ``DataStoreDto`` (``_restclient/models/data_store_dto.py``);
* datasets: a registration answered as the ``DatasetDto`` it sent, with the next version number (``datasetId``,
  ``latest.versionId``, ``latest.savedDatasetId``), and its definition read back as ``legacyDataflow``, what
  ``Dataset.register`` reads (``data/abstract_dataset.py``; ``data/_dataset_rest_helper.py``: ``_dto_to_dataset``,
  ``_fetch_rslex_dataflow_yaml``); a version by name (``datasets/query/name=…?versionId=``, what ``Dataset.get_by_name``
  reads) and unregistering a name (``DELETE …/datasets/{name}``).

The run token is a JWT with an expiry, as AzureML's is (azureml-core parses it:
``AzureMLTokenAuthentication._parse_expiry_time_from_token``).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from loopback import LoopbackService, Recorded, Reply

SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
RESOURCE_GROUP = "rg-sheetdrop"
WORKSPACE = "mlw-sheetdrop"
WORKSPACE_ID = "55555555-6666-7777-8888-999999999999"
EXPERIMENT = "sheetdrop-extract"
DATATYPES = ("AnyFile", "AzureBlobReference", "AzureDataLakeReference", "AzureFilesReference",
             "AzureSqlDatabaseReference", "AzurePostgresDatabaseReference", "AzureDataLakeGen2Reference",
             "AzureMLDataset", "AzureMySqlDatabaseReference", "DBFSReference", "AnyDirectory")


def run_token() -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signature = base64.urlsafe_b64encode(b"signature").rstrip(b"=").decode()
    return f"{part({'alg': 'none'})}.{part({'exp': int(time.time()) + 3600})}.{signature}"


@dataclass
class RunHistory:
    service: LoopbackService
    step_run_id: str = "step-run-1"
    pipeline_run_id: str = "pipeline-run-1"
    #: The step's run definition, as the service keeps it (RunConfiguration.data_references).
    data_references: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: The step's log, listed as the common runtime's user_logs/std_log.txt (empty: no log).
    log: str = ""

    def __post_init__(self) -> None:
        self.service.default = self.reply
        common = {"rootRunId": self.pipeline_run_id, "status": "Running", "properties": {}, "experimentId": "exp-1",
                  "createdUtc": "2026-01-01T00:00:00Z", "target": "sheetdrop-cpu"}
        self.runs = {
            self.pipeline_run_id: {**common, "runId": self.pipeline_run_id, "parentRunId": None, "runNumber": 1,
                                   "dataContainerId": f"dcid.{self.pipeline_run_id}",
                                   "runType": "azureml.PipelineRun", "tags": {"azureml.pipelineid": "p-1"}},
            self.step_run_id: {**common, "runId": self.step_run_id, "parentRunId": self.pipeline_run_id,
                               "dataContainerId": f"dcid.{self.step_run_id}",
                               "runNumber": 2, "runType": "azureml.StepRun", "tags": {}},
        }

    def env(self) -> dict[str, str]:
        """What AzureML sets in a v1 step's process (azureml-core ``Run._load_scope`` reads these)."""
        return {"AZUREML_RUN_ID": self.step_run_id, "AZUREML_ARM_SUBSCRIPTION": SUBSCRIPTION,
                "AZUREML_ARM_RESOURCEGROUP": RESOURCE_GROUP, "AZUREML_ARM_WORKSPACE_NAME": WORKSPACE,
                "AZUREML_ARM_PROJECT_NAME": EXPERIMENT, "AZUREML_WORKSPACE_ID": WORKSPACE_ID,
                "AZUREML_EXPERIMENT_ID": "exp-1", "AZUREML_RUN_TOKEN": run_token(),
                "AZUREML_SERVICE_ENDPOINT": self.service.url,
                "AZUREML_DISCOVERY_SERVICE_ENDPOINT": f"{self.service.url}/discovery"}

    def sent(self, method: str, contains: str) -> list[Recorded]:
        return [r for r in self.service.requests if r.method == method and contains in r.path]

    def reply(self, recorded: Recorded) -> Reply:
        path = recorded.path
        if path == "/discovery":
            from azureml._restclient.service_context import _ServiceKeys

            return 200, {}, dict.fromkeys(_ServiceKeys.get_discovery_keys(), self.service.url)
        if path == "/msi/token":  # App Service's managed-identity protocol, for a client outside the job
            return 200, {}, {"access_token": run_token(), "expires_on": str(int(time.time()) + 3600),
                             "resource": recorded.query["resource"][0], "token_type": "Bearer"}
        if path.startswith("/sas/"):  # a log's contentUri (a SAS URL in Azure): read without a token
            return 200, {"Content-Type": "text/plain"}, self.log.encode("utf-8")
        if not recorded.headers.get("authorization", "").startswith("Bearer "):
            return 401, {}, {"error": {"code": "Unauthorized", "message": "no run token"}}
        if path.endswith("/DataTypes"):
            return 200, {}, [{"Id": n, "Name": n, "Description": n, "IsDirectory": n == "AnyDirectory"}
                             for n in DATATYPES]
        if "/artifacts/prefix/contentinfo/ExperimentRun/" in path and path.endswith("/user_logs") and self.log:
            container = path.split("/ExperimentRun/")[1].split("/")[0]
            return 200, {}, {"value": [{"origin": "ExperimentRun", "container": container,
                                        "path": "user_logs/std_log.txt", "contentUri": f"{self.service.url}/sas/log"}],
                             "continuationToken": None}
        if "/artifact/v2.0/" in path:
            return 200, {}, {"value": [], "continuationToken": None}
        if "/datasets/query/name=" in path:
            name, version = path.split("/name=")[1], recorded.query.get("versionId", [None])[0]
            found = [v for v in self.datasets.get(name, []) if version in (None, v["latest"]["versionId"])]
            return (200, {}, found[-1]) if found else (404, {}, {"error": {"code": "NotFound", "message": name}})
        if recorded.method == "DELETE" and "/dataset/v1.0/" in path:
            return (200, {}, {}) if self.datasets.pop(path.rsplit("/", 1)[1], None) else \
                (404, {}, {"error": {"code": "NotFound", "message": path}})
        if "/metric/v2.0/" in path or path.endswith("/metricsingest/wait"):
            return 200, {}, {}
        if path.endswith("/datastores/workspaceblobstore"):
            return 200, {}, {"name": "workspaceblobstore", "dataStoreType": "AzureBlob", "azureStorageSection": {
                "accountName": "stmlsheetdrop", "containerName": "azureml-blobstore-1", "endpoint": "core.windows.net",
                "protocol": "https", "credentialType": "None"}}
        if path.endswith("/datasets") and recorded.method == "POST":
            return self._register(recorded.json())
        if "/dataversion/unregistered-" in path:  # the definition azureml-core reads back (_fetch_rslex_dataflow_yaml)
            saved = path.split("/dataversion/unregistered-")[1].split("/")[0]
            (dto,) = [v for vs in self.datasets.values() for v in vs if v["latest"]["savedDatasetId"] == saved]
            return 200, {}, {"legacyDataflow": json.loads(dto["latest"]["dataflow"])["meta"]["RsDataflow"]}
        for run_id, run in self.runs.items():
            if path.endswith(f"/runs/{run_id}/children"):
                return 200, {}, {"value": [r for r in self.runs.values() if r["parentRunId"] == run_id],
                                 "continuationToken": None}
            if path.endswith(f"/runs/{run_id}/details"):
                return 200, {}, {**run, "runDefinition": {"dataReferences": self.data_references}, "logFiles": {},
                                 "warnings": []}
            if path.endswith(f"/runs/{run_id}"):
                if recorded.method == "PATCH":
                    run["tags"].update(recorded.json().get("tags") or {})
                return 200, {}, run
        return 404, {}, {"error": {"code": "NotFound", "message": path}}

    def _register(self, dto: dict[str, Any]) -> Reply:
        versions = self.datasets.setdefault(dto["name"], [])
        dataset_id = versions[0]["datasetId"] if versions else str(uuid.uuid4())
        stored = {**dto, "datasetId": dataset_id, "latest": {
            **dto["latest"], "datasetId": dataset_id, "versionId": str(len(versions) + 1),
            "savedDatasetId": str(uuid.uuid4())}}
        versions.append(stored)
        return 200, {}, stored
