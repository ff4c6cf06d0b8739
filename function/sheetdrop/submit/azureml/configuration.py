"""The v1 backend's app settings (SHEETDROP_BACKEND=azureml): which PipelineEndpoint, in which workspace, and how.

Read by :func:`read_settings` when the backend is chosen, with the Function's readers (``sheetdrop.settings``);
the README's "Configuration" table lists every name read here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sheetdrop.settings import SettingsError, number, text, url
from sheetdrop.submit.workspace import STUDIO_URL, Workspace

REGIONAL_API_URL = "https://{region}.api.azureml.ms"
#: The REST URL `python -m pipeline.publish` prints (PipelineEndpoint.endpoint), taken apart.
ENDPOINT_URL_PATTERN = re.compile(
    r"^(?P<base>https?://[^/]+)/pipelines/v1\.0/subscriptions/(?P<subscription_id>[^/]+)"
    r"/resourceGroups/(?P<resource_group>[^/]+)/providers/Microsoft\.MachineLearningServices"
    r"/workspaces/(?P<workspace>[^/]+)/PipelineRuns/PipelineEndpointSubmit/Id/(?P<endpoint_id>[^/?#]+)/?$",
    re.IGNORECASE,
)


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

    def the_workspace(self) -> Workspace:
        return Workspace(self.subscription_id, self.resource_group, self.workspace)


def read_settings(env: Mapping[str, str]) -> AzureMLSettings:
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
