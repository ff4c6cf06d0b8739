"""`python -m pipeline.publish` / `pipeline.datastore` authentication, without azure-cli in the venv.

The default auth (`az`) is azureml-core's TokenAuthentication fed by azure-identity's
AzureCliCredential, which runs the `az` binary on PATH. Here `az` is absent or a fake
script; the commands run as real subprocesses with a PATH of their own, and a
sitecustomize refuses (and records) any connection that is not to loopback, so a test
fails if the command got as far as the workspace lookup.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from azureml.core.authentication import Audience

from pipeline import publish, workspace

REPO = Path(__file__).resolve().parents[2]
SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
WORKSPACE_ARGS = ["--subscription-id", SUBSCRIPTION, "--resource-group", "rg-sheetdrop", "--workspace", "mlw-sheetdrop"]
ARM_RESOURCE = "https://management.core.windows.net/"  # AzureCloud's active_directory_resource_id
AML_RESOURCE = "https://ml.azure.com"
TOKEN = "eyJ0eXAiOiJKV1QifQ.fake-arm-token.signature"

NOT_ON_PATH = ("error: auth: the Azure CLI (`az`) is not on PATH: install it and run `az login`, "
               "or choose --auth interactive|msi")
NOT_LOGGED_IN = "error: auth: `az` is not logged in: run `az login` (and `az account set --subscription …`)"

# Loaded by every subprocess (PYTHONPATH): no network beyond loopback, and a record of any attempt.
NETWORK_GUARD = '''
import ipaddress, os, socket

_record = os.environ["SHEETDROP_TEST_NETWORK_LOG"]
_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo


def _loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _refuse(what):
    with open(_record, "a") as f:
        f.write(what + "\\n")
    raise ConnectionRefusedError("test guard: no network beyond loopback (" + what + ")")


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        _refuse("connect %r" % (address,))
    return _connect(self, address)


def getaddrinfo(host, *args, **kwargs):
    if host is not None and not _loopback(host if isinstance(host, str) else host.decode()):
        _refuse("getaddrinfo %r" % (host,))
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = connect
socket.getaddrinfo = getaddrinfo
'''


def write_fake_az(folder: Path, argv_log: Path, *, stdout: str = "", stderr: str = "", code: int = 0) -> None:
    """An executable `az` that records its argv (one JSON list a line) and answers as told."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "az"
    script.write_text(f"#!{sys.executable}\n" + textwrap.dedent(f"""\
        import json, sys
        with open({str(argv_log)!r}, "a") as f:
            f.write(json.dumps(sys.argv[1:]) + "\\n")
        sys.stdout.write({stdout!r})
        sys.stderr.write({stderr!r})
        sys.exit({code})
        """))
    script.chmod(0o755)


def recorded_argv(argv_log: Path) -> list[list[str]]:
    return [json.loads(line) for line in argv_log.read_text().splitlines()] if argv_log.exists() else []


def token_json(token: str = TOKEN) -> str:
    """What `az account get-access-token --output json` prints (azure-cli 2.54+ adds expires_on)."""
    expires = datetime.datetime.now() + datetime.timedelta(hours=1)
    return json.dumps({
        "accessToken": token,
        "expiresOn": expires.strftime("%Y-%m-%d %H:%M:%S.%f"),
        "expires_on": int(expires.timestamp()),
        "subscription": SUBSCRIPTION,
        "tenant": "99999999-8888-7777-6666-555555555555",
        "tokenType": "Bearer",
    })


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, Any]:
    """A PATH folder (empty unless a test puts a fake `az` in it), a home, and the network guard."""
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(NETWORK_GUARD)
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    network_log = tmp_path / "network.log"
    # Nothing of this process's environment: no AZUREML_*, no AZURE_*, no real `az` or ~/.azure.
    env = {"PATH": str(bin_dir), "HOME": str(home), "AZURE_CONFIG_DIR": str(home / ".azure"),
           "PYTHONPATH": str(guard), "SHEETDROP_TEST_NETWORK_LOG": str(network_log), "LANG": "C.UTF-8"}
    return {"env": env, "bin": bin_dir, "network_log": network_log, "argv_log": tmp_path / "az-argv.log",
            "tmp": tmp_path}


