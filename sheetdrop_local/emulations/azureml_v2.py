"""The local runner as AzureML v2 runs the extract command component (LOCAL_STEP_API=azureml-v2): the job's
output mount under the common runtime, the settings the component's command line carries, and the output's
place chosen at invocation, as the Function's v2 backend chooses it (docs/azureml-v2.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sheetdrop_contract import contract
from sheetdrop_local.mounts import StepMounts
from sheetdrop_local.runstore import Run
from sheetdrop_local.settings import LocalSettings

#: As pipeline/v2/component.yml's command line sets it.
SETTINGS = {contract.JOB_API_ENV: "v2"}
#: The invocation chooses where the output goes and hands it to the step (--output_path).
OUTPUT_CHOSEN_AT_INVOCATION = True


def mounts(settings: LocalSettings, root: Path, run: Run) -> StepMounts:
    assert run.step_run_id
    return step_mounts_v2(root, run.step_run_id)


def run_spec(settings: LocalSettings, step_run_id: str, output_path: str) -> dict[str, Any]:
    """Nothing: the v2 step asks the job nothing (a pipeline child job read back has no outputs)."""
    return {}


def step_mounts_v2(root: Path, job_name: str) -> StepMounts:
    """A v2 command job's output under the common runtime: a ``uri_folder`` output at ``wd/<output name>``, and
    the ``AZURE_ML_OUTPUT_<name>`` variable that names it (observed, docs/azureml-v2.md; the step reads neither)."""
    work = root / "cr" / "j" / job_name / "cap" / "data-capability" / "wd"
    output_dir = work / contract.OUTPUT_NAME
    env = {"AZUREML_CR_DATA_CAPABILITY_PATH": str(work), f"AZURE_ML_OUTPUT_{contract.OUTPUT_NAME}": str(output_dir)}
    return StepMounts(output_dir, env, (root / "cr",))
