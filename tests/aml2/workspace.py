"""An AzureML workspace on a TLS loopback, stateful enough for azure-ai-ml's real ``MLClient`` to publish the
extract pipeline to it, for the Function's v2 backend to invoke it, and for the step to run as its job.

What it answers, and where each answer's shape comes from:

* ARM resources (components, environments, code, batch endpoints and deployments, computes, data assets):
  a PUT is kept as the resource and a GET answers it, in the REST models' wire form that azure-ai-ml's
  deserializers read (each test reads them back through the SDK). Data versions auto-increment from the
  container's ``nextVersion`` (``operations/_data_operations.py``: ``_auto_increment_version``).
* Managed-identity tokens: App Service's protocol for the Function (IDENTITY_ENDPOINT/IDENTITY_HEADER) and
  AzureML compute's for the step (MSI_ENDPOINT/MSI_SECRET, api-version 2017-09-01, ``clientid``; azure-identity
  ``_credentials/azure_ml.py``). Tokens are JWTs naming their audience and identity, which Azurite's OAuth
  check accepts (it checks issuer, audience and lifetime, not signatures: Azurite README, "OAuth").
* The batch endpoint's scoring URI: an invocation becomes a pipeline job (ARM JobBase wire form) and, when the
  test runs it (:meth:`run_job`), its one step runs as AzureML runs a command job: the command is taken from
  the **registered** step component's REST form, its ``${{inputs.…}}`` replaced by the invocation's literal
  values as raw text and ``${{outputs.…}}`` by the output's mount folder (learn: reference-yaml-core-syntax,
  "References to literal inputs will get resolved to the literal value at runtime"), and run with
  ``/bin/bash -c`` (azure-ai-ml ``_local_job_invoker.py`` runs the service-made invocation script that way;
  Azure/azureml-examples#3044 shows ``/bin/bash`` in a job's log). What the step writes to the mount reaches
  the datastore path the invocation chose (learn: how-to-access-data-batch-endpoints-jobs, "You can specify
  another path"). **Only a real workspace confirms** the escaping the service applies, and that a
  pipeline-level output path reaches its node: docs/azureml-v2.md.
* Child jobs: ARM answers a pipeline child job without ``properties`` and azure-ai-ml reads it from run history
  (``operations/_job_operations.py``, "Child jobs are no longer available through MFE").
* Run history (the pipeline job, its step job, their times, tags and logs) and the workspace's datastore:
  tests/aml2/history.py.
* Service behaviour a test can switch: dropping the requested job name and the invocation's properties
  (``keeps_name``/``keeps_properties``), losing the answer to an invocation (``lose_answers``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopback import LoopbackService, Recorded, Reply
from tests.aml2 import history
from tests.aml2.conftest import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE

WORKSPACE_PATH = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
                  f"Microsoft.MachineLearningServices/workspaces/{WORKSPACE}")
SCORING = "/endpoint/jobs"
APP_SERVICE_HEADER = "app-service-identity-header"
AML_MSI_SECRET = "aml-compute-msi-secret"
#: The compute's identity, as AzureML names it to the job (DEFAULT_IDENTITY_CLIENT_ID).
COMPUTE_CLIENT_ID = "11111111-2222-3333-4444-compute00001"
FUNCTION_IDENTITY = "function-identity"
#: The code asset the tests register the step's snapshot as (publishing with a local folder would upload it to the
#: workspace's storage account, whose host cannot be pointed at loopback; tests/aml2/test_step_snapshot.py walks
#: what that upload would send).
CODE_ID = f"{WORKSPACE_PATH}/codes/sheetdrop-step/versions/1"
STEP_PYTHON = Path(sys.executable)


def jwt(audience: str, identity: str) -> str:
    """An unsigned JWT as Microsoft Entra shapes one (Azurite reads iss, aud, iat, nbf, exp)."""
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000001/", "aud": audience,
              "oid": identity, "iat": now - 60, "nbf": now - 60, "exp": now + 3600}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.signature"


def claims(authorization: str) -> dict[str, Any]:
    payload = authorization.removeprefix("Bearer ").split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@dataclass
class Job:
    """A pipeline job the endpoint made, and its one step."""

    name: str
    invocation: dict[str, Any]
    step_name: str
    status: str = "NotStarted"
    log: str = ""
    returncode: int | None = None
    #: A batch job's outcome rows, as the parallel step appended them.
    outcomes: list[str] = field(default_factory=list)
    #: The deployment the invocation named (azureml-model-deployment), None for the endpoint's default.
    deployment: str | None = None
    #: When the service created the job, and when its step started and ended (run history's times).
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None


@dataclass
class Workspace:
    service: LoopbackService
    root: Path
    #: The step's snapshot, the folder the code asset CODE_ID stands for.
    code: Path
    #: MLflow's tracking store in the step's environment (AzureML points MLflow at the workspace).
    tracking_uri: str = ""
    #: The container that plays workspaceblobstore in the storage account the test names (its datastore answer).
    blobstore_container: str = "azureml-blobstore-test"
    keeps_name: bool = True
    keeps_properties: bool = True
    lose_answers: int = 0
    #: HTTPS_PROXY and NO_PROXY for every job, set by a test that answers the workspace storage through a proxy
    #: (only then: a proxy of the machine's own must not reach the jobs).
    storage_proxy: dict[str, str] = field(default_factory=dict)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: list[Job] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.service.default = self.reply
        self.tracking_uri = self.tracking_uri or (self.root / "mlruns").as_uri()
        self.resources[CODE_ID] = {
            "id": CODE_ID, "name": "1",
            "properties": {"codeUri": "https://stml.blob.core.windows.net/code/sheetdrop-step", "isAnonymous": False}}

    # -- what was sent ----------------------------------------------------------------------------------

    def sent(self, method: str, contains: str) -> list[Recorded]:
        return [r for r in self.service.requests if r.method == method and contains in r.path]

    def versions(self, kind: str) -> dict[str, dict[str, Any]]:
        """The versions of one kind of asset as PUT (``components``, ``data``, …), by ``name/version``."""
        found = (re.fullmatch(rf".*/{kind}/([^/]+)/versions/([^/]+)", path) for path in self.resources)
        return {f"{m[1]}/{m[2]}": self.resources[m[0]] for m in found if m}

    def datastore_folder(self, datastore: str) -> Path:
        return self.root / "datastores" / datastore

    # -- answers ---------------------------------------------------------------------------------------

    def reply(self, recorded: Recorded) -> Reply:
        if recorded.path == "/msi/token":  # App Service (the Function)
            if recorded.headers.get("x-identity-header") != APP_SERVICE_HEADER:
                return 401, {}, {"error": "bad identity header"}
            return self._token(recorded.query["resource"][0], FUNCTION_IDENTITY)
        if recorded.path == "/aml/msi":  # AzureML compute (the step)
            if recorded.headers.get("secret") != AML_MSI_SECRET or recorded.query.get("api-version") != ["2017-09-01"]:
                return 401, {}, {"error": "bad secret"}
            return self._token(recorded.query["resource"][0], recorded.query.get("clientid", ["system"])[0])
        if recorded.path == "/discovery":
            url = self.service.url
            return 200, {}, {"api": url, "catalog": url, "experimentation": url, "history": url, "pipelines": url}
        if recorded.path == SCORING and recorded.method == "POST":
            return self._invoke(recorded)
        if recorded.path.startswith("/history/"):
            return self._run(recorded)
        if recorded.path.startswith(history.LOGS):
            return history.log(self, recorded)
        if not recorded.headers.get("authorization", "").startswith("Bearer "):
            return 401, {}, {"error": {"code": "Unauthorized", "message": "no token"}}
        if recorded.path == WORKSPACE_PATH:
            return 200, {}, {"id": WORKSPACE_PATH, "name": WORKSPACE, "location": "westeurope", "properties": {
                "discoveryUrl": f"{self.service.url}/discovery", "workspaceId": "55555555-6666-7777-8888-999999999999",
                "mlFlowTrackingUri": self.tracking_uri}}
        if recorded.method == "PUT":
            return self._put(recorded)
        if recorded.method == "GET":
            return self._get(recorded)
        return 404, {}, {"error": {"code": "NotFound", "message": recorded.path}}

    @staticmethod
    def _token(resource: str, identity: str) -> Reply:
        return 200, {}, {"access_token": jwt(resource.rstrip("/"), identity), "resource": resource,
                         "expires_on": str(int(time.time()) + 3600), "token_type": "Bearer"}

    def _put(self, recorded: Recorded) -> Reply:
        body = recorded.json()
        path = recorded.path
        with self._lock:
            resource = {**body, "id": path, "name": path.rsplit("/", 1)[1],
                        "systemData": {"createdAt": history.iso(time.time())}}
            properties = resource.setdefault("properties", {})
            if "/batchEndpoints/" in path and "/deployments/" not in path:
                endpoint = path.rsplit("/", 1)[1]
                properties["scoringUri"] = f"{self.service.url}{SCORING}"
                properties.setdefault("defaults", None)
                resource["name"] = endpoint
            properties["provisioningState"] = "Succeeded"
            self.resources[path] = resource
            if "/data/" in path and "/versions/" in path:
                container, version = path.split("/versions/")
                self.resources[container] = {"id": container, "name": container.rsplit("/", 1)[1], "properties": {
                    "dataType": properties.get("dataType"), "latestVersion": version,
                    "nextVersion": str(int(version) + 1)}}
        return 200, {}, resource

    def _get(self, recorded: Recorded) -> Reply:
        path = recorded.path
        with self._lock:
            if path in self.resources:
                return 200, {}, self.resources[path]
            job = next((j for j in self.jobs if path.endswith(f"/jobs/{j.step_name}")), None)
            if job is not None:
                # A pipeline child job: ARM answers it without properties (azure-ai-ml's _is_pipeline_child_job).
                return 200, {}, {"id": path, "name": job.step_name, "properties": None}
            if path.endswith("/jobs"):
                return 200, {}, {"value": [self._job_resource(j) for j in reversed(self.jobs)]}
            match = re.fullmatch(r".*/jobs/([^/]+)", path)
            if match:
                found = [j for j in self.jobs if j.name == match[1]]
                if found:
                    return 200, {}, self._job_resource(found[0])
            if re.fullmatch(r".*/datastores/[^/]+", path):
                return history.datastore(self, path)
            if path.endswith("/data"):
                return 200, {}, {"value": [r for p, r in self.resources.items()
                                           if re.fullmatch(r".*/data/[^/]+", p)]}
            if re.fullmatch(r".*/data/[^/]+/versions", path):
                container = path.removesuffix("/versions")
                versions = [r for p, r in self.resources.items() if p.startswith(f"{container}/versions/")]
                return 200, {}, {"value": sorted(versions, key=lambda r: -int(r["name"]))}
        return 404, {}, {"error": {"code": "NotFound", "message": f"{path} not found"}}

    def _job_resource(self, job: Job) -> dict[str, Any]:
        """A pipeline job as ARM lists it (JobBase, jobType Pipeline): the invocation's inputs and outputs, and its
        tags and properties only if the service keeps them."""
        invocation = job.invocation["properties"]
        inputs = {name: {"jobInputType": "literal", "value": value["value"]}
                  for name, value in (invocation.get("inputData") or {}).items()}
        outputs = {name: {"jobOutputType": "uri_folder", "uri": value["uri"], "mode": "ReadWriteMount"}
                   for name, value in (invocation.get("outputData") or {}).items()}
        extra = dict(invocation.get("properties") or {}) if self.keeps_properties else {}
        experiment = extra.pop("experimentName", None) or (invocation.get("properties") or {}).get("experimentName")
        return {"id": f"{WORKSPACE_PATH}/jobs/{job.name}", "name": job.name, "type":
                "Microsoft.MachineLearningServices/workspaces/jobs", "properties": {
                    "jobType": "Pipeline", "experimentName": experiment, "status": job.status, "inputs": inputs,
                    "outputs": outputs, "jobs": {}, "settings": {}, "properties": extra,
                    "tags": dict(invocation.get("tags") or {}) if self.keeps_properties else {}}}

    def _run(self, recorded: Recorded) -> Reply:
        return history.answer(self, recorded)

    def _invoke(self, recorded: Recorded) -> Reply:
        if recorded.headers.get("authorization", "").count(".") != 2:
            return 401, {}, {"error": {"code": "Unauthorized", "message": "no token"}}
        body = recorded.json()
        with self._lock:
            asked = body["properties"].get("name")
            name = asked if asked and self.keeps_name else f"job-{uuid.uuid4().hex[:12]}"
            self.jobs.append(Job(name, body, step_name=f"{name}-extract-{uuid.uuid4().hex[:6]}",
                                 deployment=recorded.headers.get("azureml-model-deployment")))
            if self.lose_answers:
                self.lose_answers -= 1
                return "drop"
        return 200, {}, {"id": f"{WORKSPACE_PATH}/jobs/{name}", "name": name, "properties": {"status": "NotStarted"}}

    # -- running a job ---------------------------------------------------------------------------------

    def component(self, component_id: str) -> dict[str, Any]:
        return self.resources[component_id.removeprefix("azureml:")]

    def pipeline_of(self, job: Job) -> dict[str, Any]:
        """The registered pipeline component the job runs: its deployment's (the one its invocation named, else the
        endpoint's default)."""
        (endpoint,) = [r for p, r in self.resources.items() if re.fullmatch(r".*/batchEndpoints/[^/]+", p)]
        name = job.deployment or endpoint["properties"]["defaults"]["deploymentName"]
        deployment = self.resources[f"{endpoint['id']}/deployments/{name}"]["properties"]
        return self.component(deployment["deploymentConfiguration"]["componentId"]["assetId"])["properties"]

    def node_values(self, job: Job, node_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """A node of the job's pipeline, and its literal inputs as the invocation (or the defaults) set them."""
        pipeline = self.pipeline_of(job)
        node = pipeline["componentSpec"]["jobs"][node_name]
        parent = {name: value["value"] for name, value in job.invocation["properties"]["inputData"].items()}
        defaults = {name: spec.get("default") for name, spec in pipeline["componentSpec"]["inputs"].items()}
        values = {}
        for name, binding in (node.get("inputs") or {}).items():
            reference = re.fullmatch(r"\$\{\{parent\.inputs\.(\w+)\}\}", str(binding.get("value")))
            if reference:
                values[name] = parent.get(reference[1], defaults.get(reference[1]))
        return node, values

    @staticmethod
    def substitute(text: str, values: dict[str, Any], outputs: dict[str, Path]) -> str:
        """``${{inputs.…}}`` replaced by the literal values as raw text, ``${{outputs.…}}`` by the output mounts."""
        for name, value in values.items():
            text = text.replace(f"${{{{inputs.{name}}}}}", str(value))
        for name, mount in outputs.items():
            text = text.replace(f"${{{{outputs.{name}}}}}", str(mount))
        return text

    def step_command(self, job: Job, mount: Path) -> str:
        """The step's command as the service makes it from the registered components and the invocation."""
        node, values = self.node_values(job, "extract")
        step = self.component(node["componentId"])["properties"]["componentSpec"]
        return self.substitute(step["command"], values, {"extracted": mount})

    def _mlflow_run(self, mlflow: Any, experiment: str, name: str, tags: dict[str, str]) -> str:
        """An MLflow run whose id is the job's name, as in AzureML, where a job's MLflow run is the job itself
        (its step's ``mlflow.parentRunId`` is the pipeline job: docs/azureml-v2.md, "Tags and metrics"). The file
        store picks ids itself, so the run is renamed in the store's layout."""
        made = mlflow.create_run(experiment, tags=tags).info.run_id
        folder = Path(mlflow.get_run(made).info.artifact_uri.removeprefix("file://")).parent
        meta = (folder / "meta.yaml").read_text().replace(made, name)
        folder = folder.rename(folder.with_name(name))
        (folder / "meta.yaml").write_text(meta)
        return name

    def job_env(self, job: Job, step_run: str) -> dict[str, str]:
        """What AzureML sets in every job (docs/azureml-v2.md, "The step"), for this workspace on loopback."""
        return {
            "PATH": f"{STEP_PYTHON.parent}:/usr/bin:/bin", "HOME": str(self.root), "LANG": "C.UTF-8",
            "AZUREML_RUN_ID": job.step_name, "AZUREML_ARM_SUBSCRIPTION": SUBSCRIPTION,
            "AZUREML_ARM_RESOURCEGROUP": RESOURCE_GROUP, "AZUREML_ARM_WORKSPACE_NAME": WORKSPACE,
            "MLFLOW_TRACKING_URI": self.tracking_uri, "MLFLOW_RUN_ID": step_run, "MLFLOW_ALLOW_FILE_STORE": "true",
            "MSI_ENDPOINT": f"{self.service.url}/aml/msi", "MSI_SECRET": AML_MSI_SECRET,
            "DEFAULT_IDENTITY_CLIENT_ID": COMPUTE_CLIENT_ID,
            # This workspace on loopback: azure-ai-ml's own endpoint override, and its certificate.
            "AZUREML_DEV_URL_MFE": self.service.url, "REQUESTS_CA_BUNDLE": os.environ["REQUESTS_CA_BUNDLE"],
            "AZUREML_SDKV2_TELEMETRY_OPTOUT": "1",
            # The workspace storage's blob endpoint, when a test answers it through a proxy (tests/aml2/
            # blob_proxy.py): the step writes a table's segments and manifests there as the compute's identity.
            **self.storage_proxy,
        }

    def run_batch_job(self, job: Job) -> Job:
        """A batch job (pipeline/v2/batch_pipeline.yml) as the service runs it, from what was registered: the split
        node's command through bash, then the parallel node as its agent runs a ``run_function`` task — the entry
        script imported in a worker process with the task's program arguments on its command line, ``init()`` once,
        ``run(mini_batch)`` per mini-batch of ``mini_batch_size`` files of its ``input_data`` folder, every row it
        returns appended to the ``append_row_to`` output (learn: how-to-use-parallel-job-in-pipeline; azure-ai-ml
        ``entities/_job/parallel/run_function.py``). One worker here; on AzureML, ``instance_count`` nodes times
        ``max_concurrency_per_instance`` processes share the mini-batches. **Only a real workspace confirms** that a
        batch deployment runs a parallel node at all (docs/azureml-v2.md)."""
        from mlflow.tracking import MlflowClient

        job.status, job.started = "Running", time.time()
        work = self.root / "cr" / "j" / job.step_name / "cap" / "data-capability" / "wd"
        groups, mount, outcomes = work / "groups", work / "extracted", work / "outcomes"
        split_node, split_values = self.node_values(job, "split")
        split = self.component(split_node["componentId"])["properties"]["componentSpec"]
        logs = []
        done = subprocess.run(["/bin/bash", "-c", self.substitute(split["command"], split_values, {"groups": groups})],
                              cwd=self.code, env=self.job_env(job, job.step_name), capture_output=True, text=True,
                              timeout=120, check=False)
        logs.append(f"split: {done.stdout}{done.stderr}")
        node, values = self.node_values(job, "extract")
        parallel = self.component(node["componentId"])["properties"]["componentSpec"]
        task = parallel["task"]
        arguments = self.substitute(task["program_arguments"], values, {"extracted": mount})
        size = int(parallel["mini_batch_size"])
        files = sorted(str(p) for p in groups.iterdir()) if done.returncode == 0 else []
        mini_batches = [files[i:i + size] for i in range(0, len(files), size)]
        mlflow = MlflowClient(tracking_uri=self.tracking_uri)
        experiment = (mlflow.get_experiment_by_name("sheetdrop-extract") or
                      mlflow.get_experiment(mlflow.create_experiment("sheetdrop-extract"))).experiment_id
        parent = self._mlflow_run(mlflow, experiment, job.name, {})
        step_run = self._mlflow_run(mlflow, experiment, job.step_name, {"mlflow.parentRunId": parent})
        worker = ("import json, runpy, sys\n"
                  "script, batches, rows = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]\n"
                  "sys.argv = [script, *sys.argv[4:]]\n"
                  "entry = runpy.run_path(script)\n"
                  "entry['init']()\n"
                  "with open(rows, 'a', encoding='utf-8') as out:\n"
                  "    for batch in batches:\n"
                  "        for row in entry['run'](batch):\n"
                  "            out.write(row + '\\n')\n")
        outcomes.parent.mkdir(parents=True, exist_ok=True)
        ran = subprocess.run(["/bin/bash", "-c", f"{STEP_PYTHON} -c \"$WORKER\" {task['entry_script']} "
                              f"'{json.dumps(mini_batches)}' {outcomes} {arguments}"],
                             cwd=self.code, env={**self.job_env(job, step_run), "WORKER": worker},
                             capture_output=True, text=True, timeout=300, check=False)
        logs.append(f"extract: {ran.stdout}{ran.stderr}")
        job.log, job.returncode = "\n".join(logs), done.returncode or ran.returncode
        job.status, job.ended = "Completed" if job.returncode == 0 else "Failed", time.time()
        job.outcomes = outcomes.read_text(encoding="utf-8").splitlines() if outcomes.exists() else []
        self._deliver(job, mount)
        return job

    def _deliver(self, job: Job, mount: Path) -> None:
        """What the step wrote to its output mount reaches the place the invocation chose."""
        uri = job.invocation["properties"]["outputData"]["extracted"]["uri"]
        match = re.fullmatch(r"azureml://datastores/([^/]+)/paths/(.+)", uri)
        assert match, uri
        if mount.is_dir():
            target = self.datastore_folder(match[1]) / match[2]
            shutil.copytree(mount, target, dirs_exist_ok=True)

    def run_job(self, job: Job) -> Job:
        """Run the job's step now, as the compute would, then put its output where the invocation said."""
        from mlflow.tracking import MlflowClient

        work = self.root / "cr" / "j" / job.step_name
        mount = work / "cap" / "data-capability" / "wd" / "extracted"
        command = self.step_command(job, mount)
        mlflow = MlflowClient(tracking_uri=self.tracking_uri)
        experiment = (mlflow.get_experiment_by_name("sheetdrop-extract") or
                      mlflow.get_experiment(mlflow.create_experiment("sheetdrop-extract"))).experiment_id
        parent = self._mlflow_run(mlflow, experiment, job.name, {})
        step_run = self._mlflow_run(mlflow, experiment, job.step_name, {"mlflow.parentRunId": parent})
        env = self.job_env(job, step_run)
        job.status, job.started = "Running", time.time()
        done = subprocess.run(["/bin/bash", "-c", command], cwd=self.code, env=env, capture_output=True, text=True,
                              timeout=300, check=False)
        job.log, job.returncode = f"$ {command}\n{done.stdout}{done.stderr}", done.returncode
        job.status, job.ended = "Completed" if done.returncode == 0 else "Failed", time.time()
        self._deliver(job, mount)
        return job
