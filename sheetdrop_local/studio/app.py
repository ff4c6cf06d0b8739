"""The local studio's pages: the run list, a run, the dataset list and a dataset version.

Starlette routes rendering Jinja2 templates (``templates/``); every route is a GET and reads only.
The data comes from the same read model as the CLI (:mod:`sheetdrop_local.lineage`,
:mod:`sheetdrop_local.rundetail`, :mod:`sheetdrop_local.parquetview`). Pages whose content changes
while runs are in progress mark their live part with ``data-refresh`` (seconds); ``studio.js``
fetches the page again and swaps that part, so the list moves on without a reload.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from sheetdrop.storage import storage_unreachable
from sheetdrop_local import db, lineage, parquetview, registry, rundetail, runstore, snippets
from sheetdrop_local.cli_read import clock, ref, short, when
from sheetdrop_local.settings import LocalSettings

HERE = Path(__file__).resolve().parent
PREVIEW_ROWS = 20
#: Seconds between refreshes of the run list: soon while something runs, calmly otherwise.
REFRESH_BUSY, REFRESH_IDLE = 2, 5


def create_app(settings: LocalSettings) -> Starlette:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(when=when, clock=clock, short=short, ref=ref, statuses=lineage.STATUSES)
    service = lineage.quick_service(settings)

    @contextmanager
    def connection() -> Iterator[sqlite3.Connection]:
        conn = db.connect(settings.state_dir)
        try:
            yield conn
        finally:
            conn.close()

    def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
        context.setdefault("now", time.time())
        return templates.TemplateResponse(request, template, context, status_code=status_code)

    def runs(request: Request) -> Response:
        status = request.query_params.get("status") or None
        dataset = request.query_params.get("dataset") or None
        if status and status not in lineage.STATUSES:
            raise HTTPException(400, f"no status {status!r}; one of {', '.join(lineage.STATUSES)}")
        limit = _int_param(request, "limit", 100)
        with connection() as conn:
            found = lineage.activity(conn, settings, service, limit=limit, status=status, dataset=dataset)
            names = sorted({v.name for v in registry.list_versions(conn)} | runstore.dataset_names(conn))
        return page(request, "runs.html", activity=found, status=status, dataset=dataset, names=names,
                    refresh=REFRESH_BUSY if found.in_progress else REFRESH_IDLE)

    def run(request: Request) -> Response:
        with connection() as conn:
            try:
                found = lineage.find_run(conn, request.path_params["run_id"])
            except lineage.RunNotFound as exc:
                raise HTTPException(404, str(exc)) from exc
            detail = rundetail.run_detail(conn, settings, found, service)
        return page(request, "run.html", d=detail, run=found, settings=settings,
                    refresh=REFRESH_BUSY if found.status in lineage.IN_PROGRESS else 0)

    def run_log(request: Request) -> Response:
        with connection() as conn:
            try:
                found = lineage.find_run(conn, request.path_params["run_id"])
            except lineage.RunNotFound as exc:
                raise HTTPException(404, str(exc)) from exc
        return PlainTextResponse(lineage.step_log(settings, found) or "")

    def datasets(request: Request) -> Response:
        with connection() as conn:
            versions = registry.list_versions(conn)
        by_name: dict[str, list[registry.DatasetVersion]] = {}
        for version in versions:
            by_name.setdefault(version.name, []).append(version)
        return page(request, "datasets.html", datasets=by_name)

    def dataset(request: Request) -> Response:
        name = request.path_params["name"]
        with connection() as conn:
            history = registry.list_versions(conn, name)
        if not history:
            raise HTTPException(404, f"no dataset {name!r}")
        wanted = request.path_params.get("version")
        version = history[-1] if wanted in (None, "latest") else next(
            (v for v in history if str(v.version) == wanted), None)
        if version is None:
            raise HTTPException(404, f"{name!r} has no version {wanted!r}")
        previous = next((v for v in reversed(history) if v.version < version.version), None)
        return page(request, "dataset.html", name=name, history=list(reversed(history)), version=version,
                    previous=previous, **_version_view(settings, service, version, previous))

    async def not_found(request: Request, exc: Exception) -> Response:
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else str(exc)
        return page(request, "error.html", status_code=code, code=code, detail=detail)

    return Starlette(routes=[
        Route("/", lambda request: RedirectResponse("/runs")),
        Route("/runs", runs),
        Route("/runs/{run_id}", run),
        Route("/runs/{run_id}/log", run_log),
        Route("/datasets", datasets),
        Route("/datasets/{name}", dataset),
        Route("/datasets/{name}/{version}", dataset),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ], exception_handlers={HTTPException: not_found})


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise HTTPException(400, f"{name} must be a positive number")
    return int(raw)


def _version_view(settings: LocalSettings, service: Any, version: registry.DatasetVersion,
                  previous: registry.DatasetVersion | None) -> dict[str, Any]:
    """Where the version lives, its schema and preview (from storage), the change from ``previous``
    and the snippets; a storage problem becomes a note on the page, not an error."""
    from azure.core.exceptions import ResourceNotFoundError

    where = lineage.location(settings, version, service)
    view: dict[str, Any] = {
        "where": where, "info": None, "preview": None, "changes": None, "note": None,
        "pandas": snippets.pandas_snippet(settings, where), "polars": snippets.polars_snippet(settings, where),
    }
    try:
        parquet, size = parquetview.open_parquet(service.get_blob_client(where.container, where.path))
        view["info"] = parquetview.table_info(parquet, size)
        table = parquetview.head(parquet, PREVIEW_ROWS)
        view["preview"] = {"columns": table.column_names, "rows": [list(r.values()) for r in table.to_pylist()]}
        if previous is not None:
            before = lineage.location(settings, previous, service)
            # If the previous version's parquet is gone, the page says it could not be read.
            with contextlib.suppress(ResourceNotFoundError):
                view["changes"] = parquetview.schema_diff(
                    parquetview.read_info(service.get_blob_client(before.container, before.path)), view["info"])
    except ResourceNotFoundError:
        view["note"] = f"{where.blob_path} is not in storage (a lost output; see the run)"
    except Exception as exc:
        if not storage_unreachable(exc):
            raise
        view["note"] = "storage is unreachable: the schema and preview need Azurite (is the dev host running?)"
    return view
