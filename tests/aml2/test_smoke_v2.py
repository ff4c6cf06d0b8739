"""`sheetdrop smoke` against a v2 deployment on loopback: azure-ai-ml's real MLClient publishes the extract pipeline to
the workspace stand-in (tests/aml2/workspace.py), the Function's own code (``handle_blob`` with the v2 backend, its
managed identity App Service's) invokes the batch endpoint for each smoke upload, and each job's step runs from the
registered command, reading Azurite over https with the compute's identity and registering data assets with the real
MLClient. The smoke test itself runs as the CLI does, in .venv, signed in through a stand-in `az`, its azd
environment from a stand-in `azd`; Log Analytics is tests/loganalytics_standin.py. What the stand-ins simulate is
cited in their docstrings; the workspace's storage is a container of the same Azurite account, to which each job's
output is copied as the mount would upload it.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError

from conftest import REPO
from loganalytics_standin import TOKEN as LOGS_TOKEN
from loganalytics_standin import WORKSPACE_ID, LogAnalytics
from loopback import serve
from sheetdrop_local.azurite import AZURITE_ACCOUNT, AZURITE_KEY
from smoke_output import items
from tests.aml2.blob_proxy import SUFFIX, BlobAccount, forwarding_proxy
from tests.aml2.conftest import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE
from tests.aml2.test_v2_job import publish_to, the_function
from tests.aml2.workspace import Workspace, jwt
from tests.tls import self_signed

PYTHON = REPO / ".venv" / "bin" / "python"  # the CLI's environment, where `sheetdrop smoke` runs
AZ = """#!{python}
import json, sys, time
resource = sys.argv[sys.argv.index("--resource") + 1]
tokens = {tokens!r}
if resource not in tokens:
    sys.exit("ERROR: no token for " + resource)
