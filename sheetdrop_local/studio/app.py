"""The local studio's pages: the run list, a run, the dataset list and a dataset version.

Starlette routes rendering Jinja2 templates (``templates/``); every route is a GET and reads only.
The data comes from the same read model as the CLI (:mod:`sheetdrop_local.readmodel`); how it is
written is :mod:`.format`. Pages whose content changes
while runs are in progress mark their live part with ``data-refresh`` (seconds); ``studio.js``
fetches the page again and swaps that part, so the list moves on without a reload.
"""

from __future__ import annotations

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

from sheetdrop_local import db
from sheetdrop_local.readmodel import datasets, rundetail, runs
from sheetdrop_local.readmodel.locations import quick_service
from sheetdrop_local.registry import DatasetNotFound
from sheetdrop_local.runstore import Run
from sheetdrop_local.settings import LocalSettings
from sheetdrop_local.studio import snippets
from sheetdrop_local.studio.format import templates as make_templates

HERE = Path(__file__).resolve().parent
PREVIEW_ROWS = 20
#: Seconds between refreshes of the run list: soon while something runs, calmly otherwise.
REFRESH_BUSY, REFRESH_IDLE = 2, 5


def create_app(settings: LocalSettings) -> Starlette:
    templates = make_templates(HERE / "templates")
    service = quick_service(settings)

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

    def runs_page(request: Request) -> Response:
        status = request.query_params.get("status") or None
        dataset = request.query_params.get("dataset") or None
        if status and status not in runs.STATUSES:
            raise HTTPException(400, f"no status {status!r}; one of {', '.join(runs.STATUSES)}")
        limit = _int_param(request, "limit", 100)
        with connection() as conn:
            batch = None
            if request.query_params.get("batch"):
                try:
                    batch = runs.find_run(conn, request.query_params["batch"])
                except runs.RunNotFound as exc:
                    raise HTTPException(404, str(exc)) from exc
                if batch.kind != "batch":
                    raise HTTPException(400, f"run {batch.run_id} is not a batch run")
            found = runs.activity(conn, settings, service, limit=limit, status=status, dataset=dataset,
                                  batch=batch.run_id if batch else None)
            names = runs.dataset_names(conn)
        return page(request, "runs.html", activity=found, status=status, dataset=dataset, names=names, batch=batch,
                    refresh=REFRESH_BUSY if found.in_progress else REFRESH_IDLE)

    def find_run(conn: sqlite3.Connection, request: Request) -> Run:
        try:
            return runs.find_run(conn, request.path_params["run_id"])
        except runs.RunNotFound as exc:
            raise HTTPException(404, str(exc)) from exc

    def run_page(request: Request) -> Response:
        with connection() as conn:
            found = find_run(conn, request)
            detail = rundetail.run_detail(conn, settings, found, service)
        return page(request, "run.html", d=detail, run=found, settings=settings,
                    refresh=REFRESH_BUSY if found.status in runs.IN_PROGRESS else 0)

    def log_page(request: Request) -> Response:
        with connection() as conn:
            found = find_run(conn, request)
        return PlainTextResponse(runs.step_log(settings, found) or "")

    def datasets_page(request: Request) -> Response:
        with connection() as conn:
            by_name = datasets.by_name(conn)
        return page(request, "datasets.html", datasets=by_name)

    def dataset_page(request: Request) -> Response:
        with connection() as conn:
            try:
                found = datasets.history(conn, request.path_params["name"], request.path_params.get("version"))
            except DatasetNotFound as exc:
                raise HTTPException(404, str(exc)) from exc
        content = datasets.content(settings, service, found.version, found.previous, PREVIEW_ROWS)
        return page(request, "dataset.html", name=found.name, history=found.versions, version=found.version,
                    previous=found.previous, **vars(content), pandas=snippets.pandas_snippet(settings, content.where),
                    polars=snippets.polars_snippet(settings, content.where))

    async def not_found(request: Request, exc: Exception) -> Response:
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else str(exc)
        return page(request, "error.html", status_code=code, code=code, detail=detail)

    return Starlette(routes=[
        Route("/", lambda request: RedirectResponse("/runs")),
        Route("/runs", runs_page),
        Route("/runs/{run_id}", run_page),
        Route("/runs/{run_id}/log", log_page),
        Route("/datasets", datasets_page),
        Route("/datasets/{name}", dataset_page),
        Route("/datasets/{name}/{version}", dataset_page),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ], exception_handlers={HTTPException: not_found})


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise HTTPException(400, f"{name} must be a positive number")
    return int(raw)

