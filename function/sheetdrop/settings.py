"""The Function's app settings: every one typed, validated and given its default here, and nowhere else.

Nothing is read at import time: the Functions host sets app settings before the first invocation,
and tests set their own. ``get_settings()`` caches the first successful read; ``load_settings(env)``
reads a given mapping. An invalid value raises :class:`SettingsError` naming the setting and what
is allowed. The README's "Configuration" table lists them all (a test keeps it complete).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

#: The blob trigger's ``connection``: an identity-based prefix (INPUT_STORAGE__blobServiceUri …)
#: in Azure, or a connection string in INPUT_STORAGE itself locally.
CONNECTION = "INPUT_STORAGE"
#: Set by the platform for a Function app in Azure, never by Core Tools: WEBSITE_INSTANCE_ID on App
#: Service plans, WEBSITE_SITE_NAME (the app's name) and WEBSITE_SKU / WEBSITE_POD_NAME on Linux
#: Consumption and Flex. Not CONTAINER_NAME, which the host also reads: container tools set it on
#: laptops and CI machines too. Sources: docs/azureml.md, "Telling Azure from a laptop".
AZURE_MARKERS = ("WEBSITE_INSTANCE_ID", "WEBSITE_SITE_NAME", "WEBSITE_SKU", "WEBSITE_POD_NAME")
CORE_TOOLS_MARKER = "FUNCTIONS_CORETOOLS_ENVIRONMENT"

T = TypeVar("T")


class SettingsError(ValueError):
    """A missing or invalid app setting; the message names the setting and how to fix it."""


def running_in_azure(env: Mapping[str, str]) -> bool:
    return any(env.get(name, "").strip() for name in AZURE_MARKERS) and not env.get(CORE_TOOLS_MARKER, "").strip()


# -- readers: one per kind of value --------------------------------------------------------------------


def text(env: Mapping[str, str], name: str, default: str | None = None, *, check: Callable[[str], str | None]
         = lambda value: None) -> str:
    """A text setting; ``default=None`` makes it required. ``check`` returns what is wrong, or None."""
    value = env.get(name, "").strip() or default
    if value is None:
        raise SettingsError(f"app setting {name} is not set")
    problem = check(value)
    if problem:
        raise SettingsError(f"app setting {name}={value!r} is not {problem}")
    return value


def number(env: Mapping[str, str], name: str, default: T, minimum: float, kind: Callable[[str], T] = float) -> T:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"app setting {name}={raw!r} is not a{'n integer' if kind is int else ' number'}") \
            from None
    if value < minimum:  # type: ignore[operator]
        raise SettingsError(f"app setting {name}={raw!r} must be at least {minimum:g}")
    return value


def container_name(value: str) -> str | None:
    ok = 3 <= len(value) <= 63 and value.replace("-", "").isalnum() and value == value.lower() \
        and not value.startswith("-") and "--" not in value
    return None if ok else "a valid container name (3-63 lowercase letters, digits and single hyphens)"


def datastore_name(value: str) -> str | None:
    return None if re.fullmatch(r"[A-Za-z0-9_]{1,255}", value) else "a datastore name (letters, digits and _)"


def experiment_name(value: str) -> str | None:
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}", value):
        return None
    return "an experiment name (letters, digits, _ and -, starting with a letter or digit)"


def url(value: str) -> str | None:
    return None if re.fullmatch(r"https?://[^\s/]+(/\S*)?", value) else "a URL (https://…)"


# -- the settings ---------------------------------------------------------------------------------------


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
        return self.account_url or f"connection string from {CONNECTION}"


@dataclass(frozen=True)
class Settings:
    #: SHEETDROP_BACKEND: a backend registered in sheetdrop.submit.backends.
    backend: str
    input_container: str
    input_datastore: str
    output_datastore: str
    experiment_name: str
    storage: StorageSettings
    claims_container: str
    claim_stale_seconds: float
    claim_max_failures: int
    #: A version still without a claim this long after it was written has lost its event: the timer delivers it.
    reconcile_after_seconds: float
    #: At most this many such versions delivered per timer run (the rest wait for the next run).
    reconcile_max_deliveries: int
    #: Drops a minute that make a burst: from then on versions wait to be submitted together (0: never).
    batch_threshold: int
    #: At most this many versions in one batch job.
    batch_size: int
    #: The longest a version waits for its batch to fill before the batch is submitted as it is.
    batch_wait_seconds: float
    #: The chosen backend's own settings, read by its plug-in (its ``read_settings``), or None.
    backend_settings: Any


def _backend(env: Mapping[str, str]) -> str:
    from sheetdrop.submit import backends

    value = env.get("SHEETDROP_BACKEND", "").strip().lower()
    others = " or ".join(name for name in backends.DEPLOYED if name != backends.DEFAULT)
    if running_in_azure(env) and value in ("", "local"):
        raise SettingsError(
            f"app setting SHEETDROP_BACKEND is {'local' if value else 'not set'} in Azure: set it to "
            f"{backends.DEFAULT} (or {others}) (the local backend exists only under the dev host, `sheetdrop host`)")
    if not value:
        raise SettingsError(f"app setting SHEETDROP_BACKEND is not set: set it to {backends.DEFAULT} "
                            "(the dev host, `sheetdrop host`, sets local itself)")
    if value not in backends.names():
        raise SettingsError(f"app setting SHEETDROP_BACKEND={value!r} is not one of {', '.join(backends.names())}")
    return value


def _storage(env: Mapping[str, str]) -> StorageSettings:
    retries = number(env, "STORAGE_RETRY_TOTAL", 4, minimum=0, kind=int)
    if env.get(CONNECTION, "").strip():
        return StorageSettings(connection_string=env[CONNECTION].strip(), retry_total=retries)
    # __serviceUri is the older spelling the blob extension still accepts.
    name = next((n for n in (f"{CONNECTION}__blobServiceUri", f"{CONNECTION}__serviceUri") if env.get(n, "").strip()),
                None)
    if name is None:
        raise SettingsError(
            f"app setting {CONNECTION}__blobServiceUri is not set: set it to the input storage account's "
            "blob endpoint (https://<account>.blob.core.windows.net) and grant the Function's identity "
            "'Storage Blob Data Owner' and 'Storage Queue Data Contributor' on it")
    return StorageSettings(account_url=text(env, name, check=url),
                           client_id=env.get(f"{CONNECTION}__clientId", "").strip() or None, retry_total=retries)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    from sheetdrop.submit import backends

    env = dict(os.environ if env is None else env)
    backend = _backend(env)
    return Settings(
        backend=backend,
        input_container=text(env, "INPUT_CONTAINER", "input", check=container_name),
        input_datastore=text(env, "INPUT_DATASTORE", "sheetdrop_input", check=datastore_name),
        output_datastore=text(env, "OUTPUT_DATASTORE", "workspaceblobstore", check=datastore_name),
        experiment_name=text(env, "EXPERIMENT_NAME", "sheetdrop-extract", check=experiment_name),
        storage=_storage(env),
        claims_container=text(env, "CLAIMS_CONTAINER", "sheetdrop-claims", check=container_name),
        # Longer than the Function timeout (host.json functionTimeout, 5 min), so a live invocation
        # is never mistaken for a dead one.
        claim_stale_seconds=number(env, "CLAIM_STALE_SECONDS", 900.0, minimum=1),
        # host.json's poisonBlobThreshold, so the claim is poisoned when the host gives up (a test
        # keeps the two equal).
        claim_max_failures=number(env, "CLAIM_MAX_FAILURES", 3, minimum=1, kind=int),
        # Event Grid delivers within seconds and retries with back-off for up to 24 h; ten minutes leaves a late
        # event room to come first (it would only meet the claim anyway).
        reconcile_after_seconds=number(env, "RECONCILE_AFTER_SECONDS", 600.0, minimum=0),
        reconcile_max_deliveries=number(env, "RECONCILE_MAX_DELIVERIES", 50, minimum=0, kind=int),
        batch_threshold=number(env, "BATCH_THRESHOLD", 10, minimum=0, kind=int),
        batch_size=number(env, "BATCH_SIZE", 50, minimum=1, kind=int),
        batch_wait_seconds=number(env, "BATCH_WAIT_SECONDS", 60.0, minimum=0),
        backend_settings=backends.read_settings(backend, env),
    )


@functools.cache
def get_settings() -> Settings:
    return load_settings()
