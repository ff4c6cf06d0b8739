"""Every setting typed and validated in one place: defaults, the names in error messages, and the
rule that nothing else reads the environment for a setting."""

import ast
import json
import re
from pathlib import Path

import pytest

from sheetdrop.settings import SettingsError, load_settings
from sheetdrop.submit.azureml import AzureMLSettings
from sheetdrop.submit.azureml_v2 import AzureMLV2Settings
from sheetdrop_contract import contract
from sheetdrop_local.azurite import AZURITE_KEY
from sheetdrop_local.settings import load_local_settings

REPO = Path(__file__).resolve().parent.parent
AZURE = {"SHEETDROP_BACKEND": "azureml", "INPUT_STORAGE__blobServiceUri": "https://acct.blob.core.windows.net",
         "AZUREML_PIPELINE_ENDPOINT_URL": "https://westeurope.api.azureml.ms/pipelines/v1.0/subscriptions/s/"
         "resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/PipelineRuns/"
         "PipelineEndpointSubmit/Id/e1"}


def test_local_defaults_need_nothing_set() -> None:
    settings = load_local_settings({})
    assert (settings.backend, settings.input_container, settings.input_datastore, settings.output_datastore) == (
        "local", "input", "sheetdrop_input", "workspaceblobstore")
    assert "127.0.0.1:10000" in (settings.storage.connection_string or "")
    assert (settings.claim_stale_seconds, settings.claim_max_failures, settings.step_timeout) == (900, 3, 1800)
    assert settings.function_env()["SHEETDROP_BACKEND"] == "local"


def test_azurite_ports_follow_the_settings_the_host_starts_it_with() -> None:
    settings = load_local_settings({"AZURITE_BLOB_PORT": "17010", "AZURITE_QUEUE_PORT": "17011"})
    assert "127.0.0.1:17010/" in (settings.storage.connection_string or "")
    assert "127.0.0.1:17011/" in (settings.storage.connection_string or "")
    ports = (settings.azurite_blob_port, settings.azurite_queue_port, settings.azurite_table_port)
    assert ports == (17010, 17011, 10002)


def test_identity_based_connection_in_azure() -> None:
    settings = load_settings({**AZURE, "INPUT_STORAGE__clientId": "abc", "WEBSITE_INSTANCE_ID": "0a1b"})
    assert settings.storage.connection_string is None
    assert (settings.storage.account_url, settings.storage.client_id) == ("https://acct.blob.core.windows.net", "abc")
    assert isinstance(settings.backend_settings, AzureMLSettings) and settings.backend_settings.endpoint_id == "e1"


@pytest.mark.parametrize(("env", "message"), [
    ({}, "app setting SHEETDROP_BACKEND is not set: set it to azureml (the dev host, `sheetdrop host`, sets local "
         "itself)"),
    ({"WEBSITE_INSTANCE_ID": "0a1b"}, "app setting SHEETDROP_BACKEND is not set in Azure: set it to azureml"),
    ({"WEBSITE_SITE_NAME": "sheetdrop-func", "SHEETDROP_BACKEND": "local", "INPUT_STORAGE": "x"},
     "app setting SHEETDROP_BACKEND is local in Azure: set it to azureml"),
    ({"SHEETDROP_BACKEND": "azureml"}, "INPUT_STORAGE__blobServiceUri is not set"),
    ({"SHEETDROP_BACKEND": "cloud"}, "SHEETDROP_BACKEND='cloud' is not one of azureml, azureml-v2, local"),
    ({**AZURE, "INPUT_CONTAINER": "Input_Files"}, "INPUT_CONTAINER='Input_Files' is not a valid container name"),
    ({**AZURE, "OUTPUT_DATASTORE": "../elsewhere"}, "OUTPUT_DATASTORE='../elsewhere' is not a datastore name"),
    ({**AZURE, "EXPERIMENT_NAME": "-x"}, "EXPERIMENT_NAME='-x' is not an experiment name"),
    ({**AZURE, "CLAIM_STALE_SECONDS": "soon"}, "CLAIM_STALE_SECONDS='soon' is not a number"),
    ({**AZURE, "CLAIM_MAX_FAILURES": "0"}, "CLAIM_MAX_FAILURES='0' must be at least 1"),
    ({**AZURE, "CLAIM_MAX_FAILURES": "2.5"}, "CLAIM_MAX_FAILURES='2.5' is not an integer"),
    ({**AZURE, "STORAGE_RETRY_TOTAL": "-1"}, "STORAGE_RETRY_TOTAL='-1' must be at least 0"),
    ({**AZURE, "AZUREML_SUBMIT_DEADLINE_SECONDS": "2m"}, "AZUREML_SUBMIT_DEADLINE_SECONDS='2m' is not a number"),
    ({**AZURE, "AZUREML_STUDIO_URL": "ml.azure.com"}, "AZUREML_STUDIO_URL='ml.azure.com' is not a URL"),
    ({**AZURE, "INPUT_STORAGE__blobServiceUri": "acct"}, "INPUT_STORAGE__blobServiceUri='acct' is not a URL"),
    ({**AZURE, "BATCH_SIZE": "501"}, "BATCH_SIZE=501 must be at most 500 (versions in one batch job)"),
])
def test_a_missing_or_bad_setting_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(env)
    assert message in str(error.value)


