"""Copy-paste code that loads one dataset version with pandas or polars, straight from storage.

The storage URL and options are in the snippet, so it runs as shown (in ``.venv``, which has
pandas, adlfs and polars). Only Azurite's published development key is ever written out: it is the
same on every machine. Any other account gets a placeholder, so no secret reaches a page.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from sheetdrop_local.azurite import AZURITE_ACCOUNT, AZURITE_KEY
from sheetdrop_local.readmodel.locations import Location, connection_parts
from sheetdrop_local.settings import LocalSettings

KEY_PLACEHOLDER = "<account key>"


def _q(text: str) -> str:
    """A Python string literal in double quotes (JSON's escapes are Python's too)."""
    return json.dumps(text)


def _account_and_key(settings: LocalSettings) -> tuple[str, str]:
    parts = connection_parts(settings)
    account = parts.get("AccountName", AZURITE_ACCOUNT)
    key = parts.get("AccountKey", "")
    return account, key if key == AZURITE_KEY else KEY_PLACEHOLDER


def blob_endpoint(where: Location) -> str:
    """The account's blob endpoint, from the blob's URL (``http://127.0.0.1:10000/devstoreaccount1``)."""
    url = urlsplit(where.url)
    if url.hostname in ("127.0.0.1", "localhost"):  # Azurite: the account is the path's first segment
        return f"{url.scheme}://{url.netloc}/{url.path.lstrip('/').split('/', 1)[0]}"
    return f"{url.scheme}://{url.netloc}"


def pandas_snippet(settings: LocalSettings, where: Location) -> str:
    account, key = _account_and_key(settings)
    connection = (f"DefaultEndpointsProtocol={urlsplit(where.url).scheme};AccountName={account};AccountKey={key};"
                  f"BlobEndpoint={blob_endpoint(where)};")
    return (
        "import pandas as pd  # with adlfs installed (pip install pandas pyarrow adlfs)\n"
        "\n"
        "df = pd.read_parquet(\n"
        f"    {_q(f'abfs://{where.container}/{where.path}')},\n"
        f"    storage_options={{\"connection_string\": {_q(connection)}}},\n"
        ")\n"
    )


def polars_snippet(settings: LocalSettings, where: Location) -> str:
    account, key = _account_and_key(settings)
    options = {"account_name": account, "account_key": key, "endpoint": blob_endpoint(where)}
    if urlsplit(where.url).scheme == "http":
        options["allow_http"] = "true"
    lines = "".join(f"        {_q(name)}: {_q(value)},\n" for name, value in options.items())
    return (
        "import polars as pl  # pip install polars\n"
        "\n"
        "df = pl.read_parquet(\n"
        f"    {_q(f'az://{where.container}/{where.path}')},\n"
        "    storage_options={\n"
        f"{lines}"
        "    },\n"
        ")\n"
    )
