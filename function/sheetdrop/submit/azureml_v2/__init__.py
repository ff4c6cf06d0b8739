"""The v2 backend (SHEETDROP_BACKEND=azureml-v2): a batch endpoint whose deployment is the extract pipeline
component, invoked over REST with the Function's managed identity. Its settings (``configuration``) beside its
client (``client``); docs/azureml-v2.md says where every line of the request comes from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sheetdrop.submit.azureml_v2.client import (
    ARM_SCOPE,
    DEPLOYMENT_HEADER,
    EXPERIMENT_PROPERTY,
    INVOKE_SCOPE,
    JOBS_API_VERSION,
    REPEATABILITY_HEADER,
    SOURCE_KEY_PROPERTY,
    SUBMISSION_TAG,
    AzureMLV2Backend,
    invocation_body,
    is_this_version,
    job_name,
    jobs_url,
    output_path,
    source_key,
)
from sheetdrop.submit.azureml_v2.configuration import AzureMLV2Settings, read_settings
from sheetdrop.submit.service import ServiceClient, TokenCredential

if TYPE_CHECKING:
    from sheetdrop.settings import Settings

__all__ = ["ARM_SCOPE", "DEPLOYMENT_HEADER", "EXPERIMENT_PROPERTY", "INVOKE_SCOPE", "JOBS_API_VERSION",
           "REPEATABILITY_HEADER", "SOURCE_KEY_PROPERTY", "SUBMISSION_TAG", "AzureMLV2Backend", "AzureMLV2Settings",
           "create", "invocation_body", "is_this_version", "job_name", "jobs_url", "output_path", "read_settings",
           "source_key"]


def create(settings: Settings, credential: TokenCredential | None = None) -> AzureMLV2Backend:
    aml: AzureMLV2Settings = settings.backend_settings
    return AzureMLV2Backend(
        endpoint_url=aml.endpoint_url,
        workspace=aml.the_workspace(),
        experiment_name=settings.experiment_name,
        output_datastore=settings.output_datastore,
        service=ServiceClient.for_function(aml.managed_identity_client_id, aml.submit_deadline_seconds, credential),
        deployment=aml.deployment,
        arm_url=aml.arm_url,
        studio_url=aml.studio_url,
    )
