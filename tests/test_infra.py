"""The `azd up` template (infra/, azure.yaml) against the app it deploys, offline.

Neither the Bicep compiler nor azd runs here, so every .bicep file is parsed with pycep-parser and the
parsed template is held against the code: the Function's app settings against what the Functions host,
the blob extension and sheetdrop/settings.py read; the role assignments against docs/azureml.md; the
monitoring workbook's queries against the records sheetdrop/telemetry.py writes. The azd hooks run in
tests/test_azd_hooks.py.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from bicep_eval import Deployment, Scope
from sheetdrop import telemetry
from sheetdrop.settings import CONNECTION, SettingsError, load_settings
from sheetdrop.submit import SubmitResult
from sheetdrop.submit.backends import DEPLOYED
from sheetdrop.trigger import BlobVersion, handle_blob
from sheetdrop_local.settings import LocalSettings

REPO = Path(__file__).resolve().parent.parent
INFRA = REPO / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

# Built-in role definition ids (learn: role-based-access-control/built-in-roles; docs/azureml.md).
BLOB_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
QUEUE_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
ACCOUNT_CONTRIBUTOR = "17d1049b-9a84-46fb-8f53-869881c3d3ab"
BLOB_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
DATA_SCIENTIST = "f6c7c914-8db3-469d-8ca1-694a8f32e121"
METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
TABLE_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
BLOB_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"


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


def test_azure_yaml_runs_python_hooks_deploys_the_function_folder_and_refuses_an_older_azd() -> None:
    text = (REPO / "azure.yaml").read_text()
    assert re.search(r"^    project: \./function$", text, re.MULTILINE) and "host: function" in text
    assert "language: python" in text
    # azd refuses the project before doing anything when older than the first azd that runs .py hooks.
    assert re.search(r'^requiredVersions:\n  azd: ">=1\.23\.15"$', text, re.MULTILINE)
    for hook in ("preprovision", "postprovision", "postdeploy"):
        block = re.search(rf"^  {hook}:\n((?:    .*\n)+)", text, re.MULTILINE)
        assert block, hook
        assert f"    run: infra/hooks/{hook}.py\n" in block.group(1) and "    kind: python\n" in block.group(1)
        # One hook for every OS: no posix/windows variant, no shell.
        assert "posix:" not in block.group(1) and "windows:" not in block.group(1) and "shell:" not in block.group(1)
        assert (INFRA / "hooks" / f"{hook}.py").is_file()
    # azd looks for requirements.txt/pyproject.toml from a hook's folder upwards and installs what it finds
    # first: this empty file keeps it from installing the repository's pyproject.toml.
    requirements = (INFRA / "hooks" / "requirements.txt").read_text()
    assert not [line for line in requirements.splitlines() if line.strip() and not line.startswith("#")]
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
    # What azd leaves behind after running the hooks is not the template: its venv, Python's bytecode.
    made = {"hooks_env", "__pycache__"}
    files = [p for p in [*INFRA.rglob("*"), REPO / "azure.yaml"] if p.is_file() and not made & set(p.parts)]
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
    # function.bicep's own variable (test_azureml_v2_reaches_the_function_only_with_its_url evaluates it).
    "backend": "azureml",
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
    # sheetdrop_local/deployed.py turns it into the Function's INPUT_STORAGE__blobServiceUri.
    assert outputs["AZURE_STORAGE_BLOB_ENDPOINT"] == "storage.outputs.blobEndpoint"
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


#: A batch endpoint's name: azure-ai-ml's validate_endpoint_or_deployment_name (NAME_REGEX_PATTERN, 3-32
#: characters; constants/_endpoint.py), the rule learn: how-to-manage-quotas states.
BATCH_ENDPOINT_NAME = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")


def test_the_batch_endpoint_name_is_the_deployments_own() -> None:
    """Unique per region, as a batch endpoint's name must be: derived from the resource token, as every other
    name; two environments (or regions) give two names. `sheetdrop publish --v2` reads it."""
    names = {Scope(INFRA / "main.bicep", {"environmentName": env, "location": region},
                   Deployment("sub-1", "tenant-1", region)).outputs()["AZUREML_BATCH_ENDPOINT_NAME"]
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
    ("functionPrincipalId", TABLE_CONTRIBUTOR, "storage"),
    ("functionPrincipalId", DATA_SCIENTIST, "workspace"),
    ("functionPrincipalId", METRICS_PUBLISHER, "applicationInsights"),
    ("computePrincipalId", BLOB_READER, "storage"),
    ("computePrincipalId", DATA_SCIENTIST, "workspace"),
    ("computePrincipalId", BLOB_CONTRIBUTOR, "workspaceStorage"),
    ("deployerPrincipalId", DATA_SCIENTIST, "workspace"),
    ("deployerPrincipalId", BLOB_CONTRIBUTOR, "inputContainer"),
    ("deployerPrincipalId", BLOB_CONTRIBUTOR, "claimsContainer"),
    ("deployerPrincipalId", BLOB_READER, "workspaceStorage"),
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
            # The managed identities are service principals; the deployer is whatever azd reports.
            expected_type = "deployerPrincipalType" if principal == "deployerPrincipalId" else "ServicePrincipal"
            assert body["properties"]["principalType"] == expected_type, name
            found[name] = (principal, role_id, scope)
    return found


def test_each_role_assignment_names_the_right_role_for_the_right_principal_and_scope() -> None:
    assert set(role_assignments().values()) == EXPECTED_ROLES
    rbac = bicep("app/rbac.bicep")
    existing = {name: resource_body(rbac, name)["name"] for name, res in rbac["resources"].items() if res["existing"]}
    assert existing == {"storage": "storageAccountName", "blobService": "default",
                        "inputContainer": "inputContainerName", "claimsContainer": "claimsContainerName",
                        "workspace": "workspaceName", "applicationInsights": "applicationInsightsName",
                        "workspaceStorage": "workspaceStorageName"}
    # The containers, narrowest scope for uploading and claiming: storage -> blobServices/default -> containers/<c>.
    assert resource_body(rbac, "blobService")["parent"] == "storage"
    assert resource_body(rbac, "inputContainer")["parent"] == resource_body(rbac, "claimsContainer")["parent"] == \
        "blobService"
    params = bicep("main.bicep")["modules"]["rbac"]["config"]["params"]
    # The cluster's workspace role only where its step registers as the cluster (v2; docs/azureml-v2.md).
    condition = rbac["resources"]["computeDataScientist"]["config"]["condition"]
    assert condition["operator"]["type"] == "equals" and set(condition["operator"]["operands"].values()) == {
        "azuremlApi", "azureml-v2"}
    assert params["azuremlApi"] == "azuremlApi"
    assert params["inputContainerName"] == "inputContainerName"
    assert params["claimsContainerName"] == "claimsContainerName"
    assert expr(params["functionPrincipalId"]) == "functionApp.outputs.identityPrincipalId"
    assert expr(params["computePrincipalId"]) == "azureml.outputs.computePrincipalId"
    assert params["deployerPrincipalId"] == "principalId"
    assert expr(params["storageAccountName"]) == "storage.outputs.name"
    # The workspace storage the deployer reads the step's parquet from is the workspace's own (sheetdrop smoke).
    assert expr(params["workspaceStorageName"]) == "azureml.outputs.workspaceStorageName"
    assert expr(bicep("app/azureml.bicep")["outputs"]["workspaceStorageName"]["value"]) == "workspaceStorage.name"
    assert expr(bicep("app/azureml.bicep")["outputs"]["computePrincipalId"]["value"]) == "compute.identity.principalId"


def test_role_ids_match_the_table_in_docs() -> None:
    table = {}
    for line in (REPO / "docs" / "azureml.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"`[0-9a-f-]{36}`.*", cells[2]):
            table.setdefault(cells[2][1:37], []).append((cells[0], cells[1], cells[3]))
    names = {BLOB_OWNER: "Storage Blob Data Owner", QUEUE_CONTRIBUTOR: "Storage Queue Data Contributor",
             ACCOUNT_CONTRIBUTOR: "Storage Account Contributor", BLOB_READER: "Storage Blob Data Reader",
             DATA_SCIENTIST: "AzureML Data Scientist", METRICS_PUBLISHER: "Monitoring Metrics Publisher",
             TABLE_CONTRIBUTOR: "Storage Table Data Contributor", BLOB_CONTRIBUTOR: "Storage Blob Data Contributor"}
    who = {"functionPrincipalId": "Function identity", "computePrincipalId": "Cluster identity",
           "deployerPrincipalId": "Person"}
    where = {"storage": "storage account", "workspace": "workspace", "applicationInsights": "Application Insights",
             "inputContainer": "input container", "claimsContainer": "claims container",
             "workspaceStorage": "workspace storage"}
    for principal, role_id, scope in EXPECTED_ROLES:
        rows = table.get(role_id)
        assert rows, f"{role_id} is not in docs/azureml.md's role table"
        assert any(who[principal] in row[0] and names[role_id] in row[1] and row[2].startswith(where[scope])
                   for row in rows), (principal, role_id, scope, rows)


#: What `sheetdrop smoke` is to confirm in a real workspace, per backend (issue 22), by the names it prints.
REAL_WORKSPACE_ITEMS = {
    "azureml.md": ["mount-layout", "output-path", "tags-kept", "job-identity", "per-run-overhead",
                   "workbook-finds-run", "table-version"],
    "azureml-v2.md": ["mount-layout", "output-path", "tags-kept", "job-name-kept", "jobs-list-inputs", "job-identity",
                      "never-reused", "data-version-race", "per-run-overhead", "workbook-finds-run",
                      "table-version"],
}


@pytest.mark.parametrize("doc", sorted(REAL_WORKSPACE_ITEMS))
def test_docs_list_exactly_what_only_a_real_workspace_confirms(doc: str) -> None:
    text = (REPO / "docs" / doc).read_text()
    heading = "\n## What only a real workspace confirms\n"
    assert text.count(heading) == 1, doc
    section = text[text.index(heading):]
    rows = [line.split("|") for line in section.splitlines() if re.match(r"\| `[a-z-]+` \|", line)]
    assert [row[1].strip().strip("`") for row in rows] == REAL_WORKSPACE_ITEMS[doc]
    # Each says what is assumed and what the smoke run looks at.
    assert all(len(row) == 5 and row[2].strip() and row[3].strip() for row in rows), rows
    assert "**unconfirmed**" in text[:text.index(heading)] and "sheetdrop smoke" in section


def test_principal_type_is_azds_login_kind_for_every_deployer_assignment() -> None:
    """azd substitutes ${AZURE_PRINCIPAL_TYPE} with User or ServicePrincipal (Azure/azure-dev,
    pkg/infra/provisioning/current_principal_id_provider.go, CurrentPrincipalType; bicep_provider.go,
    evalParamEnvSubst); a hard-coded 'User' fails a service principal's assignment (UnmatchedPrincipalType)."""
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["principalType"]["value"] == "${AZURE_PRINCIPAL_TYPE}"
    assert parameters["principalId"]["value"] == "${AZURE_PRINCIPAL_ID}"
    main = bicep("main.bicep")
    allowed = [d["argument"] for d in main["parameters"]["principalType"]["decorators"] if d["type"] == "allowed"]
    assert allowed == [["User", "ServicePrincipal"]]
    assert main["modules"]["rbac"]["config"]["params"]["deployerPrincipalType"] == "principalType"
    deployer = [name for name, (principal, _, _) in role_assignments().items() if principal == "deployerPrincipalId"]
    assert len(deployer) == 4  # role_assignments() holds each one's principalType to deployerPrincipalType
    text = "\n".join(p.read_text() for p in BICEP_FILES)
    assert "principalType: 'User'" not in text


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


