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
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

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
from sheetdrop_local.studio.guard import Guard

HERE = Path(__file__).resolve().parent
PREVIEW_ROWS = 20
#: Seconds between refreshes of the run list: soon while something runs, calmly otherwise.
REFRESH_BUSY, REFRESH_IDLE = 2, 5


def create_app(settings: LocalSettings) -> Guard:
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
        status = _text_param(request, "status")
        if status and status not in runs.STATUSES:
            raise HTTPException(400, f"no status {status!r}; one of {', '.join(runs.STATUSES)}")
        dataset, blob = _text_param(request, "dataset"), _text_param(request, "blob")
        since, until = _time_param(request, "since"), _time_param(request, "until", end=True)
        limit = _int_param(request, "limit", 100, maximum=runs.MAX_LIMIT)
        number = _int_param(request, "page", 1, maximum=1_000_000)
        with connection() as conn:
            batch = None
            if request.query_params.get("batch"):
                try:
                    batch = runs.find_batch(conn, request.query_params["batch"])
                except runs.RunNotFound as exc:
                    raise HTTPException(404, str(exc)) from exc
            # The page's own refresh every few seconds reads storage's notes only when due (unrun.py).
            found = runs.activity(conn, settings, service, limit=limit, status=status, dataset=dataset, blob=blob,
                                  since=since, until=until, offset=(number - 1) * limit,
                                  fresh="x-studio-refresh" not in request.headers,
                                  batch=batch.run_id if batch else None)
            names = runs.dataset_names(conn)
        query = {k: v for k, v in request.query_params.items() if k != "page"}
        pages = Pages(number, limit, found.total, query)
        return page(request, "runs.html", activity=found, status=status, dataset=dataset, blob=blob,
                    since=request.query_params.get("since", ""), until=request.query_params.get("until", ""),
                    names=names, pages=pages, batch=batch,
                    filtered=bool(status or dataset or blob or since or until or batch),
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
        patterns = content.manifest.patterns() if content.manifest else None
        return page(request, "dataset.html", name=found.name, history=found.versions, version=found.version,
                    previous=found.previous, **vars(content), tagged=datasets.tagged_schema(found.version),
                    pandas=snippets.pandas_snippet(settings, content.where, patterns),
                    polars=snippets.polars_snippet(settings, content.where, patterns))

    async def not_found(request: Request, exc: Exception) -> Response:
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else str(exc)
        return page(request, "error.html", status_code=code, code=code, detail=detail)

    async def failed(request: Request, exc: Exception) -> Response:
        # What went wrong is logged as one line by the guard; the page says no more than that it failed.
        return page(request, "error.html", status_code=500, code=500,
                    detail="The studio could not show this page; the terminal it runs in says why, in one line.")

    return Guard(Starlette(routes=[
        Route("/", lambda request: RedirectResponse("/runs")),
        Route("/runs", runs_page),
        Route("/runs/{run_id}", run_page),
        Route("/runs/{run_id}/log", log_page),
        Route("/datasets", datasets_page),
        Route("/datasets/{name}", dataset_page),
        Route("/datasets/{name}/{version}", dataset_page),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ], exception_handlers={HTTPException: not_found, Exception: failed}), settings.ui_hosts)


#: The longest text a filter takes; a longer one is an error, not a query.
MAX_TEXT = 200


def _int_param(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 0 < int(raw) <= maximum:
        raise HTTPException(400, f"{name} must be a whole number from 1 to {maximum}")
    return int(raw)


def _text_param(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name, "").strip()
    if len(raw) > MAX_TEXT:
        raise HTTPException(400, f"{name} is longer than {MAX_TEXT} characters")
    return raw or None


def _time_param(request: Request, name: str, end: bool = False) -> float | None:
    raw = _text_param(request, name)
    if raw is None:
        return None
    try:
        return runs.parse_time(raw, end=end)
    except ValueError:
        raise HTTPException(400, f"{name} takes a date (2026-10-01) or a time (2026-10-01T09:30), UTC") from None


@dataclass(frozen=True)
class Pages:
    """Where a page of the run list is among all the rows, and the links to the pages beside it."""

    number: int
    limit: int
    total: int
    query: dict[str, str]

    @property
    def first_row(self) -> int:
        return min(self.total, (self.number - 1) * self.limit + 1)

    @property
    def last_row(self) -> int:
        return min(self.total, self.number * self.limit)

    def link(self, number: int) -> str | None:
        if number < 1 or (number - 1) * self.limit >= max(self.total, 1):
            return None
        return "/runs?" + urlencode({**self.query, "page": number})

