"""Where the step reports to: an AzureML run, the local runner, or nobody.

The step asks for its context once. Inside AzureML that is the run from ``Run.get_context()``;
under the local runner it is the run file the runner hands over in ``SHEETDROP_LOCAL_RUN``; run by
hand it only prints. Outside AzureML nothing of azureml is imported.

Each context tells the step where its output lives on its datastore, from the run's definition
(``runDefinition.dataReferences``, which the local runner writes in AzureML's shape) and never from
the mount path, which depends on the runtime (docs/azureml.md, "Where the step writes").
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sheetdrop_contract.contract import (
    JOB_API_ENV,
    Registration,
    fed_by,
    output_relative_path,
    resolve_output,
    resolve_output_v2,
)

LOCAL_RUN_ENV = "SHEETDROP_LOCAL_RUN"


class StepContext(Protocol):
    #: The pipeline run's id: what the Function logged, the claim holds and datasets are tagged with.
    run_id: str

    def start(self, source: dict[str, str]) -> None:
        """Tag the run with the blob version it reads, first thing (run history is searched by it)."""
        ...

    def output_path(self, name: str, datastore: str) -> str:
        """The output's path on its datastore (see :func:`contract.resolve_output`)."""
        ...

    def previous_tags(self, name: str) -> dict[str, str] | None:
        """The tags of the dataset's latest version, if it has one."""
        ...

    def previous_names(self, base: str) -> list[str]:
        """Datasets whose latest version came from a workbook named ``base``."""
        ...

    def log_metric(self, name: str, value: float | int | str) -> None: ...

    def register(self, registration: Registration) -> str:
        """Register a dataset version; return how to refer to it (``name:version`` or a note)."""
        ...

    def complete(self) -> None: ...


@dataclass
class LocalContext:
    """Under the local runner: registrations are handed back to the runner, which applies them
    to the local registry once the output has reached the output datastore."""

    run_file: Path
    run_id: str = ""
    _metrics: dict[str, float | int | str] = field(default_factory=dict)
    _registrations: list[dict[str, object]] = field(default_factory=list)

    def __post_init__(self) -> None:
        spec = json.loads(self.run_file.read_text(encoding="utf-8"))
        self.run_id = spec["run_id"]
        self._step_run_id = spec["step_run_id"]
        # A v1 run definition (runDefinition.dataReferences), or a v2 job's outputs (the local runner's
        # LOCAL_STEP_API=azureml-v2 mode writes the job in the shape the v2 step reads).
        self._data_references = spec.get("runDefinition", {}).get("dataReferences")
        self._job_outputs = spec["job"]["outputs"] if "job" in spec else None
        self._outbox = Path(spec["outbox"])
        self._previous: dict[str, dict[str, str]] = spec.get("previousVersions", {})

    def start(self, source: dict[str, str]) -> None:
        pass  # the local run store is searched by its own columns

    def output_path(self, name: str, datastore: str) -> str:
        if self._job_outputs is not None:
            return resolve_output_v2(self._job_outputs, name, self._step_run_id, datastore)
        return resolve_output(self._data_references, name, self._step_run_id, datastore)

    def previous_tags(self, name: str) -> dict[str, str] | None:
        return self._previous.get(name)

    def previous_names(self, base: str) -> list[str]:
        return [name for name, tags in self._previous.items() if fed_by(name, tags, base)]

    def log_metric(self, name: str, value: float | int | str) -> None:
        self._metrics[name] = value

    def register(self, registration: Registration) -> str:
        self._registrations.append(registration.__dict__.copy())
        return f"{registration.name} (registered by the local runner after upload)"

    def complete(self) -> None:
        payload = {"metrics": self._metrics, "registrations": self._registrations}
        tmp = self._outbox.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self._outbox)


@dataclass
class StandaloneContext:
    """Run by hand: nothing to register with; say what would have been registered."""

    run_id: str = "standalone"

    def start(self, source: dict[str, str]) -> None:
        pass

    def output_path(self, name: str, datastore: str) -> str:
        return output_relative_path(self.run_id, name)

    def previous_tags(self, name: str) -> dict[str, str] | None:
        return None

    def previous_names(self, base: str) -> list[str]:
        return []

    def log_metric(self, name: str, value: float | int | str) -> None:
        print(f"metric {name}={value}")

    def register(self, registration: Registration) -> str:
        print(f"not registered (no AzureML run, no local runner): {registration.name} -> "
              f"{registration.datastore}/{registration.relative_path}")
        return f"{registration.name} (not registered)"

    def complete(self) -> None:
        pass


def get_context() -> StepContext:
    local_run = os.environ.get(LOCAL_RUN_ENV)
    if local_run:
        return LocalContext(Path(local_run))
    # AzureML sets AZUREML_RUN_ID for every run it starts; only then is azureml imported, and the
    # run context itself decides (an offline run means we are not in AzureML after all).
    if os.environ.get("AZUREML_RUN_ID") and os.environ.get(JOB_API_ENV) == "v2":
        # A v2 job (the command component sets SHEETDROP_JOB_API=v2): MLflow and data assets.
        from sheetdrop_step.azureml_v2_context import azureml_v2_context

        return azureml_v2_context()
    if os.environ.get("AZUREML_RUN_ID"):
        from sheetdrop_step.azureml_context import azureml_context

        context = azureml_context()
        if context is not None:
            return context
    return StandaloneContext()