def run(module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def assert_no_network(sandbox: dict[str, Any]) -> None:
    assert not sandbox["network_log"].exists(), sandbox["network_log"].read_text()


def test_no_az_on_path_is_one_line_and_exit_2(sandbox: dict[str, Any]) -> None:
    proc = run("pipeline.publish", *WORKSPACE_ARGS, env=sandbox["env"])
    assert (proc.returncode, proc.stderr.splitlines(), proc.stdout) == (2, [NOT_ON_PATH], "")
    assert_no_network(sandbox)


def test_the_datastore_command_fails_the_same_way(sandbox: dict[str, Any]) -> None:
    proc = run("pipeline.datastore", "--storage-account", "sheetdropinput", *WORKSPACE_ARGS, env=sandbox["env"])
    assert (proc.returncode, proc.stderr.splitlines(), proc.stdout) == (2, [NOT_ON_PATH], "")
    assert_no_network(sandbox)


def test_az_not_logged_in_is_one_line_and_exit_2(sandbox: dict[str, Any]) -> None:
    # What azure-cli prints when no account is cached: CLIError(_AZ_LOGIN_MESSAGE) -> "ERROR: …", exit 1
    # (azure/cli/core/_profile.py); AzureCliCredential reads "az login" in stderr as "not logged in".
    write_fake_az(sandbox["bin"], sandbox["argv_log"], stderr="ERROR: Please run 'az login' to setup account.\n",
                  code=1)
    proc = run("pipeline.publish", *WORKSPACE_ARGS, env=sandbox["env"])
    assert (proc.returncode, proc.stderr.splitlines(), proc.stdout) == (2, [NOT_LOGGED_IN], "")
    # It got as far as asking `az` for the ARM token, and no further.
    assert recorded_argv(sandbox["argv_log"]) == [
        ["account", "get-access-token", "--output", "json", "--resource", ARM_RESOURCE]]
    assert_no_network(sandbox)


def test_az_failing_otherwise_names_its_error(sandbox: dict[str, Any]) -> None:
    write_fake_az(sandbox["bin"], sandbox["argv_log"],
                  stderr="ERROR: AADSTS700082: The refresh token has expired due to inactivity.\nTrace ID: 1\n",
                  code=1)
    proc = run("pipeline.publish", *WORKSPACE_ARGS, env=sandbox["env"])
    assert (proc.returncode, proc.stderr.splitlines(), proc.stdout) == (2, [
        "error: auth: `az` could not get a token (ERROR: AADSTS700082: The refresh token has expired due to "
        "inactivity.): run `az login` (and `az account set --subscription …`)"], "")
    assert_no_network(sandbox)


def test_no_workspace_is_one_line_naming_the_flags(sandbox: dict[str, Any]) -> None:
    empty = sandbox["tmp"] / "no-config"
    empty.mkdir()
    proc = run("pipeline.publish", "--config", str(empty), env=sandbox["env"])
    assert (proc.returncode, proc.stderr.splitlines(), proc.stdout) == (2, [
        "error: workspace: no workspace given: set --subscription-id/--resource-group/--workspace "
        "(AZUREML_SUBSCRIPTION_ID, AZUREML_RESOURCE_GROUP, AZUREML_WORKSPACE), or put the workspace's "
        f"config.json in {str(empty)!r} or a parent folder (or pass --config)"], "")
    assert recorded_argv(sandbox["argv_log"]) == []  # the workspace is checked before any token
    assert_no_network(sandbox)


def test_cli_auth_without_the_azure_cli_package_is_one_line(sandbox: dict[str, Any]) -> None:
    proc = run("pipeline.publish", "--auth", "cli", *WORKSPACE_ARGS, env=sandbox["env"])
    assert (proc.returncode, proc.stderr.splitlines(), proc.stdout) == (2, [
        "error: auth: --auth cli needs the azure-cli Python package in this environment, and it is not "
        "installed: use --auth az (the default), which runs the `az` on PATH"], "")
    assert_no_network(sandbox)


def test_help_needs_no_azure_setting(sandbox: dict[str, Any]) -> None:
    env = {**sandbox["env"], "COLUMNS": "200"}
    proc = run("pipeline.publish", "--help", env=env)
    assert (proc.returncode, proc.stderr) == (0, "")
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("usage: python -m pipeline.publish [-h] [--config CONFIG]")
    auth = lines.index("  --auth {az,interactive,msi,cli}")
    assert lines[auth + 1].strip() == ("az: the Azure CLI on PATH, after `az login` (default); interactive: a "
                                       "browser; msi: a managed identity; cli: the azure-cli Python package "
                                       "(env AZUREML_AUTH)")
    assert_no_network(sandbox)


def test_az_auth_sends_the_token_az_returns_for_arm(sandbox: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    write_fake_az(sandbox["bin"], sandbox["argv_log"], stdout=token_json())
    monkeypatch.setenv("PATH", str(sandbox["bin"]))
    monkeypatch.setenv("AZURE_CONFIG_DIR", sandbox["env"]["AZURE_CONFIG_DIR"])
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)

    auth = workspace.get_auth("az")

    assert auth.get_authentication_header() == {"Authorization": f"Bearer {TOKEN}"}
    assert auth.get_authentication_header() == {"Authorization": f"Bearer {TOKEN}"}  # cached: `az` ran once
    assert recorded_argv(sandbox["argv_log"]) == [
        ["account", "get-access-token", "--output", "json", "--resource", ARM_RESOURCE]]
    # The other audience TokenAuthentication asks for: AzureML's own resource.
    assert auth.get_token(Audience.AZUREML) == TOKEN
    assert recorded_argv(sandbox["argv_log"])[1:] == [
        ["account", "get-access-token", "--output", "json", "--resource", AML_RESOURCE]]


def test_az_auth_passes_the_tenant(sandbox: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    write_fake_az(sandbox["bin"], sandbox["argv_log"], stdout=token_json())
    monkeypatch.setenv("PATH", str(sandbox["bin"]))
    monkeypatch.setenv("AZURE_CONFIG_DIR", sandbox["env"]["AZURE_CONFIG_DIR"])
    tenant = "11111111-2222-3333-4444-555555555555"

    auth = workspace.check_auth("az", tenant_id=tenant, cloud="AzureCloud")

    assert auth.get_authentication_header() == {"Authorization": f"Bearer {TOKEN}"}
    assert recorded_argv(sandbox["argv_log"]) == [
        ["account", "get-access-token", "--output", "json", "--resource", ARM_RESOURCE, "--tenant", tenant]]


def test_the_default_auth_is_az_unless_azureml_auth_says_otherwise() -> None:
    assert publish.parse_args(["--workspace", "w"], {}).auth == "az"
    assert publish.parse_args([], {"AZUREML_AUTH": "msi"}).auth == "msi"
    assert publish.parse_args(["--auth", "interactive"], {"AZUREML_AUTH": "msi"}).auth == "interactive"


def test_grant_workspace_access_defaults_the_account_to_the_workspace_group(monkeypatch: pytest.MonkeyPatch,
                                                                           offline_workspace: Any) -> None:
    # The SDK refuses --grant-workspace-access without the account's subscription and resource group
    # (azureml/data/datastore_client.py, register_azure_blob_container).
    from azureml.data.azure_storage_datastore import AzureBlobDatastore

    from pipeline import datastore

    for name in ("INPUT_DATASTORE", "INPUT_CONTAINER", "AZUREML_AUTH"):
        monkeypatch.delenv(name, raising=False)
    workspace = offline_workspace  # a real azureml Workspace that never calls the service
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(datastore, "connect", lambda args: workspace)
    # Our own function, the one call into the SDK that would reach the service.
    monkeypatch.setattr(datastore, "register_input_datastore", lambda *args: calls.append(args) or AzureBlobDatastore(
        workspace, args[1], args[2], args[3]))

    assert datastore.main(["--storage-account", "sheetdropinput", "--grant-workspace-access"]) == 0
    assert datastore.main(["--storage-account", "sheetdropinput"]) == 0
    assert calls == [
        (workspace, "sheetdrop_input", "input", "sheetdropinput", SUBSCRIPTION, "rg-sheetdrop", True),
        (workspace, "sheetdrop_input", "input", "sheetdropinput", None, None, False),
    ]
