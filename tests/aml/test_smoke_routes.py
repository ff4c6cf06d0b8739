"""`sheetdrop smoke`'s v1 reads against azureml-core's own: the smoke's v1 plug-in (sheetdrop_local/smoke/azureml.py,
runhistory.py) and azureml-core's real objects (``Run.get_context()``, ``get_details``, ``get_children``,
``Dataset.get_by_name``, ``Datastore.get``, ``unregister_all_versions``) ask the same run-history stand-in
(tests/aml/run_history.py) and read the same values. Where the routes differ, azureml-core names the experiment
(``…/experiments/{name}/runs/{id}/details``) and the smoke uses the workspace's form azure-ai-ml sends to the same
service (tests/aml2/test_smoke_routes.py); the artifact, dataset and datastore routes are the same request."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loopback import Recorded, serve
from sheetdrop.settings import load_settings
from sheetdrop.submit.service import ServiceClient
from sheetdrop_contract.contract import Registration
from sheetdrop_local.smoke import azureml as smoke_v1
from sheetdrop_local.smoke.facts import Context, Observed
from sheetdrop_step import contexts
from tests.aml.run_history import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, RunHistory

LOG = "arguments: {}\nsettings: {}\ninput: read input/x.xlsx at etag \"0x1\" (10 bytes)\n"


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunHistory]:
    from azureml._base_sdk_common.service_discovery import CachedServiceDiscovery

    monkeypatch.setattr(CachedServiceDiscovery.__init__, "__defaults__", (str(tmp_path / ".discovery"),))
    with serve() as service:
        suffix = uuid.uuid4().hex[:8]
        runs = RunHistory(service, step_run_id=f"step-{suffix}", pipeline_run_id=f"pipeline-{suffix}", log=LOG)
        runs.data_references = {"extracted": {
            "dataStoreName": "workspaceblobstore", "mode": "Mount",
            "pathOnDataStore": f"azureml/{runs.step_run_id}/extracted", "pathOnCompute": None, "overwrite": False}}
        for name, value in runs.env().items():
            monkeypatch.setenv(name, value)
        # The smoke's own credential: a managed identity the stand-in serves (App Service's protocol).
        monkeypatch.setenv("IDENTITY_ENDPOINT", f"{service.url}/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", "header")
        yield runs


def sent(history: RunHistory, call: Callable[[], Any]) -> tuple[Any, list[tuple[str, str, str]]]:
    before = len(history.service.requests)
    result = call()
    requests: list[Recorded] = history.service.requests[before:]
    return result, [(r.method, r.path, json.dumps(r.query, sort_keys=True)) for r in requests
                    if not r.path.startswith(("/msi/", "/discovery"))]


def smoke_checks(history: RunHistory) -> Any:
    """The smoke's v1 checks, as `sheetdrop smoke` opens them for a deployment whose endpoint is the stand-in."""
    from azure.identity import ManagedIdentityCredential

    settings = load_settings({
        "SHEETDROP_BACKEND": "azureml", "INPUT_STORAGE__blobServiceUri": "https://x.blob.core.windows.net",
        "AZUREML_PIPELINE_ENDPOINT_URL": f"{history.service.url}/pipelines/v1.0/subscriptions/{SUBSCRIPTION}/"
        f"resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.MachineLearningServices/workspaces/{WORKSPACE}/"
        "PipelineRuns/PipelineEndpointSubmit/Id/endpoint-1"})
    return smoke_v1.open_checks(Context(settings, {}, ServiceClient(ManagedIdentityCredential()), io.StringIO(), 0))


