"""The embedded default's settings: the Function's own (``sheetdrop.settings``, read by the same
readers) plus what only the local stand-ins need. Locally the backend defaults to ``local`` and the
storage to the Azurite that ``sheetdrop host --azurite`` starts.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sheetdrop.settings import CONNECTION, Settings, SettingsError, container_name, load_settings, number, text
from sheetdrop_local.azurite import azurite_connection_string
from sheetdrop_local.emulations import EMULATIONS
from sheetdrop_local.mounts import MOUNT_LAYOUTS, MountLayout


@dataclass(frozen=True)
class LocalSettings(Settings):
    state_dir: Path
    #: The Azurite container that plays the output datastore's part.
    local_output_container: str
    azurite_blob_port: int
    azurite_queue_port: int
    azurite_table_port: int
    #: How long the local runner lets one step run.
    step_timeout: float
    #: Where the runner mounts a step's data: today's AzureML layout, or the 2020 one.
    mount_layout: MountLayout
    #: Which AzureML step the local runner reproduces (sheetdrop_local.emulations): azureml (v1: runDefinition,
    #: PipelineData) or azureml-v2 (v2: the job's outputs, INPUT_<name> mounts).
    step_api: str
    #: The local studio's port and address (loopback unless told otherwise).
    ui_port: int
    ui_bind: str
    #: Host names the studio answers to besides localhost and IP addresses (a non-loopback bind's).
    ui_hosts: tuple[str, ...]

    def local_container_for(self, datastore: str) -> str:
        """The Azurite container that plays a datastore's part in the embedded default."""
        containers = {self.input_datastore: self.input_container, self.output_datastore: self.local_output_container}
        if datastore not in containers:
            raise SettingsError(
                f"datastore {datastore!r} is not one of the local datastores "
                f"({', '.join(sorted(containers))}); set INPUT_DATASTORE / OUTPUT_DATASTORE")
        return containers[datastore]

    def function_env(self) -> dict[str, str]:
        """What the dev host adds to the Function's environment, as local.settings.json would."""
        env = {"SHEETDROP_BACKEND": self.backend, "INPUT_CONTAINER": self.input_container}
        if self.storage.connection_string:
            env[CONNECTION] = self.storage.connection_string
        return env


def load_local_settings(env: Mapping[str, str] | None = None) -> LocalSettings:
    env = dict(os.environ if env is None else env)
    ports = {name.lower(): number(env, name, default, minimum=1, kind=int) for name, default in (
        ("AZURITE_BLOB_PORT", 10000), ("AZURITE_QUEUE_PORT", 10001), ("AZURITE_TABLE_PORT", 10002))}
    if not env.get("SHEETDROP_BACKEND", "").strip():
        env["SHEETDROP_BACKEND"] = "local"
    if not any(key == CONNECTION or key.startswith(f"{CONNECTION}__") for key in env):
        env[CONNECTION] = azurite_connection_string(ports["azurite_blob_port"], ports["azurite_queue_port"])
    app = load_settings(env)
    return LocalSettings(
        **{f.name: getattr(app, f.name) for f in dataclasses.fields(app)},
        state_dir=Path(text(env, "SHEETDROP_STATE_DIR", ".sheetdrop")).resolve(),
        local_output_container=text(env, "LOCAL_OUTPUT_CONTAINER", "azureml-blobstore", check=container_name),
        **ports,
        step_timeout=number(env, "LOCAL_STEP_TIMEOUT", 1800.0, minimum=1),
        mount_layout=text(env, "LOCAL_MOUNT_LAYOUT", "common-runtime", check=lambda value: None
                          if value in MOUNT_LAYOUTS else f"one of {', '.join(MOUNT_LAYOUTS)}"),  # type: ignore[arg-type]
        step_api=text(env, "LOCAL_STEP_API", "azureml", check=lambda value: None
                      if value in EMULATIONS else f"one of {', '.join(EMULATIONS)}"),
        ui_port=number(env, "SHEETDROP_UI_PORT", 8765, minimum=1, kind=int),
        ui_bind=text(env, "SHEETDROP_UI_BIND", "127.0.0.1"),
        ui_hosts=tuple(name.strip().lower() for name in text(env, "SHEETDROP_UI_HOSTS", "").split(",")
                       if name.strip()),
    )
