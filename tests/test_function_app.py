"""function_app.py as the Functions host indexes it, and its function called with real objects."""

from __future__ import annotations

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob_ext
from azurefunctions.extensions.bindings.blob import BlobClientConverter

from conftest import SAMPLE
from sheetdrop.storage import blob_service, ensure_container
from sheetdrop_local import db, runstore
from sheetdrop_local.functions_host import DevContext, blob_client_argument, indexed_timer, indexed_trigger
from sheetdrop_local.settings import LocalSettings


def test_indexed_bindings() -> None:
    import function_app

    trigger = indexed_trigger()  # get_functions() runs once per process; this caches it
    assert trigger.function_name == "workbook_dropped"
    assert trigger.path == "%INPUT_CONTAINER%/{name}"
    assert trigger.connection == "INPUT_STORAGE"
    assert trigger.source == func.BlobSource.EVENT_GRID.value == "EventGrid"
    assert (trigger.user_function.__module__, trigger.user_function.__name__) == (function_app.__name__,
                                                                                  "workbook_dropped")
    # The whole binding list, as the host reads it: one trigger and no other binding.
    assert list(trigger.bindings) == [{
        "direction": "IN", "type": "blobTrigger", "name": "client", "path": "%INPUT_CONTAINER%/{name}",
        "connection": "INPUT_STORAGE", "source": "EventGrid",
    }]


def test_timer_function_sweeps_abandoned_claims_every_five_minutes() -> None:
    timer = indexed_timer()
    assert timer is not None and timer.function_name == "abandoned_claims"
    assert list(timer.bindings) == [{
        "direction": "IN", "type": "timerTrigger", "name": "timer", "schedule": "0 */5 * * * *", "useMonitor": True,
    }]


def test_trigger_argument_is_the_sdk_blob_client_type() -> None:
    trigger = indexed_trigger()
    annotation = trigger.parameters[trigger.arg_name].annotation
    # The SDK-type binding: the worker hands over a BlobClient, so the workbook is never downloaded.
    assert annotation is blob_ext.BlobClient
    assert BlobClientConverter.check_input_type_annotation(annotation)
    assert trigger.parameters["context"].annotation is func.Context


def test_function_submits_a_qualified_blob_and_skips_others(settings: LocalSettings) -> None:
    service = blob_service(settings.storage)
    container = ensure_container(service, settings.input_container)
    container.upload_blob("sales/q3.xlsx", SAMPLE.read_bytes())
    container.upload_blob("sales/notes.txt", b"not a workbook")
    trigger = indexed_trigger()

    for name in ("sales/q3.xlsx", "sales/notes.txt"):
        client = blob_client_argument(trigger, settings.input_container, name)
        assert client.__class__.__module__ == "azure.storage.blob._blob_client"
        trigger.user_function(client=client, context=DevContext(trigger.function_name, f"inv-{name}"))

    runs = runstore.list_runs(db.connect(settings.state_dir))
    assert len(runs) == 1
    run = runs[0]
    props = container.get_blob_client("sales/q3.xlsx").get_blob_properties()
    assert (run.status, run.source_blob, run.source_etag, run.dataset_name) == ("queued", "sales/q3.xlsx",
                                                                                props.etag, "sales")
    assert (run.datastore_name, run.relative_path) == ("sheetdrop_input", "sales/q3.xlsx")
    assert run.tags["function_invocation_id"] == "inv-sales/q3.xlsx"
