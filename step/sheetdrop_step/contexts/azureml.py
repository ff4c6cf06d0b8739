"""The step's context inside an AzureML v1 run: run history, the workspace's datastores, Dataset registration.

azureml-core is imported only when AzureML started the process (``AZUREML_RUN_ID`` is set); whether it is
really an AzureML run is decided by ``Run.get_context()`` itself, which answers an offline run otherwise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from sheetdrop_contract.batch import VERSION_TAG_PREFIX, VERSION_TAG_VALUE, PinnedVersion, VersionOutcome
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


#: A reason in a metric's row is cut to this (the full one is in the batch's outcomes.jsonl).
MAX_REASON = 500
#: The run's ``datasets`` tag lists at most this many characters (a batch registers many).
MAX_DATASETS_TAG = 5000


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

    def start_batch(self, versions: list[PinnedVersion]) -> None:
        # One tag per version (its key), so that the Function's recovery finds the batch run by any of its versions,
        # whatever the service kept of the submission's tags.
        tags = {f"{VERSION_TAG_PREFIX}{version.key()}": VERSION_TAG_VALUE for version in versions}
        if self.parent is not None:
            self.parent.set_tags(tags)
            with contextlib.suppress(Exception):
                self.parent.display_name = f"extract batch of {len(versions)} versions"
        self.run.set_tags(tags)

    def record_outcome(self, outcome: VersionOutcome) -> None:
        # A row of the run's "versions" table metric: studio shows it as a table on the run.
        self.run.log_row("versions", position=outcome.position, blob=outcome.version.blob,
                         etag=outcome.version.etag, outcome=outcome.outcome, code=outcome.code or "",
                         reason=(outcome.reason or "")[:MAX_REASON], datasets=", ".join(outcome.datasets))

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

    def per_file_versions(self, base: str) -> list[dict[str, Any]]:
        # azureml-core names no earlier version's path without reading its definition back: a v1 folder switched
        # to table mode starts its tables from the workbooks converted from then on (docs/azureml.md).
        return []

    def output_container(self, datastore: str) -> Any:
        from azure.storage.blob import ContainerClient

        # The datastore's account and container, read as the cluster's identity (docs/azureml.md, "A folder as one
        # table": Storage Blob Data Contributor on the workspace storage).
        found = self._datastore(datastore)
        return ContainerClient(f"{found.protocol}://{found.account_name}.blob.{found.endpoint}", found.container_name,
                               credential=source.compute_identity())

    def register(self, registration: Registration) -> str:
        from azureml.core import Dataset

        datastore = self._datastore(registration.datastore)
        # A table version: its files, each as a (datastore, path) (one `paths` entry each in the definition).
        paths = [(datastore, path) for path in registration.files] if registration.files else \
            (datastore, registration.relative_path)
        # validate=False: validating reads the datastore path, which a mounted output reaches only as
        # its files close, an uploaded one only when the step ends (docs/azureml.md, "Registering").
        dataset = Dataset.Tabular.from_parquet_files(path=paths, validate=False)
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
            self.parent.tag("datasets", ", ".join(self._registered)[:MAX_DATASETS_TAG])
        # Metrics are batched in the background; the process may exit right after the step returns.
        self.run.flush()

    def superseded(self, newer_etag: str) -> None:
        # AzureML has no such status: the job completes, and its tag says why it registered nothing.
        for run in (self.parent, self.run):
            if run is not None:
                run.tag(SUPERSEDED_TAG, newer_etag)
        self.run.flush()
