"""A table version through azure-ai-ml's real MLClient on the workspace stand-in: an ``mltable`` data asset over the
version's folder (its MLTable file lists each segment's parquet files by an absolute ``azureml://`` glob), the output
datastore's container found through ``datastores.get``, and a switched folder's per-file versions listed."""

from __future__ import annotations

from typing import Any

import yaml

from sheetdrop_contract import table
from sheetdrop_contract.contract import Registration
from sheetdrop_step.contexts import azureml_v2 as azureml_v2_context
from tests.aml2.test_azureml_v2_context import context, tracking  # noqa: F401 - the fixtures
from tests.aml2.workspace import Workspace

PATTERNS = (table.segment_pattern("sales_orders", "v1-0a1b"), table.segment_pattern("sales_orders", "v4-77aa"))


def test_a_table_version_is_an_mltable_asset_over_its_version_folder(
        context: azureml_v2_context.AzureMLV2Context, workspace: Workspace) -> None:  # noqa: F811
    # azure-ai-ml reads a remote MLTable file before registering it, from the datastore's account, and skips its
    # validation when it cannot (operations/_data_operations.py, _validate): no such account answers here, so this
    # takes the storage SDK's retries (about 85 s); in AzureML the file is there (written before registering).
    tags = {"sheet": "Orders", table.TABLE_VERSION_TAG: "4", table.TABLE_SEGMENTS_TAG: "2"}
    reference = context.register(Registration("sales_orders", "workspaceblobstore",
                                              table.manifest_path("sales_orders", 4), "d", tags, files=PATTERNS))
    assert reference == "sales_orders:1"
    properties = workspace.versions("data")["sales_orders/1"]["properties"]
    assert (properties["dataType"], properties["dataUri"], properties["tags"]) == (
        "mltable", "azureml://datastores/workspaceblobstore/paths/tables/sales_orders/4/", tags)


def test_the_mltable_file_lists_each_segment_as_the_mltable_schema_reads_it() -> None:
    odd = "tables/sales_orders/segments/it's \"odd\"/*.parquet"
    text = table.mltable_text("workspaceblobstore", [*PATTERNS, odd])
    loaded = yaml.safe_load(text)
    assert loaded["type"] == "mltable" and loaded["transformations"] == [{"read_parquet": {
        "include_path_column": False}}]
    assert [item["pattern"] for item in loaded["paths"]] == [
        f"azureml://datastores/workspaceblobstore/paths/{path}" for path in (*PATTERNS, odd)]
    # azure-ai-ml's own MLTable loader reads it and names the same globs.
    from azure.ai.ml.entities._data.mltable_metadata import MLTableMetadata

    assert MLTableMetadata._load(loaded, None).referenced_uris() == [item["pattern"] for item in loaded["paths"]]


def test_the_output_datastores_container_and_earlier_per_file_versions(
        context: azureml_v2_context.AzureMLV2Context, workspace: Workspace, ml_client: Any) -> None:  # noqa: F811
    container = context.output_container("workspaceblobstore")
    assert container.url == (f"https://{container.account_name}.blob.core.windows.net/"
                             f"{workspace.blobstore_container}")
    tags = {"source_blob": "sales/a.xlsx", "source_etag": "0x1", "sheet": "Orders", "dataset_base": "sales"}
    context.register(Registration("sales", "workspaceblobstore", "azureml/j1/extracted/orders.parquet", "d", tags))
    context.register(Registration("sales", "workspaceblobstore", "azureml/j2/extracted/orders.parquet", "d",
                                  {**tags, "source_etag": "0x2"}))
    assert [(v["relative_path"], v["tags"]["source_etag"]) for v in context.per_file_versions("sales")] == [
        ("azureml/j1/extracted/orders.parquet", "0x1"), ("azureml/j2/extracted/orders.parquet", "0x2")]
