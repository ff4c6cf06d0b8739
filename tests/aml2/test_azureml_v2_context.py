"""The step's v2 side at the SDK boundary: a real MLflow client on a local file store (the tracking
server AzureML points MLflow at is replaced by a folder) and azure-ai-ml's own Data entity, handed
to a recording stand-in for MLClient's data and jobs operations."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from azure.ai.ml import Output
from azure.ai.ml.entities import Data
from azure.core.exceptions import ResourceNotFoundError
from mlflow.tracking import MlflowClient

from sheetdrop_contract.contract import OutputPathError, Registration
from sheetdrop_step import contexts
from sheetdrop_step.contexts import azureml_v2 as azureml_v2_context
from sheetdrop_step.contexts.standalone import StandaloneContext

SOURCE = {"source_container": "input", "source_blob": "sales/q1.xlsx", "source_etag": "0x8DC"}


@dataclass
class DataOps:
    """MLClient.data as the step uses it; versions increment as the service's auto-increment does."""

    assets: dict[str, list[Data]] = field(default_factory=dict)

    def create_or_update(self, data: Data) -> Data:
        assert data.version is None and data._auto_increment_version
        rest = data._to_rest_object()  # the SDK's own serialization must accept what the step built
        assert rest.properties.data_type == "uri_file"
        versions = self.assets.setdefault(data.name, [])
        stored = Data(name=data.name, version=str(len(versions) + 1), type=data.type, path=data.path,
                      description=data.description, tags=dict(data.tags))
        versions.append(stored)
        return stored

    def get(self, name: str, label: str | None = None) -> Data:
        assert label == "latest"
        if name not in self.assets:
            raise ResourceNotFoundError(f"data {name} not found")
        return self.assets[name][-1]

    def list(self) -> list[Data]:
        return [versions[-1] for versions in self.assets.values()]


@dataclass
class Jobs:
    outputs: dict[str, Any]
    asked: list[str] = field(default_factory=list)

    def get(self, name: str) -> Any:
        self.asked.append(name)
        return SimpleNamespace(name=name, outputs=self.outputs)


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[MlflowClient, str, str]:
    # mlflow-skinny has no SQL store; its file store still speaks the same client API.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    experiment = client.create_experiment("sheetdrop-extract")
    parent = client.create_run(experiment, tags={"azureml.batch": "yes"}).info.run_id
    step = client.create_run(experiment, tags={azureml_v2_context.PARENT_RUN_TAG: parent}).info.run_id
    return client, parent, step


def context(tracking: tuple[MlflowClient, str, str], outputs: dict[str, Any]) -> tuple[Any, DataOps, Jobs]:
    client, _, step = tracking
    data, jobs = DataOps(), Jobs(outputs)
    return azureml_v2_context.AzureMLV2Context(SimpleNamespace(data=data, jobs=jobs), client, step), data, jobs


def test_registration_tags_metrics_and_the_output_from_the_job(tracking: tuple[MlflowClient, str, str]) -> None:
    client, parent, step = tracking
    uri = f"azureml://datastores/workspaceblobstore/paths/azureml/{step}/extracted/"
    ctx, data, jobs = context(tracking, {"extracted": Output(type="uri_folder", path=uri)})

    assert ctx.run_id == parent
    ctx.start(SOURCE)
    path = ctx.output_path("extracted", "workspaceblobstore")
    tags = {**SOURCE, "run_id": ctx.run_id, "sheet": "Orders", "rows": "3", "columns": "2",
            "converter_version": "9"}
    first = ctx.register(Registration("sales_orders", "workspaceblobstore", f"{path}/orders.parquet", "d", tags))
    second = ctx.register(Registration("sales_orders", "workspaceblobstore", f"{path}/orders.parquet", "d", tags))
    ctx.log_metric("rows", 3)
    ctx.log_metric("orders.parquet:column_types", '{"a": "int64"}')
    ctx.complete()

    assert jobs.asked == [step] and path == f"azureml/{step}/extracted"
    assert (first, second) == ("sales_orders:1", "sales_orders:2")
    (asset, _) = data.assets["sales_orders"]
    assert asset.path == f"azureml://datastores/workspaceblobstore/paths/azureml/{step}/extracted/orders.parquet"
    assert asset.tags == tags
    parent_tags, step_run = client.get_run(parent).data.tags, client.get_run(step).data
    assert {k: parent_tags[k] for k in SOURCE} == SOURCE and {k: step_run.tags[k] for k in SOURCE} == SOURCE
    assert parent_tags["datasets"] == "sales_orders:1, sales_orders:2"
    assert step_run.metrics["rows"] == 3.0
    assert step_run.tags["orders.parquet/column_types"] == '{"a": "int64"}'
    assert ctx.previous_tags("sales_orders") == tags and ctx.previous_tags("other") is None
    assert ctx.previous_names("sales") == []  # no schema_changes base tag: not this workbook's
    assert ctx.previous_names("sales") == ctx.previous_names("sales")


def test_a_job_without_an_output_path_has_the_services_default_place(tracking: tuple[MlflowClient, str, str]
                                                                     ) -> None:
    ctx, _, _ = context(tracking, {"extracted": Output(type="uri_folder")})
    assert ctx.output_path("extracted", "workspaceblobstore") == f"azureml/{ctx.step_run_id}/extracted"


@pytest.mark.parametrize(("uri", "message"), [
    ("azureml://datastores/otherstore/paths/x/", "on datastore 'otherstore'"),
    ("azureml://datastores/workspaceblobstore/paths/azureml/${{name}}/extracted/", "not a resolved"),
    ("/mnt/azureml/cr/j/abc/cap/data-capability/wd/extracted", "not a resolved"),
])
def test_a_job_output_elsewhere_fails_the_run(tracking: tuple[MlflowClient, str, str], uri: str, message: str
                                             ) -> None:
    ctx, _, _ = context(tracking, {"extracted": Output(type="uri_folder", path=uri)})
    with pytest.raises(OutputPathError, match=message):
        ctx.output_path("extracted", "workspaceblobstore")


def test_the_step_picks_the_v2_context_only_when_the_component_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    monkeypatch.setattr(azureml_v2_context, "azureml_v2_context", lambda: made.append("v2") or "v2-context")
    assert contexts.get_context({"AZUREML_RUN_ID": "step-1", "SHEETDROP_JOB_API": "v2"}) == "v2-context"
    assert made == ["v2"]
    assert isinstance(contexts.get_context({"SHEETDROP_JOB_API": "v2"}), StandaloneContext)
