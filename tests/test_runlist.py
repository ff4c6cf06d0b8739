"""The run list over many blob versions without a run: one listing of storage's notes, not a request per
note. (On b5e30cf `runs --json` with a large limit read every skipped record's body, one request each:
18-25 s once 5,000 were listed.) Counted through the storage SDK's own request hook, on Azurite."""

from __future__ import annotations

import json
from collections.abc import Callable

from azure.storage.blob import BlobServiceClient

from sheetdrop.claims import SKIPPED_INDEX, claim_blob_name
from sheetdrop.trigger import claim_store
from sheetdrop_local import db
from sheetdrop_local.readmodel import runs
from sheetdrop_local.settings import LocalSettings

MANY = 300


def counting_service(settings: LocalSettings) -> tuple[BlobServiceClient, Callable[[], int]]:
    sent: list[str] = []
    service = BlobServiceClient.from_connection_string(settings.storage.connection_string or "",
                                                       raw_request_hook=lambda r: sent.append(r.http_request.url))
    return service, lambda: len(sent)


def test_many_skipped_versions_cost_one_listing(settings: LocalSettings) -> None:
    claims = claim_store(settings)
    for i in range(MANY):
        claims.record_skipped(settings.input_container, f"drops/notes-{i}.txt", f'"0x{i:04X}"', "not a workbook")
    conn = db.connect(settings.state_dir)
    service, requests = counting_service(settings)
    found = runs.activity(conn, settings, service, limit=10_000)
    assert len(found.entries) == found.total == MANY and {e.status for e in found.entries} == {"skipped"}
    assert requests() <= 2, requests()  # the listing of _index/ with metadata (one page holds 5,000)
    assert [e.blob for e in runs.activity(conn, settings, service, limit=2, offset=1).entries] == [
        f"drops/notes-{MANY - 2}.txt", f"drops/notes-{MANY - 3}.txt"]


def test_notes_an_earlier_version_wrote_are_read_once(settings: LocalSettings) -> None:
    claims = claim_store(settings)
    for i in range(20):  # as b5e30cf wrote them: a body, no metadata
        body = {"container": settings.input_container, "blob": f"old/{i}.txt", "etag": f'"0x{i}"', "reason": "old",
                "at": 1_700_000_000.0 + i}
        claims.container.upload_blob(SKIPPED_INDEX + claim_blob_name(settings.input_container, f"old/{i}.txt",
                                                                     f'"0x{i}"'), json.dumps(body))
    conn = db.connect(settings.state_dir)
    service, requests = counting_service(settings)
    assert runs.activity(conn, settings, service, limit=100).total == 20
    first = requests()
    assert first >= 20  # each body once
    assert runs.activity(conn, settings, service, limit=100).total == 20
    assert requests() - first <= 2  # then the listing alone
