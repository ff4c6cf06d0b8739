"""The step's v1 context through azureml-core's real objects: ``Run.get_context()`` built from the variables
AzureML sets in a job, ``Datastore.get``, ``Dataset.Tabular.from_parquet_files`` and ``register``, all talking to
the run-history stand-in on loopback (tests/aml/run_history.py). Assertions are on what azureml-core sent."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopback import LoopbackService, serve
from sheetdrop_contract.contract import SUPERSEDED_TAG, OutputPathError, Registration
from sheetdrop_step import contexts
from sheetdrop_step.contexts import azureml as azureml_context
from tests.aml.run_history import RunHistory

SOURCE = {"source_container": "input", "source_blob": "sales/q1.xlsx", "source_etag": "0x8DC"}


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunHistory]:
    from azureml._base_sdk_common.service_discovery import CachedServiceDiscovery

    # azureml-core caches service discovery in ~/.azureml at import time's home; keep it in the test's folder.
    monkeypatch.setattr(CachedServiceDiscovery.__init__, "__defaults__", (str(tmp_path / ".discovery"),))
    service: LoopbackService
    with serve() as service:
        # Fresh run ids: azureml-core keeps one run object per run id for the process (_SubmittedRun._get_instance).
        suffix = uuid.uuid4().hex[:8]
        runs = RunHistory(service, step_run_id=f"step-{suffix}", pipeline_run_id=f"pipeline-{suffix}")
        runs.data_references = {"extracted": {
            "dataStoreName": "workspaceblobstore", "mode": "Mount",
            "pathOnDataStore": f"azureml/{runs.step_run_id}/extracted", "pathOnCompute": None, "overwrite": False}}
        for name, value in runs.env().items():
            monkeypatch.setenv(name, value)
        yield runs


def open_context(history: RunHistory) -> azureml_context.AzureMLContext:
    context = contexts.get_context({"AZUREML_RUN_ID": history.step_run_id})
    assert isinstance(context, azureml_context.AzureMLContext)
    return context


def test_registers_a_new_version_on_the_exact_datastore_path(history: RunHistory) -> None:
    context = open_context(history)
    assert context.run_id == history.pipeline_run_id  # what the Function logged and the claim holds
    path = context.output_path("extracted", "workspaceblobstore")
    assert path == f"azureml/{history.step_run_id}/extracted"
    tags = {**SOURCE, "run_id": context.run_id, "sheet": "Q1", "rows": "10", "columns": "3"}

    first = context.register(Registration("sales", "workspaceblobstore", f"{path}/q1.parquet", "Sheet 'Q1'", tags))
    second = context.register(Registration("sales", "workspaceblobstore", f"{path}/q1.parquet", "Sheet 'Q1'", tags))

    assert (first, second) == ("sales:1", "sales:2")
    (post, _) = history.sent("POST", "/datasets")
    assert post.query["ifExistsOk"] == ["true"] and post.query["updateDefinitionIfExists"] == ["true"]
    dto = post.json()
    assert (dto["name"], dto["description"], dto["tags"], dto["datasetType"]) == ("sales", "Sheet 'Q1'", tags,
                                                                                 "tabular")
    # The registered definition reads the parquet at the datastore path, and was not validated (no data read).
    definition = json.loads(dto["latest"]["dataflow"])["meta"]["RsDataflow"]
    assert (f"datastores/workspaceblobstore/paths/azureml/{history.step_run_id}/extracted/q1.parquet"
            in definition) and "read_parquet" in definition
    assert not history.sent("GET", "/datasets")


def test_the_step_tags_its_runs_with_the_blob_version_first_and_what_it_made_last(history: RunHistory) -> None:
    context = open_context(history)
    context.start(SOURCE)
    context.log_metric("rows", 10)
    context.register(Registration("sales", "workspaceblobstore", "azureml/x/extracted/q1.parquet", "d", {}))
    context.complete()

    pipeline, step = history.runs[history.pipeline_run_id], history.runs[history.step_run_id]
    assert pipeline["tags"] == {"azureml.pipelineid": "p-1", **SOURCE, "datasets": "sales:1"}
    assert step["tags"] == SOURCE
    (batch,) = history.sent("POST", f"/runs/{history.step_run_id}/batch")
    assert [(v["name"], v["value"][0]["data"]) for v in batch.json()["values"]] == [("rows", {"rows": 10})]


def test_a_superseded_run_says_so_on_both_runs_and_registers_nothing(history: RunHistory) -> None:
    context = open_context(history)
    context.start(SOURCE)
    context.superseded('"0xNEWER"')
    for run in (history.pipeline_run_id, history.step_run_id):
        assert history.runs[run]["tags"][SUPERSEDED_TAG] == '"0xNEWER"'
    assert not history.sent("POST", "/datasets")


@pytest.mark.parametrize(("reference", "message"), [
    ({"dataStoreName": "workspaceblobstore", "pathOnDataStore": "azureml/other-run/extracted"},
     "the run definition puts output 'extracted' at 'azureml/other-run/extracted', not at 'azureml/{step}/extracted' "
     "(azureml/<step run id>/<output>); registering either could point at nothing"),
    ({"dataStoreName": "otherstore", "pathOnDataStore": "azureml/{step}/extracted"},
     "the run definition puts output 'extracted' on datastore 'otherstore', but the step was given "
     "--output_datastore workspaceblobstore"),
])
def test_a_run_definition_that_disagrees_is_an_error(history: RunHistory, reference: dict[str, str],
                                                      message: str) -> None:
    history.data_references = {"extracted": {k: v.format(step=history.step_run_id) for k, v in reference.items()}}
    context = open_context(history)
    with pytest.raises(OutputPathError) as error:
        context.output_path("extracted", "workspaceblobstore")
    assert str(error.value) == message.format(step=history.step_run_id)


def test_without_a_data_reference_the_rule_stands_in(history: RunHistory) -> None:
    history.data_references = {}
    assert open_context(history).output_path("extracted", "workspaceblobstore") == \
        f"azureml/{history.step_run_id}/extracted"


def test_offline_run_is_not_an_azureml_context(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real Run.get_context() outside AzureML: an offline run, so the step uses no AzureML context.
    for name in ("AZUREML_RUN_ID", "AZUREML_RUN_TOKEN", "AZUREML_SERVICE_ENDPOINT", "AZUREML_ARM_SUBSCRIPTION"):
        monkeypatch.delenv(name, raising=False)
    assert azureml_context.open_context({"AZUREML_RUN_ID": "step-run-1"}) is None
