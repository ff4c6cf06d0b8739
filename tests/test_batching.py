"""Bursts of drops become batch jobs, a trickle stays one run per blob, and every version lands in exactly one run
(real Azurite and claims, the real trigger; the backend is the local one, given `submit_batch` by a subclass that
records what each batch held — the protocol is ours, not an SDK's)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from clock import FakeClock
from conftest import SAMPLE
from sheetdrop.claims import ClaimState
from sheetdrop.settings import get_settings
from sheetdrop.storage import blob_service, ensure_container
from sheetdrop.submit import BatchRequest, SubmitError, SubmitResult
from sheetdrop.submit.backends import register_backend
from sheetdrop.sweeper import flush_batches
from sheetdrop.trigger import BlobVersion, claim_store, handle_blob
from sheetdrop_local import backend as local_backend
from sheetdrop_local import db, runstore
from sheetdrop_local.backend import LocalBackend
from sheetdrop_local.settings import LocalSettings, load_local_settings


@dataclass
class Recorder:
    batches: list[BatchRequest] = field(default_factory=list)
    fail: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Batching(LocalBackend):
    """The local backend (a connection of its own per delivery, as get_backend makes one) that takes batches."""

    recorder: Recorder = field(default_factory=Recorder)

    def submit_batch(self, batch: BatchRequest) -> SubmitResult:
        if self.recorder.fail:
            raise SubmitError("HTTP 503: the service is busy")
        with self.recorder.lock:
            self.recorder.batches.append(batch)
        return SubmitResult(run_id=f"run-{batch.batch_id}")


@pytest.fixture
def burst(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[LocalSettings, Recorder, FakeClock]:
    for name, value in {"BATCH_THRESHOLD": "3", "BATCH_SIZE": "4", "BATCH_WAIT_SECONDS": "60"}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    settings = load_local_settings()
    local_backend.install(settings)
    clock = FakeClock()
    monkeypatch.setattr(claim_store(get_settings()), "clock", clock)
    recorder = Recorder()
    register_backend("local", lambda _: Batching(db.connect(settings.state_dir), recorder))  # the timer's too
    return settings, recorder, clock


def drop(settings: LocalSettings, name: str) -> BlobVersion:
    container = ensure_container(blob_service(settings.storage), settings.input_container)
    etag = container.get_blob_client(name).upload_blob(SAMPLE.read_bytes(), overwrite=True)["etag"]
    return BlobVersion(settings.input_container, name, etag, 1)


def where(settings: LocalSettings, backend: Recorder, version: BlobVersion) -> str | None:
    claim = claim_store(get_settings()).read(version.container, version.name, version.etag)
    return claim.run_id if claim and claim.state == ClaimState.SUBMITTED else None


def test_a_trickle_is_one_run_per_blob(burst: tuple[LocalSettings, Recorder, FakeClock]) -> None:
    settings, backend, clock = burst
    for i in range(3):
        clock.advance(61)  # a minute apart: never three in a minute
        assert handle_blob(drop(settings, f"sales/q{i}.xlsx")).action == "submitted"
    assert backend.batches == []


def test_a_burst_becomes_batches_and_the_tail_goes_when_it_has_waited(
        burst: tuple[LocalSettings, Recorder, FakeClock]) -> None:
    settings, backend, clock = burst
    versions = [drop(settings, f"sales/q{i:02d}.xlsx") for i in range(13)]
    actions = [handle_blob(v).action for v in versions]
    # Three on their own make it a burst; the rest wait, and every fourth one sends a full batch.
    assert actions == ["submitted"] * 3 + ["pending"] * 10
    assert [len(b.requests) for b in backend.batches] == [4, 4]
    assert flush_batches(get_settings()) == []  # the last two have not waited long enough
    clock.advance(61)
    made = flush_batches(get_settings())
    assert len(made) == 1 and [len(b.requests) for b in backend.batches] == [4, 4, 2]
    runs = [where(settings, backend, v) for v in versions]
    assert all(runs) and len(set(runs)) == 3 + 3
    sent = [(r.source_blob, r.source_etag) for b in backend.batches for r in b.requests]
    assert sorted(sent) == sorted((v.name, v.etag) for v in versions[3:])
    assert all(r.dataset_name == "sales" for b in backend.batches for r in b.requests)


def test_concurrent_deliveries_and_flushes_put_each_version_in_one_run(
        burst: tuple[LocalSettings, Recorder, FakeClock]) -> None:
    settings, backend, clock = burst
    versions = [drop(settings, f"sales/c{i:02d}.xlsx") for i in range(24)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda v: handle_blob(v), versions * 2))  # every event delivered twice
        clock.advance(61)
        list(pool.map(lambda _: flush_batches(get_settings()), range(4)))
    sent = [(r.source_blob, r.source_etag) for b in backend.batches for r in b.requests]
    assert len(sent) == len(set(sent))  # no version in two batches
    singles = [v for v in versions if (v.name, v.etag) not in set(sent)]
    assert all(where(settings, backend, v) for v in versions)
    conn = db.connect(settings.state_dir)
    assert all(len(runstore.find_by_source(conn, v.container, v.name, v.etag)) == 1 for v in singles)
    assert all(runstore.find_by_source(conn, v.container, v.name, v.etag) == [] for v in versions
               if (v.name, v.etag) in set(sent))


def test_a_batch_the_service_refuses_releases_its_versions(burst: tuple[LocalSettings, Recorder, FakeClock]) -> None:
    settings, backend, clock = burst
    backend.fail = True
    versions = [drop(settings, f"sales/f{i}.xlsx") for i in range(5)]
    for v in versions:
        handle_blob(v)
    claims = claim_store(get_settings())
    states = [claims.read(v.container, v.name, v.etag) for v in versions]
    assert [c.state for c in states if c] == [ClaimState.SUBMITTED] * 3 + [ClaimState.PENDING] * 2
    clock.advance(61)
    assert flush_batches(get_settings()) == []
    held = [claims.read(v.container, v.name, v.etag) for v in versions[3:]]
    assert all(c is not None and c.state == ClaimState.RELEASED and c.failures == 1
               and "HTTP 503" in (c.last_error or "") for c in held)
    # The sweep delivers released versions again (on their own, or held again if a burst is still on).
    backend.fail = False
    clock.advance(301)
    assert all(handle_blob(v).action in ("submitted", "pending") for v in versions[3:])


def test_a_backfill_sends_its_versions_in_full_batches(burst: tuple[LocalSettings, Recorder, FakeClock]) -> None:
    import io

    from sheetdrop.submit.backends import get_backend
    from sheetdrop_local import backfill

    settings, recorder, _ = burst
    versions = [drop(settings, f"old/b{i:02d}.xlsx") for i in range(10)]
    container = blob_service(settings.storage).get_container_client(settings.input_container)
    claims = claim_store(get_settings())
    planned = backfill.plan(container, claims)
    out = io.StringIO()
    progress = backfill.run(planned, get_settings(), claims, get_backend(get_settings()), max_in_flight=0, out=out)
    assert progress.counts == {"pending": 10}
    assert [len(b.requests) for b in recorder.batches] == [4, 4, 2]  # the last one without waiting
    assert len(set(progress.run_ids)) == 3  # each batch run known, for the backfill's pace
    assert all(where(settings, recorder, v) for v in versions)
