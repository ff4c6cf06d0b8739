"""The azd hooks (infra/hooks/*.py) run as `azd up`, `azd down` and `azd env set` run them, offline.

azd itself cannot run here, so `Azd` below plays the part of azd 1.23.15 for this project (Azure/
azure-dev): hooks around provision and deploy (pkg/ext/hooks_runner.go), each given the azd environment's
values as environment variables; provision evaluates infra/main.parameters.json with `${VAR}` /
`${VAR=default}` substitution and AZURE_PRINCIPAL_ID/AZURE_PRINCIPAL_TYPE from the login (pkg/infra/
provisioning/bicep/bicep_provider.go, evalParamEnvSubst), deploys infra/main.bicep (evaluated by
tests/bicep_eval.py) into a simulated subscription and stores the outputs; down deletes the resource group,
leaves the workspace soft-deleted (azd never purges workspaces; key vaults only with --purge) and deletes
the outputs from the environment (pkg/infra/provisioning/manager.go, Destroy).

The hooks run unchanged, as subprocesses, from a copy of the repository's hooks and publisher sources; the
tools they call are stand-ins on PATH that log their argv: `az` (tests/az_standin.py, answering from the
simulated subscription), `azd` (tests/azd_standin.py), `make` and the AzureML environments' Python
(tests/publisher_standin.py). Every `az` call logged is then handed to PyPI's azure-cli (.venv-azcli), and
every publisher call to the publisher's own argument parser (.venv-aml, .venv-aml2).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bicep_eval import Deployment, Scope
from sheetdrop.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
INFRA = REPO / "infra"
AZCLI_PYTHON = REPO / ".venv-azcli" / "bin" / "python"
PUBLISHER_PYTHON = {"pipeline.publish": REPO / ".venv-aml" / "bin" / "python",
                    "pipeline.v2.publish": REPO / ".venv-aml2" / "bin" / "python"}
#: What the post-provision hook digests (infra/hooks/postprovision.py, SOURCES), copied with the hooks.
SOURCES = ("pipeline", "step", "function/sheetdrop_contract", "requirements-aml.txt", "requirements-aml2.txt")
KEY = "s3cr3t-blobs-extension-key"
#: The object id azd's login reports (AZURE_PRINCIPAL_ID).
DEPLOYER = "11111111-1111-1111-1111-111111111111"


class ProvisionFailed(Exception):
    """What ARM answers when a deployment cannot create a resource."""


class HookFailed(Exception):
    def __init__(self, name: str, result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"{name} exited {result.returncode}: {result.stderr.strip()}")
        self.result = result


def standin(bin_dir: Path, name: str, source: Path) -> Path:
    """An executable `name` that runs `source` with this interpreter."""
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\n" + source.read_text())
    path.chmod(0o755)
    return path


def envsubst(text: str, values: dict[str, str]) -> str:
    """${NAME} and ${NAME=default} (also :=, -, :-) as drone/envsubst, which azd uses, substitutes them."""
    def one(match: re.Match[str]) -> str:
        value = values.get(match.group(1), "")
        return value if value or match.group(2) is None else match.group(3)
    return re.sub(r"\$\{(\w+)(?:(:?[=-])([^}]*))?\}", one, text)


@dataclass
class Azd:
    """azd 1.23.15 running this project's `up`, `provision`, `deploy`, `down` and `env set` (module docstring)."""

    root: Path
    state: Path
    bin: Path
    principal_type: str = "User"
    env_name: str = "dev"
    location: str = "westeurope"
    subscription: str = "00000000-0000-0000-0000-00000000aaaa"
    outputs: set[str] = field(default_factory=set)
    printed: list[str] = field(default_factory=list)

    # -- the azd environment and the simulated subscription ---------------------------------------------

    def values(self) -> dict[str, str]:
        return json.loads((self.state / "azd-env.json").read_text())

    def set(self, **values: str) -> None:
        (self.state / "azd-env.json").write_text(json.dumps({**self.values(), **values}, indent=1))

    def cloud(self) -> dict[str, Any]:
        return json.loads((self.state / "cloud.json").read_text())

    def save(self, cloud: dict[str, Any]) -> None:
        (self.state / "cloud.json").write_text(json.dumps(cloud, indent=1))

    def calls(self, tool: str) -> list[list[str]]:
        path = self.state / "calls.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [entry["argv"] for entry in map(json.loads, lines) if entry["tool"] == tool]

    # -- hooks -------------------------------------------------------------------------------------------

    def hook(self, name: str, **extra: str) -> subprocess.CompletedProcess[str]:
        """As azd runs a .py hook: the hook's folder as working directory, the azd environment's values as
        environment variables, stdin not a terminal (CI)."""
        env = {"PATH": str(self.bin), "STUB_DIR": str(self.state), "SHEETDROP_KEY_WAIT_SECONDS": "0",
               "SHEETDROP_KEY_ATTEMPTS": "5", "SYSTEMROOT": os.environ.get("SYSTEMROOT", ""), **self.values(),
               **extra}
        hooks = self.root / "infra" / "hooks"
        result = subprocess.run([sys.executable, str(hooks / f"{name}.py")], cwd=hooks, env=env, text=True,
                                capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
        self.printed.append(result.stdout + result.stderr)
        if result.returncode != 0:
            raise HookFailed(name, result)
        return result

    # -- commands ----------------------------------------------------------------------------------------

    def parameters(self) -> dict[str, str]:
        template = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
        # azd substitutes these two from its own login, not from the environment.
        values = {**self.values(), "AZURE_PRINCIPAL_ID": DEPLOYER,
                  "AZURE_PRINCIPAL_TYPE": self.principal_type}
        return {name: envsubst(spec["value"], values) for name, spec in template.items()}

    def deploy_template(self) -> Scope:
        """`azd provision` without its hooks: what ARM does with infra/main.bicep and these parameters."""
        main = Scope(INFRA / "main.bicep", self.parameters(), Deployment(self.subscription, "tenant-1", self.location))
        for param in ("principalType", "azuremlApi"):  # ARM refuses a value outside @allowed
            if main.params[param] not in main.allowed(param):
                raise ProvisionFailed(f"parameter {param}={main.params[param]!r} is not allowed")
        outputs = {name: main.outputs()[name] for name in main.tree["outputs"]}
        azureml = main.resolve("azureml").child()
        workspace, vault = azureml.resolve("workspace").get("name"), azureml.resolve("keyVault").get("name")
        cloud = self.cloud()
        if workspace in cloud["soft_deleted_workspaces"]:
            raise ProvisionFailed("Soft-deleted workspace exists. Please purge or recover it. "
                                  "https://aka.ms/wsoftdelete (Code:BadRequest)")
        if vault in cloud["soft_deleted_vaults"]:
            raise ProvisionFailed(f"A vault with the same name already exists in deleted state: {vault}")
        group = cloud["groups"].setdefault(outputs["AZURE_RESOURCE_GROUP"],
                                           {"workspaces": {}, "vaults": [], "apps": {}, "topics": {}})
        group["workspaces"][workspace] = {"id": outputs["AZUREML_WORKSPACE_ID"]}
        group["vaults"] = sorted({*group["vaults"], vault})
        function = main.resolve("functionApp").child()
        site = group["apps"].setdefault(outputs["AZURE_FUNCTION_APP_NAME"], {
            "defaultHostName": function.resolve("functionApp").get("properties")["defaultHostName"],
            "running": False, "key_polls": 0, "blobs_extension": KEY, "settings": {}})
        # The template's sites/config 'appsettings' is a PUT: it replaces every app setting.
        site["settings"] = function.eval(function.tree["resources"]["appSettings"]["config"]["properties"])
        cloud["settings_history"].append(dict(site["settings"]))
        group["topics"].setdefault(outputs["EVENTGRID_SYSTEM_TOPIC_NAME"], {})
        rbac = main.resolve("rbac").child()
        cloud["role_assignments"] = [
            {"name": r.symbol, "principalType": rbac.eval(r.body["properties"]["principalType"]),
             "principalId": rbac.eval(r.body["properties"]["principalId"]),
             "role": rbac.eval(r.body["properties"]["roleDefinitionId"]).rsplit("/", 1)[1],
             "scope": rbac.eval(r.body["scope"]).get("id")}
            for r in rbac.resources("Microsoft.Authorization/roleAssignments") if r.condition]
        self.save(cloud)
        self.set(**{name: str(value) for name, value in outputs.items()})
        self.outputs = set(outputs)
        return main

    def provision(self) -> None:
        self.hook("preprovision")
        self.deploy_template()
        self.hook("postprovision")

    def deploy(self) -> None:
        """`azd deploy`: the code reaches the app, whose host then runs (and makes its system keys)."""
        cloud = self.cloud()
        cloud["groups"][self.values()["AZURE_RESOURCE_GROUP"]]["apps"][self.values()["AZURE_FUNCTION_APP_NAME"]][
            "running"] = True
        self.save(cloud)
        self.hook("postdeploy")

    def up(self) -> None:
        self.provision()
        self.deploy()

    def down(self, purge: bool) -> None:
        cloud = self.cloud()
        group = cloud["groups"].pop(self.values()["AZURE_RESOURCE_GROUP"])
        cloud["soft_deleted_workspaces"] += list(group["workspaces"])  # never purged by azd
        if not purge:
            cloud["soft_deleted_vaults"] += group["vaults"]
        self.save(cloud)
        values = {k: v for k, v in self.values().items() if k not in self.outputs}
        (self.state / "azd-env.json").write_text(json.dumps(values, indent=1))

    # -- what the Function ends up with -----------------------------------------------------------------

    def app_settings(self) -> dict[str, str]:
        values = self.values()
        return self.cloud()["groups"][values["AZURE_RESOURCE_GROUP"]]["apps"][values["AZURE_FUNCTION_APP_NAME"]][
            "settings"]

    def event_subscriptions(self) -> dict[str, Any]:
        values = self.values()
        return self.cloud()["groups"][values["AZURE_RESOURCE_GROUP"]]["topics"][values["EVENTGRID_SYSTEM_TOPIC_NAME"]]


@pytest.fixture
def azd(tmp_path: Path) -> Azd:
    root, state, bin_dir = tmp_path / "repo", tmp_path / "state", tmp_path / "bin"
    (root / "infra" / "hooks").mkdir(parents=True)
    for hook in (INFRA / "hooks").glob("*.py"):
        shutil.copy(hook, root / "infra" / "hooks" / hook.name)
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / name)
    state.mkdir()
    bin_dir.mkdir()
    standin(bin_dir, "az", TESTS / "az_standin.py")
    standin(bin_dir, "azd", TESTS / "azd_standin.py")
    publisher = standin(bin_dir, "publisher", TESTS / "publisher_standin.py")
    # `make setup-aml[2]` builds the venv; here it puts the publisher stand-in where the venv's python goes.
    (bin_dir / "make").write_text(
        f"#!{sys.executable}\nimport json, os, shutil, sys\n"
        f"open(os.path.join(os.environ['STUB_DIR'], 'calls.jsonl'), 'a').write("
        f"json.dumps({{'tool': 'make', 'argv': sys.argv[1:]}}) + '\\n')\n"
        f"venv = {{'setup-aml': '.venv-aml', 'setup-aml2': '.venv-aml2'}}[sys.argv[1]]\n"
        f"os.makedirs(os.path.join(venv, 'bin'), exist_ok=True)\n"
        f"shutil.copy({str(publisher)!r}, os.path.join(venv, 'bin', 'python'))\n")
    (bin_dir / "make").chmod(0o755)
    azd = Azd(root, state, bin_dir)
    # `azd init` / `azd up`'s prompts: the environment's name, subscription and region.
    (state / "azd-env.json").write_text(json.dumps({"AZURE_ENV_NAME": azd.env_name, "AZURE_LOCATION": azd.location,
                                                    "AZURE_SUBSCRIPTION_ID": azd.subscription}))
    azd.save({"location": azd.location, "groups": {}, "soft_deleted_workspaces": [], "soft_deleted_vaults": [],
              "key_after": 2, "published": {}, "writes": [], "settings_history": [], "role_assignments": []})
    return azd


