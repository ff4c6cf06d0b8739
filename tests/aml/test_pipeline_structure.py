"""The extract pipeline as the SDK builds and publishes it, without a workspace connection.

Pipeline objects are built by pipeline.build with real SDK classes; what the SDK would
send to the service is captured by its own dry-run service caller (azureml-pipeline-core's
DryRunServiceCaller), so the assertions are on the module, graph and endpoint entities.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from azureml.data.azure_storage_datastore import AzureBlobDatastore
from azureml.pipeline.core import PipelineData, PipelineParameter
from azureml.pipeline.core._aeva_provider import _AevaWorkflowProvider
from azureml.pipeline.core._restclients.aeva.dryrun_service_caller import DryRunServiceCaller

from pipeline import build, publish, snapshot
from sheetdrop.submit import SubmitRequest
from sheetdrop.submit.azureml import submission_body
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
        "output": AzureBlobDatastore(offline_workspace, "workspaceblobstore", "azureml-blobstore-1", "stmlws"),
    }


def build_it(dry_run: dict[str, Any], step_settings: dict[str, str] | None = None) -> build.ExtractPipeline:
    return build.build_pipeline(
        dry_run["workspace"], compute_target=COMPUTE, environment=build.build_environment(),
        output_datastore=dry_run["output"], step_settings=step_settings,
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

    # String parameters only, each default encoded as the Function encodes a value; no DataPath.
    parameters = (built.input_account_parameter, built.dataset_name_parameter, built.source_parameter,
                  built.read_options_parameter)
    assert all(isinstance(p, PipelineParameter) for p in parameters)
    assert {p.name: p.default_value for p in parameters} == {
        contract.INPUT_ACCOUNT_PARAMETER: "https://placeholder.blob.core.windows.net",
        contract.DATASET_NAME_PARAMETER: contract.PLACEHOLDER_DATASET_NAME,
        contract.SOURCE_PARAMETER: "%7B%7D", contract.READ_OPTIONS_PARAMETER: "%7B%7D"}

    assert isinstance(built.output, PipelineData)
    assert built.output.name == contract.OUTPUT_NAME
    assert built.output.datastore.name == "workspaceblobstore"

    step = built.step
    assert step._script_name == contract.SCRIPT_NAME
    assert step._source_directory == str(dry_run["snapshot"])
    assert step._allow_reuse is False
    assert step._runconfig.environment is built.environment
    assert set(built.pipeline.graph.params) == {p.name for p in parameters}


def published_module(dry_run: dict[str, Any], step_settings: dict[str, str] | None = None) -> tuple[Any, Any]:
    """What the service would receive for the step: its module entity, and the published pipeline's graph."""
    built = build_it(dry_run, step_settings)
    assert built.pipeline.validate() == []
    published = built.pipeline.publish(name="sheetdrop-extract", description="test")
    caller: DryRunServiceCaller = dry_run["caller"]
    (module,) = caller._module_entities.values()
    return module, caller._graph_entities[caller._pipeline_entities[published.id].graph_id]


def test_what_the_service_would_receive(dry_run: dict[str, Any]) -> None:
    module, _ = published_module(dry_run)
    interface = module.structured_interface
    # The step's argv is the one the local runner uses, with the SDK's placeholders where
    # AzureML substitutes the mount path and parameter values at run time.
    assert argument_tokens(interface.arguments) == contract.step_arguments(
        input_account=f"<Parameter:{contract.INPUT_ACCOUNT_PARAMETER}>",
        output_extract=f"<Output:{contract.OUTPUT_NAME}>",
        output_datastore="workspaceblobstore",
        dataset_name=f"<Parameter:{contract.DATASET_NAME_PARAMETER}>",
        source_version=f"<Parameter:{contract.SOURCE_PARAMETER}>",
        read_options=f"<Parameter:{contract.READ_OPTIONS_PARAMETER}>",
    )
    assert not interface.inputs  # the step reads its input itself
    outputs = {o.name: o for o in interface.outputs if not o.skip_processing}
    assert set(outputs) == {contract.OUTPUT_NAME}
    assert outputs[contract.OUTPUT_NAME].data_store_name == "workspaceblobstore"
    assert outputs[contract.OUTPUT_NAME].data_store_mode == "mount"
    assert module.is_deterministic is False  # allow_reuse=False as the service sees it
    assert dry_run["uploader"].directories == [str(dry_run["snapshot"])]

    caller: DryRunServiceCaller = dry_run["caller"]
    (pipeline_entity,) = caller._pipeline_entities.values()
    graph_interface = caller._graph_interfaces[pipeline_entity.graph_id]
    assert not graph_interface.data_path_parameters
    assert {p.name: p.default_value for p in graph_interface.parameters} == {
        contract.INPUT_ACCOUNT_PARAMETER: "https://placeholder.blob.core.windows.net",
        contract.DATASET_NAME_PARAMETER: contract.PLACEHOLDER_DATASET_NAME,
        contract.SOURCE_PARAMETER: "%7B%7D", contract.READ_OPTIONS_PARAMETER: "%7B%7D"}


