"""A batch job on AzureML v2 through the vendors' code: azure-ai-ml's real MLClient publishes the batch pipeline (a
split step and a parallel step) as a second deployment of the endpoint, the Function's v2 backend invokes it for a
batch, and the job runs from what was registered — the split step's command through bash, the parallel step's entry
script as its agent runs it (tests/aml2/workspace.py, ``run_batch_job``) — reading each version from Azurite (https,
OAuth) with the compute's identity and registering data assets with the real MLClient. Assertions are on what was
sent and registered."""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow.parquet as pq

from conftest import SAMPLE
from pipeline.v2 import publish
from sheetdrop.submit import BatchRequest
from sheetdrop.trigger import BlobVersion, build_request
from sheetdrop_contract import batch, contract, read_options
from tests.aml2.test_v2_job import ENDPOINT_NAME, HOSTILE, Q4, the_function
from tests.aml2.workspace import CODE_ID, COMPUTE_CLIENT_ID, SCORING, WORKSPACE_PATH, Workspace, claims

FINANCE = SAMPLE.parent / "finance"


def publish_both(ml_client: Any, step_settings: dict[str, str] | None = None) -> publish.Published:
    settings = step_settings or {}
    shared = {"version": publish.source_hash(settings), "endpoint_name": ENDPOINT_NAME, "compute": "sheetdrop-cpu",
              "output_datastore": "workspaceblobstore", "step_settings": settings, "code": CODE_ID}
    return publish.publish(ml_client, *publish.definitions(**shared),
                           batch=publish.batch_definitions(**shared, instance_count=3))


def specs(workspace: Workspace) -> dict[str, dict[str, Any]]:
    """The registered components' specs, by their own type (command, parallel) or name (pipelines)."""
    found = {}
    for body in workspace.versions("components").values():
        spec = body["properties"]["componentSpec"]
        found[spec["name"] if spec["type"] == "pipeline" else spec.get("display_name", spec["type"])] = spec
    return found


def test_the_batch_pipeline_registers_a_split_step_and_a_parallel_step(workspace: Workspace, ml_client: Any) -> None:
    published = publish_both(ml_client, {"SHEETDROP_MAX_CELLS": "5000000"})

    found = specs(workspace)
    parallel = found["sheetdrop extract batch"]
    assert parallel["type"] == "parallel" and parallel["is_deterministic"] is False
    assert (parallel["input_data"], parallel["mini_batch_size"], parallel["max_concurrency_per_instance"]) == (
        "${{inputs.groups}}", "1", 1)
    assert parallel["resources"] == {"instance_count": 3}
    assert (parallel["error_threshold"], parallel["mini_batch_error_threshold"]) == (-1, -1)
    assert parallel["retry_settings"] == {"max_retries": 2, "timeout": 3600}
    task = parallel["task"]
    assert (task["type"], task["entry_script"], task["append_row_to"]) == (
        "run_function", "extract_batch.py", "${{outputs.outcomes}}")
    assert task["program_arguments"].endswith(
        f"--setting {contract.JOB_API_ENV}=v2 --setting SHEETDROP_MAX_CELLS=5000000")
    assert not parallel.get("environment_variables")
    split = found["sheetdrop batch split"]
    assert split["is_deterministic"] is False
    assert split["command"] == ("python -m sheetdrop_step.batch_split --manifest '${{inputs.manifest}}' "
                                "--groups '${{outputs.groups}}'")
    jobs = found["sheetdrop_extract_batch_pipeline"]["jobs"]
    assert jobs["extract"]["inputs"]["groups"]["value"] == "${{parent.jobs.split.outputs.groups}}"
    assert jobs["extract"]["outputs"] == {"extracted": {"value": "${{parent.outputs.extracted}}", "type": "literal"}}
    # A second deployment of the endpoint; the single version's stays the default.
    batch_deployment = workspace.resources[f"{WORKSPACE_PATH}/batchEndpoints/{ENDPOINT_NAME}/deployments/extract-batch"]
    assert "sheetdrop_extract_batch_pipeline" in batch_deployment["properties"]["deploymentConfiguration"][
        "componentId"]["assetId"]
    assert batch_deployment["properties"]["deploymentConfiguration"]["settings"]["force_rerun"] == "True"
    assert publish.default_deployment(ml_client.batch_endpoints.get(ENDPOINT_NAME)) == published.deployment == "extract"

    before = len(workspace.service.requests)
    assert publish_both(ml_client, {"SHEETDROP_MAX_CELLS": "5000000"}) == published
    assert not [r for r in workspace.service.requests[before:] if r.method != "GET"]


