"""A table version registered through azureml-core's real objects (``Dataset.Tabular.from_parquet_files`` over the
version's segment globs, ``register``) on the run-history stand-in: what the SDK sends is one tabular dataset whose
definition reads each segment's parquet files, tagged as a table version; at 100,000 workbooks it stays small."""

from __future__ import annotations

import json

from sheetdrop_contract import table
from sheetdrop_contract.contract import Registration
from sheetdrop_contract.table import Manifest, Segment, TableFile
from sheetdrop_step.table_layout import plan
from tests.aml.run_history import RunHistory
from tests.aml.test_azureml_context import history, open_context  # noqa: F401 - the fixture

PATTERNS = tuple(table.segment_pattern("sales_orders", s) for s in ("v1-0a1b", "v3-9f8e", "v7-77aa"))


def register(history: RunHistory, patterns: tuple[str, ...]) -> dict:  # noqa: F811
    context = open_context(history)
    tags = {"run_id": context.run_id, "sheet": "Orders", table.TABLE_VERSION_TAG: "7",
            table.TABLE_SEGMENTS_TAG: str(len(patterns)), "rows": "30"}
    reference = context.register(Registration("sales_orders", "workspaceblobstore", table.manifest_path(
        "sales_orders", 7), "Table of the folder's workbooks", tags, files=patterns))
    assert reference == "sales_orders:1"
    (post,) = history.sent("POST", "/datasets")
    dto = post.json()
    assert (dto["name"], dto["datasetType"], dto["tags"]) == ("sales_orders", "tabular", tags)
    assert not history.sent("GET", "/datasets")
    return dto


def test_a_table_version_is_one_tabular_dataset_over_its_segments(history: RunHistory) -> None:  # noqa: F811
    dto = register(history, PATTERNS)
    definition = json.loads(dto["latest"]["dataflow"])["meta"]["RsDataflow"]
    # One `paths` entry per segment, its glob kept as the pattern (read when the dataset is read: segments never
    # change), read as parquet, not validated; the manifest itself is not read by AzureML.
    assert definition.count("- pattern:") == len(PATTERNS) and "read_parquet" in definition
    for path in PATTERNS:
        assert f"datastores/workspaceblobstore/paths/{path}" in definition
    assert "manifest.json" not in definition


def test_a_version_of_100000_workbooks_registers_a_definition_of_a_few_hundred_globs(
        history: RunHistory) -> None:  # noqa: F811
    latest, described = None, {}
    for start in range(0, 100_000, 500):  # a backfill in batches of 500
        added = [TableFile(f"/tmp/{i}.parquet", ((f"sales/w{i:06d}.xlsx", "0x1"),), 40, {"Amount": "float64"},
                           30_000) for i in range(start, start + 500)]
        made = plan(latest, described, dataset="sales_orders", datastore="workspaceblobstore", added=added,
                    replaced=set(), gone=set(), run_id="r")
        described |= {segment.id: segment for segment in made.segments}
        latest = made.manifest
    assert isinstance(latest, Manifest) and latest.source_count == 100_000
    assert all(isinstance(segment, Segment) for segment in described.values())
    dto = register(history, tuple(latest.patterns()))
    definition = json.loads(dto["latest"]["dataflow"])["meta"]["RsDataflow"]
    assert definition.count("- pattern:") == len(latest.segments) <= 251
    # What the service receives: 200 globs in ~47 KB, where one path per file was 18.2 MB (docs/azureml.md).
    post_body = json.dumps(dto)
    assert len(post_body) < 100_000, len(post_body)
    print(f"100,000 workbooks: {len(latest.segments)} segments, definition {len(definition):,} bytes, "
          f"request {len(post_body):,} bytes")
