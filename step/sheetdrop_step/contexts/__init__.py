"""Where the step reports to: one plug-in per place a step runs, chosen when the step starts.

Each plug-in is a module here with ``open_context(env)``: the context when the step runs there, else None,
deciding from its environment without importing anything heavy first. :data:`CONTEXTS` asks them in order;
run by hand, the step only prints (:mod:`standalone`). Adding a place is its module plus one line below.

Each context gives the credential the step reads its input with, tells the step where its output lives on its
datastore when the invocation did not (v1: from the run, never from the mount path, which depends on the
runtime: docs/azureml.md, "Where the step writes"), registers the dataset versions, records a run that
ended superseded, and, in a batch run, each version's outcome; for table-mode folders it opens the output
datastore's container, where table manifests are committed.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any, Protocol

from sheetdrop_contract.batch import PinnedVersion, VersionOutcome
from sheetdrop_contract.contract import Registration

#: In the order asked: the local runner's (it says so explicitly), then AzureML v2's, then v1's.
CONTEXTS = (
    "sheetdrop_step.contexts.local",
    "sheetdrop_step.contexts.azureml_v2",
    "sheetdrop_step.contexts.azureml",
)


class StepContext(Protocol):
    #: The pipeline run's id: what the Function logged, the claim holds and datasets are tagged with.
    run_id: str
    #: How often reading the input is retried when storage does not answer.
    storage_retries: int

    def start(self, source: dict[str, str]) -> None:
        """Tag the run with the blob version it reads, first thing (run history is searched by it)."""
        ...

    def start_batch(self, versions: list[PinnedVersion]) -> None:
        """A batch run's first thing: tag it so that run history finds it by any of its versions."""
        ...

    def storage_credential(self) -> Any:
        """What the input blob is read with (sheetdrop_step.source.fetch)."""
        ...

    def output_path(self, name: str, datastore: str) -> str:
        """The output's path on its datastore when the invocation did not say (see :func:`contract.resolve_output`)."""
        ...

    def previous_tags(self, name: str) -> dict[str, str] | None:
        """The tags of the dataset's latest version, if it has one."""
        ...

    def previous_names(self, base: str) -> list[str]:
        """Datasets whose latest version came from a workbook named ``base``."""
        ...

    def per_file_versions(self, base: str) -> list[dict[str, Any]]:
        """Every per-file version of the datasets a workbook named ``base`` feeds, oldest first, each its
        ``name``, ``relative_path`` (on the output datastore) and ``tags``: where a folder switched to table mode
        starts its tables from (sheetdrop_step.tables)."""
        ...

    def output_container(self, datastore: str) -> Any:
        """The storage container (azure-storage-blob ``ContainerClient``) behind ``datastore``: where table
        manifests are committed and switched folders' per-file outputs are read."""
        ...

    def log_metric(self, name: str, value: float | int | str) -> None: ...

    def register(self, registration: Registration) -> str:
        """Register a dataset version; return how to refer to it (``name:version`` or a note)."""
        ...

    def record_outcome(self, outcome: VersionOutcome) -> None:
        """How one version of a batch ended, where the run keeps it (beside the batch's ``outcomes.jsonl``)."""
        ...

    def complete(self) -> None: ...

    def superseded(self, newer_etag: str) -> None:
        """The run ends having registered nothing: its blob version was replaced by ``newer_etag``."""
        ...


def get_context(env: Mapping[str, str] | None = None) -> StepContext:
    from sheetdrop_step.contexts.standalone import StandaloneContext

    env = os.environ if env is None else env
    for module in CONTEXTS:
        context = importlib.import_module(module).open_context(env)
        if context is not None:
            return context
    return StandaloneContext()
