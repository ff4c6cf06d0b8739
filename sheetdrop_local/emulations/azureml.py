"""The local runner as AzureML v1 runs the extract pipeline's PythonScriptStep (LOCAL_STEP_API=azureml, the
default): the PipelineData folder left for the step to create, in today's common-runtime layout or 2020's
(LOCAL_MOUNT_LAYOUT), and the run's definition with its output's datastore path (``runDefinition.dataReferences``,
which the step's v1 context reads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sheetdrop_contract import contract
from sheetdrop_local.mounts import MountLayout, StepMounts
from sheetdrop_local.runstore import Run
from sheetdrop_local.settings import LocalSettings

#: What the v1 publisher writes on the step's arguments besides the step settings: nothing (a v1 step picks its
#: context from AZUREML_RUN_ID alone).
SETTINGS: dict[str, str] = {}
#: v1's PipelineData has no path to choose: the service puts it at azureml/<step run id>/extracted.
OUTPUT_CHOSEN_AT_INVOCATION = False


def mounts(settings: LocalSettings, root: Path, run: Run) -> StepMounts:
    assert run.step_run_id
    return step_mounts(settings.mount_layout, root, run.step_run_id, settings.output_datastore)


def run_spec(settings: LocalSettings, step_run_id: str, output_path: str) -> dict[str, Any]:
    """The part of AzureML's run definition the step reads (RunConfiguration.data_references)."""
    return {"runDefinition": {"dataReferences": {contract.OUTPUT_NAME: {
        "dataStoreName": settings.output_datastore, "mode": "Mount", "pathOnDataStore": output_path,
        "pathOnCompute": None, "overwrite": False}}}}


def step_mounts(layout: MountLayout, root: Path, step_run_id: str, output_datastore: str) -> StepMounts:
    if layout == "legacy":
        output_dir = root / "mounts" / output_datastore / contract.output_relative_path(step_run_id)
        return StepMounts(output_dir, {f"AZUREML_DATAREFERENCE_{contract.OUTPUT_NAME}": str(output_dir)},
                          (root / "mounts",))
    work = root / "cr" / "j" / step_run_id / "cap" / "data-capability" / "wd"
    output_dir = work / contract.OUTPUT_NAME
    return StepMounts(output_dir, {"AZUREML_CR_DATA_CAPABILITY_PATH": str(work),
                                   f"AZUREML_DATAREFERENCE_{contract.OUTPUT_NAME}": str(output_dir)},
                      (root / "cr",))
