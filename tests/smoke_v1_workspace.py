"""A v1 workspace on loopback for `sheetdrop smoke` (Function environment): the reliability tests' AzureML stand-in
(tests/azureml_standin.py: PipelineEndpoint submit, run-history query, a run by id, managed-identity tokens) plus
what the smoke reads after a run, and a way to run a submitted run's step.

What it adds, and where each shape comes from (tests/aml/test_smoke_routes.py drives azureml-core's own objects
against tests/aml/run_history.py with the same routes):

* run history: a run's children (``{"value": [RunDto]}``), a step run's details (``RunDetailsDto`` with
  ``runDefinition.dataReferences.extracted``), and its common-runtime log listed by the artifact service
  (``PaginatedArtifactContentInformationDto``; RunDto ``dataContainerId`` = ``dcid.<run id>``, AzureML's own form),
  whose ``contentUri`` (a SAS URL in Azure) it serves itself;
* datasets: a version by name (``DatasetDto``, its ``latest.dataflow`` as azureml-core registers it: a JSON whose
  ``meta.RsDataflow`` names ``datastores/<name>/paths/<path>``) and unregistering a name;
* datastores: ``workspaceblobstore`` (``DataStoreDto.azureStorageSection``) on the test's Azurite account;
* ARM: the cluster (an AmlCompute's ``properties.properties``), for the smoke's cost line.

Running a step (:meth:`run_step`) does what AzureML does for the published pipeline's PythonScriptStep: the step's
real entry script, from the snapshot, with the submission's parameters substituted into the arguments and its
output mounted in the common runtime's layout (sheetdrop_local.emulations.azureml), reading its blob by etag from
the input account. The step's v1 context needs azureml-core, which this environment does not have, so it runs
with the local runner's context, and this stand-in applies what the v1 context does in AzureML (tests/aml/
test_azureml_context.py shows it through azureml-core's real Run): the output uploaded where the run definition
says, one dataset version per registration, the pipeline run tagged with the blob version and ``datasets``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azureml_standin import TOKEN, AzureMLStandIn
from loopback import Recorded, Reply
from sheetdrop_contract import contract
from sheetdrop_local.emulations.azureml import step_mounts
from sheetdrop_step.contexts.local import LOCAL_RUN_ENV, LOCAL_STORAGE_ENV

ARM_TOKEN = "arm-standin-token"
OUTPUT_CONTAINER = "azureml-blobstore-smoke"
STORAGE_ACCOUNT = "devstoreaccount1"


def iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1e7):07d}Z"


@dataclass
class V1Workspace(AzureMLStandIn):
    #: Register what the step hands back (False: the run completes with no dataset).
    keeps_registrations: bool = True
    #: Register a table version (one over segment globs) the step hands back (False: only per-file versions).
    keeps_table_registrations: bool = True
    datasets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)

    def reply(self, recorded: Recorded) -> Reply:
        path = recorded.path
        if path.startswith("/sas/"):  # a log's contentUri: a SAS URL, read without a token
            return 200, {"Content-Type": "text/plain"}, self.logs[path.removeprefix("/sas/")].encode()
        if "/computes/" in path:
            if recorded.headers.get("authorization") != f"Bearer {ARM_TOKEN}":
                return 401, {}, {"error": {"code": "InvalidAuthenticationToken", "message": "ARM token expected"}}
            return 200, {}, {"name": "sheetdrop-cpu", "properties": {"computeType": "AmlCompute", "properties": {
                "vmSize": "STANDARD_DS3_V2", "scaleSettings": {"minNodeCount": 0, "maxNodeCount": 2,
                                                               "nodeIdleTimeBeforeScaleDown": "PT120S"}}}}
        if recorded.headers.get("authorization") == f"Bearer {TOKEN}":
            answer = self._smoke_reply(recorded)
            if answer is not None:
                return answer
        answer = super().reply(recorded)
        with self._lock:  # run history keeps when each run was created (RunDto.createdUtc)
            for run in self.runs:
                run.setdefault("createdUtc", iso(time.time()))
        return answer

    def _smoke_reply(self, recorded: Recorded) -> Reply | None:
        path = recorded.path
        with self._lock:
            for run in self.runs:
                if path.endswith(f"/runs/{run['runId']}/children"):
                    return 200, {}, {"value": [r for r in self.runs if r["parentRunId"] == run["runId"]],
                                     "continuationToken": None}
                if path.endswith(f"/runs/{run['runId']}/details"):
                    return 200, {}, {**run, **self.details.get(run["runId"], {}), "logFiles": {}}
            if "/artifacts/prefix/contentinfo/ExperimentRun/" in path:
                container = path.split("/ExperimentRun/")[1].split("/")[0]
                run_id = container.removeprefix("dcid.")
                if run_id not in self.logs:
                    return 200, {}, {"value": [], "continuationToken": None}
                return 200, {}, {"value": [{"origin": "ExperimentRun", "container": container,
                                            "path": "user_logs/std_log.txt",
                                            "contentUri": f"{self.service.url}/sas/{run_id}"}],
                                 "continuationToken": None}
            if "/datasets/query/name=" in path:
                name = path.split("/name=")[1]
                version = recorded.query.get("versionId", [""])[0]
                found = [v for v in self.datasets.get(name, []) if v["latest"]["versionId"] == version]
                return (200, {}, found[0]) if found else (404, {}, {"error": {"code": "NotFound", "message": name}})
            if recorded.method == "DELETE" and "/dataset/v1.0/" in path and "/datasets/" in path:
                return (200, {}, {}) if self.datasets.pop(path.rsplit("/", 1)[1], None) is not None else \
                    (404, {}, {"error": {"code": "NotFound", "message": path}})
            if path.endswith("/datastores/workspaceblobstore"):
                return 200, {}, {"name": "workspaceblobstore", "dataStoreType": "AzureBlob", "azureStorageSection": {
                    "accountName": STORAGE_ACCOUNT, "containerName": OUTPUT_CONTAINER, "endpoint": "core.windows.net",
                    "protocol": "https", "credentialType": "None"}}
        return None

    # -- running a submitted run, as AzureML would -------------------------------------------------------------

    def run_step(self, run_id: str, step_dir: Path, root: Path, storage: str, output: Any) -> dict[str, Any]:
        """Run the pipeline run's step and apply what the v1 context does in AzureML; ``output`` is the container
        that plays workspaceblobstore."""
        with self._lock:
            run = next(r for r in self.runs if r["runId"] == run_id)
            run.update(status="Running", startTimeUtc=iso(time.time()))
        step_run_id = f"{run_id}-extract"
        mounts = step_mounts("common-runtime", root, step_run_id, "workspaceblobstore")
        relative = contract.output_relative_path(step_run_id)
        outbox = root / "outbox.json"
        run_file = root / "run.json"
        definition = {contract.OUTPUT_NAME: {"dataStoreName": "workspaceblobstore", "mode": "Mount",
                                             "pathOnDataStore": relative, "pathOnCompute": None, "overwrite": False}}
        # A table-mode folder's step commits its manifests and segments straight to workspaceblobstore, as the
        # cluster's identity in AzureML: here the local context's container for that datastore, the one the smoke
        # reads back.
        run_file.write_text(json.dumps({"run_id": run_id, "step_run_id": step_run_id, "outbox": str(outbox),
                                        "runDefinition": {"dataReferences": definition}, "previousVersions": {},
                                        "containers": {"workspaceblobstore": output.container_name}}))
        parameters = run["parameters"]
        argv = [str(a) for a in contract.step_arguments(
            parameters[contract.INPUT_ACCOUNT_PARAMETER], str(mounts.output_dir),
            contract.encode_argument("workspaceblobstore"), parameters[contract.DATASET_NAME_PARAMETER],
            parameters[contract.SOURCE_PARAMETER], parameters[contract.READ_OPTIONS_PARAMETER])]
        started = time.time()
        self._start_step(run)  # the step tags its pipeline run with the blob version first (tests/aml)
        done = subprocess.run([sys.executable, str(step_dir / contract.SCRIPT_NAME), *argv], cwd=step_dir,
                              env={**mounts.env, LOCAL_RUN_ENV: str(run_file), LOCAL_STORAGE_ENV: storage,
                                   "PATH": os.environ["PATH"], "REQUESTS_CA_BUNDLE": os.environ["REQUESTS_CA_BUNDLE"]},
                              capture_output=True, text=True, timeout=300, check=False)
        ended = time.time()
        result = json.loads(outbox.read_text()) if outbox.exists() else {}
        for path in sorted(mounts.output_dir.iterdir()) if mounts.output_dir.is_dir() else []:
            output.upload_blob(f"{relative}/{path.name}", path.read_bytes(), overwrite=True)
        refs = [self._register(item) for item in result.get("registrations", []) if self.keeps_registrations and
                (self.keeps_table_registrations or not item.get("files"))]
        with self._lock:
            self.logs[step_run_id] = done.stdout + done.stderr
            self.details[step_run_id] = {"runDefinition": {"dataReferences": definition}}
            status = "Completed" if done.returncode == 0 else "Failed"
            self.runs.append({"runId": step_run_id, "parentRunId": run_id, "status": status, "tags": {},
                              "parameters": {}, "dataContainerId": f"dcid.{step_run_id}",
                              "startTimeUtc": iso(started), "endTimeUtc": iso(ended)})
            if refs:
                run["tags"]["datasets"] = ", ".join(refs)
            run.update(status=status, endTimeUtc=iso(time.time() + 0.5))
        return run

    def _register(self, registration: dict[str, Any]) -> str:
        versions = self.datasets.setdefault(registration["name"], [])
        # One `- pattern:` entry per path, as azureml-core's from_parquet_files writes them (tests/aml/
        # test_table_v1.py): a table version's segment globs, else the one file.
        paths = registration.get("files") or [registration["relative_path"]]
        entries = "".join(f"- pattern: azureml://subscriptions/s/resourcegroups/r/workspaces/w/datastores/"
                          f"{registration['datastore']}/paths/{path}\n" for path in paths)
        dataflow = json.dumps({"blocks": [], "meta": {"RsDataflow": f"paths:\n{entries}"
                                                                    "transformations:\n- read_parquet\n"}})
        version = str(len(versions) + 1)
        versions.append({"name": registration["name"], "tags": registration["tags"], "datasetType": "tabular",
                         "latest": {"versionId": version, "dataflow": dataflow, "createdTime": iso(time.time())}})
        return f"{registration['name']}:{version}"
