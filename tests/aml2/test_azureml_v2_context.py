"""The step's v2 context at the SDK boundary: azure-ai-ml's real MLClient registering data assets on the workspace
stand-in (tests/aml2/workspace.py: what it PUTs is checked), and a real MLflow client on a local file store (the
tracking server AzureML points MLflow at is replaced by a folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from sheetdrop_contract.contract import SUPERSEDED_TAG, OutputPathError, Registration
from sheetdrop_step import contexts
from sheetdrop_step.contexts import azureml_v2 as azureml_v2_context
from sheetdrop_step.contexts.standalone import StandaloneContext
from tests.aml2.workspace import Workspace

SOURCE = {"source_container": "input", "source_blob": "sales/q1.xlsx", "source_etag": "0x8DC"}


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[MlflowClient, str, str]:
    # mlflow-skinny has no SQL store; its file store still speaks the same client API.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    experiment = client.create_experiment("sheetdrop-extract")
    parent = client.create_run(experiment, tags={"azureml.batch": "yes"}).info.run_id
    step = client.create_run(experiment, tags={azureml_v2_context.PARENT_RUN_TAG: parent}).info.run_id
    return client, parent, step


@pytest.fixture
def context(tracking: tuple[MlflowClient, str, str], ml_client: Any) -> azureml_v2_context.AzureMLV2Context:
    client, _, step = tracking
    return azureml_v2_context.AzureMLV2Context(ml_client, client, step)


def test_registration_tags_and_metrics(context: azureml_v2_context.AzureMLV2Context, workspace: Workspace,
                                       tracking: tuple[MlflowClient, str, str]) -> None:
    client, parent, step = tracking
    assert context.run_id == parent
    context.start(SOURCE)
    path = "azureml/sheetdrop-0123/extracted"
    tags = {**SOURCE, "run_id": context.run_id, "sheet": "Orders", "rows": "3", "columns": "2",
            "converter_version": "9"}
    first = context.register(Registration("sales_orders", "workspaceblobstore", f"{path}/orders.parquet", "d", tags))
    second = context.register(Registration("sales_orders", "workspaceblobstore", f"{path}/orders.parquet", "d", tags))
    context.log_metric("rows", 3)
    context.log_metric("orders.parquet:column_types", '{"a": "int64"}')
    context.complete()

    assert (first, second) == ("sales_orders:1", "sales_orders:2")
    # What was registered (azure-ai-ml's auto-increment: the container's nextVersion, then a PUT of that version).
    registered = workspace.versions("data")
    assert set(registered) == {"sales_orders/1", "sales_orders/2"}
    properties = registered["sales_orders/2"]["properties"]
    assert (properties["dataType"], properties["dataUri"]) == (
        "uri_file", f"azureml://datastores/workspaceblobstore/paths/{path}/orders.parquet")
    assert properties["tags"] == tags
    parent_tags, step_run = client.get_run(parent).data.tags, client.get_run(step).data
    assert {k: parent_tags[k] for k in SOURCE} == SOURCE and {k: step_run.tags[k] for k in SOURCE} == SOURCE
    assert parent_tags["datasets"] == "sales_orders:1, sales_orders:2"
    assert step_run.metrics["rows"] == 3.0
    assert step_run.tags["orders.parquet/column_types"] == '{"a": "int64"}'
    assert context.previous_tags("sales_orders") == tags and context.previous_tags("other") is None
    assert context.previous_names("sales") == []  # no schema_changes base tag: not this workbook's


def test_a_forbidden_lookup_fails_the_run_instead_of_passing_for_no_version(
        context: azureml_v2_context.AzureMLV2Context, workspace: Workspace) -> None:
    from azure.core.exceptions import HttpResponseError

    workspace.service.script("/data/sales_orders", (403, {}, {"error": {
        "code": "AuthorizationFailed", "message": "does not have authorization to perform action "
                                                  "'Microsoft.MachineLearningServices/workspaces/data/read'"}}))
    with pytest.raises(HttpResponseError, match="AuthorizationFailed"):
        context.previous_tags("sales_orders")


def test_the_v2_step_is_told_where_it_writes_and_never_asks(context: azureml_v2_context.AzureMLV2Context,
                                                             workspace: Workspace) -> None:
    with pytest.raises(OutputPathError, match="no --output_path: a v2 job's invocation chooses where"):
        context.output_path("extracted", "workspaceblobstore")
    assert not workspace.sent("GET", "/jobs")


def test_a_superseded_run_says_so_on_both_runs(context: azureml_v2_context.AzureMLV2Context,
                                               tracking: tuple[MlflowClient, str, str], workspace: Workspace) -> None:
    client, parent, step = tracking
    context.superseded('"0xNEWER"')
    for run in (parent, step):
        assert client.get_run(run).data.tags[SUPERSEDED_TAG] == '"0xNEWER"'
    assert not workspace.sent("PUT", "/data/")


def test_the_step_picks_the_v2_context_only_when_the_component_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    monkeypatch.setattr(azureml_v2_context, "azureml_v2_context", lambda: made.append("v2") or "v2-context")
    assert contexts.get_context({"AZUREML_RUN_ID": "step-1", "SHEETDROP_JOB_API": "v2"}) == "v2-context"
    assert made == ["v2"]
    assert isinstance(contexts.get_context({"SHEETDROP_JOB_API": "v2"}), StandaloneContext)
