"""Under the local runner: the run file the runner hands over in ``SHEETDROP_LOCAL_RUN`` says what AzureML's
run would (the run id, the output's place in v1's run definition or a v2 job's outputs, the previous versions),
and registrations go back to the runner, which applies them once the output has reached the output datastore."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sheetdrop_contract.contract import Registration, fed_by, resolve_output, resolve_output_v2

LOCAL_RUN_ENV = "SHEETDROP_LOCAL_RUN"


def open_context(env: Mapping[str, str]) -> LocalContext | None:
    run_file = env.get(LOCAL_RUN_ENV)
    return LocalContext(Path(run_file)) if run_file else None


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
