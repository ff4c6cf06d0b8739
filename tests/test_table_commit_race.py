"""Two runs committing to one table at once (``sheetdrop_step.tables``): the manifest is written create-only, so the
run that comes second finds its version number taken, reads the newer version and plans again onto it. Real
Azurite (whose ``If-None-Match: *`` answers 409 as Azure Storage does); the step's own TableRun and store."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sheetdrop.storage import blob_service
from sheetdrop_contract.contract import Registration
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

    def register(self, registration: Registration) -> str:
        self.registered.append(registration)
        return f"{registration.name}:{len(self.registered)}"


def pending(settings: LocalSettings, tmp: Path, run_id: str, blob: str, region: str) -> tuple[TableRun, OnAzurite]:
    container = blob_service(settings.storage).get_container_client(settings.local_output_container)
    context = OnAzurite(run_id=run_id, container=container)
    run = TableRun(context, "workspaceblobstore", "unused", tmp / run_id, f"azureml/{run_id}/extracted")
    path = tmp / run_id / "orders.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"Region": [region], "Amount": [1.5]}), path)
    source = {"source_container": settings.input_container, "source_blob": blob, "source_etag": f"0x{run_id}"}
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
    assert second._commit_one(ManifestStore(second_context.container), NAME, "sales", None, {"sales/b.xlsx"}, set())
    assert first._commit_one(store, NAME, "sales", None, {"sales/a.xlsx"}, set()) == f"{NAME}:1"

    one, two = store.read(NAME, 1), store.read(NAME, 2)
    assert (one.run_id, two.run_id) == ("b", "a") and store.latest(NAME) == two
    holds = {blob: etag for segment in store.described(two).values() for f in segment.files
             for blob, etag in f.sources}
    assert holds == {"sales/a.xlsx": "0xa", "sales/b.xlsx": "0xb"}
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
