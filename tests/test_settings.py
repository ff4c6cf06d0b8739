import pytest

from sheetdrop.settings import AZURITE_KEY, SettingsError, load_settings


def test_local_defaults_need_nothing_set() -> None:
    settings = load_settings({})
    assert (settings.backend, settings.input_container, settings.input_datastore, settings.output_datastore) == (
        "local", "input", "sheetdrop_input", "workspaceblobstore")
    assert "127.0.0.1:10000" in (settings.storage.connection_string or "")
    assert (settings.claim_stale_seconds, settings.claim_max_failures) == (900, 3)


def test_azurite_ports_follow_the_settings_the_host_starts_it_with() -> None:
    storage = load_settings({"AZURITE_BLOB_PORT": "17010", "AZURITE_QUEUE_PORT": "17011"}).storage
    assert "127.0.0.1:17010/" in (storage.connection_string or "")
    assert "127.0.0.1:17011/" in (storage.connection_string or "")


def test_identity_based_connection_in_azure() -> None:
    settings = load_settings({"SHEETDROP_BACKEND": "azureml",
                              "INPUT_STORAGE__blobServiceUri": "https://acct.blob.core.windows.net",
                              "INPUT_STORAGE__clientId": "abc"})
    assert settings.storage.connection_string is None
    assert (settings.storage.account_url, settings.storage.client_id) == ("https://acct.blob.core.windows.net", "abc")


@pytest.mark.parametrize(("env", "message"), [
    ({"SHEETDROP_BACKEND": "azureml"}, "INPUT_STORAGE__blobServiceUri is not set"),
    ({"SHEETDROP_BACKEND": "cloud"}, "SHEETDROP_BACKEND='cloud' is not one of local, azureml"),
    ({"INPUT_CONTAINER": "Input_Files"}, "INPUT_CONTAINER='Input_Files' is not a valid container name"),
    ({"OUTPUT_DATASTORE": "../elsewhere"}, "OUTPUT_DATASTORE='../elsewhere' is not a datastore name"),
    ({"EXPERIMENT_NAME": "-x"}, "EXPERIMENT_NAME='-x' is not an experiment name"),
    ({"CLAIM_STALE_SECONDS": "soon"}, "CLAIM_STALE_SECONDS='soon' is not a number"),
    ({"CLAIM_MAX_FAILURES": "0"}, "CLAIM_MAX_FAILURES='0' must be at least 1"),
])
def test_a_missing_or_bad_setting_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(env)
    assert message in str(error.value)


def test_settings_never_print_the_connection_string() -> None:
    settings = load_settings({"INPUT_STORAGE": f"AccountName=a;AccountKey={AZURITE_KEY}"})
    assert AZURITE_KEY not in repr(settings) and AZURITE_KEY not in str(settings.storage)
    assert settings.storage.connection_string and AZURITE_KEY in settings.storage.connection_string


def test_a_required_backend_setting_names_itself_and_the_fix() -> None:
    settings = load_settings({})
    with pytest.raises(SettingsError, match="AZUREML_WORKSPACE is not set: the workspace name"):
        settings.require("AZUREML_WORKSPACE", "the workspace name")
