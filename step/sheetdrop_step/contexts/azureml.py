"""The step's context inside an AzureML v1 run: run history, the workspace's datastores, Dataset registration.

azureml-core is imported only when AzureML started the process (``AZUREML_RUN_ID`` is set); whether it is
really an AzureML run is decided by ``Run.get_context()`` itself, which answers an offline run otherwise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from sheetdrop_contract.contract import SUPERSEDED_TAG, Registration, fed_by, resolve_output
from sheetdrop_step import source


def open_context(env: Mapping[str, str]) -> AzureMLContext | None:
    # AzureML sets AZUREML_RUN_ID for every run it starts; only then is azureml imported.
    if not env.get("AZUREML_RUN_ID"):
        return None
    from azureml.core import Run
    from azureml.core.run import _OfflineRun

    run = Run.get_context()
    return None if isinstance(run, _OfflineRun) else AzureMLContext(run)


class AzureMLContext:
    #: A storage blip must not lose the version: nothing resubmits a run that failed reading its input.
    storage_retries = 6

    def __init__(self, run: Any) -> None:
        self.run = run
        # The pipeline run is the step run's parent; it is what the submission made and what people
        # open in studio. A step run started on its own (no pipeline) has no parent.
        self.parent = run.parent
        # Datasets are tagged with the pipeline run's id, the one the Function logged and the claim
        # holds (locally the same: the run store's run id).
        self.run_id: str = self.parent.id if self.parent is not None else run.id
        self.workspace = run.experiment.workspace
        self._datastores: dict[str, Any] = {}
        self._registered: list[str] = []

    def start(self, source: dict[str, str]) -> None:
        if not source:
            return
        # The Function's lost-answer recovery searches run history by these tags; no SDK path sends
        # submission tags, so the step sets them itself (docs/azureml.md, "Submission body").
        if self.parent is not None:
            self.parent.set_tags(source)
            # A display name is a nicety; never fail a run over it.
            with contextlib.suppress(Exception):
                self.parent.display_name = f"extract {source['source_blob']}"
        self.run.set_tags(source)

    def previous_tags(self, name: str) -> dict[str, str] | None:
        from azureml.core import Dataset

        try:
            return dict(Dataset.get_by_name(self.workspace, name).tags or {})
        except Exception:  # the SDK raises a service error for an unknown name: no previous version
            return None

    def previous_names(self, base: str) -> list[str]:
        from azureml.core import Dataset

        try:
            datasets = Dataset.get_all(self.workspace)
        except Exception:  # only feeds a warning; never fail a run over it
            return []
        return [name for name, dataset in datasets.items() if fed_by(name, dict(dataset.tags or {}), base)]

    def storage_credential(self) -> Any:
        # The input is read as the cluster's identity reads a datastore without credentials (docs/azureml.md,
        # "Role assignments": Storage Blob Data Reader on the input account).
        return source.compute_identity()

    def output_path(self, name: str, datastore: str) -> str:
        definition = self.run.get_details().get("runDefinition") or {}
        return resolve_output(definition.get("dataReferences"), name, self.run.id, datastore)

    def log_metric(self, name: str, value: float | int | str) -> None:
        self.run.log(name, value)

    def _datastore(self, name: str) -> Any:
        from azureml.core import Datastore

        if name not in self._datastores:
            self._datastores[name] = Datastore.get(self.workspace, name)
        return self._datastores[name]

    def register(self, registration: Registration) -> str:
        from azureml.core import Dataset

        datastore = self._datastore(registration.datastore)
        # validate=False: validating reads the datastore path, which a mounted output reaches only as
        # its files close, an uploaded one only when the step ends (docs/azureml.md, "Registering").
        dataset = Dataset.Tabular.from_parquet_files(path=(datastore, registration.relative_path), validate=False)
        registered = dataset.register(
            workspace=self.workspace,
            name=registration.name,
            description=registration.description,
            tags=registration.tags,
            create_new_version=True,
        )
        reference = f"{registered.name}:{registered.version}"
        self._registered.append(reference)
        return reference

    def complete(self) -> None:
        if self.parent is not None and self._registered:
            self.parent.tag("datasets", ", ".join(self._registered))
        # Metrics are batched in the background; the process may exit right after the step returns.
        self.run.flush()

    def superseded(self, newer_etag: str) -> None:
        # AzureML has no such status: the job completes, and its tag says why it registered nothing.
        for run in (self.parent, self.run):
            if run is not None:
                run.tag(SUPERSEDED_TAG, newer_etag)
        self.run.flush()
