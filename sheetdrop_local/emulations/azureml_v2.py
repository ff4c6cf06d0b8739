"""The local runner as AzureML v2 runs the extract command component (LOCAL_STEP_API=azureml-v2): the job's
mounts under the common runtime, what the component sets in the step's environment, and the job's outputs as
the step reads them (docs/azureml-v2.md)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from sheetdrop_contract import contract
from sheetdrop_local.mounts import StepMounts, safe_join
from sheetdrop_local.runstore import Run
from sheetdrop_local.settings import LocalSettings

#: As the command component's environment sets it.
STEP_ENV = {contract.JOB_API_ENV: "v2"}


def mounts(settings: LocalSettings, root: Path, run: Run) -> StepMounts:
    assert run.step_run_id
    return step_mounts_v2(root, run.step_run_id, run.relative_path)


def run_spec(settings: LocalSettings, step_run_id: str, output_path: str) -> dict[str, Any]:
    """The part of a v2 job the step reads: its output's datastore URI (Job.outputs[name].path)."""
    uri = contract.datastore_uri(settings.output_datastore, f"{output_path}/")
    return {"job": {"name": step_run_id, "outputs": {contract.OUTPUT_NAME: {
        "type": "uri_folder", "mode": "rw_mount", "uri": uri}}}}


def step_mounts_v2(root: Path, job_name: str, relative_path: str) -> StepMounts:
    """A v2 command job's mounts under the common runtime: a ``uri_file`` input mounted as the file
    itself inside ``wd/INPUT_<input name>/``, a ``uri_folder`` output at ``wd/<output name>``, and the
    ``AZURE_ML_INPUT_<name>`` / ``AZURE_ML_OUTPUT_<name>`` variables that name them (docs/azureml-v2.md,
    "Where the step writes")."""
    work = root / "cr" / "j" / job_name / "cap" / "data-capability" / "wd"
    input_file = safe_join(work / f"INPUT_{contract.INPUT_PARAMETER}", PurePosixPath(relative_path).name or "input")
    output_dir = work / contract.OUTPUT_NAME
    env = {"AZUREML_CR_DATA_CAPABILITY_PATH": str(work),
           f"AZURE_ML_INPUT_{contract.INPUT_PARAMETER}": str(input_file),
           f"AZURE_ML_OUTPUT_{contract.OUTPUT_NAME}": str(output_dir)}
    return StepMounts(input_file, output_dir, env, (root / "cr",))
