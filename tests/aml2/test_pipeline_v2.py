"""The v2 definitions (pipeline/v2/*.yml) through azure-ai-ml's own loaders, schemas and REST serializers,
offline, held against the one step contract. Publishing them to a workspace (the real MLClient, what it PUTs,
twice) is tests/aml2/test_v2_job.py."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml
from azure.ai.ml.entities import BatchEndpoint, CommandComponent, PipelineComponent
from azure.ai.ml.entities._deployment.pipeline_component_batch_deployment import PipelineComponentBatchDeployment

from pipeline.v2 import publish
from sheetdrop_contract import contract


def parts(code: Path, **overrides: Any) -> tuple[Any, Any, Any]:
    values = {"code": code, "version": "1a2b", "endpoint_name": "sheetdrop-extract", "compute": "sheetdrop-cpu",
              "output_datastore": "workspaceblobstore", "step_settings": {}} | overrides
    return publish.definitions(**values)


def test_the_component_is_the_step_contract(step_snapshot: Path) -> None:
    pipeline, _, _ = parts(step_snapshot, step_settings={"SHEETDROP_MAX_CELLS": "1000", "UNRELATED": "x"})
    assert isinstance(pipeline, PipelineComponent)
    step = pipeline.jobs["extract"].component
    assert isinstance(step, CommandComponent)
    assert pipeline._validate().passed and step._validate().passed
    # Inputs: the literal ones the invocation sets (no data input: the step reads its blob version itself).
    literals = (contract.INPUT_ACCOUNT_PARAMETER, contract.DATASET_NAME_PARAMETER, contract.SOURCE_PARAMETER,
                contract.READ_OPTIONS_PARAMETER, contract.OUTPUT_DATASTORE_PARAMETER, contract.OUTPUT_PATH_PARAMETER)
    assert {k: v.type for k, v in step.inputs.items()} == dict.fromkeys(literals, "string")
    assert {k: v.type for k, v in pipeline.inputs.items()} == {k: v.type for k, v in step.inputs.items()}
    assert {k: v.type for k, v in step.outputs.items()} == {contract.OUTPUT_NAME: "uri_folder"}
    # The argv is the contract's, option by option, each input quoted (and its value shell-inert anyway).
    argv = shlex.split(step.command)
    assert argv[:2] == ["python", contract.SCRIPT_NAME]
    options = argv[2:16:2]
    assert options == ["--input_account", "--output_extract", "--output_datastore", "--output_path", "--dataset_name",
                       "--source_version", "--read_options"]
    assert set(options) == {f"--{name}" for name in (*contract.ARGUMENTS, contract.OUTPUT_PATH_PARAMETER)}
    assert argv[3:16:2] == [
        "${{inputs.input_account}}", "${{outputs.extracted}}", "${{inputs.output_datastore}}",
        "${{inputs.output_path}}", "${{inputs.dataset_name}}", "${{inputs.source_version}}",
        "${{inputs.read_options}}"]
    # The settings: literal arguments (component environment_variables do not survive registration).
    assert argv[16:] == ["--setting", f"{contract.JOB_API_ENV}=v2", "--setting", "SHEETDROP_MAX_CELLS=1000"]
    assert not step.environment_variables
    assert step.is_deterministic is False
    assert step.code == str(step_snapshot) and (step_snapshot / contract.SCRIPT_NAME).exists()


def test_what_registers_keeps_the_settings_and_drops_nothing_we_need(step_snapshot: Path) -> None:
    """The REST forms azure-ai-ml writes for both components (what create_or_update PUTs)."""
    pipeline, _, _ = parts(step_snapshot, step_settings={"SHEETDROP_INCLUDE_HIDDEN": "yes"})
    step = pipeline.jobs["extract"].component
    spec = step._to_rest_object().properties.component_spec
    assert spec["is_deterministic"] is False and "environment_variables" not in spec
    assert spec["command"].endswith(f"--setting {contract.JOB_API_ENV}=v2 --setting SHEETDROP_INCLUDE_HIDDEN=yes")
    node = pipeline._to_rest_object().properties.component_spec["jobs"]["extract"]
    assert {name: binding["value"] for name, binding in node["inputs"].items()} == {
        name: f"${{{{parent.inputs.{name}}}}}" for name in step.inputs}
    assert node["outputs"] == {"extracted": {"value": "${{parent.outputs.extracted}}", "type": "literal"}}


def test_the_step_environment_carries_the_step_requirements() -> None:
    from pipeline.snapshot import STEP_DIR, read_requirements

    conda = yaml.safe_load((publish.HERE / "conda.yml").read_text())
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert set(read_requirements(STEP_DIR / "requirements.txt")) <= set(pip)
    assert "python=3.11" in conda["dependencies"]


def test_endpoint_and_deployment(step_snapshot: Path) -> None:
    _, endpoint, deployment = parts(step_snapshot, endpoint_name="sd-extract", compute="cpu2",
                                    output_datastore="outstore")
    assert isinstance(endpoint, BatchEndpoint) and isinstance(deployment, PipelineComponentBatchDeployment)
    assert (endpoint.name, endpoint.auth_mode) == ("sd-extract", "aad_token")
    assert (deployment.endpoint_name, deployment.type) == ("sd-extract", "pipeline")
    assert deployment.settings == {"default_compute": "cpu2", "default_datastore": "outstore",
                                   "continue_on_step_failure": False, "force_rerun": True}
    # The REST form the SDK would send for the deployment.
    rest = deployment._to_rest_object(location="westeurope")
    assert rest.properties.deployment_configuration.settings["default_datastore"] == "outstore"
    assert rest.properties.deployment_configuration.settings["force_rerun"] is True


def test_the_settings_make_another_version() -> None:
    assert publish.source_hash({}) == publish.source_hash({}) != publish.source_hash({"SHEETDROP_MAX_CELLS": "5"})


def test_the_endpoint_name_is_the_one_azd_derives_else_one_per_workspace() -> None:
    named = publish.parse_args([], {"AZUREML_BATCH_ENDPOINT_NAME": "sheetdrop-abcdefghijklm"})
    assert named.endpoint_name == "sheetdrop-abcdefghijklm"
    assert publish.parse_args([], {}).endpoint_name is None  # main() then derives it from the workspace
