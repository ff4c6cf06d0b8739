"""Claim writes under storage blips, and finding poisoned claims without reading every claim."""

from __future__ import annotations

import pytest

from clock import FakeClock
from sheetdrop.claims import POISONED_INDEX, ClaimState, ClaimStore, claim_blob_name
from sheetdrop.storage import blob_service, ensure_container
from sheetdrop_local.settings import LocalSettings


@pytest.fixture
def store(settings: LocalSettings) -> ClaimStore:
    container = ensure_container(blob_service(settings.storage), settings.claims_container)
    return ClaimStore(container, stale_after=900, max_failures=3, clock=FakeClock())


def test_a_write_whose_answer_was_lost_is_not_a_conflict(store: ClaimStore) -> None:
    """The storage SDK retries a write whose answer was lost; the retry then fails its own
    If-Match or If-None-Match although the first attempt wrote exactly this claim."""
    got = store.acquire("input", "sales/q3.xlsx", '"0x1"', "inv-1")
    stale_etag = got.claim.claim_etag  # type: ignore[union-attr]
    assert store.mark_submitted(got.claim, "run-1")  # type: ignore[union-attr]
    got.claim.claim_etag = stale_etag  # type: ignore[union-attr]  # as the SDK's retry of that write has it
    assert store.mark_submitted(got.claim, "run-1")  # type: ignore[union-attr]
    # The same write of a claim's creation: still this invocation's claim.
    assert store._write(store.read("input", "sales/q3.xlsx", '"0x1"'), create=True)  # type: ignore[arg-type]


def test_a_real_conflict_is_still_one(store: ClaimStore) -> None:
    got = store.acquire("input", "sales/q3.xlsx", '"0x1"', "inv-1")
    other = store.read("input", "sales/q3.xlsx", '"0x1"')
    assert other is not None and store.mark_submitted(other, "run-by-another")
    assert not store.mark_submitted(got.claim, "run-1")  # type: ignore[union-attr]


def test_poisoned_claims_are_found_from_their_index(store: ClaimStore, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(20):
        got = store.acquire("input", f"ok{i}.xlsx", '"0x1"', "inv")
        store.mark_submitted(got.claim, f"run-{i}")  # type: ignore[union-attr]
    bad = store.acquire("input", "bad.xlsx", '"0x2"', "inv").claim  # type: ignore[union-attr]
    for _ in range(3):
        bad = store.release(bad, "HTTP 400")
    assert bad.state == ClaimState.POISONED

    def no_full_listing(*args: object, **kwargs: object) -> object:
        raise AssertionError("listed every claim")

    monkeypatch.setattr(store.container, "list_blobs", no_full_listing)
    assert [(c.blob, c.state) for c in store.list(ClaimState.POISONED)] == [("bad.xlsx", ClaimState.POISONED)]
    assert list(store.container.list_blob_names(name_starts_with=POISONED_INDEX)) == [
        POISONED_INDEX + claim_blob_name("input", "bad.xlsx", '"0x2"')]