@pytest.mark.parametrize(("env", "message"), [
    ({"LOCAL_STEP_TIMEOUT": "forever"}, "LOCAL_STEP_TIMEOUT='forever' is not a number"),
    ({"AZURITE_BLOB_PORT": "0"}, "AZURITE_BLOB_PORT='0' must be at least 1"),
    ({"LOCAL_OUTPUT_CONTAINER": "Out"}, "LOCAL_OUTPUT_CONTAINER='Out' is not a valid container name"),
])
def test_a_bad_local_setting_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_local_settings(env)
    assert message in str(error.value)


def test_core_tools_on_a_laptop_is_not_azure() -> None:
    env = {"WEBSITE_INSTANCE_ID": "x", "FUNCTIONS_CORETOOLS_ENVIRONMENT": "True", "SHEETDROP_BACKEND": "local",
           "INPUT_STORAGE": "UseDevelopmentStorage=true"}
    assert load_settings(env).backend == "local"


def test_a_container_name_alone_is_not_azure() -> None:
    """Docker and CI runners set CONTAINER_NAME too (this project's own CI machines do)."""
    env = {"CONTAINER_NAME": "ci-runner", "SHEETDROP_BACKEND": "local", "INPUT_STORAGE": "UseDevelopmentStorage=true"}
    assert load_settings(env).backend == "local"


def test_settings_never_print_the_connection_string() -> None:
    settings = load_local_settings({"INPUT_STORAGE": f"AccountName=a;AccountKey={AZURITE_KEY}"})
    assert AZURITE_KEY not in repr(settings) and AZURITE_KEY not in str(settings.storage)
    assert settings.storage.connection_string and AZURITE_KEY in settings.storage.connection_string


def test_a_required_azureml_setting_names_itself_and_the_fix() -> None:
    with pytest.raises(SettingsError, match="app setting AZUREML_WORKSPACE is not set: the AzureML workspace's name, "
                                            "or set AZUREML_PIPELINE_ENDPOINT_URL"):
        load_settings({"SHEETDROP_BACKEND": "azureml", "INPUT_STORAGE": "x", "AZUREML_SUBSCRIPTION_ID": "s",
                       "AZUREML_RESOURCE_GROUP": "rg"})


def test_the_claims_give_up_when_the_host_does() -> None:
    """host.json's poisonBlobThreshold and CLAIM_MAX_FAILURES' default are one number."""
    host = json.loads((REPO / "function" / "host.json").read_text())
    assert host["extensions"]["blobs"]["poisonBlobThreshold"] == load_local_settings({}).claim_max_failures


def test_the_readme_lists_every_setting() -> None:
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Configuration"):readme.index("## CLI")]
    names = set()
    modules = [REPO / "function" / "sheetdrop" / "settings.py", REPO / "sheetdrop_local" / "settings.py",
               *(REPO / "function" / "sheetdrop" / "submit").glob("*/configuration.py")]
    for module in modules:
        tree = ast.parse(module.read_text())
        names |= {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and
                  isinstance(node.value, str) and re.fullmatch(r"[A-Z][A-Z0-9_]{3,}", node.value)}
    names |= set(contract.STEP_SETTING_NAMES)
    missing = sorted(name for name in names if f"`{name}`" not in table)
    assert missing == []


