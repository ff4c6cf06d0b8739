"""Skipped blob versions are recorded by the trigger (deployed code) in the claims container's index, so
that `sheetdrop runs` and the studio can show them; recording is best effort and never fails a delivery."""

from __future__ import annotations

import logging

import pytest

from sheetdrop.claims import INDEX_PREFIX, SKIPPED_INDEX, ClaimState, claim_blob_name
from sheetdrop.trigger import BlobVersion, claim_store, handle_blob
from sheetdrop_local.settings import LocalSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def test_the_trigger_records_a_skipped_version_once_with_its_reason(settings: LocalSettings) -> None:
    store = claim_store(settings)
    store.clock = Clock()
    for _ in range(2):  # delivered twice: still one record
        outcome = handle_blob(BlobVersion(settings.input_container, "sales/readme.txt", '"0x1"', 5), settings=settings)
        assert outcome.action == "skipped"
    handle_blob(BlobVersion(settings.input_container, "sales/~$q3.xlsx", '"0x2"', 165), settings=settings)
    handle_blob(BlobVersion(settings.input_container, "sales/empty.xlsx", '"0x3"', 0), settings=settings)
    names = list(store.container.list_blob_names(name_starts_with=SKIPPED_INDEX))
    assert sorted(names) == sorted(SKIPPED_INDEX + claim_blob_name(settings.input_container, blob, etag) for blob, etag
                                   in [("sales/readme.txt", '"0x1"'), ("sales/~$q3.xlsx", '"0x2"'),
                                       ("sales/empty.xlsx", '"0x3"')])
    skipped = store.skipped()
    assert [(s.blob, s.etag) for s in skipped] == [("sales/empty.xlsx", '"0x3"'), ("sales/~$q3.xlsx", '"0x2"'),
                                                   ("sales/readme.txt", '"0x1"')]  # newest first
    assert skipped[0].reason.startswith("empty blob (0 bytes)")
    assert skipped[1].reason == "an Office lock file (~$…), not a workbook"
    assert skipped[2].reason.startswith("not a workbook extension (.txt")
    assert [s.blob for s in store.skipped(limit=1)] == ["sales/empty.xlsx"]
    # No claim was made for them, and listing claims never mistakes an index entry for a claim.
    assert list(store.list()) == []
    assert all(not c.blob.startswith(INDEX_PREFIX) for c in store.list(ClaimState.SUBMITTING))


def test_a_failing_record_never_fails_the_delivery(settings: LocalSettings, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def record_skipped(self, *args: object) -> None:
            raise ConnectionError("storage went away")

    caplog.set_level(logging.WARNING, logger="sheetdrop.trigger")
    outcome = handle_blob(BlobVersion(settings.input_container, "notes.txt", '"0x9"', 5), settings=settings,
                          claims=Broken())  # type: ignore[arg-type]
    assert outcome.action == "skipped"
    assert "could not record that" in caplog.text and "storage went away" in caplog.text
