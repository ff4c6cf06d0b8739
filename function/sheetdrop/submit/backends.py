"""Which backend a submission goes to. ``azureml`` (the PipelineEndpoint's REST API) and ``azureml-v2``
(a batch endpoint) ship with the Function. ``local`` does not: the embedded default's dev host registers
it (:func:`register_backend`) before it invokes the Function, so a deployed Function can never queue runs
into a local file.
"""

from __future__ import annotations

from collections.abc import Callable

from sheetdrop.settings import Settings
from sheetdrop.submit import Backend, SubmitError

_factories: dict[str, Callable[[Settings], Backend]] = {}


def register_backend(name: str, factory: Callable[[Settings], Backend]) -> None:
    """Make a backend that is not deployed with the Function available in this process."""
    _factories[name] = factory


def get_backend(settings: Settings) -> Backend:
    if settings.backend == "azureml":
        from sheetdrop.submit.azureml import AzureMLBackend

        return AzureMLBackend.from_settings(settings)
    if settings.backend == "azureml-v2":
        from sheetdrop.submit.azureml_v2 import AzureMLV2Backend

        return AzureMLV2Backend.from_settings(settings)
    if settings.backend not in _factories:
        raise SubmitError(f"the {settings.backend!r} backend runs only under the dev host (`sheetdrop host`), "
                          "which registers it; a deployed Function uses SHEETDROP_BACKEND=azureml or azureml-v2")
    return _factories[settings.backend](settings)