#: Modules that may read the process environment: the settings readers, and the step's runtime
#: markers (which run it is in), which are not settings.
ENVIRONMENT_READERS = {"function/sheetdrop/settings.py", "sheetdrop_local/settings.py",
                       "step/sheetdrop_step/contexts/__init__.py", "step/sheetdrop_step/converter/_entry.py",
                       "step/sheetdrop_step/converter/_reading/launch.py",
                       # the reader's channel with its parent (a file descriptor and a folder, set by launch)
                       "step/sheetdrop_step/converter/_reading/channel.py",
                       "step/sheetdrop_step/extract.py",
                       # the batch step picks its context as the single step does (extract.py)
                       "step/sheetdrop_step/batch.py",
                       # the v2 job's own variables (workspace, MLflow run, identity), set by AzureML
                       "step/sheetdrop_step/contexts/azureml_v2.py",
                       # the compute's identity in an AzureML job (DEFAULT_IDENTITY_CLIENT_ID, set by AzureML)
                       "step/sheetdrop_step/source.py",
                       # run by hand: the Azure CLI's AZURE_STORAGE_CONNECTION_STRING
                       "step/sheetdrop_step/contexts/standalone.py"}


def _reads_environment(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and \
                isinstance(node.value, ast.Name) and node.value.id == "os" and isinstance(node.ctx, ast.Load):
            lines.append(node.lineno)
    return lines


def test_no_other_module_reads_the_environment_for_a_setting() -> None:
    found = {}
    for folder in ("function", "sheetdrop_local", "step", "pipeline"):
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            lines = _reads_environment(ast.parse(path.read_text()))
            if lines and rel not in ENVIRONMENT_READERS:
                found[rel] = lines
    # The dev host and the runner hand the environment on (to the Function, to the step), deployed.py sets the
    # credential switch for this process; they read no setting from it. pipeline/ reads the publisher's
    # command-line defaults.
    assert set(found) <= {"sheetdrop_local/devhost.py", "sheetdrop_local/runner.py", "pipeline/publish.py",
                          "sheetdrop_local/deployed.py",
                          "pipeline/v2/publish.py",
                          "pipeline/datastore.py", "pipeline/workspace.py"}, found


V2 = {"SHEETDROP_BACKEND": "azureml-v2", "INPUT_STORAGE__blobServiceUri": "https://acct.blob.core.windows.net",
      "AZUREML_BATCH_ENDPOINT_URL": "https://sheetdrop-extract.westeurope.inference.ml.azure.com/jobs",
      "AZUREML_SUBSCRIPTION_ID": "s", "AZUREML_RESOURCE_GROUP": "rg", "AZUREML_WORKSPACE": "ws"}


def test_the_v2_backend_reads_its_endpoint_and_workspace() -> None:
    settings = load_settings({**V2, "AZUREML_BATCH_DEPLOYMENT": "blue", "WEBSITE_INSTANCE_ID": "0a1b"})
    v2 = settings.backend_settings
    assert isinstance(v2, AzureMLV2Settings)
    assert (v2.endpoint_url, v2.deployment, v2.workspace, v2.arm_url) == (
        V2["AZUREML_BATCH_ENDPOINT_URL"], "blue", "ws", "https://management.azure.com")
    assert isinstance(load_settings(AZURE).backend_settings, AzureMLSettings)


@pytest.mark.parametrize(("env", "message"), [
    ({**V2, "AZUREML_BATCH_ENDPOINT_URL": ""}, "app setting AZUREML_BATCH_ENDPOINT_URL is not set: the batch "
                                               "endpoint's scoring URI that `sheetdrop publish --v2` prints"),
    ({**V2, "AZUREML_BATCH_ENDPOINT_URL": "https://e.westeurope.inference.ml.azure.com/score"},
     "is not a batch endpoint scoring URI"),
    ({**V2, "AZUREML_WORKSPACE": ""}, "app setting AZUREML_WORKSPACE is not set: the AzureML workspace's name "
                                      "(SHEETDROP_BACKEND=azureml-v2)"),
    ({**V2, "AZUREML_BATCH_DEPLOYMENT": "9lives"}, "AZUREML_BATCH_DEPLOYMENT='9lives' is not a deployment name"),
    ({**V2, "AZUREML_ARM_URL": "management"}, "AZUREML_ARM_URL='management' is not a URL"),
])
def test_a_missing_or_bad_v2_setting_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(env)
    assert message in str(error.value)
