"""The extract pipeline as the SDK builds and publishes it, without a workspace connection.

Pipeline objects are built by pipeline.build with real SDK classes; what the SDK would
send to the service is captured by its own dry-run service caller (azureml-pipeline-core's
DryRunServiceCaller), so the assertions are on the module, graph and endpoint entities.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from azureml.data.azure_storage_datastore import AzureBlobDatastore
from azureml.data.datapath import DataPath, DataPathComputeBinding
from azureml.pipeline.core import PipelineData, PipelineParameter
from azureml.pipeline.core._aeva_provider import _AevaWorkflowProvider
from azureml.pipeline.core._restclients.aeva.dryrun_service_caller import DryRunServiceCaller

from pipeline import build, publish, snapshot
from sheetdrop_contract import contract

COMPUTE = ("sheetdrop-cpu", "AmlCompute")


class SnapshotUploader:
    """Stands in for the snapshot upload (a storage call); remembers what would be uploaded."""

    def __init__(self) -> None:
        self.directories: list[str] = []

    def upload(self, directory: str) -> str:
        self.directories.append(directory)
        return f"snapshot-{len(self.directories)}"


@pytest.fixture
def dry_run(offline_workspace: Any, step_snapshot: Path) -> dict[str, Any]:
    caller = DryRunServiceCaller()
    uploader = SnapshotUploader()
    provider = _AevaWorkflowProvider(caller, uploader, offline_workspace)
    return {
        "workspace": offline_workspace,
        "caller": caller,
        "uploader": uploader,
        "provider": provider,
        "snapshot": step_snapshot,
        "input": AzureBlobDatastore(offline_workspace, "sheetdrop_input", "input", "stsheetdrop"),
        "output": AzureBlobDatastore(offline_workspace, "workspaceblobstore", "azureml-blobstore-1", "stmlws"),
    }


def build_it(dry_run: dict[str, Any], step_settings: dict[str, str] | None = None) -> build.ExtractPipeline:
    return build.build_pipeline(
        dry_run["workspace"], compute_target=COMPUTE, environment=build.build_environment(),
        input_datastore=dry_run["input"], output_datastore=dry_run["output"], step_settings=step_settings,
        source_directory=dry_run["snapshot"], _workflow_provider=dry_run["provider"])


def argument_tokens(arguments: list[Any]) -> list[str]:
    """The module's structured arguments as the service gets them, in one comparable form."""
    tokens = []
    for argument in arguments:
        tokens.append(argument.value if argument.value_type == "Literal"
                      else f"<{argument.value_type}:{argument.value}>")
    return tokens


def test_parameters_output_and_step(dry_run: dict[str, Any]) -> None:
    built = build_it(dry_run)

    # The DataPath parameter, its default and its mount binding.
    assert isinstance(built.input_parameter, PipelineParameter)
    assert built.input_parameter.name == contract.INPUT_PARAMETER
    default = built.input_parameter.default_value
    assert isinstance(default, DataPath)
    assert default.datastore_name == "sheetdrop_input"
    assert default.path_on_datastore == contract.PLACEHOLDER_RELATIVE_PATH
    parameter, binding = built.input_binding
    assert parameter is built.input_parameter
    assert isinstance(binding, DataPathComputeBinding)
    assert binding._mode == "mount"

    assert built.dataset_name_parameter.name == contract.DATASET_NAME_PARAMETER
    assert built.dataset_name_parameter.default_value == contract.PLACEHOLDER_DATASET_NAME

    assert isinstance(built.output, PipelineData)
    assert built.output.name == contract.OUTPUT_NAME
    assert built.output.datastore.name == "workspaceblobstore"

    step = built.step
    assert step._script_name == contract.SCRIPT_NAME
    assert step._source_directory == str(dry_run["snapshot"])
    assert step._allow_reuse is False
    assert step._runconfig.environment is built.environment
    assert set(built.pipeline.graph.params) == {contract.INPUT_PARAMETER, contract.DATASET_NAME_PARAMETER,
                                                contract.SOURCE_PARAMETER, contract.READ_OPTIONS_PARAMETER}