print(json.dumps({{"accessToken": tokens[resource], "expires_on": int(time.time()) + 3600, "tokenType": "Bearer"}}))
"""
AZD = """#!{python}
import sys
print(open({values!r}).read(), end="")
"""
V2_ITEMS = ["mount-layout", "output-path", "tags-kept", "job-name-kept", "jobs-list-inputs", "job-identity",
            "never-reused", "data-version-race", "per-run-overhead", "workbook-finds-run", "table-version"]


@dataclass
class Deployment:
    workspace: Workspace
    logs: LogAnalytics
    env: dict[str, str]
    args: list[str]

    def smoke(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(PYTHON), "-m", "sheetdrop_local.cli", "smoke", *self.args, *args], env=self.env,
                              cwd=REPO, capture_output=True, text=True, timeout=600)


def _function(deployment: Deployment, settings: Any, backend: Any, inputs: Any, blobstore: Any,
              stop: threading.Event) -> None:
    """Event Grid and the deployed Function: each new smoke upload is delivered to the Function's own code, and each
    job it starts runs at once, as the compute would run it, on a node of its own (a second node starting a second
    later, so that two registrations of one data asset are not sent at the same instant: what the service answers
    then is data-version-race, which only a real workspace settles)."""
    from sheetdrop.trigger import BlobVersion, claim_store, handle_blob

    def run(blob: Any, job: Any, delay: float) -> None:
        time.sleep(delay)
        deployment.workspace.run_job(job)
        folder = deployment.workspace.datastore_folder("workspaceblobstore")
        chosen = job.invocation["properties"]["outputData"]["extracted"]["uri"].split("/paths/", 1)[1]
        for path in sorted((folder / chosen).glob("*")):
            blobstore.upload_blob(path.relative_to(folder).as_posix(), path.read_bytes(), overwrite=True)
        deployment.logs.ingest_run(job.name, job.status, blob.name, blob.etag, inputs.container_name)

    done: set[tuple[str, str]] = set()
    next_start = 0.0
    while not stop.wait(0.1):
        # Both smoke folders: sheetdrop_smoke/ and the table-mode sheetdrop_smoke_table/ (its sheetdrop.json too).
        for listed in inputs.list_blobs(name_starts_with="sheetdrop_smoke"):
            try:
                blob = inputs.get_blob_client(listed.name).get_blob_properties()
            except ResourceNotFoundError:
                continue  # smoke deletes what it dropped: a listing can name a blob gone by the time it is read
            if (blob.name, blob.etag) in done:
                continue
            done.add((blob.name, blob.etag))
            outcome = handle_blob(BlobVersion(inputs.container_name, blob.name, blob.etag, blob.size),
                                  invocation_id=str(uuid.uuid4()), settings=settings, backend=backend,
                                  claims=claim_store(settings))
            if not outcome.run_id:
                continue  # the table folder's sheetdrop.json: checked and recorded, no job
            job = next(j for j in deployment.workspace.jobs if j.name == outcome.run_id)
            delay = max(0.0, next_start - time.monotonic())
            next_start = time.monotonic() + delay + 1.0
            threading.Thread(target=run, args=(blob, job, delay), daemon=True).start()


@pytest.fixture
def workspace_storage(workspace: Workspace, input_account: str, certificate: Any, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> Iterator[BlobAccount]:
    """The workspace storage's blob endpoint (``https://devstoreaccount1.blob.core.windows.net``, where the step's v2
    context writes a table's segments and manifests and azure-ai-ml reads its MLTable file) forwarded to the Azurite
    account whose container plays workspaceblobstore, for this process and its jobs (Workspace.storage_proxy)."""
    named = self_signed(tmp_path / "storage-tls", (f"*{SUFFIX}",))
    bundle = tmp_path / "trusted.pem"
    bundle.write_bytes(certificate.cert.read_bytes() + named.cert.read_bytes())
    with forwarding_proxy(input_account, named.cert, named.key, certificate.cert) as (proxy, account):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # the stand-ins on loopback: direct
        workspace.storage_proxy = {"HTTPS_PROXY": proxy, "NO_PROXY": "127.0.0.1,localhost"}
        yield account


@pytest.fixture
def deployment(workspace: Workspace, ml_client: Any, input_account: str, input_container: Any, certificate: Any,
               tmp_path: Path, workspace_storage: BlobAccount) -> Iterator[Deployment]:
    from azure.storage.blob import BlobServiceClient
    from mlflow.tracking import MlflowClient

    from pipeline.v2 import publish
    from sheetdrop.settings import load_settings

    published = publish_to(ml_client)
    # The experiment exists before two jobs start at once (the stand-in's store would race to create it).
    MlflowClient(tracking_uri=workspace.tracking_uri).create_experiment("sheetdrop-extract")
    publish.ensure_compute(ml_client, "sheetdrop-cpu", "STANDARD_DS3_V2", 2)
    account = BlobServiceClient(input_account, credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY})
    suffix = uuid.uuid4().hex[:8]
    claims = account.create_container(f"claims-{suffix}").container_name
    workspace.blobstore_container = account.create_container(f"azureml-blobstore-{suffix}").container_name
    _, backend = the_function(workspace, published, input_account)
    settings = load_settings({**{k: v for k, v in os.environ.items() if k.startswith(("IDENTITY_", "AZUREML_DEV"))},
                              "SHEETDROP_BACKEND": "azureml-v2", "INPUT_STORAGE__blobServiceUri": input_account,
                              "INPUT_CONTAINER": input_container.container_name, "CLAIMS_CONTAINER": claims,
                              "AZUREML_BATCH_ENDPOINT_URL": published.endpoint_url,
                              "AZUREML_ARM_URL": workspace.service.url, "AZUREML_SUBSCRIPTION_ID": SUBSCRIPTION,
                              "AZUREML_RESOURCE_GROUP": RESOURCE_GROUP, "AZUREML_WORKSPACE": WORKSPACE})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    with serve() as logs_service:
        values = {
            "AZURE_STORAGE_ACCOUNT_NAME": AZURITE_ACCOUNT, "AZURE_STORAGE_BLOB_ENDPOINT": input_account,
            "INPUT_CONTAINER": input_container.container_name, "CLAIMS_CONTAINER": claims,
            "SHEETDROP_AZUREML_API": "azureml-v2", "AZUREML_BATCH_ENDPOINT_URL": published.endpoint_url,
            "AZUREML_SUBSCRIPTION_ID": SUBSCRIPTION, "AZUREML_RESOURCE_GROUP": RESOURCE_GROUP,
            "AZUREML_WORKSPACE": WORKSPACE, "AZUREML_COMPUTE": "sheetdrop-cpu",
            # Not an azd output: where this test's ARM is (the Function's own AZUREML_ARM_URL setting).
            "AZUREML_ARM_URL": workspace.service.url, "AZUREML_STORAGE_BLOB_ENDPOINT": input_account,
            "LOG_ANALYTICS_WORKSPACE_ID": WORKSPACE_ID, "EVENTGRID_SYSTEM_TOPIC_NAME": "evgt-smoke"}
        (tmp_path / "azd.env").write_text("".join(f'{k}="{v}"\n' for k, v in values.items()))
        person = "22222222-3333-4444-5555-person000001"
        (bin_dir / "az").write_text(AZ.format(python=PYTHON, tokens={
            "https://storage.azure.com": jwt("https://storage.azure.com", person),
            "https://management.azure.com": jwt("https://management.azure.com", person),
            logs_service.url: LOGS_TOKEN}))
        (bin_dir / "azd").write_text(AZD.format(python=PYTHON, values=str(tmp_path / "azd.env")))
        for tool in ("az", "azd"):
            (bin_dir / tool).chmod(0o755)
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("AZURE_", "IDENTITY_", "MSI_", "INPUT_STORAGE", "SHEETDROP_", "AZUREML_",
                                      "MLFLOW_"))}
        env |= {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "REQUESTS_CA_BUNDLE": str(certificate.cert)}
        deployment = Deployment(workspace, LogAnalytics(logs_service), env,
                                ["--yes", "--poll", "0.2", "--timeout", "120", "--logs-timeout", "3",
                                 "--log-analytics-url", logs_service.url])
        blobstore = account.get_container_client(workspace.blobstore_container)
        stop = threading.Event()
        function = threading.Thread(target=_function, args=(deployment, settings, backend, input_container,
                                                             blobstore, stop), daemon=True)
        function.start()
        try:
            yield deployment
        finally:
            stop.set()
            function.join(60)


def test_the_happy_path_confirms_every_v2_item(deployment: Deployment, workspace_storage: BlobAccount) -> None:
    started = time.monotonic()
    done = deployment.smoke("--clean")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    found = items(out)
    assert list(found) == V2_ITEMS
    assert all(value.startswith("confirmed") for value in found.values()), out
    # The table folder's second version: an mltable asset whose referencedUris are its segments' globs, read back
    # from the container playing workspaceblobstore, where the steps committed it through the storage endpoint as
    # the compute's identity (a bearer token on every write).
    assert re.match(r"confirmed +sheetdrop_smoke_table_smoke:2 is table_version 2 over 2 segment globs \(tables/"
                    r"sheetdrop_smoke_table_smoke/segments/[^/]+/\*\.parquet, ", found["table-version"])
    assert "read back tables/sheetdrop_smoke_table_smoke/2/manifest.json: 2 segments, 2 files, 6 rows" in \
        found["table-version"]
    writes = [path for method, path, bearer in workspace_storage.seen if method == "PUT" and bearer]
    assert any(path.endswith("/tables/sheetdrop_smoke_table_smoke/2/manifest.json") for path in writes), writes
    assert "cleaned: data asset sheetdrop_smoke_table_smoke: archived" in out
    assert "uploads 3 generated workbooks (2 at once, then the first again) into " in out
    assert "5 batch jobs on cluster sheetdrop-cpu: 0 to 2 nodes of STANDARD_DS3_V2" in out
    assert "the two steps ran at the same time" in found["data-version-race"]
    print(f"v2 smoke in {time.monotonic() - started:.1f} s")


def test_a_service_that_drops_the_job_name_and_properties_leaves_those_items_unconfirmed(
        deployment: Deployment) -> None:
    """The jobs are found all the same, by their source_version input (the Function's look-up), and every item that
    does not depend on the dropped name, tags and properties is confirmed."""
    deployment.workspace.keeps_name = deployment.workspace.keeps_properties = False
    done = deployment.smoke()
    assert done.returncode == 1, done.stdout
    found = items(done.stdout)
    assert found["job-name-kept"].startswith("NOT confirmed  asked for sheetdrop-"), done.stdout
    assert ", the job is named job-" in found["job-name-kept"]
    assert found["tags-kept"].startswith("NOT confirmed  missing: the batch job's submission tags; its "
                                         "sheetdrop_source_key property; job tags {}; job properties {}")
    assert [k for k, v in found.items() if v.startswith("NOT")] == ["tags-kept", "job-name-kept"]
    assert "(by the Function's look-up)" in done.stdout
    assert done.stdout.strip().endswith("smoke: FAILED (2 not confirmed: tags-kept, job-name-kept)")
