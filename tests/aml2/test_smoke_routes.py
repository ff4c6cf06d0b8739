"""`sheetdrop smoke`'s v2 reads are azure-ai-ml's own: each one is sent by the real MLClient and by the smoke's
plug-in (sheetdrop_local/smoke/azureml_v2.py, runhistory.py, report.py) to the same workspace stand-in, and both
send the same method, path and api-version, and read the same values from the answer."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from loopback import Recorded
from sheetdrop.settings import load_settings
from sheetdrop.submit.service import ServiceClient
from sheetdrop_contract import table
from sheetdrop_local.smoke import azureml_v2 as smoke_v2
from sheetdrop_local.smoke.facts import Context, Observed
from sheetdrop_local.smoke.report import cluster
from tests.aml2.blob_proxy import BlobAccount
from tests.aml2.conftest import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE
from tests.aml2.test_table_v2 import workspace_storage  # noqa: F401 - the fixture
from tests.aml2.test_v2_job import publish_to, submit, the_function
from tests.aml2.workspace import Workspace


def sent(workspace: Workspace, call: Callable[[], Any]) -> tuple[Any, list[tuple[str, str, str]]]:
    """What ``call`` returned and the ARM and run-history requests it sent: (method, path, api-version)."""
    before = len(workspace.service.requests)
    result = call()
    requests: list[Recorded] = workspace.service.requests[before:]
    return result, [(r.method, r.path, (r.query.get("api-version") or [""])[0]) for r in requests
                    if r.path.startswith(("/subscriptions/", "/history/"))]


def history(requests: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Run history's requests only (azure-ai-ml reads the workspace's discovery URL before its first one)."""
    return [r for r in requests if r[1].startswith("/history/")]


def test_the_smoke_tests_v2_reads_are_the_ones_azure_ai_ml_sends(workspace: Workspace, ml_client: Any,
                                                                    input_account: str, input_container: Any) -> None:
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Data
    from azure.identity import ManagedIdentityCredential

    from pipeline.v2 import publish

    published = publish_to(ml_client)
    publish.ensure_compute(ml_client, "sheetdrop-cpu", "STANDARD_DS3_V2", 2)
    settings, backend = the_function(workspace, published, input_account)
    job = submit(settings, backend, input_container, "sales/q3.xlsx", '"0x8D1"').run_id
    ml_client.data.create_or_update(Data(name="sheetdrop_smoke", version="1", type=AssetTypes.URI_FILE,
                                         path=f"azureml://datastores/workspaceblobstore/paths/azureml/{job}/extracted/"
                                              "smoke.parquet"))
    smoke_settings = load_settings({
        "SHEETDROP_BACKEND": "azureml-v2", "INPUT_STORAGE__blobServiceUri": input_account,
        "INPUT_CONTAINER": input_container.container_name,
        "AZUREML_BATCH_ENDPOINT_URL": published.endpoint_url, "AZUREML_ARM_URL": workspace.service.url,
        "AZUREML_SUBSCRIPTION_ID": SUBSCRIPTION, "AZUREML_RESOURCE_GROUP": RESOURCE_GROUP,
        "AZUREML_WORKSPACE": WORKSPACE})
    ctx = Context(smoke_settings, {"AZUREML_ARM_URL": workspace.service.url, "AZUREML_COMPUTE": "sheetdrop-cpu"},
                  ServiceClient(ManagedIdentityCredential()), io.StringIO(), 0.0)
    checks, opened = sent(workspace, lambda: smoke_v2.open_checks(ctx))
    _, sdk = sent(workspace, lambda: ml_client.workspaces.get(WORKSPACE))
    assert opened == sdk[:1] and checks.history.api_url == workspace.service.url  # discovery's "api"

    ours, by_us = sent(workspace, lambda: checks.job(job))
    theirs, by_sdk = sent(workspace, lambda: ml_client.jobs.get(job))
    assert by_us == by_sdk[:1] and ours["name"] == theirs.name

    _, by_us = sent(workspace, lambda: checks.history.run(job))
    _, by_sdk = sent(workspace, lambda: ml_client.jobs._runs_operations.get_run(job))
    assert by_us == history(by_sdk)
    ours, by_us = sent(workspace, lambda: checks.history.children(job))
    theirs, by_sdk = sent(workspace, lambda: list(ml_client.jobs._runs_operations.get_run_children(job)))
    assert by_us == history(by_sdk) and [r["runId"] for r in ours] == [j.name for j in theirs]
    step = ours[0]["runId"]
    ours, by_us = sent(workspace, lambda: checks.history.details(step))
    theirs, by_sdk = sent(workspace, lambda: ml_client.jobs._runs_operations.get_run_details(step))
    assert by_us == history(by_sdk) and ours["status"] == theirs.status

    ours_dataset, by_us = sent(workspace, lambda: checks._dataset("sheetdrop_smoke:1"))
    theirs, by_sdk = sent(workspace, lambda: ml_client.data.get("sheetdrop_smoke", version="1"))
    assert by_us == by_sdk
    assert f"azureml://datastores/{ours_dataset.datastore}/paths/{ours_dataset.path}" == theirs.path

    ours, by_us = sent(workspace, lambda: checks.container("workspaceblobstore"))
    theirs, by_sdk = sent(workspace, lambda: ml_client.datastores.get("workspaceblobstore"))
    assert by_us == by_sdk and ours == (theirs.account_name, theirs.container_name)

    ours, by_us = sent(workspace, lambda: cluster(ctx))
    theirs, by_sdk = sent(workspace, lambda: ml_client.compute.get("sheetdrop-cpu"))
    assert by_us == by_sdk and f"nodes of {theirs.size}" in ours and f"to {theirs.max_instances} nodes" in ours

    listed, by_us = sent(workspace, lambda: checks._jobs_list_inputs(
        Observed("a", "sales/q3.xlsx", '"0x8D1"', 0.0, run_id=job)))
    _, by_sdk = sent(workspace, lambda: list(ml_client.jobs.list()))
    assert by_us == by_sdk[:1] and listed.confirmed, listed

    # --clean: a data asset archived as data.archive(name) does it (read the container, PUT it back archived).
    cleaned = Observed("a", "sales/q3.xlsx", '"0x8D1"', 0.0, run_id=job, datasets=[ours_dataset])
    _, by_us = sent(workspace, lambda: checks.clean([cleaned]))
    archived = workspace.resources[by_us[-1][1]]["properties"]["isArchived"]
    workspace.resources[by_us[-1][1]]["properties"]["isArchived"] = False
    _, by_sdk = sent(workspace, lambda: ml_client.data.archive("sheetdrop_smoke"))
    assert by_us == by_sdk and archived is True
    assert workspace.resources[by_sdk[-1][1]]["properties"]["isArchived"] is True