def test_what_the_service_would_receive(dry_run: dict[str, Any]) -> None:
    built = build_it(dry_run)
    assert built.pipeline.validate() == []
    published = built.pipeline.publish(name="sheetdrop-extract", description="test")

    caller: DryRunServiceCaller = dry_run["caller"]
    (module,) = caller._module_entities.values()
    interface = module.structured_interface
    # The step's argv is the one the local runner uses, with the SDK's placeholders where
    # AzureML substitutes mount paths and parameter values at run time.
    assert argument_tokens(interface.arguments) == contract.step_arguments(
        input_extract=f"<Input:{contract.INPUT_PARAMETER}>",
        output_extract=f"<Output:{contract.OUTPUT_NAME}>",
        output_datastore="workspaceblobstore",
        dataset_name=f"<Parameter:{contract.DATASET_NAME_PARAMETER}>",
        source_version=f"<Parameter:{contract.SOURCE_PARAMETER}>",
        read_options=f"<Parameter:{contract.READ_OPTIONS_PARAMETER}>",
    )
    (step_input,) = interface.inputs
    assert (step_input.name, step_input.data_store_mode) == (contract.INPUT_PARAMETER, "mount")
    outputs = {o.name: o for o in interface.outputs if not o.skip_processing}
    assert set(outputs) == {contract.OUTPUT_NAME}
    assert outputs[contract.OUTPUT_NAME].data_store_name == "workspaceblobstore"
    assert outputs[contract.OUTPUT_NAME].data_store_mode == "mount"
    assert module.is_deterministic is False  # allow_reuse=False as the service sees it
    assert dry_run["uploader"].directories == [str(dry_run["snapshot"])]

    pipeline_entity = caller._pipeline_entities[published.id]
    graph_interface = caller._graph_interfaces[pipeline_entity.graph_id]
    (datapath_parameter,) = graph_interface.data_path_parameters
    assert datapath_parameter.name == contract.INPUT_PARAMETER
    assert datapath_parameter.default_value.data_store_name == "sheetdrop_input"
    assert datapath_parameter.default_value.relative_path == contract.PLACEHOLDER_RELATIVE_PATH
    assert {p.name: p.default_value for p in graph_interface.parameters} == {
        contract.DATASET_NAME_PARAMETER: contract.PLACEHOLDER_DATASET_NAME,
        contract.SOURCE_PARAMETER: contract.PLACEHOLDER_SOURCE,
        contract.READ_OPTIONS_PARAMETER: contract.PLACEHOLDER_READ_OPTIONS}


def test_environment_from_the_step_requirements() -> None:
    environment = build.build_environment()
    pip = list(environment.python.conda_dependencies.pip_packages)
    for requirement in snapshot.read_requirements():
        assert requirement in pip
    assert not any(p.startswith("#") or p.startswith("--") for p in pip)
    assert {"azureml-core>=1.57", "azureml-dataset-runtime>=1.57"} <= set(pip)
    assert f"python={build.PYTHON_VERSION}" in list(environment.python.conda_dependencies.conda_packages)


def test_step_settings_reach_the_serialized_graph(dry_run: dict[str, Any]) -> None:
    """What the service gets: the step node's run configuration, as the SDK serializes it."""
    settings = {"SHEETDROP_MAX_CELLS": "1000000", "SHEETDROP_INCLUDE_HIDDEN": "1", "SHEETDROP_MAX_FILE_MB": "64",
                "SHEETDROP_READER_MEMORY_MB": "2048", "SHEETDROP_READER_TIMEOUT_S": "120",
                "INPUT_STORAGE": "secret", "PATH": "/x"}
    published = build_it(dry_run, step_settings=settings).pipeline.publish(name="sheetdrop-extract")

    caller: DryRunServiceCaller = dry_run["caller"]
    graph = caller._graph_entities[caller._pipeline_entities[published.id].graph_id]
    (node,) = graph.module_nodes
    runconfig = json.loads(node.runconfig)
    expected = {k: v for k, v in settings.items() if k in contract.STEP_SETTING_NAMES}
    assert set(expected) == set(contract.STEP_SETTING_NAMES)
    assert runconfig["environmentVariables"] == expected
    # Nothing rides on the deprecated Environment.environment_variables (nor the SDK's example default).
    assert not runconfig["environment"].get("environmentVariables")


def test_publishing_twice_keeps_one_endpoint(dry_run: dict[str, Any]) -> None:
    first = publish.publish_behind_endpoint(dry_run["workspace"], build_it(dry_run).pipeline,
                                            _workflow_provider=dry_run["provider"])
    second = publish.publish_behind_endpoint(dry_run["workspace"], build_it(dry_run).pipeline,
                                             _workflow_provider=dry_run["provider"])

    assert first.created is True
    assert second.created is False
    assert second.endpoint_id == first.endpoint_id
    assert second.pipeline_id != first.pipeline_id
    # The dry-run caller files each endpoint under its name and its id: one entity either way.
    endpoints = {e.id: e for e in dry_run["caller"]._pipeline_endpoint_entities.values()}
    assert list(endpoints) == [first.endpoint_id]
    (entity,) = endpoints.values()
    assert entity.name == publish.DEFAULT_ENDPOINT_NAME
    versions = {v.version: v.pipeline_id for v in entity.pipeline_version_list}
    assert versions[entity.default_version] == second.pipeline_id
