"""The step's context inside an AzureML run: run history, the workspace's datastores, Dataset registration.

Imported by :func:`step_context.get_context` only when AzureML started the process
(``AZUREML_RUN_ID`` is set); whether it is really an AzureML run is decided by
``Run.get_context()`` itself, which answers an offline run otherwise.
"""

from __future__ import annotations

import contextlib
from typing import Any

from azureml.core import Dataset, Datastore, Run
from contract import INVOCATION_TAG, SOURCE_TAGS, Registration

#: The tags the submission puts on the pipeline run that the step carries onto its datasets.
SOURCE_TAG_KEYS = (*SOURCE_TAGS, INVOCATION_TAG)


def _is_offline(run: Any) -> bool:
    from azureml.core.run import _OfflineRun

    return isinstance(run, _OfflineRun)


class AzureMLContext:
    def __init__(self, run: Any) -> None:
        self.run = run
        # The pipeline run is the step run's parent; it is what the submission tagged and what people
        # open in studio. A step run started on its own (no pipeline) has no parent.
        self.parent = run.parent
        # Datasets are tagged with the pipeline run's id, the one the Function logged and the claim
        # holds (locally the same: the run store's run id).
        self.run_id: str = self.parent.id if self.parent is not None else run.id
        self.workspace = run.experiment.workspace
        self._datastores: dict[str, Any] = {}
        self._registered: list[str] = []
        self._source = self._read_source_tags()

    def _read_source_tags(self) -> dict[str, str]:
        tagged = self.parent.get_tags() if self.parent is not None else self.run.get_tags()
        source = {key: str(tagged[key]) for key in SOURCE_TAG_KEYS if tagged.get(key)}
        if source:
            # The step run too, so that a step opened on its own in studio says which blob it read.
            self.run.set_tags(source)
        if self.parent is not None and source.get("source_blob"):
            self.parent.tag("source_blob", source["source_blob"])
            # A display name is a nicety; never fail a run over it.
            with contextlib.suppress(Exception):
                self.parent.display_name = f"extract {source['source_blob']}"
        return source

    def source_tags(self) -> dict[str, str]:
        return dict(self._source)

    def log_metric(self, name: str, value: float | int | str) -> None:
        self.run.log(name, value)

    def _datastore(self, name: str) -> Any:
        if name not in self._datastores:
            self._datastores[name] = Datastore.get(self.workspace, name)
        return self._datastores[name]

    def register(self, registration: Registration) -> str:
        datastore = self._datastore(registration.datastore)
        dataset = Dataset.Tabular.from_parquet_files(path=(datastore, registration.relative_path))
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


def azureml_context() -> AzureMLContext | None:
    run = Run.get_context()
    if _is_offline(run):
        return None
    return AzureMLContext(run)