# -- checks every scenario ends with -----------------------------------------------------------------------

_parsed: dict[tuple[str, ...], str] = {}


def azure_cli_verdict(argv: tuple[str, ...], config_dir: Path) -> str:
    """'' when PyPI's azure-cli parses argv and stops only for want of a login; else what it said."""
    env = {"PATH": os.environ["PATH"], "HOME": str(config_dir), "AZURE_CONFIG_DIR": str(config_dir),
           "AZURE_CORE_COLLECT_TELEMETRY": "no", "AZURE_CORE_NO_COLOR": "yes"}
    result = subprocess.run([str(AZCLI_PYTHON), "-m", "azure.cli", *argv], env=env, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=300)
    if result.returncode == 1 and "Please run 'az login'" in result.stderr:
        return ""
    return f"exit {result.returncode}: {result.stderr.strip()[-400:]}"


def assert_az_calls_parse(argvs: list[list[str]], tmp_path: Path) -> None:
    if not AZCLI_PYTHON.is_file():
        pytest.fail(f"{AZCLI_PYTHON.parent.parent.name} is missing: run `make setup-azcli` (make test does)")
    todo = sorted({tuple(argv) for argv in argvs} - set(_parsed))
    (tmp_path / "azcli").mkdir(exist_ok=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for argv, verdict in zip(todo, pool.map(lambda a: azure_cli_verdict(a, tmp_path / "azcli"), todo),
                                 strict=True):
            _parsed[argv] = verdict
    failed = {" ".join(argv): _parsed[tuple(argv)] for argv in argvs if _parsed[tuple(argv)]}
    assert not failed, failed


def assert_publisher_calls_parse(argvs: list[list[str]]) -> None:
    """Each `python -m <publisher> …` the hook ran, through that publisher's own parse_args."""
    for argv in {tuple(a) for a in argvs} - set(_parsed):
        assert argv[0] == "-m", argv
        python = PUBLISHER_PYTHON[argv[1]]
        if not python.is_file():
            pytest.fail(f"{python.parent.parent.name} is missing: run `make setup-aml setup-aml2` (make test does)")
        code = (f"import json, sys\nfrom {argv[1]} import parse_args\n"
                f"ns = parse_args(json.loads(sys.argv[1]), {{}})\nprint(json.dumps(vars(ns), default=str))")
        result = subprocess.run([str(python), "-c", code, json.dumps(list(argv[2:]))], cwd=REPO, capture_output=True,
                                text=True, timeout=300)
        _parsed[argv] = "" if result.returncode == 0 else f"exit {result.returncode}: {result.stderr[-400:]}"
        assert not _parsed[argv], (argv, _parsed[argv])


def finish(azd: Azd, tmp_path: Path) -> None:
    assert_az_calls_parse(azd.calls("az"), tmp_path)
    assert_publisher_calls_parse(azd.calls("publish"))
    assert KEY not in "".join(azd.printed), "a hook printed the blobs_extension key"
    # The Function never held azureml-v2 without its URL, in any state the deployment went through.
    for settings in azd.cloud()["settings_history"]:
        if settings.get("SHEETDROP_BACKEND") == "azureml-v2":
            assert settings.get("AZUREML_BATCH_ENDPOINT_URL"), settings


def function_settings(azd: Azd) -> Any:
    """The app settings as the deployed Function reads them (WEBSITE_SKU: the platform marks Azure)."""
    return load_settings({**azd.app_settings(), "WEBSITE_SKU": "FlexConsumption"})


# -- scenarios ---------------------------------------------------------------------------------------------


def test_v1_up_publishes_as_the_deployer_wires_the_function_and_subscribes_the_real_host(
        azd: Azd, tmp_path: Path) -> None:
    azd.up()
    values = azd.values()
    assert azd.calls("make") == [["setup-aml"]]
    (publish,) = azd.calls("publish")
    assert publish == ["-m", "pipeline.publish", "--auth", "az", "--subscription-id", azd.subscription,
                       "--resource-group", "rg-dev", "--workspace", values["AZUREML_WORKSPACE"], "--compute",
                       "sheetdrop-cpu", "--input-datastore", "sheetdrop_input", "--endpoint-name", "sheetdrop-extract"]
    url = values["AZUREML_PIPELINE_ENDPOINT_URL"]
    settings = function_settings(azd)
    assert settings.backend == "azureml" and settings.backend_settings.workspace == values["AZUREML_WORKSPACE"]
    assert azd.app_settings()["AZUREML_PIPELINE_ENDPOINT_URL"] == url
    # The URL waits in the azd environment for the next provision (infra/main.parameters.json).
    assert azd.parameters()["pipelineEndpointUrl"] == url
    (subscription,) = azd.event_subscriptions().values()
    function_name = re.search(r'function_name\("(\w+)"\)\s*@app\.blob_trigger',
                              (REPO / "function" / "function_app.py").read_text())
    assert function_name
    host = azd.cloud()["groups"]["rg-dev"]["apps"][values["AZURE_FUNCTION_APP_NAME"]]["defaultHostName"]
    assert subscription["destination"]["endpointUrl"] == (
        f"https://{host}/runtime/webhooks/blobs?functionName=Host.Functions.{function_name.group(1)}&code={KEY}")
    assert subscription["filter"] == {"includedEventTypes": ["Microsoft.Storage.BlobCreated"],
                                      "subjectBeginsWith": "/blobServices/default/containers/input/"}
    assert "waiting for the host's blobs_extension key" in azd.printed[-1]
    # Every Azure call targets the deployment's subscription explicitly, never az's default one.
    assert all(azd.subscription in argv for argv in azd.calls("az"))
    finish(azd, tmp_path)


def test_up_twice_changes_nothing(azd: Azd, tmp_path: Path) -> None:
    azd.up()
    cloud = azd.cloud()
    writes, published = list(cloud["writes"]), dict(cloud["published"])
    assert [w for w in writes if "event_subscription" in w] == [{"event_subscription": "create"}]
    azd.up()
    cloud = azd.cloud()
    assert cloud["writes"] == writes, "the second up wrote app settings or the event subscription"
    assert cloud["published"] == published and len(azd.calls("publish")) == 1, "the second up published again"
    assert "not published again" in azd.printed[-2] and "already" in azd.printed[-2]
    assert "already up to date" in azd.printed[-1]
    finish(azd, tmp_path)


def test_a_source_change_is_published_again_behind_the_same_endpoint(azd: Azd, tmp_path: Path) -> None:
    azd.up()
    url = azd.values()["AZUREML_PIPELINE_ENDPOINT_URL"]
    (azd.root / "pipeline" / "build.py").write_text((azd.root / "pipeline" / "build.py").read_text() + "\n# changed\n")
    azd.up()
    assert len(azd.calls("publish")) == 2 and azd.values()["AZUREML_PIPELINE_ENDPOINT_URL"] == url
    assert not [w for w in azd.cloud()["writes"][1:] if "app_settings" in w], "same URL: no app setting write"
    finish(azd, tmp_path)


def test_v2_in_one_command_publishes_v2_and_wires_the_function(azd: Azd, tmp_path: Path) -> None:
    # azd env set SHEETDROP_AZUREML_API azureml-v2 && azd up
    azd.set(SHEETDROP_AZUREML_API="azureml-v2")
    azd.up()
    values = azd.values()
    assert azd.calls("make") == [["setup-aml2"]]
    (publish,) = azd.calls("publish")
    assert publish == ["-m", "pipeline.v2.publish", "--subscription-id", azd.subscription, "--resource-group", "rg-dev",
                       "--workspace", values["AZUREML_WORKSPACE"], "--compute", "sheetdrop-cpu", "--endpoint-name",
                       values["AZUREML_BATCH_ENDPOINT_NAME"]]
    settings = function_settings(azd)
    assert settings.backend == "azureml-v2"
    v2 = settings.backend_settings
    assert v2.endpoint_url == values["AZUREML_BATCH_ENDPOINT_URL"]
    assert (v2.subscription_id, v2.resource_group, v2.workspace) == (
        azd.subscription, "rg-dev", values["AZUREML_WORKSPACE"])
    # The provision before the publish left the app on azureml; one write then brought URL and backend together.
    history = azd.cloud()["settings_history"]
    assert history[0]["SHEETDROP_BACKEND"] == "azureml" and "AZUREML_BATCH_ENDPOINT_URL" not in history[0]
    (write,) = [w["app_settings"] for w in azd.cloud()["writes"] if "app_settings" in w]
    assert {"SHEETDROP_BACKEND", "AZUREML_BATCH_ENDPOINT_URL"} <= set(write)
    # And again: nothing changes; the next provision sets azureml-v2 itself (the URL is a parameter now).
    azd.up()
    assert len(azd.calls("publish")) == 1 and azd.cloud()["settings_history"][-1]["SHEETDROP_BACKEND"] == "azureml-v2"
    assert len([w for w in azd.cloud()["writes"] if "app_settings" in w]) == 1
    finish(azd, tmp_path)


def test_a_v1_deployment_switches_to_v2_and_keeps_its_v1_endpoint(azd: Azd, tmp_path: Path) -> None:
    azd.up()
    v1_url = azd.values()["AZUREML_PIPELINE_ENDPOINT_URL"]
    azd.set(SHEETDROP_AZUREML_API="azureml-v2")
    azd.up()
    assert [argv[1] for argv in azd.calls("publish")] == ["pipeline.publish", "pipeline.v2.publish"]
    assert function_settings(azd).backend == "azureml-v2"
    # The v1 endpoint is neither unpublished nor forgotten: runs already submitted to it finish in AzureML,
    # and its URL stays in the azd environment and the app settings.
    assert azd.app_settings()["AZUREML_PIPELINE_ENDPOINT_URL"] == v1_url
    assert azd.values()["AZUREML_PIPELINE_ENDPOINT_URL"] == v1_url
    # Until the v2 publish wrote its URL, the app still submitted to v1.
    switching = azd.cloud()["settings_history"][1]
    assert switching["SHEETDROP_BACKEND"] == "azureml" and switching["AZUREML_PIPELINE_ENDPOINT_URL"] == v1_url
    # And back, the same way.
    azd.set(SHEETDROP_AZUREML_API="azureml")
    azd.up()
    settings = function_settings(azd)
    assert settings.backend == "azureml" and azd.app_settings()["AZUREML_PIPELINE_ENDPOINT_URL"] == v1_url
    finish(azd, tmp_path)


@pytest.mark.parametrize("purge", [True, False], ids=["down-purge", "down"])
def test_down_then_up_works_with_a_new_workspace_name(azd: Azd, tmp_path: Path, purge: bool) -> None:
    azd.up()
    first = azd.values()
    azd.down(purge=purge)
    assert "AZUREML_WORKSPACE" not in azd.values()  # outputs are gone; what the hooks stored is not
    # Without the pre-provision hook the same names come back, and ARM refuses the workspace's.
    with pytest.raises(ProvisionFailed, match="Soft-deleted workspace exists"):
        azd.deploy_template()
    azd.up()
    values = azd.values()
    assert values["SHEETDROP_WORKSPACE_GENERATION"] == "1"
    assert values["AZUREML_WORKSPACE"] == first["AZUREML_WORKSPACE"] + "-1"
    assert "is gone (azd down)" in azd.printed[-3]
    # Published into the new workspace; the Function points there, not at the old URL.
    assert azd.calls("publish")[-1][azd.calls("publish")[-1].index("--workspace") + 1] == values["AZUREML_WORKSPACE"]
    assert function_settings(azd).backend_settings.workspace == values["AZUREML_WORKSPACE"]
    assert values["AZUREML_PIPELINE_ENDPOINT_URL"] != first["AZUREML_PIPELINE_ENDPOINT_URL"]
    assert len(azd.event_subscriptions()) == 1
    # And the up after that changes nothing.
    writes = azd.cloud()["writes"]
    azd.up()
    assert azd.cloud()["writes"] == writes and azd.values()["SHEETDROP_WORKSPACE_GENERATION"] == "1"
    finish(azd, tmp_path)


def test_a_workspace_deleted_by_hand_gets_a_new_generation_too(azd: Azd, tmp_path: Path) -> None:
    azd.up()
    cloud = azd.cloud()
    (name,) = cloud["groups"]["rg-dev"]["workspaces"]
    del cloud["groups"]["rg-dev"]["workspaces"][name]
    cloud["soft_deleted_workspaces"].append(name)
    azd.save(cloud)
    azd.up()
    assert azd.values()["AZUREML_WORKSPACE"] == name + "-1"
    finish(azd, tmp_path)


def test_service_principal_login_in_ci(azd: Azd, tmp_path: Path) -> None:
    """`azd auth login --client-id …` (and `az login --service-principal`): azd substitutes
    AZURE_PRINCIPAL_TYPE=ServicePrincipal; no hook waits for a terminal (stdin is not one)."""
    azd.principal_type = "ServicePrincipal"
    azd.up()
    assert azd.parameters()["principalType"] == "ServicePrincipal"
    deployer = [r for r in azd.cloud()["role_assignments"] if r["principalId"] == DEPLOYER]
    assert {r["name"] for r in deployer} == {"deployerBlobContributor", "deployerClaimsContributor",
                                             "deployerDataScientist", "deployerOutputReader"}
    assert {r["principalType"] for r in deployer} == {"ServicePrincipal"}
    (upload,) = [r for r in deployer if r["name"] == "deployerBlobContributor"]
    assert upload["scope"].endswith(f"/storageAccounts/{azd.values()['AZURE_STORAGE_ACCOUNT_NAME']}"
                                    "/blobServices/default/containers/input")
    others = [r for r in azd.cloud()["role_assignments"] if r not in deployer]
    assert others and {r["principalType"] for r in others} == {"ServicePrincipal"}
    finish(azd, tmp_path)


def test_a_person_login_gets_user_assignments(azd: Azd) -> None:
    azd.up()
    deployer = [r for r in azd.cloud()["role_assignments"] if r["principalId"] == DEPLOYER]
    assert {r["principalType"] for r in deployer} == {"User"} and len(deployer) == 4


# -- failures: one line, nothing half done --------------------------------------------------------------------


def test_postprovision_stops_when_the_publisher_prints_no_url(azd: Azd) -> None:
    failing = azd.bin / "failing"
    failing.write_text(f"#!{sys.executable}\nimport sys\n"
                       "print('error: auth: `az` is not logged in', file=sys.stderr)\n")
    failing.chmod(0o755)
    azd.hook("preprovision")
    azd.deploy_template()
    with pytest.raises(HookFailed) as failed:
        azd.hook("postprovision", SHEETDROP_AML_PYTHON=str(failing))
    assert failed.value.result.stderr.strip().splitlines()[-1] == \
        "error: python -m pipeline.publish printed no AZUREML_PIPELINE_ENDPOINT_URL line"
    assert not [w for w in azd.cloud()["writes"] if "app_settings" in w]
    assert "SHEETDROP_PUBLISHED" not in azd.values()


def test_without_make_the_hook_names_what_to_build(azd: Azd) -> None:
    (azd.bin / "make").unlink()
    azd.hook("preprovision")
    azd.deploy_template()
    with pytest.raises(HookFailed) as failed:
        azd.hook("postprovision")
    assert failed.value.result.stderr.strip() == (
        "error: .venv-aml is missing: build it with `make setup-aml`, or without make set SHEETDROP_AML_PYTHON to "
        'a Python that has its requirements (README, "Deploy to Azure")')
    # With the variable (Windows without make), it publishes.
    azd.hook("postprovision", SHEETDROP_AML_PYTHON=str(azd.bin / "publisher"))
    assert len(azd.calls("publish")) == 1


def test_postdeploy_gives_up_without_the_key_and_subscribes_nothing(azd: Azd) -> None:
    azd.provision()
    with pytest.raises(HookFailed) as failed:
        azd.hook("postdeploy")  # the code never reached the app: the host never makes the key
    assert "has no blobs_extension system key yet" in failed.value.result.stderr
    assert azd.event_subscriptions() == {}


def test_an_unknown_api_is_refused_before_anything_is_published(azd: Azd) -> None:
    azd.set(SHEETDROP_AZUREML_API="azureml-v3")
    with pytest.raises(ProvisionFailed):
        azd.deploy_template()  # @allowed: ARM refuses it first
    with pytest.raises(HookFailed) as failed:
        azd.hook("postprovision", AZUREML_WORKSPACE_ID="/x")
    assert "SHEETDROP_AZUREML_API='azureml-v3' is not one of azureml, azureml-v2" in failed.value.result.stderr
    assert azd.calls("publish") == []


def test_run_by_hand_a_hook_reads_the_azd_environment_itself(azd: Azd) -> None:
    azd.up()
    env = {"PATH": str(azd.bin), "STUB_DIR": str(azd.state)}  # no azd values in the environment
    hooks = azd.root / "infra" / "hooks"
    result = subprocess.run([sys.executable, str(hooks / "postdeploy.py")], cwd=hooks, env=env, text=True,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert ["env", "get-value", "AZURE_FUNCTION_APP_NAME"] in azd.calls("azd")
    (azd.state / "azd-env.json").write_text("{}")
    result = subprocess.run([sys.executable, str(hooks / "postdeploy.py")], cwd=hooks, env=env, text=True,
                            capture_output=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr == "error: AZUREML_SUBSCRIPTION_ID is not in the azd environment: run `azd provision` first\n"


def test_the_hook_apis_are_the_templates_and_the_functions() -> None:
    """One list of APIs: the hook publishes for exactly the values main.bicep allows, which are the
    Function's deployable backends."""
    text = (INFRA / "hooks" / "postprovision.py").read_text()
    publishers = set(re.findall(r'^    "([\w-]+)": Publisher\(', text, re.MULTILINE))
    main = Scope(INFRA / "main.bicep", {"environmentName": "dev", "location": "westeurope"},
                 Deployment("s", "t", "westeurope"))
    assert publishers == set(main.allowed("azuremlApi")) == {"azureml", "azureml-v2"}
    # And the hook digests what the publishers read (the same list as the copy above).
    assert re.search(r"^SOURCES = \(([^)]*)\)", text, re.MULTILINE | re.DOTALL).group(1).replace("\n", "").replace(
        " ", "") == ",".join(f'"{s}"' for s in SOURCES)


# -- the README's deploy commands --------------------------------------------------------------------------


def deploy_commands() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Deploy to Azure")
    section = readme[start:readme.index("\n## ", start + 5)] if "\n## " in readme[start + 5:] else readme[start:]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip()
            commands.extend(part.strip() for part in line.split("&&") if part.strip())
    return commands


def test_readme_deploy_commands_run_in_order(azd: Azd, tmp_path: Path) -> None:
    """Every command of the README's "Deploy to Azure" blocks, in order: azd ones as azd runs them here,
    az ones through azure-cli's parser (with `$(azd env get-value X)` filled in from the environment)."""
    commands = deploy_commands()
    assert "azd up" in commands and "azd down --purge" in commands
    az_calls = []
    for command in commands:
        command = re.sub(r"\$\(azd env get-value (\w+)\)", lambda m: azd.values()[m.group(1)], command)
        argv = shlex.split(command)
        if argv in (["az", "login"], ["azd", "auth", "login"]):
            continue  # signing in
        if argv[:2] == [".venv/bin/sheetdrop", "smoke"]:
            continue  # the smoke test's commands: tests/test_smoke.py runs them (test_the_readme_smoke_commands_…)
        if argv == ["azd", "up"]:
            azd.up()
        elif argv[:3] == ["azd", "env", "set"] and len(argv) == 5:
            azd.set(**{argv[3]: argv[4]})
        elif argv[:2] == ["azd", "down"]:
            azd.down(purge="--purge" in argv)
        elif argv[0] == "az":
            az_calls.append([arg.replace("samples/", str(REPO / "samples") + "/") for arg in argv[1:]])
        else:
            pytest.fail(f"the README shows a command this test does not run: {command}")
    assert az_calls, "the README shows how to upload a workbook"
    assert_az_calls_parse(az_calls, tmp_path)
    finish(azd, tmp_path)
