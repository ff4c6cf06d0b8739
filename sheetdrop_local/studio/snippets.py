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


def _path(scheme: str, where: Location) -> str:
    return _q(f"{scheme}://{where.container}/{where.path}")


def _listing(where: Location, patterns: list[str], connection: str) -> str:
    """Code that lists a table version's files: each of its segments' glob, expanded by adlfs (the version is
    immutable, so the globs match the same files for as long as it is read)."""
    globs = "".join(f"    {_q(f'{where.container}/{pattern}')},\n" for pattern in patterns)
    return (f"import fsspec  # adlfs: pip install adlfs\n\n"
            f"fs = fsspec.filesystem(\"abfs\", connection_string={_q(connection)})\n"
            f"segments = [\n{globs}]\n"
            "files = [f\"abfs://{path}\" for pattern in segments for path in sorted(fs.glob(pattern))]\n")


def _connection(settings: LocalSettings, where: Location) -> str:
    account, key = _account_and_key(settings)
    return (f"DefaultEndpointsProtocol={urlsplit(where.url).scheme};AccountName={account};AccountKey={key};"
            f"BlobEndpoint={blob_endpoint(where)};")


def pandas_snippet(settings: LocalSettings, where: Location, patterns: list[str] | None = None) -> str:
    """``patterns``: a table version's segment globs (its manifest's), read as one table; else the version's
    file."""
    connection = _connection(settings, where)
    options = f"storage_options={{\"connection_string\": {_q(connection)}}}"
    head = "import pandas as pd  # with adlfs installed (pip install pandas pyarrow adlfs)\n"
    if patterns is not None:
        # The files' columns may differ (the table's schema is their union): concat fills the gaps with nulls.
        return (head + _listing(where, patterns, connection) +
                f"df = pd.concat([pd.read_parquet(f, {options}) for f in files], ignore_index=True)\n")
    return head + f"\ndf = pd.read_parquet(\n    {_path('abfs', where)},\n    {options},\n)\n"


def polars_snippet(settings: LocalSettings, where: Location, patterns: list[str] | None = None) -> str:
    """As :func:`pandas_snippet`, for polars."""
    account, key = _account_and_key(settings)
    options = {"account_name": account, "account_key": key, "endpoint": blob_endpoint(where)}
    if urlsplit(where.url).scheme == "http":
        options["allow_http"] = "true"
    lines = "".join(f"    {_q(name)}: {_q(value)},\n" for name, value in options.items())
    head = "import polars as pl  # pip install polars\n"
    settings_code = "storage_options = {\n" + lines + "}\n"
    if patterns is not None:
        # diagonal_relaxed: columns by name, a file without one null there, disagreeing types to their supertype.
        return (head + _listing(where, patterns, _connection(settings, where)) + settings_code +
                "df = pl.concat([pl.read_parquet(f.replace(\"abfs://\", \"az://\"), storage_options=storage_options)\n"
                "                for f in files], how=\"diagonal_relaxed\")\n")
    return head + "\n" + settings_code + \
        f"df = pl.read_parquet({_path('az', where)}, storage_options=storage_options)\n"
