"""Build the extract pipeline's AzureML objects (azureml-core + azureml-pipeline, SDK v1).

Every name and the step's argument list come from :mod:`pipeline.contract`, the
same data the local runner uses. Building needs no workspace connection of its
own: the workspace-bound pieces (compute target, datastores, the workflow
provider) are handed in, so :mod:`pipeline.publish` passes live ones and the
structure tests pass offline ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azureml.core import Environment
from azureml.core.conda_dependencies import CondaDependencies
from azureml.core.runconfig import RunConfiguration
from azureml.pipeline.core import Pipeline, PipelineData, PipelineParameter
from azureml.pipeline.steps import PythonScriptStep

from pipeline import snapshot
from sheetdrop_contract import contract

STEP_REQUIREMENTS = snapshot.STEP_DIR / "requirements.txt"
ENVIRONMENT_NAME = "sheetdrop-extract"
#: The step's interpreter; the same minor version the project and its tests use.
PYTHON_VERSION = "3.11"
#: What the step needs only inside AzureML (sheetdrop_step/contexts/azureml.py): the run context and
#: Dataset.Tabular, which needs azureml-dataprep. Kept out of step/requirements.txt because
#: the local runner installs that file and must not pull azureml.
AZUREML_STEP_PACKAGES = ("azureml-core>=1.57", "azureml-dataset-runtime>=1.57")

#: A compute target object, its name on the workspace, or ``(name, "AmlCompute")``, which
#: PythonScriptStep accepts without looking the target up.
ComputeTargetRef = Any


@dataclass(frozen=True)
class StepParts:
    """The step with its parameters and output, kept so callers and tests need not dig in the graph."""

    step: PythonScriptStep
    input_account_parameter: PipelineParameter
    dataset_name_parameter: PipelineParameter
    source_parameter: PipelineParameter
    read_options_parameter: PipelineParameter
    output: PipelineData


@dataclass(frozen=True)
class ExtractPipeline(StepParts):
    pipeline: Pipeline
    environment: Environment


def build_environment(requirements: Path = STEP_REQUIREMENTS, name: str = ENVIRONMENT_NAME) -> Environment:
    """The step's AzureML Environment, from step/requirements.txt (not the Function's)."""
    # Not Environment.from_pip_requirements: it copies comment lines into the conda specification as
    # if they were packages. Not CondaDependencies.create: it adds --find-links/--extra-index-url options.
    # The default CondaDependencies already carries azureml-defaults (run history, mounts).
    dependencies = CondaDependencies()
    dependencies.set_python_version(PYTHON_VERSION)
    for package in [*snapshot.read_requirements(requirements), *AZUREML_STEP_PACKAGES]:
        dependencies.add_pip_package(package)
    # _skip_defaults: a plain Environment(name) carries an EXAMPLE_ENV_VAR into every run.
    environment = Environment(name=name, _skip_defaults=True)
    environment.python.conda_dependencies = dependencies
    return environment


def build_runconfig(environment: Environment) -> RunConfiguration:
    """The step's run configuration: its environment. Its settings are arguments (build_step_parts), as in v2."""
    runconfig = RunConfiguration()
    runconfig.environment = environment
    return runconfig


def build_step_parts(
    *,
    compute_target: ComputeTargetRef,
    environment: Environment,
    output_datastore: Any,
    source_directory: Path,
    step_settings: Mapping[str, str] | None = None,
) -> StepParts:
    """The PythonScriptStep with its parameters and output; no Pipeline (no workspace) needed.
    ``source_directory``: the step's snapshot as :func:`pipeline.snapshot.assemble` made it. ``step_settings``:
    values for ``contract.STEP_SETTING_NAMES`` (limits, hidden sheets), written as ``--setting NAME=VALUE``
    arguments (other keys are ignored), so the published module shows them, as v2's command does.

    No data input: the step reads the blob version it is given itself, by etag (a DataPath mount reads whatever
    the blob holds when it is read, and its path would carry the blob's name onto the command line).
    """
    # Every submission assigns its own values; the defaults (encoded as the Function encodes them) only have to
    # be well formed. Each value is one shell-inert word (contract.encode_argument).
    encode = contract.encode_argument

    def parameter(name: str, default: str) -> PipelineParameter:
        return PipelineParameter(name=name, default_value=encode(default))

    input_account_parameter = parameter(contract.INPUT_ACCOUNT_PARAMETER, contract.PLACEHOLDER_INPUT_ACCOUNT)
    dataset_name_parameter = parameter(contract.DATASET_NAME_PARAMETER, contract.PLACEHOLDER_DATASET_NAME)
    source_parameter = parameter(contract.SOURCE_PARAMETER, contract.PLACEHOLDER_SOURCE)
    read_options_parameter = parameter(contract.READ_OPTIONS_PARAMETER, contract.PLACEHOLDER_READ_OPTIONS)
    output = PipelineData(contract.OUTPUT_NAME, datastore=output_datastore)

    step = PythonScriptStep(
        name=contract.STEP_NAME,
        script_name=contract.SCRIPT_NAME,
        source_directory=str(source_directory),
        arguments=contract.step_arguments(
            input_account=input_account_parameter,
            output_extract=output,
            # The step checks its run's output reference against this name, so it must be the
            # output datastore's own name, not a parameter a caller could set to something else.
            output_datastore=encode(output_datastore.name),
            dataset_name=dataset_name_parameter,
            source_version=source_parameter,
            read_options=read_options_parameter,
            settings=step_settings,
        ),
        outputs=[output],
        compute_target=compute_target,
        runconfig=build_runconfig(environment),
        # An overwritten blob keeps its path but not its content: a cached result would be stale.
        allow_reuse=False,
    )
    return StepParts(step, input_account_parameter, dataset_name_parameter, source_parameter,
                     read_options_parameter, output)


def build_pipeline(
    workspace: Any,
    *,
    compute_target: ComputeTargetRef,
    environment: Environment,
    output_datastore: Any,
    source_directory: Path,
    step_settings: Mapping[str, str] | None = None,
    description: str = "sheetdrop: Excel workbook -> parquet -> registered datasets",
    _workflow_provider: Any = None,
    _service_endpoint: str | None = None,
) -> ExtractPipeline:
    """Build the one-step extract pipeline.

    ``_workflow_provider``/``_service_endpoint`` are the SDK's own Pipeline hooks; only tests
    pass them (to build against the SDK's dry-run service caller instead of the service).
    """
    parts = build_step_parts(
        compute_target=compute_target,
        environment=environment,
        output_datastore=output_datastore,
        step_settings=step_settings,
        source_directory=source_directory,
    )
    pipeline = Pipeline(
        workspace=workspace,
        steps=[parts.step],
        description=description,
        default_datastore=output_datastore,
        _workflow_provider=_workflow_provider,
        _service_endpoint=_service_endpoint,
    )
    return ExtractPipeline(**vars(parts), pipeline=pipeline, environment=environment)
