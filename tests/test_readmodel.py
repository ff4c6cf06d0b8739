"""The read model's lookups over a real SQLite state database: a run by its id, a unique beginning of
it or ``latest``, with LIKE's wildcards taken as the characters they are; a dataset version by number
or ``latest``, with the version before it; and what the studio's dataset filter offers. (What the
CLI and the studio print from these is test_cli_read.py and test_studio_pages.py.)"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from sheetdrop.submit import SubmitRequest
from sheetdrop_local import db, registry, runstore
from sheetdrop_local.readmodel import datasets, runs

IDS = ("aaaa0000-0000-4000-8000-000000000001", "aaaa1111-0000-4000-8000-000000000002",
       "bbbb0000-0000-4000-8000-000000000003")


def request(dataset: str, blob: str) -> SubmitRequest:
    return SubmitRequest(experiment_name="sheetdrop", datastore_name="input", relative_path=blob, dataset_name=dataset,
                         description="", source_container="input", source_blob=blob, source_etag=f'"{blob}"')


@pytest.fixture
def conn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> sqlite3.Connection:
    connection = db.connect(tmp_path)
    chosen = iter(uuid.UUID(run_id) for run_id in IDS)
    monkeypatch.setattr(uuid, "uuid4", lambda: next(chosen))
    for dataset, blob in (("sales", "sales/q3.xlsx"), ("sales", "sales/q4.xlsx"), ("failing", "failing/x.xlsx")):
        runstore.enqueue(connection, request(dataset, blob))
    return connection


def test_a_run_is_found_by_its_id_a_unique_beginning_or_latest(conn: sqlite3.Connection) -> None:
    assert runs.find_run(conn, "aaaa0").run_id == IDS[0]
    assert runs.find_run(conn, f" {IDS[1]} ").run_id == IDS[1]
    assert runs.find_run(conn, "bbbb").run_id == IDS[2]
    assert runs.find_run(conn, "latest").run_id == IDS[2]
    with pytest.raises(runs.RunNotFound, match=r"^'aaaa' is the beginning of 2 run ids; give more of it: "
                                               f"{IDS[0]}, {IDS[1]}$"):
        runs.find_run(conn, "aaaa")
    # LIKE's wildcards are characters here: `_` and `%` match only themselves (no run id has them).
    for ref in ("aaaa_", "aaaa%", "%", "_", ""):
        with pytest.raises(runs.RunNotFound, match=r"^no run '.*' \(see `sheetdrop runs`\)$"):
            runs.find_run(conn, ref)


def test_no_runs_yet_is_said_for_latest(tmp_path: Path) -> None:
    with pytest.raises(runs.RunNotFound, match=r"^no runs yet$"):
        runs.find_run(db.connect(tmp_path), "latest")


def test_a_version_is_picked_with_the_one_before_it(conn: sqlite3.Connection) -> None:
    for run_id in IDS[:2]:
        registry.register(conn, name="sales_orders", datastore="out", relative_path=f"azureml/{run_id}/o.parquet",
                          run_id=run_id)
    latest = datasets.history(conn, "sales_orders")
    assert [v.version for v in latest.versions] == [2, 1]  # newest first, as the page lists them
    assert (latest.version.version, latest.previous.version if latest.previous else None) == (2, 1)
    assert datasets.history(conn, "sales_orders", "latest").version == latest.version
    first = datasets.history(conn, "sales_orders", "1")
    assert (first.version.run_id, first.previous) == (IDS[0], None)
    with pytest.raises(registry.DatasetNotFound,
                       match=r"^sales_orders: version 3 does not exist; versions are 1\N{EN DASH}2$"):
        datasets.history(conn, "sales_orders", "3")
    with pytest.raises(registry.DatasetNotFound, match=r"^no dataset 'sales' \(see `sheetdrop datasets`\)$"):
        datasets.history(conn, "sales")
    assert datasets.resolve_version(conn, "sales_orders:1") == first.version
    assert datasets.resolve_version(conn, "sales_orders") == latest.version
    # The run list's dataset filter offers registered names and the names runs were submitted for.
    assert runs.dataset_names(conn) == ["failing", "sales", "sales_orders"]
