"""Builds and publishes the step to AzureML: one publisher per backend, never deployed with the Function.

Every name and argument comes from the step's contract, ``sheetdrop_contract.contract``, which the Function
and the local runner read too; the step's source is the snapshot ``pipeline.snapshot`` assembles. Each
publisher runs in its own virtual environment (the AzureML SDKs pin what the Function cannot use);
``sheetdrop publish [--backend NAME]`` starts it there. Adding one is its module plus one line below.
"""

from __future__ import annotations

from typing import NamedTuple


class Publisher(NamedTuple):
    module: str  # run as `python -m <module> ARGS`
    venv: str  # the checkout's virtual environment it runs in
    setup: str  # the make target that builds that environment


#: SHEETDROP_BACKEND -> its publisher.
PUBLISHERS = {
    "azureml": Publisher("pipeline.publish", ".venv-aml", "setup-aml"),  # SDK v1: pipeline + PipelineEndpoint
    "azureml-v2": Publisher("pipeline.v2.publish", ".venv-aml2", "setup-aml2"),  # SDK v2: components + batch endpoint
}
