"""The deployed app's settings, for commands that work on Azure from a laptop (``sheetdrop backfill --azure``):
what `azd up` left in its environment, turned into the Function's own app settings, used with the identity
of whoever is signed in to the Azure CLI.

``azd env get-values`` prints the environment as ``KEY="value"`` lines (the template's outputs, and what the
hooks set with ``azd env set``); ``--env-file`` reads such a file instead of asking azd.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path

#: DefaultAzureCredential's documented switch (azure-identity >= 1.23, _credentials/default.py): one
#: credential only. The laptop's signed-in Azure CLI, never a managed identity probe or an environment secret.
SIGNED_IN = {"AZURE_TOKEN_CREDENTIALS": "AzureCliCredential"}


class DeployedError(RuntimeError):
    """The azd environment could not be read or lacks what the Function needs; the message says what to do."""


def azd_values(env_file: Path | None = None) -> dict[str, str]:
    if env_file is not None:
        text = env_file.read_text(encoding="utf-8")
    else:
        try:
            text = subprocess.run(["azd", "env", "get-values"], capture_output=True, text=True, check=True,
                                  timeout=60).stdout
        except FileNotFoundError:
            raise DeployedError("azd is not on PATH: install the Azure Developer CLI, or pass --env-file with the "
                                "output of `azd env get-values`") from None
        except subprocess.CalledProcessError as exc:
            raise DeployedError(f"`azd env get-values` failed: {exc.stderr.strip() or exc}; run `azd up` "
                                "(or `azd env select NAME`) first") from None
    values = {}
    for line in text.splitlines():
        key, sep, raw = line.partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            parts = shlex.split(raw, posix=True)
            values[key.strip()] = parts[0] if parts else ""
    return values


def app_settings(values: Mapping[str, str]) -> dict[str, str]:
    """The Function's app settings (README, "Configuration") from the azd environment's values."""
    account = values.get("AZURE_STORAGE_ACCOUNT_NAME", "").strip()
    if not account:
        raise DeployedError("the azd environment has no AZURE_STORAGE_ACCOUNT_NAME: run `azd up` first")
    backend = values.get("SHEETDROP_AZUREML_API", "").strip() or "azureml"
    if backend == "azureml-v2" and not values.get("AZUREML_BATCH_ENDPOINT_URL", "").strip():
        # The template's own rule (infra/app/function.bicep): v2 only together with its batch URL, so until the
        # post-provision hook has published v2 the app still submits to v1, and so does this.
        backend = "azureml"
    settings = {
        "SHEETDROP_BACKEND": backend,
        "INPUT_STORAGE__blobServiceUri": values.get("AZURE_STORAGE_BLOB_ENDPOINT", "").strip()
        or f"https://{account}.blob.core.windows.net",
    }
    for name in ("INPUT_CONTAINER", "INPUT_DATASTORE", "CLAIMS_CONTAINER", "EXPERIMENT_NAME",
                 "AZUREML_PIPELINE_ENDPOINT_URL", "AZUREML_BATCH_ENDPOINT_URL", "AZUREML_BATCH_DEPLOYMENT",
                 "AZUREML_SUBSCRIPTION_ID", "AZUREML_RESOURCE_GROUP", "AZUREML_WORKSPACE", "AZUREML_ARM_URL"):
        if values.get(name, "").strip():
            settings[name] = values[name].strip()
    return settings


def use_signed_in_identity() -> None:
    """From now on this process's Azure credentials are the Azure CLI's login (`az login`)."""
    os.environ.update(SIGNED_IN)
