"""Which AzureML step the local runner reproduces: one plug-in per cloud step contract, named by the
SHEETDROP_BACKEND value of the cloud path it stands in for (LOCAL_STEP_API).

Each plug-in module offers ``mounts(settings, root, run)`` (where the step writes its output, and the variables
the cloud sets for it), ``run_spec(settings, step_run_id, output_path)`` (the part of the run the step reads,
written to its run file), ``SETTINGS`` (what the publisher writes on the step's command line besides the step
settings) and ``OUTPUT_CHOSEN_AT_INVOCATION`` (whether the step is told where its output goes). Adding one is
its module plus one line below.
"""

from __future__ import annotations

import importlib
from types import ModuleType

EMULATIONS = {
    "azureml": "sheetdrop_local.emulations.azureml",  # v1: a PythonScriptStep in the published pipeline
    "azureml-v2": "sheetdrop_local.emulations.azureml_v2",  # v2: a command component in a batch deployment
}


def emulation(step_api: str) -> ModuleType:
    return importlib.import_module(EMULATIONS[step_api])
