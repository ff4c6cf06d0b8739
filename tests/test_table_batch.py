"""A backfill into a table folder registers one table version per batch, not one per workbook: the batch step adds
each converted workbook's files to the folder's tables and commits them once at its end. Real Azurite, the
backfill's own planning and submission, the real runner and batch step."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest

from sheetdrop.claims import ClaimStore
from sheetdrop.settings import get_settings
from sheetdrop.storage import blob_service
from sheetdrop.submit.backends import get_backend
from sheetdrop.trigger import claim_store
from sheetdrop_local import backfill, db, registry
from sheetdrop_local.readmodel import tables
from sheetdrop_local.settings import LocalSettings
from test_end_to_end import run_all
from test_table_mode import TABLE, drop, orders, output, run


def test_a_backfill_of_many_workbooks_registers_one_table_version_per_batch(
        settings: LocalSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_SIZE", "5")
    get_settings.cache_clear()
    settings = dataclasses.replace(settings, batch_size=5)
    drop(settings, "sales/sheetdrop.json", TABLE.encode())
    etags = {f"sales/book{i:02d}.xlsx": drop(settings, f"sales/book{i:02d}.xlsx", orders((f"r{i}", i + 0.5)))
             for i in range(12)}
    claims: ClaimStore = claim_store(settings)
    container = blob_service(settings.storage).get_container_client(settings.input_container)
    progress = backfill.run(backfill.plan(container, claims), settings, claims, get_backend(settings),
                            max_in_flight=100, out=io.StringIO(), ended=set, sleep=lambda _: None)
    assert progress.counts == {"batched": 12}
    runs = run_all(settings)
    assert [(r.kind, r.status) for r in runs] == [("batch", "completed")] * 3  # 5 + 5 + 2 versions

    found = registry.list_versions(db.connect(settings.state_dir), "sales_orders")
    assert [(v.tags["table_version"], v.tags["table_sources"]) for v in found] == [("1", "5"), ("2", "10"),
                                                                                     ("3", "12")]
    read = tables.read(output(settings), found[-1])
    assert dict(zip(read.data["_source_blob"].to_pylist(), read.data["_source_etag"].to_pylist(),
                    strict=True)) == etags
    assert sorted(read.data["Amount"].to_pylist()) == [i + 0.5 for i in range(12)]
    assert json.loads(found[1].tags["table_change"]) == {"added": sorted(list(etags)[5:10])}


def test_a_batch_whose_only_version_of_a_folder_is_gone_still_commits_the_folders_tables(
        settings: LocalSettings) -> None:
    drop(settings, "sales/sheetdrop.json", TABLE.encode())
    drop(settings, "sales/a.xlsx", orders(("north", 1.5)))
    drop(settings, "sales/b.xlsx", orders(("east", 2.5)))
    assert [r.status for r in run(settings)] == ["completed", "completed"]
    # a's next version is held for a batch (a backfill's), and a is deleted before the batch runs.
    drop(settings, "sales/a.xlsx", orders(("west", 9.5)))
    claims: ClaimStore = claim_store(settings)
    container = blob_service(settings.storage).get_container_client(settings.input_container)
    progress = backfill.run(backfill.plan(container, claims), settings, claims, get_backend(settings),
                            max_in_flight=100, out=io.StringIO(), ended=set, sleep=lambda _: None)
    assert progress.counts == {"batched": 1}
    container.delete_blob("sales/a.xlsx")
    (batch,) = run_all(settings)
    assert batch.kind == "batch"
    # The version failed (input-gone), and the batch's commit took a's rows out of the folder's table.
    latest = registry.list_versions(db.connect(settings.state_dir), "sales_orders")[-1]
    assert json.loads(latest.tags["table_change"]) == {"deleted": ["sales/a.xlsx"]}
    assert tables.read(output(settings), latest).data["_source_blob"].to_pylist() == ["sales/b.xlsx"]
