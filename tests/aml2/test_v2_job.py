"""A v2 job end to end through the vendors' code: azure-ai-ml's real MLClient publishes the extract pipeline to
the workspace stand-in (tests/aml2/workspace.py), the Function's own v2 backend invokes the batch endpoint, and
the job's step runs from what was *registered* — the step component's REST form, its command substituted and run
by bash — reading its blob version from Azurite (https, OAuth) with the compute's managed identity and
registering data assets with the real MLClient. Assertions are on what was sent and registered."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from conftest import SAMPLE
from pipeline.v2 import publish
from sheetdrop.settings import load_settings
from sheetdrop.submit import azureml_v2
from sheetdrop.submit.retry import Retrier, RetryPolicy
from sheetdrop.trigger import BlobVersion, build_request
from sheetdrop_contract import contract
from tests.aml2.conftest import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE
from tests.aml2.workspace import CODE_ID, COMPUTE_CLIENT_ID, SCORING, WORKSPACE_PATH, Job, Workspace, claims

Q4 = SAMPLE.parent / "sales-2026-q4.xlsx"
ENDPOINT_NAME = "sheetdrop-abcdefghijklm"


def publish_to(ml_client: Any, step_settings: dict[str, str] | None = None) -> publish.Published:
    settings = step_settings or {}
    parts = publish.definitions(version=publish.source_hash(settings), endpoint_name=ENDPOINT_NAME,
                                compute="sheetdrop-cpu", output_datastore="workspaceblobstore", step_settings=settings,
                                code=CODE_ID)
    return publish.publish(ml_client, *parts)


def the_function(workspace: Workspace, published: publish.Published, input_account: str) -> Any:
    """The Function's v2 backend as its app settings make it, with its managed identity (App Service's)."""
    settings = load_settings({
        "SHEETDROP_BACKEND": "azureml-v2", "INPUT_STORAGE__blobServiceUri": input_account,
        "AZUREML_BATCH_ENDPOINT_URL": published.endpoint_url, "AZUREML_ARM_URL": workspace.service.url,
        "AZUREML_SUBSCRIPTION_ID": SUBSCRIPTION, "AZUREML_RESOURCE_GROUP": RESOURCE_GROUP,
        "AZUREML_WORKSPACE": WORKSPACE})
    backend = azureml_v2.create(settings)
    backend.service.retrier = Retrier(RetryPolicy(deadline_seconds=60, base_delay=0.1, max_delay=0.2))
    return settings, backend


def submit(settings: Any, backend: Any, container: Any, name: str, etag: str, read_options: str = "{}") -> Any:
    """What the trigger sends for this blob version (its own build_request)."""
    request = build_request(BlobVersion(container.container_name, name, etag, None), settings, "inv-1",
                            dataset="sales", read_options=read_options)
    return backend.submit(request)


def step_spec(workspace: Workspace) -> dict[str, Any]:
    (spec,) = [body["properties"]["componentSpec"] for key, body in workspace.versions("components").items()
               if key.startswith("azureml_anonymous/")]
    return spec


def test_a_v2_invocation_runs_the_registered_step_and_registers_where_the_invocation_chose(
        workspace: Workspace, ml_client: Any, input_account: str, input_container: Any) -> None:
    published = publish_to(ml_client, {"SHEETDROP_MAX_CELLS": "5000000"})

    # The registered REST form: never reused, the settings on the command line, nothing in environment_variables.
    spec = step_spec(workspace)
    assert spec["is_deterministic"] is False
    assert not spec.get("environment_variables")
    assert spec["command"].endswith("--setting SHEETDROP_JOB_API=v2 --setting SHEETDROP_MAX_CELLS=5000000")
    (deployment,) = [r for p, r in workspace.resources.items() if p.endswith(f"{ENDPOINT_NAME}/deployments/extract")]
    assert deployment["properties"]["deploymentConfiguration"]["settings"]["force_rerun"] == "True"

    name = "sales/2026 Q3 (final).xlsx"
    etag = input_container.get_blob_client(name).upload_blob(SAMPLE.read_bytes())["etag"]
    settings, backend = the_function(workspace, published, input_account)
    result = submit(settings, backend, input_container, name, etag)

    (job,) = workspace.jobs
    invocation = job.invocation["properties"]
    chosen = f"azureml/{result.run_id}/extracted"
    assert invocation["outputData"] == {"extracted": {
        "jobOutputType": "UriFolder", "uri": f"azureml://datastores/workspaceblobstore/paths/{chosen}/"}}
    literals = {key: contract.decode_argument(value["value"]) for key, value in invocation["inputData"].items()}
    assert literals["output_path"] == chosen and literals["output_datastore"] == "workspaceblobstore"
    assert literals["input_account"] == input_account
    posted = len(workspace.service.requests)

    workspace.run_job(job)

    assert job.returncode == 0, job.log
    assert '"SHEETDROP_MAX_CELLS": 5000000' in job.log  # the settings line: the setting reached the step
    registered = workspace.versions("data")
    assert set(registered) == {"sales_orders/1", "sales_products/1", "sales_targets/1"}
    for key, body in registered.items():
        sheet = key.split("/")[0].removeprefix("sales_")
        assert body["properties"]["dataUri"] == f"azureml://datastores/workspaceblobstore/paths/{chosen}/{sheet}.parquet"
        assert {k: body["properties"]["tags"][k] for k in contract.SOURCE_TAGS} == contract.source_tags(
            input_container.container_name, name, etag)
        assert body["properties"]["tags"]["run_id"] == result.run_id
    written = workspace.datastore_folder("workspaceblobstore") / chosen
    assert pq.read_metadata(written / "orders.parquet").num_rows == 240
    # As the compute's identity (AzureML's managed-identity endpoint, DEFAULT_IDENTITY_CLIENT_ID): the input read
    # and the registrations.
    step_calls = workspace.service.requests[posted:]
    asked = {(r.query["resource"][0], r.query.get("clientid", [""])[0]) for r in step_calls if r.path == "/aml/msi"}
    assert asked == {("https://storage.azure.com", COMPUTE_CLIENT_ID), ("https://management.azure.com",
                                                                      COMPUTE_CLIENT_ID)}
    puts = [r for r in step_calls if r.method == "PUT"]
    assert puts and all(claims(r.headers["authorization"])["oid"] == COMPUTE_CLIENT_ID for r in puts)
    # MLflow: the pipeline job tagged with the blob version and what it made.
    from mlflow.tracking import MlflowClient

    parent = MlflowClient(workspace.tracking_uri).get_run(job.name).data.tags
    assert parent["source_blob"] == name
    assert parent["datasets"] == "sales_orders:1, sales_products:1, sales_targets:1"

    # The step never asked the service where it writes: no request for its job. Had it asked, azure-ai-ml's own
    # answer for a pipeline child job is a _BaseJob from run history, with no outputs at all.
    assert not [r for r in step_calls if f"/jobs/{job.step_name}" in r.path]
    child = ml_client.jobs.get(job.step_name)
    assert type(child).__name__ == "_BaseJob" and not hasattr(child, "outputs")


#: Blob names a shell would make something of (each also runs end to end locally: tests/test_reliability.py).
HOSTILE = ["sales/o'brien.xlsx", "sales/$HOME ${PATH} $(id).xlsx", "sales/it's $5 `now`.xlsx", "sales/#1 100%.xlsx",
           "sales/Q3 report (final).xlsx", "données/été ✓ 数据.xlsx", "sales/;|&<>*?[a]~!\\\".xlsx", "-x.xlsx"]
ECHO_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"


def test_any_blob_name_reaches_the_step_intact_through_the_registered_command(
        workspace: Workspace, ml_client: Any, input_account: str, input_container: Any, tmp_path: Path) -> None:
    """The registered command with the invocation's values put in as raw text and run by bash, for every name (its
    ``python extract.py`` replaced by a program that prints its argv); then two of them as whole jobs."""
    published = publish_to(ml_client)
    settings, backend = the_function(workspace, published, input_account)
    for name in HOSTILE:
        body = azureml_v2.invocation_body(build_request(
            BlobVersion(input_container.container_name, name, '"0x8DC1"', None), settings, "inv-1",
            dataset="sales", read_options=json.dumps({"sheets": {"include": [name]}})), "job-1", "s-1",
            "workspaceblobstore")
        command = workspace.step_command(Job("job-1", body, "step-1"), tmp_path / "mount")
        echoed = command.replace("python extract.py", f"{sys.executable} -c '{ECHO_ARGV}'", 1)
        assert echoed != command
        argv = json.loads(subprocess.run(["/bin/bash", "-c", echoed], capture_output=True, text=True, check=True,
                                         cwd=tmp_path).stdout)
        args = contract.parse_step_arguments(argv)
        assert contract.parse_source_version(args.source_version) == contract.source_tags(
            input_container.container_name, name, '"0x8DC1"')
        assert json.loads(args.read_options) == {"sheets": {"include": [name]}}
        assert (args.output_extract, args.settings) == (str(tmp_path / "mount"), {contract.JOB_API_ENV: "v2"})
    for name in (HOSTILE[2], HOSTILE[5]):
        etag = input_container.get_blob_client(name).upload_blob(SAMPLE.read_bytes())["etag"]
        submit(settings, backend, input_container, name, etag)
        job = workspace.run_job(workspace.jobs[-1])
        assert job.returncode == 0, job.log
        made = [v["properties"]["tags"] for v in workspace.versions("data").values()
                if v["properties"]["tags"]["source_etag"] == etag]
        assert len(made) == 3 and {tags["source_blob"] for tags in made} == {name}
    assert not list(workspace.code.rglob("pwned")) and not (tmp_path / "pwned").exists()


def test_a_version_replaced_before_its_job_ran_is_superseded_and_the_newer_job_converts_it(
        workspace: Workspace, ml_client: Any, input_account: str, input_container: Any) -> None:
    from mlflow.tracking import MlflowClient

    published = publish_to(ml_client)
    settings, backend = the_function(workspace, published, input_account)
    blob = input_container.get_blob_client("sales/q3.xlsx")
    first = blob.upload_blob(SAMPLE.read_bytes())["etag"]
    submit(settings, backend, input_container, "sales/q3.xlsx", first)
    second = blob.upload_blob(Q4.read_bytes(), overwrite=True)["etag"]  # before the first job runs
    submit(settings, backend, input_container, "sales/q3.xlsx", second)
    old, new = workspace.jobs

    workspace.run_job(old)
    assert old.returncode == 0, old.log
    assert f"superseded: {input_container.container_name}/sales/q3.xlsx is no longer etag {first} but {second}" \
        in old.log
    assert workspace.versions("data") == {} and not workspace.sent("PUT", "/data/")
    tracking = MlflowClient(workspace.tracking_uri)
    for run in (old.name, old.step_name):
        assert tracking.get_run(run).data.tags[contract.SUPERSEDED_TAG] == second

    workspace.run_job(new)
    assert new.returncode == 0, new.log
    orders = workspace.versions("data")["sales_orders/1"]["properties"]
    assert orders["tags"]["source_etag"] == second
    path = re.fullmatch(r"azureml://datastores/workspaceblobstore/paths/(.+)", orders["dataUri"])
    assert path and "Discount" in pq.read_schema(workspace.datastore_folder("workspaceblobstore") / path[1]).names


def test_a_lost_answer_is_found_by_the_jobs_input_when_the_service_drops_name_and_properties(
        workspace: Workspace, ml_client: Any, input_account: str, input_container: Any) -> None:
    published = publish_to(ml_client)
    settings, backend = the_function(workspace, published, input_account)
    # Nothing documents that a batch job keeps the requested name or the invocation's properties (and tags);
    # the job's inputs it must keep, to run at all.
    workspace.keeps_name = workspace.keeps_properties = False
    workspace.lose_answers = 1
    etag = input_container.get_blob_client("sales/q3.xlsx").upload_blob(SAMPLE.read_bytes())["etag"]

    result = submit(settings, backend, input_container, "sales/q3.xlsx", etag)

    (job,) = workspace.jobs
    assert len(workspace.sent("POST", SCORING)) == 1
    assert result.run_id == job.name != azureml_v2.job_name(input_container.container_name, "sales/q3.xlsx", etag)
    # The look-up: the name it asked for (not found), then the workspace's jobs, which azure-ai-ml itself reads
    # as pipeline jobs with that input.
    lookups = [r for r in workspace.service.requests if r.method == "GET" and "/jobs" in r.path]
    assert [r.path.rsplit("/", 1)[1] for r in lookups] == [azureml_v2.job_name(
        input_container.container_name, "sales/q3.xlsx", etag), "jobs"]
    (listed,) = ml_client.jobs.list()
    assert type(listed).__name__ == "PipelineJob" and listed.name == job.name
    assert json.loads(contract.decode_argument(listed.inputs["source_version"]._data))["source_etag"] == etag
    # And a later delivery of the same version (a claim takeover) finds it too.
    assert backend.find_runs(input_container.container_name, "sales/q3.xlsx", etag) == [job.name]
    assert backend.find_runs(input_container.container_name, "sales/q3.xlsx", '"0xOTHER"') == []


def test_publishing_twice_sends_one_set_of_puts(workspace: Workspace, ml_client: Any) -> None:
    first = publish_to(ml_client)
    puts = [re.sub(r"/versions/[^/]+$", "", r.path.removeprefix(f"{WORKSPACE_PATH}/"))
            for r in workspace.service.requests if r.method == "PUT"]
    assert puts == ["environments/CliV2AnonymousEnvironment", "components/azureml_anonymous",
                    "components/sheetdrop_extract_pipeline", f"batchEndpoints/{ENDPOINT_NAME}",
                    f"batchEndpoints/{ENDPOINT_NAME}/deployments/extract", f"batchEndpoints/{ENDPOINT_NAME}"]
    before = len(workspace.service.requests)

    second = publish_to(ml_client)

    again = workspace.service.requests[before:]
    assert second == first
    assert not [r for r in again if r.method != "GET"], [(r.method, r.path) for r in again]
    # What the SDK reads back keeps the default in its REST model (BatchEndpointDefaults), not a dict.
    endpoint = ml_client.batch_endpoints.get(ENDPOINT_NAME)
    assert type(endpoint.defaults).__name__ == "BatchEndpointDefaults"
    assert publish.default_deployment(endpoint) == "extract"


def test_the_endpoint_name_is_one_per_workspace_and_a_valid_one() -> None:
    from azure.ai.ml.entities._endpoint._endpoint_helpers import validate_endpoint_or_deployment_name

    names = {publish.endpoint_name_for(SUBSCRIPTION, RESOURCE_GROUP, ws) for ws in ("mlw-a", "mlw-b")}
    assert len(names) == 2
    # And the one azd derives from the resource token (infra/main.bicep: 'sheetdrop-${resourceToken}', 13 characters).
    for name in (*names, f"{publish.ENDPOINT_PREFIX}{'a1b2c3d4e5f6g'}"):
        validate_endpoint_or_deployment_name(name)
