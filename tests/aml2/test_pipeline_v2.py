"""The v2 definitions (pipeline/v2/*.yml) through azure-ai-ml's own loaders and schemas, offline, held
against the one step contract; and publishing twice with a recording MLClient stand-in."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from azure.ai.ml.entities import BatchEndpoint, CommandComponent, PipelineComponent
from azure.ai.ml.entities._deployment.pipeline_component_batch_deployment import PipelineComponentBatchDeployment
from azure.core.exceptions import ResourceNotFoundError

from pipeline.v2 import publish
from sheetdrop.submit.azureml_v2 import shell_safe_json
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
    # Inputs: the uri_file input and the literal ones the Function sends; one uri_folder output.
    assert {k: v.type for k, v in step.inputs.items()} == {
        contract.INPUT_PARAMETER: "uri_file", contract.DATASET_NAME_PARAMETER: "string",
        contract.SOURCE_PARAMETER: "string", contract.READ_OPTIONS_PARAMETER: "string"}
    assert {k: v.type for k, v in pipeline.inputs.items()} == {k: v.type for k, v in step.inputs.items()}
    assert {k: v.type for k, v in step.outputs.items()} == {contract.OUTPUT_NAME: "uri_folder"}
    # The argv is the contract's, option by option, bound to those inputs.
    argv = shlex.split(step.command)
    assert argv[:2] == ["python", contract.SCRIPT_NAME]
    assert argv[2::2] == [f"--{name}" for name in contract.ARGUMENTS]
    assert argv[3::2] == [
        "${{inputs.input_datapath}}", "${{outputs.extracted}}", "workspaceblobstore", "${{inputs.dataset_name}}",
        "${{inputs.source_version}}", "${{inputs.read_options}}"]
    assert step.environment_variables == {contract.JOB_API_ENV: "v2", "SHEETDROP_MAX_CELLS": "1000"}
    assert step.code == str(step_snapshot) and (step_snapshot / contract.SCRIPT_NAME).exists()


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
                                   "continue_on_step_failure": False}
    # The REST form the SDK would send for the deployment.
    rest = deployment._to_rest_object(location="westeurope")
    assert rest.properties.deployment_configuration.settings["default_datastore"] == "outstore"


def test_the_output_datastore_reaches_the_argv(step_snapshot: Path) -> None:
    pipeline, _, _ = parts(step_snapshot, output_datastore="outstore")
    argv = shlex.split(pipeline.jobs["extract"].component.command)
    assert argv[argv.index("--output_datastore") + 1] == "outstore"


def test_shell_quoting_keeps_any_blob_name_in_one_argument() -> None:
    value = shell_safe_json(contract.source_version("input", "o'brien/q1 $(x) `y`.xlsx", '"0x1"'))
    command = f"--source_version '{value}'"  # as the component's command line quotes it
    assert shlex.split(command) == ["--source_version", value]
    assert contract.parse_source_version(value)["source_blob"] == "o'brien/q1 $(x) `y`.xlsx"


@dataclass
class Poller:
    value: Any

    def result(self) -> Any:
        return self.value


@dataclass
class FakeMLClient:
    """What publish calls, recorded; components are immutable per version, as in the service."""

    components_by_version: dict[str, Any] = field(default_factory=dict)
    endpoint: Any = None
    deployments: dict[str, Any] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.components = SimpleNamespace(create_or_update=self._component)
        self.batch_endpoints = SimpleNamespace(begin_create_or_update=self._endpoint, get=self._get_endpoint)
        self.batch_deployments = SimpleNamespace(begin_create_or_update=self._deployment)

    def _component(self, component: Any) -> Any:
        key = f"{component.name}:{component.version}"
        spec = json.dumps(component._to_dict(), sort_keys=True, default=str)
        if key in self.components_by_version:
            assert self.components_by_version[key] == spec, "a version's content cannot change"
        else:
            self.calls.append(f"component {key}")
        self.components_by_version[key] = spec
        return SimpleNamespace(name=component.name, version=component.version, id=f"azureml:{key}")

    def _endpoint(self, endpoint: Any) -> Poller:
        self.calls.append(f"endpoint {endpoint.name} default={(endpoint.defaults or {}).get('deployment_name')}")
        endpoint._scoring_uri = f"https://{endpoint.name}.westeurope.inference.ml.azure.com/jobs"  # set by the service
        self.endpoint = endpoint
        return Poller(endpoint)

    def _get_endpoint(self, name: str) -> Any:
        if self.endpoint is None or self.endpoint.name != name:
            raise ResourceNotFoundError(f"batch endpoint {name} not found")
        return self.endpoint

    def _deployment(self, deployment: Any) -> Poller:
        self.calls.append(f"deployment {deployment.name} -> {deployment.component}")
        self.deployments[deployment.name] = deployment
        return Poller(deployment)


def test_publishing_twice_changes_nothing_the_second_time(step_snapshot: Path) -> None:
    client = FakeMLClient()
    version = publish.source_hash()
    first = publish.publish(client, *parts(step_snapshot, version=version))
    calls_first = list(client.calls)
    second = publish.publish(client, *parts(step_snapshot, version=version))

    assert first == second == publish.Published(version, "https://sheetdrop-extract.westeurope.inference.ml.azure.com"
                                                "/jobs", "extract")
    assert calls_first == [
        f"component sheetdrop_extract_pipeline:{version}", "endpoint sheetdrop-extract default=None",
        f"deployment extract -> azureml:sheetdrop_extract_pipeline:{version}",
        "endpoint sheetdrop-extract default=extract"]
    # Second time: no new component version; the endpoint (keeping its default) and the deployment
    # updated in place, the same scoring URI.
    assert client.calls[len(calls_first):] == [
        "endpoint sheetdrop-extract default=extract",
        f"deployment extract -> azureml:sheetdrop_extract_pipeline:{version}"]