def test_a_batch_job_converts_each_version_in_its_own_folder_and_ends_each_its_own_way(
        workspace: Workspace, ml_client: Any, input_account: str, input_container: Any) -> None:
    published = publish_both(ml_client)
    settings, backend = the_function(workspace, published, input_account)
    container = input_container.container_name
    finance_options = read_options.to_parameter("finance/sheetdrop.json",
                                                (FINANCE / "sheetdrop.json").read_text(encoding="utf-8"))
    uploads = [("sales/q3.xlsx", SAMPLE, "sales", "{}"), (HOSTILE[1], SAMPLE, "odd", "{}"),
               ("sales/notes.xlsx", None, "sales", "{}"), ("finance/q3.xlsx", FINANCE / "q3-2026-report.xlsx",
                                                           "finance", finance_options),
               ("sales/q4.xlsx", Q4, "sales", "{}"), ("other/later.xlsx", SAMPLE, "other", "{}")]
    requests = []
    for name, path, dataset, options in uploads:
        data = path.read_bytes() if path else b"id,amount\n1,2\n"
        etag = input_container.get_blob_client(name).upload_blob(data)["etag"]
        requests.append(build_request(BlobVersion(container, name, etag, None), settings, "inv-b", dataset,
                                      read_options=options))
    result = backend.submit_batch(BatchRequest("batch-1", tuple(requests)))
    newer = input_container.get_blob_client("other/later.xlsx").upload_blob(Q4.read_bytes(), overwrite=True)["etag"]

    (job,) = workspace.jobs
    assert job.deployment == "extract-batch" and result.run_id == job.name
    invocation = job.invocation["properties"]
    literals = {key: contract.decode_argument(value["value"]) for key, value in invocation["inputData"].items()}
    chosen = f"azureml/{job.name}/extracted"
    assert (literals["output_path"], literals["output_datastore"], literals["input_account"]) == (
        chosen, "workspaceblobstore", input_account)
    assert batch.parse_manifest(literals["manifest"]) == BatchRequest("b", tuple(requests)).versions()
    posted = len(workspace.service.requests)

    workspace.run_batch_job(job)

    assert job.returncode == 0, job.log
    # One row per dataset (a file of the split step), each the list of its versions' outcomes, in manifest order.
    rows = [json.loads(row) for row in job.outcomes]
    assert [[o["position"] for o in row] for row in rows] == [[0, 2, 4], [1], [3], [5]]
    ended = {o["source_blob"]: o for row in rows for o in row}
    assert {blob: o["outcome"] for blob, o in ended.items()} == {
        "sales/q3.xlsx": "converted", HOSTILE[1]: "converted", "sales/notes.xlsx": "rejected",
        "finance/q3.xlsx": "converted", "sales/q4.xlsx": "converted", "other/later.xlsx": "superseded"}
    assert ended["sales/notes.xlsx"]["code"] == "not-a-workbook"
    assert ended["other/later.xlsx"]["superseded_by_etag"] == newer

    registered = workspace.versions("data")
    assert set(registered) == {f"{base}_{sheet}/{n}" for base, n in (("sales", 1), ("sales", 2), ("odd", 1))
                               for sheet in ("orders", "products", "targets")} | {"finance/1"}
    orders = registered["sales_orders/2"]["properties"]
    # Registered in manifest order: version 2 of sales_orders is the later upload, in its own folder (position 4).
    assert orders["tags"]["source_blob"] == "sales/q4.xlsx" and orders["tags"]["run_id"] == job.name
    assert orders["tags"]["schema_change"] == "added Discount (float64)"
    assert orders["dataUri"] == f"azureml://datastores/workspaceblobstore/paths/{chosen}/4/orders.parquet"
    written = workspace.datastore_folder("workspaceblobstore") / chosen
    assert pq.read_metadata(written / "4" / "orders.parquet").num_rows == 260
    assert "_rescued_data" in pq.read_schema(written / "3" / "report.parquet").names
    assert registered["odd_orders/1"]["properties"]["tags"]["source_blob"] == HOSTILE[1]
    # As the compute's identity: the reads and the registrations.
    calls = workspace.service.requests[posted:]
    puts = [r for r in calls if r.method == "PUT" and "/data/" in r.path]
    assert puts and all(claims(r.headers["authorization"])["oid"] == COMPUTE_CLIENT_ID for r in puts)
    assert {r.query.get("clientid", [""])[0] for r in calls if r.path == "/aml/msi"} == {COMPUTE_CLIENT_ID}
    # Each version's outcome among the step job's tags too.
    from mlflow.tracking import MlflowClient

    tags = MlflowClient(workspace.tracking_uri).get_run(job.step_name).data.tags
    assert tags["version/2"].startswith("rejected not-a-workbook: ") and tags["version/5"] == "superseded"


