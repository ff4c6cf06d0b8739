"""Where a submission goes: one registry of backends, each a plug-in.

A backend deployed with the Function is a package under ``sheetdrop.submit`` named here by its
``SHEETDROP_BACKEND`` value; it is imported only when chosen. Its package offers ``read_settings(env)``
(its own app settings, beside it) and ``create(settings)`` (the :class:`~sheetdrop.submit.Backend`). Adding
one is its package plus one line in :data:`DEPLOYED`. ``local`` is not deployed: the embedded default's dev
host registers it (:func:`register_backend`) before it invokes the Function, so a deployed Function can never
queue runs into a local file.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sheetdrop.submit import Backend, SubmitError


class Settings(Protocol):
    """What choosing a backend needs of ``sheetdrop.settings.Settings`` (which reads SHEETDROP_BACKEND through
    this registry, so this module does not import it)."""

    backend: str
    backend_settings: Any

#: SHEETDROP_BACKEND -> the plug-in's package.
DEPLOYED = {
    "azureml": "sheetdrop.submit.azureml",  # SDK v1: the published pipeline's PipelineEndpoint (the default)
    "azureml-v2": "sheetdrop.submit.azureml_v2",  # SDK v2: a batch endpoint's pipeline component deployment
}
DEFAULT = "azureml"
#: Registered at run time by whoever hosts the Function outside Azure (the dev host's ``local``).
LOCAL = "local"
_registered: dict[str, Callable[[Settings], Backend]] = {}


def names() -> tuple[str, ...]:
    """Every SHEETDROP_BACKEND value (``local`` included: only the dev host can use it)."""
    return (*DEPLOYED, LOCAL)


def read_settings(name: str, env: Mapping[str, str]) -> Any:
    """The backend's own settings (None for one that has none here)."""
    return importlib.import_module(DEPLOYED[name]).read_settings(env) if name in DEPLOYED else None


def register_backend(name: str, factory: Callable[[Settings], Backend]) -> None:
    """Make a backend that is not deployed with the Function available in this process."""
    _registered[name] = factory


def get_backend(settings: Settings) -> Backend:
    if settings.backend in DEPLOYED:
        return importlib.import_module(DEPLOYED[settings.backend]).create(settings)
    if settings.backend not in _registered:
        raise SubmitError(f"the {settings.backend!r} backend runs only under the dev host (`sheetdrop host`), "
                          f"which registers it; a deployed Function uses SHEETDROP_BACKEND={' or '.join(DEPLOYED)}")
    return _registered[settings.backend](settings)