def test_workbook_finds_a_run_under_any_id_azureml_reports_it_with() -> None:
    """AmlRunStatusChangedEvent has RunId, ParentRunId and RootRunId (learn: azure-monitor/reference/tables/
    amlrunstatuschangedevent); whether a v1 pipeline run or a v2 batch job emits events under its own id or only
    through its step runs is not documented, so each run's status is looked up under all three."""
    joined = {name: query for name, query in workbook_queries().items() if "AmlRunStatusChangedEvent" in query}
    assert set(joined) == {"in-flight", "runs", "run-failures"}
    for name, query in joined.items():
        assert "mv-expand run_id = pack_array(RunId, ParentRunId, RootRunId) to typeof(string)" in query, name
        assert "summarize arg_max(TimeGenerated, Status) by run_id" in query, name
        assert "join kind=leftouter status on run_id" in query, name
        assert "by RunId" not in query, name


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


V1_URL = SAMPLE["pipelineEndpointUrl"]
V2_URL = SAMPLE["batchEndpointUrl"]


def deployed_settings(**params: str) -> tuple[dict[str, str], Scope]:
    """The Function's app settings as a provision of main.bicep with these parameters writes them."""
    main = Scope(INFRA / "main.bicep", {"environmentName": "dev", "location": "westeurope", **params},
                 Deployment("sub-1", "tenant-1", "westeurope"))
    function = main.resolve("functionApp").child()
    return function.eval(resource_body(function.tree, "appSettings")["properties"]), main