def test_the_smoke_tests_v1_reads_match_azureml_core(history: RunHistory) -> None:
    from azureml.core import Dataset, Datastore, Run

    # A registered version, as the step's v1 context registers it (azureml-core's own Dataset.register).
    context = contexts.get_context({"AZUREML_RUN_ID": history.step_run_id})
    path = f"azureml/{history.step_run_id}/extracted/smoke.parquet"
    context.register(Registration("sheetdrop_smoke", "workspaceblobstore", path, "Sheet 'Smoke'", {"sheet": "Smoke"}))
    step = Run.get_context()
    workspace = step.experiment.workspace

    checks = smoke_checks(history)

    ours, _ = sent(history, lambda: checks.history.children(history.pipeline_run_id))
    # Run.get_children on the pipeline run as a plain Run (a PipelineRun would ask the pipelines service instead).
    theirs, _ = sent(history, lambda: list(Run(step.experiment, history.pipeline_run_id).get_children(
        _rehydrate_runs=False)))
    assert [r["runId"] for r in ours] == [r.id for r in theirs] == [history.step_run_id]

    # The step's details and its log: azureml-core lists the common runtime's logs by the artifact route.
    details, _ = sent(history, lambda: checks.history.details(history.step_run_id))
    (log_name, log), by_us = sent(history, lambda: checks.history.log(history.runs[history.step_run_id], details))
    theirs, by_core = sent(history, step.get_details_with_logs)
    assert details["runDefinition"]["dataReferences"] == theirs["runDefinition"]["dataReferences"]
    assert (log_name, log) == ("user_logs/std_log.txt", LOG) and theirs["logFiles"][log_name] == LOG
    # The same listing request (azureml-core lists system_logs too, which the smoke does not read).
    assert [r for r in by_us if "/artifact/" in r[1]] == [r for r in by_core if r[1].endswith("/user_logs")]

    ours, by_us = sent(history, lambda: checks._dataset("sheetdrop_smoke:1"))
    dataset, by_core = sent(history, lambda: Dataset.get_by_name(workspace, "sheetdrop_smoke", version=1))
    assert by_us == by_core[:1]
    assert (ours.datastore, ours.path) == ("workspaceblobstore", path) and dataset.version == 1

    found, by_us = sent(history, lambda: checks.container("workspaceblobstore"))
    datastore, by_core = sent(history, lambda: Datastore.get(workspace, "workspaceblobstore"))
    assert by_us == by_core and found == (datastore.account_name, datastore.container_name)

    # --clean: every version of the smoke's dataset unregistered, as Dataset.unregister_all_versions does it.
    _, by_core = sent(history, dataset.unregister_all_versions)
    assert history.datasets == {}
    _, by_us = sent(history, lambda: checks.clean([Observed("a", "x", "e", 0.0, datasets=[ours])]))
    assert by_us == [r for r in by_core if r[0] == "DELETE"]


def test_the_smoke_reads_a_table_versions_globs_as_azureml_core_registered_them(history: RunHistory) -> None:
    """table-version: the step's v1 context registers a table version through azureml-core's real
    ``from_parquet_files`` over segment globs; the smoke reads it back with the request ``Dataset.get_by_name``
    sends and finds every glob, in order, and the version's tags."""
    from azureml.core import Dataset, Run

    from sheetdrop_contract import table

    name = "sheetdrop_smoke_table_smoke"
    globs = tuple(table.segment_pattern(name, segment) for segment in ("v1-0a1b", "v2-9f8e"))
    context = contexts.get_context({"AZUREML_RUN_ID": history.step_run_id})
    tags = {"sheet": "Smoke", table.TABLE_VERSION_TAG: "2", table.TABLE_SEGMENTS_TAG: "2"}
    context.register(Registration(name, "workspaceblobstore", table.manifest_path(name, 2), "Table", tags,
                                  files=globs))
    workspace = Run.get_context().experiment.workspace
    checks = smoke_checks(history)

    ours, by_us = sent(history, lambda: checks._dataset(f"{name}:1"))
    dataset, by_core = sent(history, lambda: Dataset.get_by_name(workspace, name, version=1))
    assert by_us == by_core[:1] and dataset.version == 1
    assert (ours.datastore, ours.paths, ours.path) == ("workspaceblobstore", list(globs), globs[0])
    assert ours.tags == dataset.tags == tags