def test_environment_from_the_step_requirements() -> None:
    environment = build.build_environment()
    pip = list(environment.python.conda_dependencies.pip_packages)
    for requirement in snapshot.read_requirements():
        assert requirement in pip
    assert not any(p.startswith("#") or p.startswith("--") for p in pip)
    assert {"azureml-core>=1.57", "azureml-dataset-runtime>=1.57"} <= set(pip)
    assert f"python={build.PYTHON_VERSION}" in list(environment.python.conda_dependencies.conda_packages)


def test_step_settings_are_literal_arguments_of_the_registered_module(dry_run: dict[str, Any]) -> None:
    """What the service gets: the step module's own arguments (one transport for v1 and v2), not its environment."""
    settings = {"SHEETDROP_MAX_CELLS": "1000000", "SHEETDROP_INCLUDE_HIDDEN": "1", "SHEETDROP_MAX_FILE_MB": "64",
                "SHEETDROP_READER_MEMORY_MB": "2048", "SHEETDROP_READER_TIMEOUT_S": "120",
                "INPUT_STORAGE": "secret", "PATH": "/x"}
    module, graph = published_module(dry_run, settings)
    tokens = argument_tokens(module.structured_interface.arguments)
    pairs = [tokens[i + 1] for i, token in enumerate(tokens) if token == "--setting"]
    expected = {k: v for k, v in settings.items() if k in contract.STEP_SETTING_NAMES}
    assert set(expected) == set(contract.STEP_SETTING_NAMES)
    assert contract.parse_settings(pairs) == expected
    assert "secret" not in json.dumps(tokens)
    (node,) = graph.module_nodes
    runconfig = json.loads(node.runconfig)
    assert not runconfig.get("environmentVariables")
    assert not runconfig["environment"].get("environmentVariables")


#: Blob names a shell would make something of (tests/test_reliability.py runs them end to end locally).
HOSTILE = ["sales/o'brien.xlsx", "sales/$HOME $(id) ${x}.xlsx", "sales/it's $5 `now`.xlsx", "sales/#1 100%.xlsx",
           "sales/Q3 report (final).xlsx", "données/été ✓ 数据.xlsx", "sales/;|&<>*?[a]~!\\\".xlsx", "-x.xlsx"]
ECHO_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"


@pytest.mark.parametrize("name", HOSTILE)
def test_any_blob_name_reaches_the_step_intact_through_bash(dry_run: dict[str, Any], name: str) -> None:
    """The registered module's arguments with the Function's parameter values put in, joined by spaces and run by
    bash unquoted — the worst a service could do with them — or handed over as a list: the step reads the same."""
    module, _ = published_module(dry_run)
    request = SubmitRequest(
        experiment_name="sheetdrop-extract", datastore_name="sheetdrop_input", relative_path=name,
        dataset_name="sales", description="d", source_container="input", source_blob=name,
        source_etag='"0x8DC1"', read_options=json.dumps({"sheets": {"include": [name]}}),
        input_account="https://stsheetdrop.blob.core.windows.net")
    values = submission_body(request, "s-1")["ParameterAssignments"]
    argv = []
    for argument in module.structured_interface.arguments:
        if argument.value_type == "Parameter":
            argv.append(values[argument.value])
        elif argument.value_type == "Output":
            argv.append("/mnt/azureml/cr/j/step-1/cap/data-capability/wd/extracted")
        else:
            argv.append(argument.value)
    by_bash = subprocess.run(["/bin/bash", "-c", f"{sys.executable} -c '{ECHO_ARGV}' {' '.join(argv)}"],
                             capture_output=True, text=True, check=True)
    assert json.loads(by_bash.stdout) == argv
    args = contract.parse_step_arguments(argv)
    assert contract.parse_source_version(args.source_version) == contract.source_tags("input", name, '"0x8DC1"')
    assert json.loads(args.read_options) == {"sheets": {"include": [name]}}
    assert args.input_account == "https://stsheetdrop.blob.core.windows.net"


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
