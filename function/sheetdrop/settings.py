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
from typing import Literal, TypeVar, get_args

Backend = Literal["azureml", "azureml-v2", "local"]
BACKENDS: tuple[Backend, ...] = get_args(Backend)

#: The blob trigger's ``connection``: an identity-based prefix (INPUT_STORAGE__blobServiceUri …)
#: in Azure, or a connection string in INPUT_STORAGE itself locally.
CONNECTION = "INPUT_STORAGE"
#: Set by the platform for a Function app in Azure, never by Core Tools: WEBSITE_INSTANCE_ID on App
#: Service plans, WEBSITE_SITE_NAME (the app's name) and WEBSITE_SKU / WEBSITE_POD_NAME on Linux
#: Consumption and Flex. Not CONTAINER_NAME, which the host also reads: container tools set it on
#: laptops and CI machines too. Sources: docs/azureml.md, "Telling Azure from a laptop".
AZURE_MARKERS = ("WEBSITE_INSTANCE_ID", "WEBSITE_SITE_NAME", "WEBSITE_SKU", "WEBSITE_POD_NAME")
CORE_TOOLS_MARKER = "FUNCTIONS_CORETOOLS_ENVIRONMENT"

REGIONAL_API_URL = "https://{region}.api.azureml.ms"
STUDIO_URL = "https://ml.azure.com"
#: The REST URL `python -m pipeline.publish` prints (PipelineEndpoint.endpoint), taken apart.
ENDPOINT_URL_PATTERN = re.compile(
    r"^(?P<base>https?://[^/]+)/pipelines/v1\.0/subscriptions/(?P<subscription_id>[^/]+)"
    r"/resourceGroups/(?P<resource_group>[^/]+)/providers/Microsoft\.MachineLearningServices"
    r"/workspaces/(?P<workspace>[^/]+)/PipelineRuns/PipelineEndpointSubmit/Id/(?P<endpoint_id>[^/?#]+)/?$",
    re.IGNORECASE,
)

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
class AzureMLSettings:
    """Where the Function submits: a workspace's PipelineEndpoint, and how."""

    base_url: str
    subscription_id: str
    resource_group: str
    workspace: str
    endpoint_id: str
    studio_url: str
    #: Total time for a submission and its retries; the Function times out at 5 minutes.
    submit_deadline_seconds: float
    managed_identity_client_id: str | None


@dataclass(frozen=True)
class AzureMLV2Settings:
    """Where the Function submits with AzureML v2: a batch endpoint's pipeline deployment (docs/azureml-v2.md)."""

    #: The endpoint's scoring URI, https://<endpoint>.<region>.inference.ml.azure.com/jobs.
    endpoint_url: str
    #: A deployment other than the endpoint's default one (sent as azureml-model-deployment), or None.
    deployment: str | None
    #: The workspace: where lost-answer recovery looks the job up (ARM jobs API) and studio links point.
    subscription_id: str
    resource_group: str
    workspace: str
    arm_url: str
    studio_url: str
    submit_deadline_seconds: float
    managed_identity_client_id: str | None


@dataclass(frozen=True)
class Settings:
    backend: Backend
    input_container: str
    input_datastore: str
    output_datastore: str
    experiment_name: str
    storage: StorageSettings
    claims_container: str
    claim_stale_seconds: float
    claim_max_failures: int
    azureml: AzureMLSettings | None
    azureml_v2: AzureMLV2Settings | None


def _backend(env: Mapping[str, str]) -> Backend:
    value = env.get("SHEETDROP_BACKEND", "").strip().lower()
    if running_in_azure(env) and value in ("", "local"):
        raise SettingsError(
            f"app setting SHEETDROP_BACKEND is {'local' if value else 'not set'} in Azure: set it to azureml "
            "(or azureml-v2) "
            "(the local backend exists only under the dev host, `sheetdrop host`)")
    if not value:
        raise SettingsError("app setting SHEETDROP_BACKEND is not set: set it to azureml "
                            "(the dev host, `sheetdrop host`, sets local itself)")
    if value not in BACKENDS:
        raise SettingsError(f"app setting SHEETDROP_BACKEND={value!r} is not one of {', '.join(BACKENDS)}")
    return value  # type: ignore[return-value]


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


