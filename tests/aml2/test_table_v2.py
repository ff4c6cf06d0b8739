"""A table version through azure-ai-ml's real MLClient on the workspace stand-in: an ``mltable`` data asset over the
version's folder (its MLTable file lists each segment's parquet files by an absolute ``azureml://`` glob), the output
datastore's container found through ``datastores.get``, and a switched folder's per-file versions listed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sheetdrop_contract import table
from sheetdrop_contract.contract import Registration
from sheetdrop_step.contexts import azureml_v2 as azureml_v2_context
from tests.aml2.blob_proxy import SUFFIX, BlobAccount, blob_proxy
from tests.aml2.test_azureml_v2_context import context, tracking  # noqa: F401 - the fixtures
from tests.aml2.workspace import Workspace
from tests.tls import Certificate, self_signed

PATTERNS = (table.segment_pattern("sales_orders", "v1-0a1b"), table.segment_pattern("sales_orders", "v4-77aa"))


@pytest.fixture
def workspace_storage(workspace: Workspace, certificate: Certificate, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> Iterator[BlobAccount]:
    """The workspace's storage account, whose blob endpoint azure-ai-ml reads a remote MLTable file from, answered
    from the stand-in's datastore folder through an HTTPS proxy (tests/aml2/blob_proxy.py)."""
    named = self_signed(tmp_path / "storage-tls", (f"*{SUFFIX}",))
    bundle = tmp_path / "trusted.pem"
    bundle.write_bytes(certificate.cert.read_bytes() + named.cert.read_bytes())
    account = BlobAccount({workspace.blobstore_container: workspace.datastore_folder("workspaceblobstore")})
    with blob_proxy(account, named.cert, named.key) as proxy:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # the workspace stand-in itself: direct
        yield account


def test_a_table_version_is_an_mltable_asset_over_its_version_folder(
        context: azureml_v2_context.AzureMLV2Context, workspace: Workspace,  # noqa: F811
        workspace_storage: BlobAccount) -> None:
    # The step writes the MLTable file beside the manifest before registering (sheetdrop_step.tables.ManifestStore).
    folder = workspace.datastore_folder("workspaceblobstore") / table.version_folder("sales_orders", 4)
    folder.mkdir(parents=True)
    (folder / table.MLTABLE_FILE).write_text(table.mltable_text("workspaceblobstore", PATTERNS))
    tags = {"sheet": "Orders", table.TABLE_VERSION_TAG: "4", table.TABLE_SEGMENTS_TAG: "2"}
    reference = context.register(Registration("sales_orders", "workspaceblobstore",
                                              table.manifest_path("sales_orders", 4), "d", tags, files=PATTERNS))
    assert reference == "sales_orders:1"
    properties = workspace.versions("data")["sales_orders/1"]["properties"]
    assert (properties["dataType"], properties["dataUri"], properties["tags"]) == (
        "mltable", "azureml://datastores/workspaceblobstore/paths/tables/sales_orders/4/", tags)
    # azure-ai-ml read the MLTable file from the datastore as the compute's identity, and sent the globs it lists.
    assert properties["referencedUris"] == [f"azureml://datastores/workspaceblobstore/paths/{p}" for p in PATTERNS]
    reads = [(method, path) for method, path, bearer in workspace_storage.seen if bearer]
    assert reads == [(method, path) for method, path, _ in workspace_storage.seen]
    assert any("comp=list" in path and "prefix=tables%2Fsales_orders%2F4" in path for _, path in reads)
    assert ("GET", f"/{workspace.blobstore_container}/tables/sales_orders/4/MLTable") in reads


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
