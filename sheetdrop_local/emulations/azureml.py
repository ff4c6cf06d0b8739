"""The local runner as AzureML v1 runs the extract pipeline's PythonScriptStep (LOCAL_STEP_API=azureml, the
default): the input blob mounted at its datastore path, the PipelineData folder left for the step to create, in
today's common-runtime layout or 2020's (LOCAL_MOUNT_LAYOUT), and the run's definition with its output's
datastore path (``runDefinition.dataReferences``, which the step's v1 context reads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sheetdrop_contract import contract
from sheetdrop_local.mounts import MountLayout, StepMounts, safe_join
from sheetdrop_local.runstore import Run
from sheetdrop_local.settings import LocalSettings

#: Nothing to add to the step's environment: v1 steps choose their context from AZUREML_RUN_ID alone.
STEP_ENV: dict[str, str] = {}


def mounts(settings: LocalSettings, root: Path, run: Run) -> StepMounts:
    assert run.step_run_id
    return step_mounts(settings.mount_layout, root, run.step_run_id, run.datastore_name, run.relative_path,
                       settings.output_datastore)


def run_spec(settings: LocalSettings, step_run_id: str, output_path: str) -> dict[str, Any]:
    """The part of AzureML's run definition the step reads (RunConfiguration.data_references)."""
    return {"runDefinition": {"dataReferences": {contract.OUTPUT_NAME: {
        "dataStoreName": settings.output_datastore, "mode": "Mount", "pathOnDataStore": output_path,
        "pathOnCompute": None, "overwrite": False}}}}


def step_mounts(layout: MountLayout, root: Path, step_run_id: str, input_datastore: str, relative_path: str,
                output_datastore: str) -> StepMounts:
    if layout == "legacy":
        base = root / "mounts"
        input_file = safe_join(base / input_datastore, relative_path)
        output_dir = base / output_datastore / contract.output_relative_path(step_run_id)
        env = {}
        roots: tuple[Path, ...] = (base,)
    else:
        job = root / "cr" / "j" / step_run_id
        work = job / "cap" / "data-capability" / "wd"
        input_file = safe_join(work / contract.INPUT_PARAMETER, relative_path)
        output_dir = work / contract.OUTPUT_NAME
        env = {"AZUREML_CR_DATA_CAPABILITY_PATH": str(work)}
        roots = (root / "cr",)
    env |= {f"AZUREML_DATAREFERENCE_{contract.INPUT_PARAMETER}": str(input_file),
            f"AZUREML_DATAREFERENCE_{contract.OUTPUT_NAME}": str(output_dir)}
    return StepMounts(input_file, output_dir, env, roots)
