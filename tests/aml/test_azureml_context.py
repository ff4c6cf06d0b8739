"""The step's AzureML side, with the run context and the dataset API replaced at the SDK boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from azureml.core import Dataset, Datastore, Run

from sheetdrop_contract.contract import OutputPathError, Registration
from sheetdrop_step import contexts
from sheetdrop_step.contexts import azureml as azureml_context

#: What AzureML sets in every run it starts.
IN_A_RUN = {"AZUREML_RUN_ID": "step-run-1"}


@dataclass
class FakeRun:
    """What Run.get_context() answers inside a pipeline step; records what the step does to it."""

    id: str
    workspace: Any
    parent: FakeRun | None = None
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, Any]] = field(default_factory=list)
    flushed: int = 0
    display_name: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def get_details(self) -> dict[str, Any]:
        return self.details

    @property
    def experiment(self) -> Any:
        return type("Experiment", (), {"workspace": self.workspace})()

    def get_tags(self) -> dict[str, str]:
        return dict(self.tags)

    def set_tags(self, tags: dict[str, str]) -> None:
        self.tags.update(tags)

    def tag(self, key: str, value: str) -> None:
        self.tags[key] = value

    def log(self, name: str, value: Any) -> None:
        self.metrics.append((name, value))

    def flush(self) -> None:
        self.flushed += 1


@dataclass
class Registered:
    name: str
    version: int


@dataclass
class DatasetStandIn:
    path: Any
    registrations: list[dict[str, Any]] = field(default_factory=list)

    def register(self, **kwargs: Any) -> Registered:
        self.registrations.append(kwargs)
        return Registered(kwargs["name"], 3)


SOURCE = {"source_container": "input", "source_blob": "sales/q1.xlsx", "source_etag": "0x8DC"}
#: The part of Run.get_details() the step reads: runDefinition.dataReferences (RunConfiguration's
#: data_references, DataReferenceConfiguration's keys; docs/azureml.md, "Where the step writes").
DETAILS = {"runId": "step-run-1", "runDefinition": {"dataReferences": {"extracted": {
    "dataStoreName": "workspaceblobstore", "mode": "Mount", "pathOnDataStore": "azureml/step-run-1/extracted",
    "pathOnCompute": None, "overwrite": False}}}}


@pytest.fixture
def sdk(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    workspace = object()
    # The service kept none of the submission's tags: the step must tag the run itself.
    parent = FakeRun("pipeline-run-1", workspace, tags={"azureml.pipelineid": "p-1"})
    run = FakeRun("step-run-1", workspace, parent=parent, details=DETAILS)
    datastores: dict[str, Any] = {}
    datasets: list[DatasetStandIn] = []

    def get_datastore(ws: Any, name: str) -> Any:
        assert ws is workspace
        return datastores.setdefault(name, type("Datastore", (), {"name": name})())

    def from_parquet_files(path: Any, **kwargs: Any) -> DatasetStandIn:
        assert kwargs == {"validate": False}
        datasets.append(DatasetStandIn(path))
        return datasets[-1]

    monkeypatch.setattr(Run, "get_context", classmethod(lambda cls, *a, **k: run))
    monkeypatch.setattr(Datastore, "get", staticmethod(get_datastore))
    monkeypatch.setattr(Dataset.Tabular, "from_parquet_files", staticmethod(from_parquet_files))
    return {"workspace": workspace, "run": run, "parent": parent, "datastores": datastores, "datasets": datasets}


def test_registers_a_new_version_on_the_exact_datastore_path(sdk: dict[str, Any]) -> None:
    context = azureml_context.open_context(IN_A_RUN)
    assert context is not None
    assert context.run_id == "pipeline-run-1"  # the pipeline run: what the Function logged and the claim holds
    assert context.output_path("extracted", "workspaceblobstore") == "azureml/step-run-1/extracted"
    tags = {**SOURCE, "run_id": context.run_id, "sheet": "Q1", "rows": "10", "columns": "3"}

    ref = context.register(Registration(
        name="sales", datastore="workspaceblobstore",
        relative_path="azureml/step-run-1/extracted/q1.parquet",
        description="Sheet 'Q1' of sales/q1.xlsx", tags=tags))

    assert ref == "sales:3"
    (dataset,) = sdk["datasets"]
    datastore, path = dataset.path
    assert datastore is sdk["datastores"]["workspaceblobstore"]
    assert path == "azureml/step-run-1/extracted/q1.parquet"
    assert dataset.registrations == [{
        "workspace": sdk["workspace"], "name": "sales", "description": "Sheet 'Q1' of sales/q1.xlsx",
        "tags": tags, "create_new_version": True,
    }]


def test_the_step_tags_its_runs_with_the_blob_version_first(sdk: dict[str, Any]) -> None:
    context = azureml_context.open_context(IN_A_RUN)
    assert context is not None
    context.start(SOURCE)
    assert sdk["parent"].tags == {"azureml.pipelineid": "p-1", **SOURCE}
    assert sdk["run"].tags == SOURCE
    assert sdk["parent"].display_name == "extract sales/q1.xlsx"


@pytest.mark.parametrize(("reference", "message"), [
    ({"dataStoreName": "workspaceblobstore", "pathOnDataStore": "azureml/other-run/extracted"},
     "the run definition puts output 'extracted' at 'azureml/other-run/extracted', not at "
     "'azureml/step-run-1/extracted' (azureml/<step run id>/<output>); registering either could point at nothing"),
    ({"dataStoreName": "otherstore", "pathOnDataStore": "azureml/step-run-1/extracted"},
     "the run definition puts output 'extracted' on datastore 'otherstore', but the step was given "
     "--output_datastore workspaceblobstore"),
])
def test_a_run_definition_that_disagrees_is_an_error(sdk: dict[str, Any], reference: dict[str, str],
                                                      message: str) -> None:
    sdk["run"].details = {"runDefinition": {"dataReferences": {"extracted": reference}}}
    context = azureml_context.open_context(IN_A_RUN)
    assert context is not None
    with pytest.raises(OutputPathError) as error:
        context.output_path("extracted", "workspaceblobstore")
    assert str(error.value) == message


def test_without_a_data_reference_the_rule_stands_in(sdk: dict[str, Any]) -> None:
    sdk["run"].details = {"runDefinition": {}}
    context = azureml_context.open_context(IN_A_RUN)
    assert context is not None
    assert context.output_path("extracted", "workspaceblobstore") == "azureml/step-run-1/extracted"


def test_metrics_and_run_tags(sdk: dict[str, Any]) -> None:
    context = azureml_context.open_context(IN_A_RUN)
    assert context is not None
    context.start(SOURCE)
    context.log_metric("rows", 10)
    context.log_metric("sheets", 1)
    context.register(Registration("sales", "workspaceblobstore", "azureml/x/extracted/q1.parquet", "d", {}))
    context.complete()

    run, parent = sdk["run"], sdk["parent"]
    assert run.metrics == [("rows", 10), ("sheets", 1)]
    assert run.flushed == 1
    assert parent.tags["source_blob"] == "sales/q1.xlsx"
    assert parent.tags["datasets"] == "sales:3"
    assert parent.display_name == "extract sales/q1.xlsx"
    assert {k: run.tags[k] for k in SOURCE} == SOURCE


def test_offline_run_is_not_an_azureml_context(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real Run.get_context() outside AzureML: an offline run, so the step uses no AzureML context.
    for name in ("AZUREML_RUN_ID", "AZUREML_RUN_TOKEN", "AZUREML_SERVICE_ENDPOINT", "AZUREML_ARM_SUBSCRIPTION"):
        monkeypatch.delenv(name, raising=False)
    assert azureml_context.open_context(IN_A_RUN) is None


def test_step_picks_the_azureml_context_inside_a_run(sdk: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(contexts.get_context(IN_A_RUN), azureml_context.AzureMLContext)


def test_previous_versions_come_from_the_registry(sdk: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    known = {"sales": {"schema": '{"a": "int64"}', "dataset_base": "sales"},
             "sales_orders": {"dataset_base": "sales"}, "sales_emea": {"dataset_base": "sales_emea"}}

    def get_by_name(workspace: Any, name: str) -> Any:
        assert workspace is sdk["workspace"]
        if name not in known:
            raise RuntimeError("UserErrorException: Dataset not found")
        return type("Dataset", (), {"tags": known[name]})()

    monkeypatch.setattr(Dataset, "get_by_name", staticmethod(get_by_name))
    monkeypatch.setattr(Dataset, "get_all", staticmethod(lambda ws: {n: get_by_name(ws, n) for n in known}))
    context = azureml_context.open_context(IN_A_RUN)
    assert context is not None
    assert context.previous_tags("sales") == known["sales"]
    assert context.previous_tags("unknown") is None
    # A nested folder's dataset (sales/emea → sales_emea) is not a sheet of the sales workbook.
    assert context.previous_names("sales") == ["sales", "sales_orders"]
