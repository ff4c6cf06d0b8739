"""Connecting to the workspace for the publish and datastore commands: authentication and location.

Authentication (--auth, AZUREML_AUTH): ``az`` (default) asks the Azure CLI on PATH for tokens, so
`az login` is all a person needs; ``interactive`` opens a browser; ``msi`` uses a managed identity;
``cli`` is azureml-core's AzureCliAuthentication, which needs the azure-cli Python package installed
in this environment. Failures that a person can fix are one line (:class:`SetupError`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Mapping
from typing import Any

from azureml.core import Workspace

AUTH_KINDS = ("az", "interactive", "msi", "cli")
DEFAULT_AUTH = "az"
#: azureml-core's own variable for the target cloud (azureml/_vendor/azure_cli_core/azureml_cloud.py).
CLOUD_ENV = "AZUREML_CURRENT_CLOUD"
#: A cached `az` token is asked for again this long before it expires.
TOKEN_REFRESH_MARGIN_SECONDS = 300

AZ_NOT_ON_PATH = ("auth: the Azure CLI (`az`) is not on PATH: install it and run `az login`, "
                  "or choose --auth interactive|msi")
AZ_NOT_LOGGED_IN = "auth: `az` is not logged in: run `az login` (and `az account set --subscription …`)"
CLI_PACKAGE_MISSING = ("auth: --auth cli needs the azure-cli Python package in this environment, and it is "
                       "not installed: use --auth az (the default), which runs the `az` on PATH")
WORKSPACE_FLAGS = ("--subscription-id/--resource-group/--workspace "
                   "(AZUREML_SUBSCRIPTION_ID, AZUREML_RESOURCE_GROUP, AZUREML_WORKSPACE)")


class SetupError(Exception):
    """What stops the command before it reaches Azure; its text is the one line printed after ``error: ``."""


def default_cloud(env: Mapping[str, str]) -> str:
    """The cloud the SDK would pick when given none, without its network lookup of cloud metadata.

    azureml-core takes ``AZUREML_CURRENT_CLOUD``, else the Azure CLI's configured cloud
    (``[cloud] name`` in $AZURE_CONFIG_DIR/config or ~/.azure/config), else AzureCloud
    (``_Clouds.get_cloud_or_default``). Naming the cloud up front spares it fetching
    https://management.azure.com/metadata/endpoints before the first token.
    """
    from azureml._vendor.azure_cli_core.azureml_cloud import _Clouds

    return env.get(CLOUD_ENV) or _Clouds.get_default_cloud_name_from_config()


class AzCliTokens:
    """``get_token_for_audience`` for azureml-core's TokenAuthentication, answered by the `az` on PATH.

    TokenAuthentication calls it with an AAD v1 resource: the cloud's
    ``active_directory_resource_id`` for ARM (``https://management.core.windows.net/``) or the
    AzureML resource (``https://ml.azure.com``), and sends the returned string as a bearer token
    (azureml/core/authentication.py, TokenAuthentication._get_aad_token). The scope is the
    resource plus ``/.default`` with its trailing slash kept, as the SDK's own
    ``resource_to_scopes`` does (azureml/_vendor/azure_cli_core/auth/util.py); azure-identity's
    AzureCliCredential turns it back into ``az account get-access-token --output json --resource
    <resource>``. That credential does not cache, so tokens are kept here until shortly before
    they expire: the SDK asks for a header on every request.
    """

    def __init__(self, tenant_id: str | None = None) -> None:
        from azure.identity import AzureCliCredential

        self._credential = AzureCliCredential(tenant_id=tenant_id or "")
        self._tokens: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, audience: str) -> str:
        scope = audience + "/.default"
        with self._lock:
            token = self._tokens.get(scope)
            if token is None or token.expires_on - TOKEN_REFRESH_MARGIN_SECONDS <= time.time():
                token = self._tokens[scope] = self._credential.get_token(scope)
            return token.token


def get_auth(kind: str, tenant_id: str | None = None, client_id: str | None = None,
             cloud: str | None = None) -> Any:
    """az (`az login`; the default), interactive (a browser), msi (a managed identity), cli (azure-cli package).

    ``cloud`` None means :func:`default_cloud` of the process environment.
    """
    cloud = cloud or default_cloud(os.environ)
    if kind == "az":
        from azureml.core.authentication import TokenAuthentication

        return TokenAuthentication(AzCliTokens(tenant_id), cloud=cloud)
    if kind == "cli":
        from azureml.core.authentication import AzureCliAuthentication

        return AzureCliAuthentication(cloud=cloud)
    if kind == "msi":
        from azureml.core.authentication import MsiAuthentication

        return MsiAuthentication(cloud=cloud, identity_config={"client_id": client_id} if client_id else None)
    if kind == "interactive":
        from azureml.core.authentication import InteractiveLoginAuthentication

        return InteractiveLoginAuthentication(tenant_id=tenant_id, cloud=cloud)
    raise ValueError(f"unknown auth {kind!r}: use {', '.join(AUTH_KINDS)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _az_failure(exc: BaseException) -> str:
    """One line for AzureCliCredential's failures (azure/identity/_credentials/azure_cli.py, _run_command)."""
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import CredentialUnavailableError
    from azure.identity._credentials.azure_cli import CLI_NOT_FOUND, NOT_LOGGED_IN

    message = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, CredentialUnavailableError):
        if message == CLI_NOT_FOUND:
            return AZ_NOT_ON_PATH
        if message == NOT_LOGGED_IN:  # the CLI's stderr mentioned `az login` / `az account set`
            return AZ_NOT_LOGGED_IN
        return f"auth: `az account get-access-token` failed: {_first_line(exc)}"
    if isinstance(exc, ClientAuthenticationError):  # the CLI answered with an error of its own (AADSTS…)
        return (f"auth: `az` could not get a token ({_first_line(exc)}): run `az login` "
                "(and `az account set --subscription …`)")
    return f"auth: `az`: {_first_line(exc)}"


@contextlib.contextmanager
def _quiet_token_failures() -> Any:
    """Without this, azure-identity logs "AzureCliCredential.get_token failed: …" as a WARNING
    (azure/identity/_internal/decorators.py), which an unconfigured logging prints to stderr
    before the one line this command prints for the same failure."""
    logger = logging.getLogger("azure.identity._internal.decorators")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def check_auth(kind: str, tenant_id: str | None = None, client_id: str | None = None,
               cloud: str | None = None) -> Any:
    """:func:`get_auth`, proven by getting the first (ARM) token now, before any workspace call.

    Raises :class:`SetupError` with one actionable line instead of a traceback from deep in the SDK.
    """
    if kind == "az" and shutil.which("az") is None:
        raise SetupError(AZ_NOT_ON_PATH)
    try:
        auth = get_auth(kind, tenant_id, client_id, cloud)
    except ValueError as exc:
        raise SetupError(f"auth: {exc}") from exc
    except Exception as exc:
        if kind == "cli" and "azure-cli" in str(exc):
            raise SetupError(CLI_PACKAGE_MISSING) from exc
        raise SetupError(f"auth: --auth {kind}: {_first_line(exc)}") from exc
    try:
        with _quiet_token_failures():
            auth.get_authentication_header()
    except Exception as exc:
        if kind == "az":
            raise SetupError(_az_failure(exc)) from exc
        raise SetupError(f"auth: --auth {kind} could not get a token: {_first_line(exc)}") from exc
    return auth


def find_workspace_config(path: str) -> str | None:
    """The config.json that ``Workspace.from_config(path)`` would read, or None; found the same way.

    A file path is taken as is; a folder is searched, then its parents, for ``.azureml/``,
    ``aml_config/`` and plain ``config.json`` (then ``project.json``), in the SDK's order
    (azureml/core/workspace.py, Workspace.from_config).
    """
    from azureml._base_sdk_common.common import AML_CONFIG_DIR, AZUREML_DIR, CONFIG_FILENAME, LEGACY_PROJECT_FILENAME
    from azureml._file_utils.file_utils import normalize_path, traverse_up_path_and_find_file

    normalized = normalize_path(path or ".")
    if os.path.isfile(normalized):
        return normalized
    for directory in (AZUREML_DIR, AML_CONFIG_DIR, None):
        for name in (CONFIG_FILENAME, LEGACY_PROJECT_FILENAME):
            found = traverse_up_path_and_find_file(path=normalized, file_name=name, directory_name=directory)
            if found:
                return found
    return None


def workspace_source(args: argparse.Namespace) -> str:
    """Where the workspace comes from ("flags" or a config.json path); :class:`SetupError` if nowhere."""
    given = {"--subscription-id": args.subscription_id, "--resource-group": args.resource_group,
             "--workspace": args.workspace}
    if all(given.values()):
        return "flags"
    config = find_workspace_config(args.config)
    if config:
        return config
    missing = [flag for flag, value in given.items() if not value]
    if len(missing) < len(given):
        raise SetupError(f"workspace: {', '.join(missing)} not given and no config.json in {args.config!r} or "
                         f"its parent folders: give all of {WORKSPACE_FLAGS}, or a config.json (--config)")
    raise SetupError(f"workspace: no workspace given: set {WORKSPACE_FLAGS}, or put the workspace's "
                     f"config.json in {args.config!r} or a parent folder (or pass --config)")


def get_workspace(args: argparse.Namespace, auth: Any) -> Workspace:
    source = workspace_source(args)
    if source == "flags":
        return Workspace.get(name=args.workspace, auth=auth, subscription_id=args.subscription_id,
                             resource_group=args.resource_group)
    # config.json as downloaded from the portal.
    return Workspace.from_config(path=source, auth=auth)


def connect(args: argparse.Namespace) -> Workspace:
    """The workspace: where it is (no Azure needed), then a first token, only then the service.

    Raises :class:`SetupError` (one line) when the workspace is not named or the auth cannot work.
    """
    workspace_source(args)
    auth = check_auth(args.auth, args.tenant_id, args.client_id, args.cloud)
    return get_workspace(args, auth)


def add_connection_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """The workspace and auth flags shared by pipeline.publish and pipeline.datastore."""
    auth = env.get("AZUREML_AUTH") or DEFAULT_AUTH
    if auth not in AUTH_KINDS:
        parser.error(f"AZUREML_AUTH={auth!r}: use one of {', '.join(AUTH_KINDS)}")
    parser.add_argument("--config", default=".",
                        help="the workspace's config.json, or a folder to search upwards from (default: .)")
    parser.add_argument("--subscription-id", default=env.get("AZUREML_SUBSCRIPTION_ID"))
    parser.add_argument("--resource-group", default=env.get("AZUREML_RESOURCE_GROUP"))
    parser.add_argument("--workspace", default=env.get("AZUREML_WORKSPACE"))
    parser.add_argument("--auth", choices=AUTH_KINDS, default=auth,
                        help="az: the Azure CLI on PATH, after `az login` (default); interactive: a browser; "
                             "msi: a managed identity; cli: the azure-cli Python package (env AZUREML_AUTH)")
    parser.add_argument("--tenant-id", default=env.get("AZURE_TENANT_ID"))
    parser.add_argument("--client-id", default=env.get("AZUREML_MANAGED_IDENTITY_CLIENT_ID"),
                        help="client id of a user-assigned identity (--auth msi)")
    parser.add_argument("--cloud", default=env.get(CLOUD_ENV),
                        help="AzureCloud, AzureChinaCloud or AzureUSGovernment (env AZUREML_CURRENT_CLOUD; "
                             "default: the Azure CLI's configured cloud, else AzureCloud)")


