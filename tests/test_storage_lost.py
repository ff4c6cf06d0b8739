"""What the dev host and the runner do when storage lost something (an Azurite killed before its first
save, a blob deleted before it was delivered): they recreate what they need and say so once, end a
delivery with one line, and give a run one human line as its reason.

On b5e30cf the host logged `The specified queue does not exist.` every second and never recreated
the queue or the containers, so nothing was delivered again until it was restarted; a blob deleted
before it was noticed was delivered again every 60 s forever, a warning each time; a run that found
its output container gone failed with the storage SDK's text as its reason (request id, time, XML);
and the log said `submitted … as run X` where the local backend returned a run it already had.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from conftest import SAMPLE
from history import upload
from sheetdrop.claims import claim_blob_name
from sheetdrop.storage import blob_service, one_line
from sheetdrop.trigger import BlobVersion, claim_store, handle_blob
from sheetdrop_local import db, events, runstore
from sheetdrop_local.devhost import DevHost
from sheetdrop_local.runner import LocalRunner
from sheetdrop_local.settings import LocalSettings


def wait_for(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.1)
    assert condition(), "timed out"  # type: ignore[operator]


def test_lost_containers_and_queue_are_created_again_and_said_once(settings: LocalSettings,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sheetdrop")
    host = DevHost(settings, poll_interval=0.1)
    service = blob_service(settings.storage)
    lost = (settings.input_container, claim_store(settings).container.container_name)
    # What a restarted Azurite that never saved holds: not its queue, not these containers.
    host.events.delete_queue()
    for name in lost:
        service.get_container_client(name).delete_container()
    watcher = threading.Thread(target=host._watch, daemon=True)
    watcher.start()
    try:
        wait_for(lambda: all(service.get_container_client(n).exists() for n in lost))
        time.sleep(1.0)  # ten more polls: nothing more to say
        said = [r.getMessage() for r in caplog.records if "created them again" in r.getMessage()]
        assert len(said) == 1 and said[0].startswith("storage had lost its containers or its event queue")
        assert "does not exist" not in caplog.text
        # And the host works again: a drop is delivered and run.
        etag = upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
        events.post(host.events, events.blob_created("devstoreaccount1", settings.input_container, "sales/q3.xlsx",
                                                     etag, 1, "http://x"))
        conn = db.connect(settings.state_dir)
        wait_for(lambda: runstore.find_by_source(conn, settings.input_container, "sales/q3.xlsx", etag))
    finally:
        host._stop.set()
        watcher.join(10)


def test_a_blob_deleted_before_its_delivery_ends_it_with_one_line(settings: LocalSettings,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sheetdrop.host")
    host = DevHost(settings)
    etag = upload(settings, "sales/gone.xlsx", SAMPLE.read_bytes())
    blob_service(settings.storage).get_blob_client(settings.input_container, "sales/gone.xlsx").delete_blob()
    events.post(host.events, events.blob_created("devstoreaccount1", settings.input_container, "sales/gone.xlsx",
                                                 etag, 1, "http://x"))
    assert host.poll_events() == 1
    assert host.poll_events() == 0 and host._retry == {}  # not due again, ever
    said = [r.getMessage() for r in caplog.records if r.name == "sheetdrop.host"]
    assert said == [f"{settings.input_container}/sales/gone.xlsx (etag {etag}) no longer exists; nothing to deliver"]


def test_a_run_whose_output_container_is_gone_completes_and_reasons_are_one_line(settings: LocalSettings) -> None:
    upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    DevHost(settings).scan_once()
    conn = db.connect(settings.state_dir)
    [run] = runstore.list_runs(conn)
    # An attempt cut short, then storage lost the output container with what it left.
    conn.execute("UPDATE runs SET abandoned_attempts = '[\"cut-short\"]' WHERE run_id = ?", (run.run_id,))
    blob_service(settings.storage).get_container_client(settings.local_output_container).delete_container()
    done = LocalRunner.from_settings(settings).run_next()
    assert done is not None and done.status == "completed", done and done.error

    # Any storage error a run meets is its reason as one line: the answer's status, code and message.
    from azure.core.exceptions import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError) as error:
        list(blob_service(settings.storage).get_container_client("no-such-container").list_blobs())
    assert "\n" in str(error.value) and "<?xml" in str(error.value)  # what the SDK's text holds
    assert one_line(error.value) == \
        "storage answered 404 ContainerNotFound: The specified container does not exist."


def test_a_run_the_store_had_already_is_not_logged_as_submitted(settings: LocalSettings,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sheetdrop.trigger")
    etag = upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    version = BlobVersion(settings.input_container, "sales/q3.xlsx", etag, SAMPLE.stat().st_size)
    first = handle_blob(version, invocation_id="one")
    # Storage lost the claim (Azurite's last seconds), the durable run store did not.
    claim_store(settings).container.delete_blob(claim_blob_name(settings.input_container, "sales/q3.xlsx", etag))
    caplog.clear()
    again = handle_blob(version, invocation_id="two")
    assert (first.action, again.action, again.run_id) == ("submitted", "recovered", first.run_id)
    messages = [r.getMessage() for r in caplog.records if not r.getMessage().startswith("sheetdrop.outcome")]
    assert messages == [f"{settings.input_container}/sales/q3.xlsx (etag {etag}) already had run {first.run_id}; "
                        "nothing submitted"]
