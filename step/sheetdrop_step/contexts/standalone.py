"""Run by hand (no AzureML run, no local runner): the step converts and says what it would have registered."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from sheetdrop_contract.batch import PinnedVersion, VersionOutcome
from sheetdrop_contract.contract import Registration, output_relative_path
from sheetdrop_step import source


@dataclass
class StandaloneContext:
    """Run by hand: nothing to register with; say what would have been registered."""

    run_id: str = "standalone"
    storage_retries: int = 4

    def start(self, source: dict[str, str]) -> None:
        pass

    def start_batch(self, versions: list[PinnedVersion]) -> None:
        pass

    def record_outcome(self, outcome: VersionOutcome) -> None:
        pass  # the step prints each version's outcome as it ends

    def storage_credential(self) -> Any:
        # Run by hand: the account's connection string in the Azure CLI's own variable, else whoever runs it
        # (az login, or the AZURE_* variables).
        connection = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
        if connection:
            return source.shared_key(connection)
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()

    def output_path(self, name: str, datastore: str) -> str:
        return output_relative_path(self.run_id, name)

    def previous_tags(self, name: str) -> dict[str, str] | None:
        return None

    def previous_names(self, base: str) -> list[str]:
        return []

    def per_file_versions(self, base: str) -> list[dict[str, Any]]:
        return []

    def output_container(self, datastore: str) -> Any:
        # A table version is a manifest on the output datastore, merged with the ones before it.
        raise RuntimeError("a table-mode folder (\"versions\": \"table\") needs the output datastore its tables "
                           "live on: run the step under the local runner or AzureML")

    def log_metric(self, name: str, value: float | int | str) -> None:
        print(f"metric {name}={value}")

    def register(self, registration: Registration) -> str:
        print(f"not registered (no AzureML run, no local runner): {registration.name} -> "
              f"{registration.datastore}/{registration.relative_path}")
        return f"{registration.name} (not registered)"

    def complete(self) -> None:
        pass

    def superseded(self, newer_etag: str) -> None:
        pass
