"""The v1 backend (SHEETDROP_BACKEND=azureml, the default): the published extract pipeline, submitted through its
PipelineEndpoint's REST API with the Function's managed identity. Its settings (``configuration``) beside its
client (``client``); docs/azureml.md says where every line of the request comes from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sheetdrop.submit.azureml.client import (
    SUBMISSION_TAG,
    SUBMIT_CONTENT_TYPE,
    TOKEN_SCOPE,
    AzureMLBackend,
    runs_filter,
    runs_query_url,
    submission_body,
    submit_url,
)
from sheetdrop.submit.azureml.configuration import AzureMLSettings, read_settings
from sheetdrop.submit.service import ServiceClient, TokenCredential

if TYPE_CHECKING:
    from sheetdrop.settings import Settings

__all__ = ["SUBMISSION_TAG", "SUBMIT_CONTENT_TYPE", "TOKEN_SCOPE", "AzureMLBackend", "AzureMLSettings", "create",
           "read_settings", "runs_filter", "runs_query_url", "submission_body", "submit_url"]


def create(settings: Settings, credential: TokenCredential | None = None) -> AzureMLBackend:
    aml: AzureMLSettings = settings.backend_settings
    return AzureMLBackend(
        base_url=aml.base_url,
        workspace=aml.the_workspace(),
        endpoint_id=aml.endpoint_id,
        experiment_name=settings.experiment_name,
        service=ServiceClient.for_function(aml.managed_identity_client_id, aml.submit_deadline_seconds, credential),
        input_datastore=settings.input_datastore,
        studio_url=aml.studio_url,
    )
