"""App settings, read from the environment once and validated.

Nothing is read at import time: the Functions host sets app settings before the
first invocation, and tests set their own. ``get_settings()`` caches the first
successful read; ``load_settings(env)`` reads a given mapping.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Azurite's published development account. It is not a secret (it is the same on every
#: machine) and it is only ever a *local* default: the cloud configuration uses identities.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

#: The blob trigger's ``connection``: an identity-based prefix (INPUT_STORAGE__blobServiceUri …)
#: in Azure, or a connection string in INPUT_STORAGE itself locally.
CONNECTION = "INPUT_STORAGE"
BACKENDS = ("local", "azureml")


class SettingsError(ValueError):
    """A missing or invalid app setting; the message names the setting and how to fix it."""


def azurite_connection_string(host: str = "127.0.0.1", blob_port: int = 10000, queue_port: int = 10001) -> str:
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/{AZURITE_ACCOUNT};"
        f"QueueEndpoint=http://{host}:{queue_port}/{AZURITE_ACCOUNT};"
    )


@dataclass(frozen=True)
class StorageSettings:
    """How to reach the input storage account: a connection string or an account URL + identity."""

    # repr=False: a connection string may carry an account key, and settings end up in logs.
    connection_string: str | None = field(default=None, repr=False)
    account_url: str | None = None
    client_id: str | None = None
    #: Storage SDK retries per request (exponential backoff: about 3, 4, 6, 10 s for the default 4).
    retry_total: int = 4

    def describe(self) -> str:
        # Never the connection string itself: it may carry a key.
        return self.account_url or "connection string from INPUT_STORAGE"


@dataclass(frozen=True)
class Settings:
    input_container: str
    backend: str
    input_datastore: str
    output_datastore: str
    experiment_name: str
    storage: StorageSettings
    state_dir: Path
    local_output_container: str
    claims_container: str
    claim_stale_seconds: float
    claim_max_failures: int
    # Every setting as read, for backends that need more; not part of identity (it is a dict).
    env: Mapping[str, str] = field(compare=False, hash=False, repr=False)

    def local_container_for(self, datastore: str) -> str:
        """The Azurite container that plays a datastore's part in the embedded default."""
        containers = {self.input_datastore: self.input_container, self.output_datastore: self.local_output_container}
        if datastore not in containers:
            raise SettingsError(
                f"datastore {datastore!r} is not one of the local datastores "
                f"({', '.join(sorted(containers))}); set INPUT_DATASTORE / OUTPUT_DATASTORE")
        return containers[datastore]

    def require(self, name: str, hint: str) -> str:
        """A setting only some backends need, read on demand with the same kind of error."""
        return _required(self.env, name, hint)


def _required(env: Mapping[str, str], name: str, hint: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"app setting {name} is not set: {hint}")
    return value


def _name(env: Mapping[str, str], name: str, default: str, pattern: str = "container") -> str:
    value = env.get(name, default).strip() or default
    if pattern == "datastore" and not re.fullmatch(r"[A-Za-z0-9_]{1,255}", value):
        raise SettingsError(f"app setting {name}={value!r} is not a datastore name (letters, digits and _)")
    if pattern == "experiment" and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}", value):
        raise SettingsError(
            f"app setting {name}={value!r} is not an experiment name (letters, digits, _ and -, "
            "starting with a letter or digit)")
    if pattern == "container":
        ok = 3 <= len(value) <= 63 and value.replace("-", "").isalnum() and value == value.lower() \
            and not value.startswith("-") and "--" not in value
        if not ok:
            raise SettingsError(
                f"app setting {name}={value!r} is not a valid container name "
                "(3-63 lowercase letters, digits and single hyphens)")
    return value


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise SettingsError(f"app setting {name}={raw!r} is not a number") from None
    if value < minimum:
        raise SettingsError(f"app setting {name}={raw!r} must be at least {minimum:g}")
    return value


def _storage(env: Mapping[str, str], backend: str) -> StorageSettings:
    retries = int(_number(env, "STORAGE_RETRY_TOTAL", 4, minimum=0))
    if env.get(CONNECTION, "").strip():
        return StorageSettings(connection_string=env[CONNECTION].strip(), retry_total=retries)
    url = env.get(f"{CONNECTION}__blobServiceUri", "").strip() or env.get(f"{CONNECTION}__serviceUri", "").strip()
    if url:
        return StorageSettings(account_url=url, client_id=env.get(f"{CONNECTION}__clientId") or None,
                               retry_total=retries)
    if backend == "local":
        # The Azurite that `sheetdrop host --azurite` starts, on the same ports.
        ports = {"blob_port": int(_number(env, "AZURITE_BLOB_PORT", 10000, minimum=1)),
                 "queue_port": int(_number(env, "AZURITE_QUEUE_PORT", 10001, minimum=1))}
        return StorageSettings(connection_string=azurite_connection_string(**ports), retry_total=retries)
    raise SettingsError(
        f"app setting {CONNECTION}__blobServiceUri is not set: set it to the input storage account's "
        f"blob endpoint (https://<account>.blob.core.windows.net) and grant the Function's identity "
        f"'Storage Blob Data Owner' on it")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    backend = env.get("SHEETDROP_BACKEND", "local").strip().lower() or "local"
    if backend not in BACKENDS:
        raise SettingsError(f"app setting SHEETDROP_BACKEND={backend!r} is not one of {', '.join(BACKENDS)}")
    return Settings(
        input_container=_name(env, "INPUT_CONTAINER", "input"),
        backend=backend,
        input_datastore=_name(env, "INPUT_DATASTORE", "sheetdrop_input", pattern="datastore"),
        output_datastore=_name(env, "OUTPUT_DATASTORE", "workspaceblobstore", pattern="datastore"),
        experiment_name=_name(env, "EXPERIMENT_NAME", "sheetdrop-extract", pattern="experiment"),
        storage=_storage(env, backend),
        state_dir=Path(env.get("SHEETDROP_STATE_DIR", ".sheetdrop")).resolve(),
        local_output_container=_name(env, "LOCAL_OUTPUT_CONTAINER", "azureml-blobstore"),
        claims_container=_name(env, "CLAIMS_CONTAINER", "sheetdrop-claims"),
        # Longer than the Function timeout (host.json functionTimeout, 5 min), so a live invocation
        # is never mistaken for a dead one.
        claim_stale_seconds=_number(env, "CLAIM_STALE_SECONDS", 900, minimum=1),
        # Matches host.json's poisonBlobThreshold, so the claim is poisoned when the host gives up.
        claim_max_failures=int(_number(env, "CLAIM_MAX_FAILURES", 3, minimum=1)),
        env=env,
    )


@functools.cache
def get_settings() -> Settings:
    return load_settings()