@pytest.mark.parametrize(("params", "backend"), [
    ({}, "azureml"),
    ({"azuremlApi": "azureml", "pipelineEndpointUrl": V1_URL}, "azureml"),
    # The first provision of `azd env set SHEETDROP_AZUREML_API azureml-v2 && azd up`: no batch URL yet.
    ({"azuremlApi": "azureml-v2"}, "azureml"),
    ({"azuremlApi": "azureml-v2", "pipelineEndpointUrl": V1_URL}, "azureml"),
    ({"azuremlApi": "azureml-v2", "batchEndpointUrl": V2_URL}, "azureml-v2"),
    ({"azuremlApi": "azureml-v2", "pipelineEndpointUrl": V1_URL, "batchEndpointUrl": V2_URL}, "azureml-v2"),
    # Back to v1 after v2: the v1 URL was kept all along.
    ({"azuremlApi": "azureml", "pipelineEndpointUrl": V1_URL, "batchEndpointUrl": V2_URL}, "azureml"),
], ids=["default", "v1", "v2-before-publish", "v1-switching", "v2", "v2-after-v1", "back-to-v1"])
def test_azureml_v2_reaches_the_function_only_with_its_url(params: dict[str, str], backend: str) -> None:
    settings, main = deployed_settings(**params)
    assert settings["SHEETDROP_BACKEND"] == backend
    loaded = load_in_azure(settings)
    if backend == "azureml-v2":
        assert not isinstance(loaded, Exception), loaded
        assert loaded.backend == "azureml-v2" and loaded.backend_settings.endpoint_url == V2_URL
        # The workspace the Function looks jobs up in is the one the azureml module creates.
        assert loaded.backend_settings.workspace == main.outputs()["AZUREML_WORKSPACE"]
        assert loaded.backend_settings.managed_identity_client_id == settings["AZUREML_MANAGED_IDENTITY_CLIENT_ID"]
    elif params.get("pipelineEndpointUrl"):
        # A v1 deployment that is switching keeps submitting to v1 until the v2 URL exists.
        assert not isinstance(loaded, Exception), loaded
        assert loaded.backend == "azureml" and loaded.backend_settings.endpoint_id == "e1"
    else:
        # Nothing published yet: the Function names what is missing, never azureml-v2.
        assert isinstance(loaded, SettingsError) and "AZUREML_PIPELINE_ENDPOINT_URL" in str(loaded)


