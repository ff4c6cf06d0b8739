"""The v2 backend's app settings (SHEETDROP_BACKEND=azureml-v2): which batch endpoint, in which workspace, and how
(docs/azureml-v2.md). Read by :func:`read_settings` when the backend is chosen, with the Function's readers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sheetdrop.settings import SettingsError, number, text, url
from sheetdrop.submit.workspace import STUDIO_URL, Workspace

ARM_URL = "https://management.azure.com"
#: A batch endpoint's scoring URI: https://<endpoint>.<region>.inference.ml.azure.com/jobs (docs/azureml-v2.md).
#: Any host and leading path are accepted (sovereign clouds, private link), but the path must end in /jobs.
SCORING_URI_PATTERN = re.compile(r"^https?://[^/\s]+(/[^\s?#]*)?/jobs/?$", re.IGNORECASE)
#: Deployment names: letters, digits and -, starting with a letter (the SDK's batch deployment name rule).
DEPLOYMENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,31}")
#: The batch deployment `sheetdrop publish --v2` creates beside the default one (pipeline/v2/batch_deployment.yml).
BATCH_DEPLOYMENT = "extract-batch"


@dataclass(frozen=True)
class AzureMLV2Settings:
    """Where the Function submits with AzureML v2: a batch endpoint's pipeline deployment."""

    #: The endpoint's scoring URI, https://<endpoint>.<region>.inference.ml.azure.com/jobs.
    endpoint_url: str
    #: A deployment other than the endpoint's default one (sent as azureml-model-deployment), or None.
    deployment: str | None
    #: The deployment a batch of versions is invoked on (the batch pipeline: docs/azureml-v2.md, "Batch jobs"); None:
    #: no batches, a batch's versions are submitted one by one (AZUREML_BATCH_JOB_DEPLOYMENT=off).
    batch_deployment: str | None
    #: The workspace: where lost-answer recovery looks the job up (ARM jobs API) and studio links point.
    subscription_id: str
    resource_group: str
    workspace: str
    arm_url: str
    studio_url: str
    submit_deadline_seconds: float
    managed_identity_client_id: str | None

    def the_workspace(self) -> Workspace:
        return Workspace(self.subscription_id, self.resource_group, self.workspace)


def _required(env: Mapping[str, str], name: str, what: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"app setting {name} is not set: {what} (SHEETDROP_BACKEND=azureml-v2)")
    return value


def read_settings(env: Mapping[str, str]) -> AzureMLV2Settings:
    endpoint_url = _required(env, "AZUREML_BATCH_ENDPOINT_URL",
                             "the batch endpoint's scoring URI that `sheetdrop publish --v2` prints")
    if not SCORING_URI_PATTERN.match(endpoint_url):
        raise SettingsError(
            f"app setting AZUREML_BATCH_ENDPOINT_URL={endpoint_url!r} is not a batch endpoint scoring URI "
            "(https://<endpoint>.<region>.inference.ml.azure.com/jobs): copy the one `sheetdrop publish --v2` prints")
    deployment = env.get("AZUREML_BATCH_DEPLOYMENT", "").strip() or None
    if deployment is not None and not DEPLOYMENT_NAME.fullmatch(deployment):
        raise SettingsError(f"app setting AZUREML_BATCH_DEPLOYMENT={deployment!r} is not a deployment name "
                            "(letters, digits and -, starting with a letter, at most 32)")
    batch_deployment: str | None = env.get("AZUREML_BATCH_JOB_DEPLOYMENT", "").strip() or BATCH_DEPLOYMENT
    if batch_deployment == "off":
        batch_deployment = None
    elif not DEPLOYMENT_NAME.fullmatch(batch_deployment):
        raise SettingsError(f"app setting AZUREML_BATCH_JOB_DEPLOYMENT={batch_deployment!r} is not a deployment name "
                            "(letters, digits and -, starting with a letter, at most 32), or off")
    return AzureMLV2Settings(
        endpoint_url=endpoint_url.rstrip("/"),
        deployment=deployment,
        batch_deployment=batch_deployment,
        # Recovery after a lost answer reads the workspace's jobs through ARM, so the workspace is needed too.
        subscription_id=_required(env, "AZUREML_SUBSCRIPTION_ID", "the AzureML workspace's subscription id"),
        resource_group=_required(env, "AZUREML_RESOURCE_GROUP", "the AzureML workspace's resource group"),
        workspace=_required(env, "AZUREML_WORKSPACE", "the AzureML workspace's name"),
        arm_url=text(env, "AZUREML_ARM_URL", ARM_URL, check=url).rstrip("/"),
        studio_url=text(env, "AZUREML_STUDIO_URL", STUDIO_URL, check=url),
        submit_deadline_seconds=number(env, "AZUREML_SUBMIT_DEADLINE_SECONDS", 120.0, minimum=1),
        managed_identity_client_id=env.get("AZUREML_MANAGED_IDENTITY_CLIENT_ID", "").strip() or None,
    )
