"""A table version registered through azureml-core's real objects (``Dataset.Tabular.from_parquet_files`` over the
version's file list, ``register``) on the run-history stand-in: what the SDK sends is one tabular dataset whose
definition reads every listed parquet file, tagged as a table version."""

from __future__ import annotations

import json

from sheetdrop_contract import table
from sheetdrop_contract.contract import Registration
from tests.aml.run_history import RunHistory
from tests.aml.test_azureml_context import history, open_context  # noqa: F401 - the fixture

FILES = ("azureml/step-a/extracted/orders.parquet", "azureml/step-b/extracted/3/orders.parquet",
         "azureml/step-c/extracted/_table_seed/sales_orders/0.parquet")


def test_a_table_version_is_one_tabular_dataset_over_its_files(history: RunHistory) -> None:  # noqa: F811
    context = open_context(history)
    tags = {"run_id": context.run_id, "sheet": "Orders", table.TABLE_VERSION_TAG: "7", table.TABLE_FILES_TAG: "3",
            table.TABLE_SOURCES_TAG: "3", "rows": "30"}
    reference = context.register(Registration("sales_orders", "workspaceblobstore", table.manifest_path(
        "sales_orders", 7), "Table of the folder's workbooks", tags, files=FILES))
    assert reference == "sales_orders:1"

    (post,) = history.sent("POST", "/datasets")
    dto = post.json()
    assert (dto["name"], dto["datasetType"], dto["tags"]) == ("sales_orders", "tabular", tags)
    definition = json.loads(dto["latest"]["dataflow"])["meta"]["RsDataflow"]
    # One `paths` entry per file (the manifest itself is not read by AzureML), read as parquet, not validated.
    assert definition.count("- pattern:") == len(FILES) and "read_parquet" in definition
    for path in FILES:
        assert f"datastores/workspaceblobstore/paths/{path}" in definition
    assert "manifest.json" not in definition
    assert not history.sent("GET", "/datasets")