def _azureml(env: Mapping[str, str]) -> AzureMLSettings:
    how = "or set AZUREML_PIPELINE_ENDPOINT_URL to the REST URL `python -m pipeline.publish` prints"
    endpoint_url = env.get("AZUREML_PIPELINE_ENDPOINT_URL", "").strip()
    if endpoint_url:
        match = ENDPOINT_URL_PATTERN.match(endpoint_url)
        if not match:
            raise SettingsError(
                f"app setting AZUREML_PIPELINE_ENDPOINT_URL={endpoint_url!r} is not a PipelineEndpoint submit URL "
                "(https://<region>.api.azureml.ms/pipelines/v1.0/subscriptions/<id>/resourceGroups/<rg>/providers/"
                "Microsoft.MachineLearningServices/workspaces/<ws>/PipelineRuns/PipelineEndpointSubmit/Id/"
                "<endpoint id>): copy the 'REST URL' that `python -m pipeline.publish` prints")
        parts = match.groupdict()
    else:
        def required(name: str, what: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise SettingsError(f"app setting {name} is not set: {what}, {how}")
            return value

        parts = {
            "subscription_id": required("AZUREML_SUBSCRIPTION_ID", "the AzureML workspace's subscription id"),
            "resource_group": required("AZUREML_RESOURCE_GROUP", "the AzureML workspace's resource group"),
            "workspace": required("AZUREML_WORKSPACE", "the AzureML workspace's name"),
            "endpoint_id": required("AZUREML_PIPELINE_ENDPOINT_ID",
                                    "the PipelineEndpoint id that `python -m pipeline.publish` prints"),
        }
        api_url = env.get("AZUREML_API_URL", "").strip()
        if api_url:
            parts["base"] = text(env, "AZUREML_API_URL", check=url)
        else:
            region = required("AZUREML_REGION", "the workspace's region (e.g. westeurope), which selects "
                              "https://<region>.api.azureml.ms; a private-link workspace sets AZUREML_API_URL instead")
            parts["base"] = REGIONAL_API_URL.format(region=region.lower().replace(" ", ""))
    return AzureMLSettings(
        base_url=parts["base"].rstrip("/"),
        subscription_id=parts["subscription_id"],
        resource_group=parts["resource_group"],
        workspace=parts["workspace"],
        endpoint_id=parts["endpoint_id"],
        studio_url=text(env, "AZUREML_STUDIO_URL", STUDIO_URL, check=url),
        submit_deadline_seconds=number(env, "AZUREML_SUBMIT_DEADLINE_SECONDS", 120.0, minimum=1),
        managed_identity_client_id=env.get("AZUREML_MANAGED_IDENTITY_CLIENT_ID", "").strip() or None,
    )


# -- SHEETDROP_BACKEND=azureml-v2: a batch endpoint (docs/azureml-v2.md) --------------------------------

ARM_URL = "https://management.azure.com"
#: A batch endpoint's scoring URI: https://<endpoint>.<region>.inference.ml.azure.com/jobs (docs/azureml-v2.md).
#: Any host and leading path are accepted (sovereign clouds, private link), but the path must end in /jobs.
SCORING_URI_PATTERN = re.compile(r"^https?://[^/\s]+(/[^\s?#]*)?/jobs/?$", re.IGNORECASE)
#: Deployment names: letters, digits and -, starting with a letter (the SDK's batch deployment name rule).
DEPLOYMENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,31}")


def _required_v2(env: Mapping[str, str], name: str, what: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"app setting {name} is not set: {what} (SHEETDROP_BACKEND=azureml-v2)")
    return value


def _azureml_v2(env: Mapping[str, str]) -> AzureMLV2Settings:
    endpoint_url = _required_v2(env, "AZUREML_BATCH_ENDPOINT_URL",
                             "the batch endpoint's scoring URI that `sheetdrop publish --v2` prints")
    if not SCORING_URI_PATTERN.match(endpoint_url):
        raise SettingsError(
            f"app setting AZUREML_BATCH_ENDPOINT_URL={endpoint_url!r} is not a batch endpoint scoring URI "
            "(https://<endpoint>.<region>.inference.ml.azure.com/jobs): copy the one `sheetdrop publish --v2` prints")
    deployment = env.get("AZUREML_BATCH_DEPLOYMENT", "").strip() or None
    if deployment is not None and not DEPLOYMENT_NAME.fullmatch(deployment):
        raise SettingsError(f"app setting AZUREML_BATCH_DEPLOYMENT={deployment!r} is not a deployment name "
                            "(letters, digits and -, starting with a letter, at most 32)")
    return AzureMLV2Settings(
        endpoint_url=endpoint_url.rstrip("/"),
        deployment=deployment,
        # Recovery after a lost answer reads the workspace's jobs through ARM, so the workspace is needed too.
        subscription_id=_required_v2(env, "AZUREML_SUBSCRIPTION_ID", "the AzureML workspace's subscription id"),
        resource_group=_required_v2(env, "AZUREML_RESOURCE_GROUP", "the AzureML workspace's resource group"),
        workspace=_required_v2(env, "AZUREML_WORKSPACE", "the AzureML workspace's name"),
        arm_url=text(env, "AZUREML_ARM_URL", ARM_URL, check=url).rstrip("/"),
        studio_url=text(env, "AZUREML_STUDIO_URL", STUDIO_URL, check=url),
        submit_deadline_seconds=number(env, "AZUREML_SUBMIT_DEADLINE_SECONDS", 120.0, minimum=1),
        managed_identity_client_id=env.get("AZUREML_MANAGED_IDENTITY_CLIENT_ID", "").strip() or None,
    )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
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
        azureml=_azureml(env) if backend == "azureml" else None,
        azureml_v2=_azureml_v2(env) if backend == "azureml-v2" else None,
    )


@functools.cache
def get_settings() -> Settings:
    return load_settings()