def test_a_lost_answer_to_a_batch_is_found_by_its_manifest_and_each_version_finds_the_job(
        workspace: Workspace, ml_client: Any, input_account: str, input_container: Any) -> None:
    published = publish_both(ml_client)
    settings, backend = the_function(workspace, published, input_account)
    workspace.keeps_name = workspace.keeps_properties = False
    workspace.lose_answers = 1
    container = input_container.container_name
    requests = tuple(build_request(BlobVersion(container, name, f'"0x8DC{i}"', None), settings, "inv", "sales")
                     for i, name in enumerate(HOSTILE[:3]))

    result = backend.submit_batch(BatchRequest("batch-9", requests))

    (job,) = workspace.jobs
    assert len(workspace.sent("POST", SCORING)) == 1 and result.run_id == job.name
    for request in requests:
        assert backend.find_runs(container, request.source_blob, request.source_etag) == [job.name]
    assert backend.find_runs(container, requests[0].source_blob, '"0xOTHER"') == []
    # What azure-ai-ml itself reads of that job: a pipeline job whose manifest input names the versions.
    (listed,) = ml_client.jobs.list()
    assert type(listed).__name__ == "PipelineJob"
    names = [v.blob for v in batch.parse_manifest(contract.decode_argument(listed.inputs["manifest"]._data))]
    assert names == HOSTILE[:3] and re.fullmatch(r"job-[0-9a-f]{12}", job.name)


def test_batches_can_be_turned_off_and_then_the_backend_has_no_submit_batch() -> None:
    from sheetdrop.settings import load_settings
    from sheetdrop.submit import azureml_v2

    base = {"SHEETDROP_BACKEND": "azureml-v2", "INPUT_STORAGE__blobServiceUri": "https://st.blob.core.windows.net",
            "AZUREML_BATCH_ENDPOINT_URL": "https://sd.westeurope.inference.ml.azure.com/jobs",
            "AZUREML_SUBSCRIPTION_ID": "s", "AZUREML_RESOURCE_GROUP": "rg", "AZUREML_WORKSPACE": "ws"}
    made = azureml_v2.create(load_settings(base), credential=object())
    assert made.batch_deployment == "extract-batch" and hasattr(made, "submit_batch")
    # If `sheetdrop smoke` finds that the service does not run the batch pipeline (`batch-parallel`): a submitter
    # that finds no submit_batch submits each version on its own.
    off = azureml_v2.create(load_settings({**base, "AZUREML_BATCH_JOB_DEPLOYMENT": "off"}), credential=object())
    assert not hasattr(off, "submit_batch")
