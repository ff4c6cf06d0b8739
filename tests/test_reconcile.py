"""The timer's reconciliation: a version whose blob-created event never came is delivered once it is older than
RECONCILE_AFTER_SECONDS, at most RECONCILE_MAX_DELIVERIES a sweep; what was there before the app watched is left
to the backfill. The dev host's event path is off here: nothing is posted and its listing never runs, so only the
app's own timer function (as indexed from function_app.py) can deliver."""

from __future__ import annotations

import time

import pytest

from conftest import SAMPLE
from sheetdrop.settings import get_settings
from sheetdrop.storage import blob_service, ensure_container
from sheetdrop_local import backend, db, runstore
from sheetdrop_local.devhost import DevHost
from sheetdrop_local.settings import LocalSettings, load_local_settings


@pytest.fixture
def quick(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> LocalSettings:
    # A container nothing has watched yet (the env fixture's is watched from the test's start).
    monkeypatch.setenv("INPUT_CONTAINER", f"{env['INPUT_CONTAINER']}-new")
    monkeypatch.setenv("RECONCILE_AFTER_SECONDS", "2")
    monkeypatch.setenv("RECONCILE_MAX_DELIVERIES", "2")
    get_settings.cache_clear()
    settings = load_local_settings()
    backend.install(settings)
    return settings


def upload(settings: LocalSettings, name: str) -> str:
    container = ensure_container(blob_service(settings.storage), settings.input_container)
    return container.get_blob_client(name).upload_blob(SAMPLE.read_bytes(), overwrite=True)["etag"]


def sources(settings: LocalSettings) -> list[str]:
    return sorted(run.source_blob for run in runstore.list_runs(db.connect(settings.state_dir), None))


def test_a_version_without_an_event_is_delivered_by_the_timer_after_its_bound(quick: LocalSettings) -> None:
    upload(quick, "old/before.xlsx")  # there before the app watched: the backfill's, not the timer's
    time.sleep(1.1)  # last-modified times have whole seconds
    host = DevHost(quick)  # the app starts watching; its first sweep would record the same moment
    host.run_timer()
    for name in ("sales/a.xlsx", "sales/b.xlsx", "sales/c.xlsx"):
        upload(quick, name)  # by another tool: no event, ever
    host.run_timer()
    assert sources(quick) == []  # younger than the bound: their events may still come
    time.sleep(2.5)
    host.run_timer()
    assert len(sources(quick)) == 2  # RECONCILE_MAX_DELIVERIES a sweep
    host.run_timer()
    assert sources(quick) == ["sales/a.xlsx", "sales/b.xlsx", "sales/c.xlsx"]
    host.run_timer()
    assert sources(quick) == ["sales/a.xlsx", "sales/b.xlsx", "sales/c.xlsx"]  # once each


def test_the_dev_host_announces_only_what_was_written_after_it_first_watched(quick: LocalSettings) -> None:
    upload(quick, "old/before.xlsx")
    time.sleep(1.1)
    host = DevHost(quick)
    upload(quick, "sales/after.xlsx")  # another tool's upload: the listing stands in for its event
    assert host.scan_once() == 1
    assert sources(quick) == ["sales/after.xlsx"]
    assert DevHost(quick).since == host.since  # a later host keeps the mark
