"""How the dev host notices blobs: drops through the local Event Grid queue at once, others by a
reconciliation listing whose interval follows what a listing costs; storage outages are logged
when they start and when they end."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from clock import FakeClock
from conftest import SAMPLE
from sheetdrop.storage import blob_service, ensure_container
from sheetdrop_local import db, events, runstore
from sheetdrop_local.azurite import Azurite, free_port
from sheetdrop_local.devhost import SCAN_COST_FACTOR, DevHost
from sheetdrop_local.settings import LocalSettings, load_local_settings


def runs(settings: LocalSettings) -> list[str]:
    return [r.source_blob for r in runstore.list_runs(db.connect(settings.state_dir))]


def test_an_event_is_delivered_without_listing_the_container(settings: LocalSettings,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    host = DevHost(settings)
    blob = ensure_container(blob_service(settings.storage), settings.input_container).get_blob_client("sales/q.xlsx")
    etag = blob.upload_blob(SAMPLE.read_bytes())["etag"]
    events.post(host.events, events.blob_created("devstoreaccount1", settings.input_container, "sales/q.xlsx", etag,
                                                 1, blob.url))
    monkeypatch.setattr(host.input, "list_blobs", lambda *a, **k: pytest.fail("listed the container"))
    assert host.poll_events() == 1
    assert runs(settings) == ["sales/q.xlsx"]
    assert host.poll_events() == 0  # the event is gone once handled


def test_the_listing_interval_follows_its_cost(settings: LocalSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(1000.0)
    host = DevHost(settings, poll_interval=1.0, clock=clock)
    listing = host.input.list_blobs

    def slow_listing(*args: object, **kwargs: object) -> object:
        clock.advance(3.0)  # what 5,000 blobs cost on Azurite here
        return listing(*args, **kwargs)

    monkeypatch.setattr(host.input, "list_blobs", slow_listing)
    host.scan_once()
    assert host._next_scan == clock() + SCAN_COST_FACTOR * 3.0
    monkeypatch.setattr(host.input, "list_blobs", listing)
    host.scan_once()  # a cheap listing: back to the poll interval
    assert host._next_scan == clock() + 1.0


def test_an_outage_is_logged_when_it_starts_and_when_it_ends(tmp_path: object, caplog: pytest.LogCaptureFixture,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    ports = {"AZURITE_BLOB_PORT": str(free_port()), "AZURITE_QUEUE_PORT": str(free_port()),
             "AZURITE_TABLE_PORT": str(free_port())}
    for key, value in {**ports, "SHEETDROP_STATE_DIR": f"{tmp_path}/state", "STORAGE_RETRY_TOTAL": "0"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("INPUT_STORAGE", raising=False)
    settings = load_local_settings()
    azurite = Azurite(tmp_path / "azurite", settings.azurite_blob_port, settings.azurite_queue_port,  # type: ignore[operator]
                      settings.azurite_table_port).start()
    caplog.set_level(logging.INFO, logger="sheetdrop.host")
    host = DevHost(settings, poll_interval=0.1)
    watcher = threading.Thread(target=host._watch, daemon=True)
    try:
        watcher.start()
        azurite.stop()
        deadline = time.monotonic() + 20
        while "storage is unreachable" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.1)
        azurite.start()
        while "storage is reachable again" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        host._stop.set()
        watcher.join(10)
        azurite.stop()
    messages = [r.getMessage() for r in caplog.records if "storage is" in r.getMessage()]
    assert len(messages) == 2, messages
    assert messages[0].startswith("storage is unreachable (connection string from INPUT_STORAGE: ")
    assert messages[1].startswith("storage is reachable again after ")


def test_deliveries_do_not_push_the_next_listing_out(settings: LocalSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    """On b5e30cf the next listing waited 20 times the last scan's duration, deliveries included (up to
    300 s): after a burst, other tools' uploads went unnoticed for minutes."""
    from sheetdrop_local import devhost

    clock = FakeClock(1000.0)
    host = DevHost(settings, poll_interval=1.0, clock=clock)
    container = ensure_container(blob_service(settings.storage), settings.input_container)
    for i in range(3):
        container.upload_blob(f"burst/{i}.xlsx", SAMPLE.read_bytes())
    real_invoke = devhost.invoke

    def slow_delivery(*args: object) -> None:
        clock.advance(10.0)  # a delivery that takes its time
        real_invoke(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(devhost, "invoke", slow_delivery)
    assert host.scan_once() == 3
    assert host._next_scan <= clock(), "the listing was cheap: the next one is due at once"
    later = container.get_blob_client("other-tool/q.xlsx")
    later.upload_blob(SAMPLE.read_bytes())
    assert host.scan_once() == 1 and "other-tool/q.xlsx" in runs(settings)
