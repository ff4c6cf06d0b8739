"""Under the local runner: the run file the runner hands over in ``SHEETDROP_LOCAL_RUN`` says what AzureML's
run would (the run id, v1's run definition with its output's place, the previous versions), storage is the
runner's Azurite (``SHEETDROP_LOCAL_STORAGE``, a connection string with Azurite's published development key,
passed in the environment and never written down), and registrations go back to the runner, which applies
them once the output has reached the output datastore."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sheetdrop_contract.batch import PinnedVersion, VersionOutcome
from sheetdrop_contract.contract import SUPERSEDED_TAG, Registration, fed_by, resolve_output
from sheetdrop_step import source

LOCAL_RUN_ENV = "SHEETDROP_LOCAL_RUN"
LOCAL_STORAGE_ENV = "SHEETDROP_LOCAL_STORAGE"
#: The runner's own storage retries (STORAGE_RETRY_TOTAL), for the step's read of its input.
LOCAL_STORAGE_RETRIES_ENV = "SHEETDROP_LOCAL_STORAGE_RETRIES"


def open_context(env: Mapping[str, str]) -> LocalContext | None:
    run_file = env.get(LOCAL_RUN_ENV)
    if not run_file:
        return None
    return LocalContext(Path(run_file), env.get(LOCAL_STORAGE_ENV) or None,
                        storage_retries=int(env.get(LOCAL_STORAGE_RETRIES_ENV) or 4))


@dataclass
class LocalContext:
    """Under the local runner: registrations are handed back to the runner, which applies them
    to the local registry once the output has reached the output datastore."""

    run_file: Path
    #: The runner's storage, as a connection string (the step's stand-in for a managed identity).
    storage: str | None = field(default=None, repr=False)
    storage_retries: int = 4
    run_id: str = ""
    _metrics: dict[str, float | int | str] = field(default_factory=dict)
    _registrations: list[dict[str, object]] = field(default_factory=list)
    _versions: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        spec = json.loads(self.run_file.read_text(encoding="utf-8"))
        self.run_id = spec["run_id"]
        self._step_run_id = spec["step_run_id"]
        # A v1 run definition (runDefinition.dataReferences); a v2 job has none (its place comes on the argv).
        self._data_references = spec.get("runDefinition", {}).get("dataReferences")
        self._outbox = Path(spec["outbox"])
        self._previous: dict[str, dict[str, str]] = spec.get("previousVersions", {})
        self._per_file: dict[str, list[dict[str, Any]]] = spec.get("perFileVersions", {})
        #: datastore → the Azurite container that plays it (the runner's settings).
        self._containers: dict[str, str] = spec.get("containers", {})

    def start(self, source: dict[str, str]) -> None:
        pass  # the local run store is searched by its own columns

    def start_batch(self, versions: list[PinnedVersion]) -> None:
        pass  # the runner knows the batch's versions (its run store holds the manifest)

    def storage_credential(self) -> Any:
        if not self.storage:
            from azure.identity import DefaultAzureCredential

            return DefaultAzureCredential()
        return source.shared_key(self.storage)

    def output_path(self, name: str, datastore: str) -> str:
        return resolve_output(self._data_references, name, self._step_run_id, datastore)

    def previous_tags(self, name: str) -> dict[str, str] | None:
        return self._previous.get(name)

    def previous_names(self, base: str) -> list[str]:
        return [name for name, tags in self._previous.items() if fed_by(name, tags, base)]

    def per_file_versions(self, base: str) -> list[dict[str, Any]]:
        return self._per_file.get(base, [])

    def output_container(self, datastore: str) -> Any:
        from azure.storage.blob import ContainerClient

        if not self.storage:
            raise RuntimeError("the local runner gave no storage connection (SHEETDROP_LOCAL_STORAGE)")
        return ContainerClient.from_connection_string(self.storage, self._containers[datastore],
                                                      retry_total=self.storage_retries)

    def log_metric(self, name: str, value: float | int | str) -> None:
        self._metrics[name] = value

    def register(self, registration: Registration) -> str:
        self._registrations.append(registration.__dict__.copy())
        # As AzureML's registry answers once it has registered: a later version of a batch sees this one.
        self._previous[registration.name] = dict(registration.tags)
        return f"{registration.name} (registered by the local runner after upload)"

    def record_outcome(self, outcome: VersionOutcome) -> None:
        self._versions.append(outcome.to_json())

    def complete(self) -> None:
        self._report({"metrics": self._metrics, "registrations": self._registrations,
                      **({"versions": self._versions} if self._versions else {})})

    def superseded(self, newer_etag: str) -> None:
        self._report({"metrics": self._metrics, "registrations": [], SUPERSEDED_TAG: newer_etag})

    def _report(self, payload: dict[str, Any]) -> None:
        tmp = self._outbox.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self._outbox)
