"""Runs committing to one table while its workbooks change (``sheetdrop_step.tables``): two runs ending at once (the
manifest is written create-only, so the second finds its version number taken, reads the newer version and plans
again onto it), and a run whose workbook was overwritten or deleted after it read it. Real Azurite (whose
``If-None-Match: *`` answers 409 as Azure Storage does); the step's own TableRun and store."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sheetdrop.storage import account_url, blob_service, ensure_container
from sheetdrop_contract.contract import Registration
from sheetdrop_local.azurite import AZURITE_ACCOUNT, AZURITE_KEY
from sheetdrop_local.settings import LocalSettings
from sheetdrop_step.contexts.standalone import StandaloneContext
from sheetdrop_step.tables import ManifestStore, TableRun

NAME = "sales_orders"


@dataclass
class OnAzurite(StandaloneContext):
    """The by-hand context, its output datastore played by an Azurite container; what it registers is recorded."""

    container: Any = None
    registered: list[Registration] = field(default_factory=list)

    def output_container(self, datastore: str) -> Any:
        return self.container

    def storage_credential(self) -> Any:
        return {"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY}

    def register(self, registration: Registration) -> str:
        self.registered.append(registration)
        return f"{registration.name}:{len(self.registered)}"


def upload(settings: LocalSettings, blob: str) -> str:
    """The workbook's blob (its content does not matter here: the runs below were "converted" by hand)."""
    container = ensure_container(blob_service(settings.storage), settings.input_container)
    return container.get_blob_client(blob).upload_blob(b"a workbook", overwrite=True)["etag"]


def pending(settings: LocalSettings, tmp: Path, run_id: str, blob: str, region: str,
            etag: str | None = None) -> tuple[TableRun, OnAzurite]:
    """A run that has converted ``blob`` (at ``etag``, else as it is now) and not committed yet."""
    container = blob_service(settings.storage).get_container_client(settings.local_output_container)
    context = OnAzurite(run_id=run_id, container=container)
    run = TableRun(context, "workspaceblobstore", account_url(settings.storage), tmp / run_id,
                   f"azureml/{run_id}/extracted")
    path = tmp / run_id / "orders.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"Region": [region], "Amount": [1.5]}), path)
    source = {"source_container": settings.input_container, "source_blob": blob,
              "source_etag": etag or upload(settings, blob)}
    run.converted("sales", source)
    run.add(NAME, "sales", "Orders", path, source, {"Region": "string", "Amount": "float64"}, {"sheet": "Orders"})
    return run, context


def test_the_second_of_two_runs_ending_at_once_plans_again_onto_the_first(settings: LocalSettings,
                                                                          tmp_path: Path) -> None:
    first, first_context = pending(settings, tmp_path, "a", "sales/a.xlsx", "north")
    second, second_context = pending(settings, tmp_path, "b", "sales/b.xlsx", "east")
    store = ManifestStore(first_context.container)
    assert store.latest(NAME) is None  # both runs saw no table: each plans version 1
    # b commits first; a, still planning onto "no version yet", loses version 1 and plans again onto b's.
    assert second._commit_one(ManifestStore(second_context.container), NAME, "sales", None, {"sales/b.xlsx"}, set(),
                              set())
    assert first._commit_one(store, NAME, "sales", None, {"sales/a.xlsx"}, set(), set()) == f"{NAME}:1"

    one, two = store.read(NAME, 1), store.read(NAME, 2)
    assert (one.run_id, two.run_id) == ("b", "a") and store.latest(NAME) == two
    holds = {blob: etag for segment in store.described(two).values() for f in segment.files
             for blob, etag in f.sources}
    assert set(holds) == {"sales/a.xlsx", "sales/b.xlsx"}
    assert two.change == {"added": ["sales/a.xlsx"]} and two.segments[0] == one.segments[0]
    # a registered once, version 2, over both segments; b's version 1 stays as b wrote it.
    (registration,) = first_context.registered
    assert registration.relative_path == f"tables/{NAME}/2/manifest.json" and registration.tags["table_version"] == "2"
    assert list(registration.files) == two.patterns() and len(two.patterns()) == 2
    assert {f.path for segment in store.described(one).values() for f in segment.files} < \
        {f.path for segment in store.described(two).values() for f in segment.files}
    # a wrote a segment for its lost try, then deleted it: every segment on the datastore is one a version lists.
    listed = set(first_context.container.list_blob_names(name_starts_with=f"tables/{NAME}/segments/"))
    assert {name.split("/")[3].removesuffix(".json") for name in listed} == {ref.id for ref in two.segments}
    assert len(listed) == 4  # two segments: a file and a description each


def holds(context: OnAzurite) -> dict[str, str]:
    store = ManifestStore(context.container)
    latest = store.latest(NAME)
    return {blob: etag for segment in store.described(latest).values() for f in segment.files
            for blob, etag in f.sources} if latest else {}


def test_a_workbook_overwritten_or_deleted_after_its_run_read_it_does_not_come_back(settings: LocalSettings,
                                                                                       tmp_path: Path) -> None:
    run, context = pending(settings, tmp_path, "a1", "sales/a.xlsx", "north")
    assert run.commit() == [f"{NAME}:1"]
    first = holds(context)
    # a's second version is read by a slow run; a third is written (its own run will convert it) before it commits.
    second = upload(settings, "sales/a.xlsx")
    slow, slow_context = pending(settings, tmp_path, "a2", "sales/a.xlsx", "south", etag=second)
    third = upload(settings, "sales/a.xlsx")
    assert slow.commit() == [] and holds(slow_context) == first  # no version: a's rows wait for the third's run
    newest, _ = pending(settings, tmp_path, "a3", "sales/a.xlsx", "west", etag=third)
    assert newest.commit() and ManifestStore(context.container).latest(NAME).version == 2
    assert holds(context) == {"sales/a.xlsx": third}

    # b read by a run, then deleted before it commits: its rows do not enter the table.
    late, late_context = pending(settings, tmp_path, "b1", "sales/b.xlsx", "east")
    blob_service(settings.storage).get_container_client(settings.input_container).delete_blob("sales/b.xlsx")
    assert late.commit() == [] and holds(late_context) == {"sales/a.xlsx": third}