def test_the_v2_variant_is_one_parameter_mapped_from_the_azd_environment() -> None:
    main = bicep("main.bicep")
    assert expr(main["parameters"]["azuremlApi"]["default"]) == "azureml"
    allowed = [d["argument"] for d in main["parameters"]["azuremlApi"]["decorators"] if d["type"] == "allowed"]
    # The choices are the Function's deployed backends (sheetdrop/submit/backends.py, DEPLOYED).
    assert allowed == [list(DEPLOYED)]
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["batchEndpointUrl"]["value"] == "${AZUREML_BATCH_ENDPOINT_URL}"
    assert parameters["azuremlApi"]["value"] == "${SHEETDROP_AZUREML_API=azureml}"
    assert parameters["workspaceGeneration"]["value"] == "${SHEETDROP_WORKSPACE_GENERATION}"


def test_outcome_traces_are_never_sampled() -> None:
    """The host reads logging.applicationInsights.samplingSettings.ExcludedTypes (azure-functions-host,
    src/WebJobs.Script/Config/ApplicationInsightsLoggerOptionsSetup.cs, ApplySamplingSettings) into the
    adaptive sampling processor's ExcludedTypes (azure-webjobs-sdk, TelemetryProcessorExtensions.cs);
    recognized types: Dependency, Event, Exception, PageView, Request, Trace (learn:
    azure-functions/functions-host-json). The Python worker's log records arrive as traces."""
    host = json.loads((REPO / "function" / "host.json").read_text())
    sampling = host["logging"]["applicationInsights"]["samplingSettings"]
    excluded = {t.strip() for t in sampling["excludedTypes"].split(";")}
    assert "Trace" in excluded and excluded <= {"Dependency", "Event", "Exception", "PageView", "Request", "Trace"}
