"""`sheetdrop smoke`: prove a real deployment after `azd up` — drop a workbook, find its run as the Function does,
check its datasets, read one back, time every stage, and settle each item of the docs' "What only a real workspace
confirms" (:mod:`.command`).

What differs per backend is a plug-in here, named by its SHEETDROP_BACKEND value, beside the backend's plug-ins on
the other sides (submit, step context, publisher, local emulation). Each offers ``NOUN``, ``ROUNDS`` (the uploads,
round by round), ``ITEMS`` (its doc's item keys, in order) and ``open_checks(ctx)`` (reading its runs, datasets and
datastores, deciding its items, cleaning up). Adding one is its module plus one line below.
"""

from __future__ import annotations

import importlib
from types import ModuleType

CHECKS = {
    "azureml": "sheetdrop_local.smoke.azureml",  # v1: a PipelineEndpoint run, tabular datasets (docs/azureml.md)
    "azureml-v2": "sheetdrop_local.smoke.azureml_v2",  # v2: batch jobs, data assets (docs/azureml-v2.md)
}


def checks(backend: str) -> ModuleType:
    return importlib.import_module(CHECKS[backend])
