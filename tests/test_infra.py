"""The `azd up` template (infra/, azure.yaml) against the app it deploys, offline.

Neither the Bicep compiler nor azd runs here, so every .bicep file is parsed with pycep-parser and the
parsed template is held against the code: the Function's app settings against what the Functions host,
the blob extension and sheetdrop/settings.py read; the role assignments against docs/azureml.md; the
monitoring workbook's queries against the records sheetdrop/telemetry.py writes; the hooks are run
with stand-ins for az, azd, make and the AzureML interpreter.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from sheetdrop import telemetry
from sheetdrop.settings import CONNECTION, SettingsError, load_settings
from sheetdrop.submit import SubmitResult
from sheetdrop.trigger import BlobVersion, handle_blob
from sheetdrop_local.settings import LocalSettings

REPO = Path(__file__).resolve().parent.parent
INFRA = REPO / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
HOOKS = sorted((INFRA / "hooks").glob("*.sh"))

# Built-in role definition ids (learn: role-based-access-control/built-in-roles; docs/azureml.md).
BLOB_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
QUEUE_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
ACCOUNT_CONTRIBUTOR = "17d1049b-9a84-46fb-8f53-869881c3d3ab"
BLOB_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
DATA_SCIENTIST = "f6c7c914-8db3-469d-8ca1-694a8f32e121"
METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"


@cache
def bicep(name: str) -> dict[str, Any]:
    return BicepParser().parse(file_path=INFRA / name)


def unquote(key: str) -> str:
    return key[1:-1] if len(key) > 1 and key[0] == key[-1] == "'" else key


def expr(node: Any) -> str:
    """A parsed expression as one line of text (pycep keeps identifiers and interpolated strings as str)."""
    if isinstance(node, dict) and "operator" in node:
        op = node["operator"]
        if op["type"] == "property_accessor":
            return f"{expr(op['operands']['operand_1'])}.{expr(op['operands']['operand_2'])}"
        return f"{op['type']}({', '.join(expr(v) for v in op['operands'].values())})"
    if isinstance(node, dict) and "function" in node:
        fn = node["function"]
        params = fn.get("parameters") or {}
        return f"{fn['type']}({', '.join(expr(v) for v in params.values() if v is not None)})"
    return node if isinstance(node, str) else json.dumps(node, sort_keys=True)


def object_keys(template: dict[str, Any], node: Any) -> dict[str, Any]:
    """Every key an object expression can have: variables resolved, union() merged, both sides of ?: taken."""
    if isinstance(node, str) and node in template.get("variables", {}):
        return object_keys(template, template["variables"][node]["value"])
    if isinstance(node, dict) and node.get("function", {}).get("type") == "union":
        merged: dict[str, Any] = {}
        for arg in node["function"]["parameters"].values():
            merged.update(object_keys(template, arg))
        return merged
    if isinstance(node, dict) and node.get("operator", {}).get("type") == "conditional":
        operands = node["operator"]["operands"]
        return {**object_keys(template, operands["true_value"]), **object_keys(template, operands["false_value"])}
    if isinstance(node, dict) and not ({"function", "operator"} & node.keys()):
        return {unquote(key): value for key, value in node.items()}
    raise AssertionError(f"not an object expression: {node!r}")


def resource_body(template: dict[str, Any], name: str) -> dict[str, Any]:
    config = template["resources"][name]["config"]
    return config["config"] if "condition" in config and "config" in config else config


def app_settings() -> dict[str, Any]:
    template = bicep("app/function.bicep")
    config = [name for name, res in template["resources"].items()
              if res["type"] == "Microsoft.Web/sites/config" and resource_body(template, name)["name"] == "appsettings"]
    assert len(config) == 1, "function.bicep sets the app settings in exactly one sites/config 'appsettings'"
    return object_keys(template, resource_body(template, config[0])["properties"])


# -- every file parses ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses(path: Path) -> None:
    parsed = BicepParser().parse(file_path=path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path.name} declares nothing"


def test_modules_and_loaded_files_exist() -> None:
    assert len(BICEP_FILES) >= 7
    for path in BICEP_FILES:
        text = path.read_text()
        for target in re.findall(r"^module \w+ '([^']+)'", text, re.MULTILINE):
            assert (path.parent / target).is_file(), f"{path.name}: module {target} is missing"
            assert not target.startswith("br"), f"{path.name}: registry module {target} cannot be checked offline"
        for target in re.findall(r"loadTextContent\('([^']+)'\)", text):
            assert (path.parent / target).is_file(), f"{path.name}: {target} is missing"
    json.loads((INFRA / "main.parameters.json").read_text())


def test_azure_yaml_runs_the_hooks_and_deploys_the_function_folder() -> None:
    text = (REPO / "azure.yaml").read_text()
    assert re.search(r"^\s+project: \./function$", text, re.MULTILINE) and "host: function" in text
    assert "language: python" in text
    for hook in ("postprovision", "postdeploy"):
        assert re.search(rf"^  {hook}:\n(    .*\n)*?\s+run: bash infra/hooks/{hook}\.sh$", text, re.MULTILINE), hook
        assert (INFRA / "hooks" / f"{hook}.sh").is_file()
    # azd finds the app by this tag; the service is the one azure.yaml names.
    assert "'azd-service-name': 'function'" in (INFRA / "app" / "function.bicep").read_text()


# -- no key, SAS or connection string with a key ----------------------------------------------------------

SECRET_PATTERNS = {
    "a list*() call (listKeys, listAccountSas, …)":
        r"\blist(Keys|AccountSas|ServiceSas|ConnectionStrings|Secrets)\s*\(",
    "an account key": r"AccountKey|accountKey|primaryKey|secondaryKey",
    "a SAS": r"SharedAccessSignature|SharedAccessKey|sasToken|[?&]sig=",
    "a storage connection string": r"DefaultEndpointsProtocol",
    "a plain AzureWebJobsStorage setting": r"\bAzureWebJobsStorage\s*[:=]",
    "an instrumentation key setting": r"APPINSIGHTS_INSTRUMENTATIONKEY",
    "a @secure() parameter carrying a secret in": r"@secure\(\)",
}


def secrets_in(text: str) -> list[str]:
    return [what for what, pattern in SECRET_PATTERNS.items() if re.search(pattern, text)]


def test_no_key_sas_or_connection_string_anywhere_in_infra() -> None:
    files = [p for p in [*INFRA.rglob("*"), REPO / "azure.yaml"] if p.is_file()]
    assert len(files) >= 12
    found = {str(p.relative_to(REPO)): secrets_in(p.read_text()) for p in files}
    assert not {name: what for name, what in found.items() if what}


@pytest.mark.parametrize("line", [
    "value: 'DefaultEndpointsProtocol=https;AccountName=${a};AccountKey=${stg.listKeys().keys[0].value}'",
    "sas: stg.listAccountSas('2023-01-01', {}).accountSasToken",
    "AzureWebJobsStorage: connection",
    "url: 'https://a.blob.core.windows.net/c?sv=2022&sig=abc'",
])
def test_the_scan_catches_what_it_looks_for(line: str) -> None:
    assert secrets_in(line)


def test_input_account_refuses_shared_keys_and_insights_refuses_local_auth() -> None:
    storage = resource_body(bicep("app/storage.bicep"), "storage")["properties"]
    assert storage["allowSharedKeyAccess"] is False and storage["allowBlobPublicAccess"] is False
    insights = resource_body(bicep("app/monitoring.bicep"), "applicationInsights")["properties"]
    assert insights["DisableLocalAuth"] is True
    datastore = resource_body(bicep("app/azureml.bicep"), "inputDatastore")["properties"]
    assert datastore["credentials"] == {"credentialsType": "None"}


# -- app settings: the template against the app --------------------------------------------------------

#: Set by the template, read by the Functions host or the blob extension rather than sheetdrop/settings.py.
HOST_READ = {
    # Identity-based host storage (learn: azure-functions/functions-reference, "Connecting to host storage
    # with an identity").
    "AzureWebJobsStorage__accountName": "host storage account",
    "AzureWebJobsStorage__credential": "host storage identity",
    "AzureWebJobsStorage__clientId": "host storage identity",
    # learn: azure-functions/functions-app-settings; azure-monitor/app/azure-ad-authentication.
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "telemetry destination",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Entra-authenticated telemetry",
    # The blob extension reads the trigger connection's identity settings (function_app.py connection=).
    f"{CONNECTION}__credential": "trigger connection identity",
    f"{CONNECTION}__queueServiceUri": "trigger connection queue endpoint (poison queue)",
}
#: What a deployed Function cannot do without (docs/azureml.md, "App settings (cloud)").
REQUIRED = {"SHEETDROP_BACKEND", f"{CONNECTION}__blobServiceUri", f"{CONNECTION}__queueServiceUri",
            f"{CONNECTION}__credential", f"{CONNECTION}__clientId", "AzureWebJobsStorage__accountName",
            "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId", "AZUREML_MANAGED_IDENTITY_CLIENT_ID",
            "AZUREML_PIPELINE_ENDPOINT_URL", "APPLICATIONINSIGHTS_CONNECTION_STRING",
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"}
#: Values for the template's expressions, the way ARM resolves them (primaryEndpoints end in a slash).
SAMPLE = {
    "storage.name": "stabc",
    "storage.properties.primaryEndpoints.blob": "https://stabc.blob.core.windows.net/",
    "storage.properties.primaryEndpoints.queue": "https://stabc.queue.core.windows.net/",
    "identity.properties.clientId": "11111111-2222-3333-4444-555555555555",
    "applicationInsights.properties.ConnectionString": "InstrumentationKey=0;IngestionEndpoint=https://x/",
    "inputContainerName": "input",
    "claimsContainerName": "sheetdrop-claims",
    "inputDatastoreName": "sheetdrop_input",
    "experimentName": "sheetdrop-extract",
    "azuremlApi": "azureml",
    "batchEndpointUrl": "https://sheetdrop-extract.westeurope.inference.ml.azure.com/jobs",
    "subscription().subscriptionId": "s",
    "resource_group().name": "rg-dev",  # resourceGroup().name as pycep writes it
    "workspaceName": "mlw-abc",
    "pipelineEndpointUrl": "https://westeurope.api.azureml.ms/pipelines/v1.0/subscriptions/s/resourceGroups/rg/"
    "providers/Microsoft.MachineLearningServices/workspaces/ws/PipelineRuns/PipelineEndpointSubmit/Id/e1",
}
LITERALS = {f"{CONNECTION}__credential": "managedidentity",
            "AzureWebJobsStorage__credential": "managedidentity"}


def names_read_by_settings_module() -> set[str]:
    """Every app setting name sheetdrop/settings.py and the backends' own configuration modules spell: their
    string constants and f-strings (with CONNECTION put in) shaped like a setting name; each one is read from
    the environment there."""
    modules = [REPO / "function" / "sheetdrop" / "settings.py",
               *sorted((REPO / "function" / "sheetdrop" / "submit").glob("*/configuration.py"))]
    trees = [ast.parse(module.read_text()) for module in modules]
    names = set()
    for node in (node for tree in trees for node in ast.walk(tree)):
        if isinstance(node, ast.JoinedStr):
            parts = [v.value if isinstance(v, ast.Constant) else CONNECTION if ast.unparse(v.value) == "CONNECTION"
                     else "\0" for v in node.values]
            text = "".join(str(p) for p in parts)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        if re.fullmatch(r"[A-Z][A-Z0-9_]*(__[A-Za-z]+)?", text) and "_" in text:
            names.add(text)
    return names


def resolved(settings: dict[str, Any]) -> dict[str, str]:
    values = {}
    for name, node in settings.items():
        text = expr(node)
        if "${" in text:  # an interpolated string: resolve each ${…} that SAMPLE knows
            values[name] = re.sub(r"\$\{([^}]+)\}", lambda m: SAMPLE[m.group(1)], text)
        else:
            values[name] = SAMPLE.get(text, text)
    return values


def load_in_azure(values: Mapping[str, str]) -> Any:
    """load_settings as a deployed Function runs it (WEBSITE_SKU: one of settings.AZURE_MARKERS)."""
    try:
        return load_settings({**values, "WEBSITE_SKU": "FlexConsumption"})
    except SettingsError as exc:
        return exc


def test_every_app_setting_the_template_sets_is_read_and_every_required_one_is_set() -> None:
    settings = app_settings()
    values = resolved(settings)
    loaded = load_in_azure(values)
    assert not isinstance(loaded, Exception), loaded
    read = names_read_by_settings_module()
    assert {"SHEETDROP_BACKEND", "INPUT_STORAGE__blobServiceUri", "INPUT_STORAGE__clientId", "CLAIM_STALE_SECONDS",
            "AZUREML_PIPELINE_ENDPOINT_URL", "AZUREML_MANAGED_IDENTITY_CLIENT_ID"} <= read
    unread = set(settings) - read - set(HOST_READ)
    assert not unread, f"set by infra/app/function.bicep but read by nothing: {sorted(unread)}"
    assert set(settings) >= REQUIRED, f"missing: {sorted(REQUIRED - set(settings))}"
    for name, value in LITERALS.items():
        assert values[name] == value, name
    # What the Function then uses is what the template created.
    assert loaded.backend == "azureml"
    assert loaded.storage.account_url == SAMPLE["storage.properties.primaryEndpoints.blob"]
    client_id = SAMPLE["identity.properties.clientId"]
    assert loaded.storage.client_id == loaded.backend_settings.managed_identity_client_id == client_id
    assert (loaded.input_container, loaded.claims_container, loaded.input_datastore, loaded.experiment_name) == (
        "input", "sheetdrop-claims", "sheetdrop_input", "sheetdrop-extract")
    assert loaded.backend_settings.endpoint_id == "e1"


def test_identity_and_endpoints_come_from_the_resources_the_template_creates() -> None:
    settings = {name: expr(node) for name, node in app_settings().items()}
    client_ids = {name for name, value in settings.items() if value == "identity.properties.clientId"}
    assert client_ids == {"AzureWebJobsStorage__clientId", f"{CONNECTION}__clientId",
                          "AZUREML_MANAGED_IDENTITY_CLIENT_ID"}
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == \
        "ClientId=${identity.properties.clientId};Authorization=AAD"
    assert settings[f"{CONNECTION}__blobServiceUri"] == "storage.properties.primaryEndpoints.blob"
    assert settings[f"{CONNECTION}__queueServiceUri"] == "storage.properties.primaryEndpoints.queue"
    assert settings["AzureWebJobsStorage__accountName"] == "storage.name"
    template = bicep("app/function.bicep")
    site = resource_body(template, "functionApp")
    assert site["identity"]["type"] == "UserAssigned"
    assert object_keys(template, site["identity"]["userAssignedIdentities"]) == {"${identity.id}": {}}
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    authentication = config["deployment"]["storage"]["authentication"]
    assert authentication["type"] == "UserAssignedIdentity"
    assert expr(authentication["userAssignedIdentityResourceId"]) == "identity.id"
    assert resource_body(template, "plan")["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert expr(template["outputs"]["identityPrincipalId"]["value"]) == "identity.properties.principalId"


def test_without_the_endpoint_url_the_function_names_what_is_missing() -> None:
    # The first provision, before the post-provision hook published: the template leaves the URL out.
    settings = {name: node for name, node in app_settings().items() if name != "AZUREML_PIPELINE_ENDPOINT_URL"}
    loaded = load_in_azure(resolved(settings))
    assert isinstance(loaded, SettingsError) and "AZUREML_PIPELINE_ENDPOINT_URL" in str(loaded)


def test_the_trigger_connection_is_the_prefix_the_template_sets() -> None:
    tree = ast.parse((REPO / "function" / "function_app.py").read_text())
    connections = {kw.value.value for node in ast.walk(tree) if isinstance(node, ast.Call)
                   for kw in node.keywords if kw.arg == "connection" and isinstance(kw.value, ast.Constant)}
    assert connections == {CONNECTION}


def test_names_flow_from_one_parameter_of_main_bicep() -> None:
    main = bicep("main.bicep")
    modules = {name: mod["config"]["params"] for name, mod in main["modules"].items()}
    fn = modules["functionApp"]
    assert main["parameters"]["inputContainerName"]["default"] == "input"
    assert fn["inputContainerName"] == modules["azureml"]["inputContainerName"] == "inputContainerName"
    assert "inputContainerName" in modules["storage"]["containerNames"]
    assert "claimsContainerName" in modules["storage"]["containerNames"]
    assert modules["functionApp"]["claimsContainerName"] == "claimsContainerName"
    assert fn["inputDatastoreName"] == modules["azureml"]["inputDatastoreName"] == "inputDatastoreName"
    assert modules["functionApp"]["pipelineEndpointUrl"] == "pipelineEndpointUrl"
    outputs = {name: expr(out["value"]) for name, out in main["outputs"].items()}
    assert outputs["INPUT_CONTAINER"] == "inputContainerName"
    assert outputs["INPUT_DATASTORE"] == "inputDatastoreName"
    assert outputs["AZUREML_COMPUTE"] == "computeName"
    # The URL the hook stores in the azd environment comes back as the parameter on every provision.
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["pipelineEndpointUrl"]["value"] == "${AZUREML_PIPELINE_ENDPOINT_URL}"
    datastore = resource_body(bicep("app/azureml.bicep"), "inputDatastore")
    assert (datastore["name"], datastore["properties"]["containerName"]) == ("inputDatastoreName", "inputContainerName")
    compute = resource_body(bicep("app/azureml.bicep"), "compute")
    assert compute["identity"]["type"] == "SystemAssigned"
    assert compute["properties"]["properties"]["scaleSettings"]["minNodeCount"] == 0


def evaluate(template: dict[str, Any], node: Any, parameters: dict[str, str]) -> str:
    """A Bicep string expression's value: interpolation, variables and parameters, toLower, and uniqueString
    as what it is documented to be, "a deterministic hash string based on the values provided as parameters",
    13 characters (learn: azure-resource-manager/bicep/bicep-functions-string#uniquestring). Its exact digits
    are Azure's; that the name depends on them, and fits the rule, is what is checked."""
    if isinstance(node, str):
        if node in parameters:
            return parameters[node]
        if node in template.get("variables", {}):
            return evaluate(template, template["variables"][node]["value"], parameters)
        return re.sub(r"\$\{(\w+)\}", lambda m: evaluate(template, m[1], parameters), unquote(node))
    if "function" in node:
        kind, args = node["function"]["type"], [a for a in (node["function"].get("parameters") or {}).values()]
        if kind == "to_lower":
            return evaluate(template, args[0], parameters).lower()
        if kind == "unique_string":
            joined = "-".join(evaluate(template, a, parameters) for a in args)
            digest = base64.b32encode(hashlib.sha256(joined.encode()).digest()).decode().lower()
            return digest[:13]
    if node.get("operator", {}).get("type") == "property_accessor":
        operands = node["operator"]["operands"]
        if operands["operand_1"].get("function", {}).get("type") == "subscription" and operands["operand_2"] == "id":
            return f"/subscriptions/{parameters['subscriptionId']}"
    raise AssertionError(f"cannot evaluate {node!r}")


#: A batch endpoint's name: azure-ai-ml's validate_endpoint_or_deployment_name (NAME_REGEX_PATTERN, 3-32
#: characters; constants/_endpoint.py), the rule learn: how-to-manage-quotas states.
BATCH_ENDPOINT_NAME = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")


def test_the_batch_endpoint_name_is_the_deployments_own() -> None:
    """Unique per region, as a batch endpoint's name must be: derived from the resource token, as every other
    name; two environments (or regions) give two names. `sheetdrop publish --v2` reads it."""
    main = bicep("main.bicep")
    output = main["outputs"]["AZUREML_BATCH_ENDPOINT_NAME"]["value"]
    names = {evaluate(main, output, {"subscriptionId": "sub-1", "environmentName": env, "location": region})
             for env, region in (("dev", "westeurope"), ("prod", "westeurope"), ("dev", "northeurope"))}
    assert len(names) == 3
    for name in names:
        assert BATCH_ENDPOINT_NAME.match(name) and 3 <= len(name) <= 32, name
    assert "AZUREML_BATCH_ENDPOINT_NAME" in (REPO / "pipeline" / "v2" / "publish.py").read_text()


# -- role assignments -----------------------------------------------------------------------------------

#: (principal parameter of rbac.bicep, role definition id, scope symbol) — docs/azureml.md, "Role assignments".
EXPECTED_ROLES = {
    ("functionPrincipalId", BLOB_OWNER, "storage"),
    ("functionPrincipalId", QUEUE_CONTRIBUTOR, "storage"),
    ("functionPrincipalId", ACCOUNT_CONTRIBUTOR, "storage"),
    ("functionPrincipalId", DATA_SCIENTIST, "workspace"),
    ("functionPrincipalId", METRICS_PUBLISHER, "applicationInsights"),
    ("computePrincipalId", BLOB_READER, "storage"),
    ("computePrincipalId", DATA_SCIENTIST, "workspace"),
    ("deployerPrincipalId", DATA_SCIENTIST, "workspace"),
}


def role_assignments() -> dict[str, tuple[str, str, str]]:
    found = {}
    for template_name in ("app/rbac.bicep", *(str(p.relative_to(INFRA)) for p in BICEP_FILES)):
        template = bicep(template_name)
        for name, res in template.get("resources", {}).items():
            if res["type"] != "Microsoft.Authorization/roleAssignments":
                continue
            assert template_name == "app/rbac.bicep", f"role assignment {name} outside rbac.bicep"
            body = resource_body(template, name)
            role = body["properties"]["roleDefinitionId"]["function"]
            assert role["type"] == "subscription_resource_id", name
            assert role["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions", name
            role_id = role["parameters"]["resource_name_1"]
            principal, scope = body["properties"]["principalId"], body["scope"]
            # A deterministic name from the same three: re-deploying finds the same assignment.
            assert expr(body["name"]) == f"guid({scope}.id, {principal}, {role_id})", name
            found[name] = (principal, role_id, scope)
    return found


def test_each_role_assignment_names_the_right_role_for_the_right_principal_and_scope() -> None:
    assert set(role_assignments().values()) == EXPECTED_ROLES
    rbac = bicep("app/rbac.bicep")
    existing = {name: resource_body(rbac, name)["name"] for name, res in rbac["resources"].items() if res["existing"]}
    assert existing == {"storage": "storageAccountName", "workspace": "workspaceName",
                        "applicationInsights": "applicationInsightsName"}
    params = bicep("main.bicep")["modules"]["rbac"]["config"]["params"]
    # The cluster's workspace role only where its step registers as the cluster (v2; docs/azureml-v2.md).
    condition = rbac["resources"]["computeDataScientist"]["config"]["condition"]
    assert condition["operator"]["type"] == "equals" and set(condition["operator"]["operands"].values()) == {
        "azuremlApi", "azureml-v2"}
    assert params["azuremlApi"] == "azuremlApi"
    assert expr(params["functionPrincipalId"]) == "functionApp.outputs.identityPrincipalId"
    assert expr(params["computePrincipalId"]) == "azureml.outputs.computePrincipalId"
    assert params["deployerPrincipalId"] == "principalId"
    assert expr(params["storageAccountName"]) == "storage.outputs.name"
    assert expr(bicep("app/azureml.bicep")["outputs"]["computePrincipalId"]["value"]) == "compute.identity.principalId"


def test_role_ids_match_the_table_in_docs() -> None:
    table = {}
    for line in (REPO / "docs" / "azureml.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"`[0-9a-f-]{36}`.*", cells[2]):
            table.setdefault(cells[2][1:37], []).append((cells[0], cells[1], cells[3]))
    names = {BLOB_OWNER: "Storage Blob Data Owner", QUEUE_CONTRIBUTOR: "Storage Queue Data Contributor",
             ACCOUNT_CONTRIBUTOR: "Storage Account Contributor", BLOB_READER: "Storage Blob Data Reader",
             DATA_SCIENTIST: "AzureML Data Scientist", METRICS_PUBLISHER: "Monitoring Metrics Publisher"}
    who = {"functionPrincipalId": "Function identity", "computePrincipalId": "Cluster identity",
           "deployerPrincipalId": "Person"}
    for principal, role_id, _scope in EXPECTED_ROLES:
        rows = table.get(role_id)
        assert rows, f"{role_id} is not in docs/azureml.md's role table"
        assert any(who[principal] in row[0] and names[role_id] in row[1] for row in rows), (principal, role_id, rows)


# -- hooks ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", HOOKS, ids=lambda p: p.name)
def test_hooks_are_strict_bash_that_passes_shellcheck(path: Path) -> None:
    subprocess.run(["bash", "-n", str(path)], check=True)
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed: apt-get install -y shellcheck (.ci/run does)"
    result = subprocess.run([shellcheck, "-x", str(path.relative_to(REPO))], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = path.read_text()
    if path.name != "lib.sh":  # sourced, not run
        assert text.startswith("#!/usr/bin/env bash\n") and "\nset -euo pipefail\n" in text
        assert os.access(path, os.X_OK)
    assert "set -x" not in text


def test_shellcheck_fails_a_broken_script(tmp_path: Path) -> None:
    if not shutil.which("shellcheck"):
        pytest.fail("shellcheck is not installed: apt-get install -y shellcheck")
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $1/*\n")
    assert subprocess.run(["shellcheck", str(bad)], capture_output=True).returncode != 0


AZ_STUB = r"""#!/usr/bin/env bash
# Stand-in for the Azure CLI: records each call, answers from files in $STUB_DIR.
printf '%s\n' "$*" >> "$STUB_DIR/az.calls"
case "$*" in
  "functionapp show"*) echo "func-abc-d4e5f6.westeurope-01.azurewebsites.net" ;;
  "functionapp keys list"*)
    n=$(cat "$STUB_DIR/keys.n" 2>/dev/null || echo 0); echo $((n + 1)) > "$STUB_DIR/keys.n"
    if [ "$n" -ge "${STUB_KEY_AFTER:-0}" ]; then echo "s3cr3t-blobs-key"; fi ;;
  "eventgrid system-topic event-subscription show"*) [ -f "$STUB_DIR/subscribed" ] || exit 3 ;;
  "eventgrid system-topic event-subscription create"*) touch "$STUB_DIR/subscribed" ;;
  "functionapp config appsettings list"*) cat "$STUB_DIR/url" 2>/dev/null || true ;;
  "functionapp config appsettings set"*)
    all="$*"; all=${all##*AZUREML_PIPELINE_ENDPOINT_URL=}; echo "${all%% *}" > "$STUB_DIR/url" ;;
esac
"""
AZD_STUB = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >> "$STUB_DIR/azd.calls"
case "$1 $2" in
  "env get-value") grep "^$3=" "$STUB_DIR/azd.env" | cut -d= -f2- ;;
  "env set") echo "$3=$4" >> "$STUB_DIR/azd.env" ;;
esac
"""
PUBLISH_STUB = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >> "$STUB_DIR/publish.calls"
echo "published pipeline: p1"
echo "AZUREML_PIPELINE_ENDPOINT_ID=e1"
echo "AZUREML_PIPELINE_ENDPOINT_URL=https://westeurope.api.azureml.ms/pipelines/v1.0/subscriptions/sub/resourceGroups/rg-dev/providers/Microsoft.MachineLearningServices/workspaces/mlw-abc/PipelineRuns/PipelineEndpointSubmit/Id/e1"
"""
AZD_ENV = {"AZUREML_SUBSCRIPTION_ID": "sub", "AZURE_RESOURCE_GROUP": "rg-dev", "AZURE_FUNCTION_APP_NAME": "func-abc",
           "AZUREML_WORKSPACE": "mlw-abc", "AZUREML_COMPUTE": "sheetdrop-cpu", "INPUT_DATASTORE": "sheetdrop_input",
           "AZUREML_PIPELINE_ENDPOINT_NAME": "sheetdrop-extract", "EVENTGRID_SYSTEM_TOPIC_NAME": "evgt-abc",
           "INPUT_CONTAINER": "input"}


@pytest.fixture
def stubs(tmp_path: Path) -> dict[str, Any]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = {"az": AZ_STUB, "azd": AZD_STUB, "make": "#!/usr/bin/env bash\n", "publish": PUBLISH_STUB}
    for name, text in tools.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "azd.env").write_text("".join(f"{k}={v}\n" for k, v in AZD_ENV.items()))
    # Only the stand-ins and the basic tools: the hooks read the azd environment through `azd env get-value`.
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "STUB_DIR": str(tmp_path), "HOME": str(tmp_path),
           "SHEETDROP_AML_PYTHON": str(bin_dir / "publish"), "SHEETDROP_KEY_ATTEMPTS": "3"}
    return {"dir": tmp_path, "env": env}


def run_hook(name: str, stubs: dict[str, Any], **extra: str) -> subprocess.CompletedProcess[str]:
    # sleep is the one wait in the hooks: a no-op here.
    (stubs["dir"] / "bin" / "sleep").write_text("#!/usr/bin/env bash\n")
    (stubs["dir"] / "bin" / "sleep").chmod(0o755)
    return subprocess.run(["bash", str(INFRA / "hooks" / name)], env={**stubs["env"], **extra}, capture_output=True,
                          text=True, timeout=60)


def calls(stubs: dict[str, Any], tool: str) -> list[str]:
    path = stubs["dir"] / f"{tool}.calls"
    return path.read_text().splitlines() if path.exists() else []


def test_postprovision_publishes_as_the_person_and_writes_the_endpoint_url_once(stubs: dict[str, Any]) -> None:
    first = run_hook("postprovision.sh", stubs)
    assert first.returncode == 0, first.stderr
    publish = calls(stubs, "publish")
    assert publish == ["-m pipeline.publish --auth az --subscription-id sub --resource-group rg-dev --workspace "
                       "mlw-abc --compute sheetdrop-cpu --input-datastore sheetdrop_input --endpoint-name "
                       "sheetdrop-extract"]
    url = (stubs["dir"] / "url").read_text().strip()
    assert url.endswith("/workspaces/mlw-abc/PipelineRuns/PipelineEndpointSubmit/Id/e1")
    assert load_settings({"SHEETDROP_BACKEND": "azureml", "INPUT_STORAGE__blobServiceUri": "https://a.blob.x",
                          "AZUREML_PIPELINE_ENDPOINT_URL": url}).backend_settings.workspace == "mlw-abc"
    assert f"env set AZUREML_PIPELINE_ENDPOINT_URL {url}" in calls(stubs, "azd")
    assert all("--subscription sub" in call for call in calls(stubs, "az"))
    # Again: published again (a new default version), the app setting left alone.
    second = run_hook("postprovision.sh", stubs)
    assert second.returncode == 0, second.stderr
    assert len(calls(stubs, "publish")) == 2
    assert sum("appsettings set" in call for call in calls(stubs, "az")) == 1
    assert "already set" in second.stdout


def test_postprovision_stops_when_publish_prints_no_url(stubs: dict[str, Any]) -> None:
    failing = "#!/usr/bin/env bash\necho 'error: auth: `az` is not logged in' >&2\n"
    (stubs["dir"] / "bin" / "publish").write_text(failing)
    result = run_hook("postprovision.sh", stubs)
    assert result.returncode != 0 and "printed no AZUREML_PIPELINE_ENDPOINT_URL" in result.stderr
    assert not any("appsettings set" in call for call in calls(stubs, "az"))


def test_postdeploy_subscribes_blob_created_of_the_input_container_to_the_real_host(stubs: dict[str, Any]) -> None:
    first = run_hook("postdeploy.sh", stubs, STUB_KEY_AFTER="2")  # the key appears on the third look
    assert first.returncode == 0, first.stderr
    (create,) = [call for call in calls(stubs, "az") if "event-subscription create" in call]
    app_source = (REPO / "function" / "function_app.py").read_text()
    function_name = re.search(r'function_name\("(\w+)"\)\s*@app\.blob_trigger', app_source)
    assert function_name
    endpoint = ("https://func-abc-d4e5f6.westeurope-01.azurewebsites.net/runtime/webhooks/blobs?functionName="
                f"Host.Functions.{function_name.group(1)}&code=s3cr3t-blobs-key")
    assert f"--endpoint {endpoint} " in create
    assert "--endpoint-type webhook" in create and "--system-topic-name evgt-abc" in create
    assert "--included-event-types Microsoft.Storage.BlobCreated --subject-begins-with " \
           "/blobServices/default/containers/input/ " in create
    assert "s3cr3t" not in first.stdout + first.stderr
    # Again: the same subscription updated, not a second one.
    second = run_hook("postdeploy.sh", stubs)
    assert second.returncode == 0, second.stderr
    (update,) = [call for call in calls(stubs, "az") if "event-subscription update" in call]
    assert update.replace(" update ", " create ") == create
    assert len([call for call in calls(stubs, "az") if "event-subscription create" in call]) == 1


def test_postdeploy_gives_up_without_the_key(stubs: dict[str, Any]) -> None:
    result = run_hook("postdeploy.sh", stubs, STUB_KEY_AFTER="99")
    assert result.returncode != 0 and "no blobs_extension system key" in result.stderr
    assert not any("event-subscription" in call for call in calls(stubs, "az"))


def test_hooks_stop_when_the_azd_environment_lacks_a_value(stubs: dict[str, Any]) -> None:
    (stubs["dir"] / "azd.env").write_text("")
    result = run_hook("postdeploy.sh", stubs)
    assert result.returncode != 0 and "is not in the azd environment" in result.stderr


# -- the workbook against the log records ---------------------------------------------------------------

# learn: azure-monitor/reference/tables/apptraces and .../amlrunstatuschangedevent (MicrosoftDocs/azure-monitor-docs).
APPTRACES_COLUMNS = {"AppRoleInstance", "AppRoleName", "AppVersion", "ItemCount", "Measurements", "Message",
                     "OperationId", "OperationName", "ParentId", "Properties", "SeverityLevel", "TimeGenerated"}
AML_RUN_COLUMNS = {"CorrelationId", "Level", "Message", "OperationName", "ParentRunId", "ResultType", "RootRunId",
                   "RunId", "Status", "TimeGenerated", "WorkspaceName"}
#: azureml-core azureml/_restclient/constants.py, RunStatus.
RUN_STATUSES = {"Queued", "NotStarted", "Preparing", "Provisioning", "Starting", "Running", "CancelRequested",
                "Canceled", "Finalizing", "Completed", "Failed", "Unapproved", "NotResponding", "Pausing", "Paused"}


def workbook_queries() -> dict[str, str]:
    workbook = json.loads((INFRA / "app" / "workbook.json").read_text())
    return {item["name"]: item["content"]["query"] for item in workbook["items"] if item["type"] == 3}


def test_workbook_shows_what_the_issue_asks_for() -> None:
    queries = workbook_queries()
    assert {"drops-per-hour", "deliveries-by-outcome", "function-failures", "in-flight", "runs",
            "run-failures"} <= set(queries)
    assert "bin(TimeGenerated, 1h)" in queries["drops-per-hour"]
    assert "reason" in queries["function-failures"]
    assert "run_url" in queries["in-flight"] and "run_url" in queries["runs"]
    workbook_bicep = (INFRA / "app" / "workbook.bicep").read_text()
    placeholder = re.search(r"'(__\w+__)', logAnalytics\.id", workbook_bicep)
    assert placeholder and placeholder.group(1) in (INFRA / "app" / "workbook.json").read_text()
    diagnostics = resource_body(bicep("app/azureml.bicep"), "runEvents")["properties"]
    assert diagnostics["logs"] == [{"category": "AmlRunStatusChangedEvent", "enabled": True}]
    assert diagnostics["logAnalyticsDestinationType"] == "Dedicated"


@pytest.mark.parametrize("name", sorted(workbook_queries()))
def test_workbook_queries_read_only_fields_the_function_logs(name: str) -> None:
    query = workbook_queries()[name]
    strings = re.findall(r'"([^"]*)"', query)
    code = re.sub(r'"[^"]*"', '""', query)
    fields = set(re.findall(r"\br\.(\w+)", code))
    if "AppTraces" in code:
        assert telemetry.PREFIX in strings, "the records are found by telemetry.PREFIX"
        assert fields and fields <= set(telemetry.FIELDS), sorted(fields - set(telemetry.FIELDS))
    columns = set(re.findall(r"\b[A-Z]\w*", code)) - {"AppTraces", "AmlRunStatusChangedEvent"}
    assert columns <= APPTRACES_COLUMNS | AML_RUN_COLUMNS, sorted(columns - APPTRACES_COLUMNS - AML_RUN_COLUMNS)
    for value in strings:
        if value in RUN_STATUSES or value in telemetry.OUTCOMES or value in ("", telemetry.PREFIX, "/", "@"):
            continue
        assert value == "no status event yet", f"{name}: unknown literal {value!r}"
    outcome_tests = re.findall(r"outcome (?:!=|==|in|!in) \(?([^|)\n]+)", query)
    for literal in re.findall(r'"(\w+)"', " ".join(outcome_tests)):
        assert literal in telemetry.OUTCOMES, literal


class FakeBackend:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def submit(self, request: Any) -> SubmitResult:
        if self.fail:
            raise RuntimeError("HTTP 403: missing role")
        return SubmitResult("run-1", "https://ml.azure.com/runs/run-1?wsid=/subscriptions/s")

    def find_runs(self, *args: Any) -> list[str]:
        return []


def outcome_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r for r in (telemetry.parse(rec.getMessage()) for rec in caplog.records) if r is not None]


def test_the_function_logs_one_record_per_delivery_with_the_fields_the_workbook_reads(
        settings: LocalSettings, caplog: pytest.LogCaptureFixture) -> None:
    """The trigger logic on Azurite with real claims; only AzureML (the backend) is a stand-in."""
    blob = BlobVersion(settings.input_container, "sales/q3.xlsx", '"0x8D1"', 1000)
    caplog.set_level(logging.INFO, logger="sheetdrop.trigger")
    handle_blob(blob, invocation_id="i1", settings=settings, backend=FakeBackend())  # type: ignore[arg-type]
    handle_blob(BlobVersion(settings.input_container, "~$lock.xlsx", '"0x8D2"', 10), invocation_id="i2",
                settings=settings)
    with pytest.raises(RuntimeError):
        handle_blob(BlobVersion(settings.input_container, "sales/q3.xlsx", '"0x8D3"', 1000), invocation_id="i3",
                    settings=settings, backend=FakeBackend(fail=True))  # type: ignore[arg-type]
    records = outcome_records(caplog)
    assert [r["outcome"] for r in records] == ["submitted", "skipped", "failed"]
    assert all(list(r) == list(telemetry.FIELDS) for r in records)
    submitted, _skipped, failed = records
    assert (submitted["blob"], submitted["etag"], submitted["run_id"]) == ("sales/q3.xlsx", '"0x8D1"', "run-1")
    assert failed["etag"] == '"0x8D3"'
    assert submitted["run_url"].startswith("https://ml.azure.com/runs/run-1")
    assert isinstance(submitted["duration_ms"], int) and submitted["invocation_id"] == "i1"
    assert failed["reason"] == "RuntimeError: HTTP 403: missing role"
    # The same fields ride on the LogRecord (extra=), for an exporter that reads attributes.
    rec = next(r for r in caplog.records if r.getMessage().startswith(telemetry.PREFIX))
    assert rec.sheetdrop_run_id == "run-1" and rec.sheetdrop_blob == "sales/q3.xlsx"  # type: ignore[attr-defined]
    # Every field the workbook reads is one of these records' keys.
    used = {f for q in workbook_queries().values() for f in re.findall(r"\br\.(\w+)", q)}
    assert used <= set(submitted)


def test_a_record_survives_any_blob_name() -> None:
    values = telemetry.record("skipped", container="input", blob='a "quoted" %s\nname.txt', etag="e", started=0.0)
    assert telemetry.parse(telemetry.message(values)) == values
    assert "\n" not in telemetry.message(values)


def test_the_v2_variant_is_one_parameter_and_sets_what_the_v2_backend_reads() -> None:
    main = bicep("main.bicep")
    assert expr(main["parameters"]["azuremlApi"]["default"]) == "azureml"
    allowed = main["parameters"]["azuremlApi"]["decorators"]
    assert any("azureml-v2" in json.dumps(d) for d in allowed)
    settings = app_settings()
    assert expr(settings["SHEETDROP_BACKEND"]) == "azuremlApi"
    v1 = load_in_azure(resolved(settings))
    assert v1.backend == "azureml" and v1.backend_settings.endpoint_id == "e1"
    SAMPLE["azuremlApi"] = "azureml-v2"
    try:
        v2 = load_in_azure(resolved(settings))
    finally:
        SAMPLE["azuremlApi"] = "azureml"
    assert not isinstance(v2, Exception), v2
    assert v2.backend == "azureml-v2"
    assert (v2.backend_settings.endpoint_url, v2.backend_settings.workspace, v2.backend_settings.resource_group) == (
        SAMPLE["batchEndpointUrl"], "mlw-abc", "rg-dev")
    assert v2.backend_settings.managed_identity_client_id == SAMPLE["identity.properties.clientId"]
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["batchEndpointUrl"]["value"] == "${AZUREML_BATCH_ENDPOINT_URL}"
    assert parameters["azuremlApi"]["value"] == "${SHEETDROP_AZUREML_API=azureml}"