def test_the_smoke_reads_a_table_versions_globs_as_azure_ai_ml_does(
        workspace: Workspace, ml_client: Any, workspace_storage: BlobAccount) -> None:  # noqa: F811
    """table-version: an mltable asset over a table version's folder, registered by azure-ai-ml as the step's v2
    context registers it (the MLTable file read from the datastore); the smoke reads it with ``data.get``'s request
    and finds the globs azure-ai-ml reads as its ``referenced_uris``, in order."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Data
    from azure.identity import ManagedIdentityCredential

    name = "sheetdrop_smoke_table_smoke"
    globs = [table.segment_pattern(name, segment) for segment in ("v1-0a1b", "v2-9f8e")]
    folder = workspace.datastore_folder("workspaceblobstore") / table.version_folder(name, 2)
    folder.mkdir(parents=True)
    (folder / table.MLTABLE_FILE).write_text(table.mltable_text("workspaceblobstore", globs))
    ml_client.data.create_or_update(Data(name=name, type=AssetTypes.MLTABLE, tags={table.TABLE_VERSION_TAG: "2"},
                                         path=f"azureml://datastores/workspaceblobstore/paths/"
                                              f"{table.version_folder(name, 2)}/"))
    settings = load_settings({
        "SHEETDROP_BACKEND": "azureml-v2", "INPUT_STORAGE__blobServiceUri": "https://x.blob.core.windows.net",
        "AZUREML_BATCH_ENDPOINT_URL": f"{workspace.service.url}/endpoint/jobs", "AZUREML_ARM_URL":
        workspace.service.url, "AZUREML_SUBSCRIPTION_ID": SUBSCRIPTION, "AZUREML_RESOURCE_GROUP": RESOURCE_GROUP,
        "AZUREML_WORKSPACE": WORKSPACE})
    checks = smoke_v2.open_checks(Context(settings, {"AZUREML_ARM_URL": workspace.service.url},
                                          ServiceClient(ManagedIdentityCredential()), io.StringIO(), 0.0))

    ours, by_us = sent(workspace, lambda: checks._dataset(f"{name}:1"))
    theirs, by_sdk = sent(workspace, lambda: ml_client.data.get(name, version="1"))
    assert by_us == by_sdk
    assert theirs._referenced_uris == [f"azureml://datastores/{ours.datastore}/paths/{path}" for path in ours.paths]
    assert ours.paths == globs and ours.tags == theirs.tags == {table.TABLE_VERSION_TAG: "2"}
