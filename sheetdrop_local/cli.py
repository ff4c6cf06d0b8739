"""``sheetdrop``: run the embedded default, drop files, list runs and datasets, convert, publish."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sheetdrop.settings import SettingsError
from sheetdrop_local.settings import LocalSettings, load_local_settings

if TYPE_CHECKING:
    import sqlite3


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[str(r.get(c, "") if r.get(c) is not None else "") for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


def _connect(settings: LocalSettings) -> sqlite3.Connection:
    from sheetdrop_local import db

    return db.connect(settings.state_dir)


def cmd_runs(args: argparse.Namespace, settings: LocalSettings) -> int:
    from sheetdrop_local import runstore
    runs = runstore.list_runs(_connect(settings), limit=args.limit)
    poisoned, note = _poisoned(settings)
    if args.json:
        print(json.dumps([r.as_dict() for r in runs] + poisoned, indent=2, sort_keys=True))
        return 0
    if note:
        print(note, file=sys.stderr)
    rows = [{
        "run": "-", "status": "poisoned", "blob": f"{p['source_container']}/{p['source_blob']}", "dataset": "",
        "submitted": _when(p["submitted_at"]), "seconds": "", "rows": "",
        "reason": f"{p['error']}; upload the file again to retry",
    } for p in poisoned] + [{
        "run": r.run_id[:8], "status": r.status, "blob": f"{r.source_container}/{r.source_blob}",
        "dataset": r.dataset_name, "submitted": _when(r.submitted_at),
        "seconds": f"{r.seconds:.1f}" if r.seconds is not None else "",
        "rows": r.metrics.get("rows", ""), "reason": r.error or "",
    } for r in runs]
    print(_table(rows, ["run", "status", "blob", "dataset", "submitted", "seconds", "rows", "reason"]))
    return 0


def _poisoned(settings: LocalSettings) -> tuple[list[dict[str, Any]], str | None]:
    """Blob versions that never got a run because their claim was poisoned. Best effort: the run
    list is local and must not wait for storage retries when Azurite is down."""
    import dataclasses

    from azure.core.exceptions import ResourceNotFoundError

    from sheetdrop.claims import ClaimState, ClaimStore
    from sheetdrop.storage import blob_service, storage_unreachable

    service = blob_service(dataclasses.replace(settings.storage, retry_total=0))
    claims = ClaimStore(service.get_container_client(settings.claims_container),
                        stale_after=settings.claim_stale_seconds, max_failures=settings.claim_max_failures)
    try:
        return [{"run_id": None, "status": "poisoned", "source_container": c.container, "source_blob": c.blob,
                 "source_etag": c.etag, "submitted_at": c.updated_at,
                 "error": f"{c.failures} failed submissions: {c.last_error}"}
                for c in claims.list(ClaimState.POISONED)], None
    except ResourceNotFoundError:  # no claims container yet
        return [], None
    except Exception as exc:
        if storage_unreachable(exc):
            return [], "note: storage is unreachable, so poisoned blob versions are not listed"
        raise


def cmd_datasets(args: argparse.Namespace, settings: LocalSettings) -> int:
    from sheetdrop_local import registry

    versions = registry.list_versions(_connect(settings), args.name)
    if args.json:
        print(json.dumps([v.as_dict() for v in versions], indent=2, sort_keys=True))
        return 0
    rows = [{
        "name": v.name, "version": v.version, "rows": v.tags.get("rows", ""), "columns": v.tags.get("columns", ""),
        "sheet": v.tags.get("sheet", ""), "source": v.tags.get("source_blob", ""),
        "path": f"{v.datastore}/{v.relative_path}", "created": _when(v.created_at),
        "schema change": v.tags.get("schema_change", ""),
    } for v in versions]
    print(_table(rows, ["name", "version", "rows", "columns", "sheet", "source", "created", "schema change", "path"]))
    return 0


def cmd_show(args: argparse.Namespace, settings: LocalSettings) -> int:
    from sheetdrop.storage import blob_service
    from sheetdrop_local import registry

    name, _, version = args.dataset.partition(":")
    if version and not version.isdigit():
        print(f"error: usage: NAME[:VERSION] with a version number, not {args.dataset!r}", file=sys.stderr)
        return 2
    dataset = registry.get(_connect(settings), name, int(version) if version else None)
    container = settings.local_container_for(dataset.datastore)
    from azure.core.exceptions import ResourceNotFoundError

    try:
        table = registry.load_table(dataset, blob_service(settings.storage), container)
    except ResourceNotFoundError:
        print(f"error: not-found: {dataset.name}:{dataset.version} is registered, but its parquet "
              f"{container}/{dataset.relative_path} is not in storage", file=sys.stderr)
        return 1
    print(f"{dataset.name} version {dataset.version}: {table.num_rows} rows, {table.num_columns} columns")
    print(table.slice(0, args.head).to_pandas().to_string(index=False))
    return 0


def drop_file(settings: LocalSettings, path: Path, blob_name: str | None = None) -> tuple[str, str]:
    """Upload a file into the input container; return its blob name and etag."""
    from sheetdrop.storage import blob_service, ensure_container
    from sheetdrop_local import events

    blob_name = blob_name or path.name
    container = ensure_container(blob_service(settings.storage), settings.input_container)
    blob = container.get_blob_client(blob_name)
    with open(path, "rb") as handle:
        props = blob.upload_blob(handle, overwrite=True)
    # What Event Grid would send: the dev host notices the drop within a poll (events.py).
    events.post(events.events_queue(settings.storage), events.blob_created(
        blob.account_name or "", settings.input_container, blob_name, props["etag"], path.stat().st_size, blob.url))
    print(f"dropped {path} as {settings.input_container}/{blob_name} (etag {props['etag']})")
    return blob_name, props["etag"]


def cmd_drop(args: argparse.Namespace, settings: LocalSettings) -> int:
    drop_file(settings, args.file, args.as_name)
    return 0


def cmd_convert(args: argparse.Namespace, settings: LocalSettings | None) -> int:
    from sheetdrop_local.runner import STEP_DIR

    # The step's own converter, in its own process: the same code AzureML runs, and a reader
    # that aborts cannot take the CLI down with it.
    return subprocess.run([sys.executable, str(STEP_DIR / "convert.py"), str(args.input), str(args.outdir)],
                          check=False).returncode


def _wait_for_runs(settings: LocalSettings, versions: list[tuple[str, str]], timeout: float = 300.0) -> None:
    """Wait until each dropped blob version's run has ended (matched by etag: an earlier run of
    the same name, from an earlier session, does not count)."""
    from sheetdrop_local import db, runstore

    conn = db.connect(settings.state_dir)
    pending = set(versions)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for blob, etag in list(pending):
            runs = [runstore.get(conn, run_id) for run_id in runstore.find_by_source(
                conn, settings.input_container, blob, etag)]
            if any(r is not None and r.status in runstore.ENDED for r in runs):
                pending.discard((blob, etag))
        time.sleep(0.25)
    if pending:
        print(f"warning: no finished run after {timeout:.0f} s for: {', '.join(b for b, _ in sorted(pending))} "
              "(see `sheetdrop runs`)", file=sys.stderr)


def _interrupt(signum: int, frame: object) -> None:
    # Shutting down is bounded (threads are joined with a timeout); a second signal, as `make`
    # forwards its own, must not cut it short and leave Azurite behind.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    raise KeyboardInterrupt


def cmd_host(args: argparse.Namespace, settings: LocalSettings) -> int:
    from sheetdrop_local.azurite import Azurite
    from sheetdrop_local.devhost import DevHost

    # `kill`, a closed terminal or a `timeout` stop the host like Ctrl-C, so Azurite is stopped too.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    log = logging.getLogger("sheetdrop.host")
    azurite = None
    if args.azurite:
        azurite = Azurite(settings.state_dir / "azurite", settings.azurite_blob_port, settings.azurite_queue_port,
                          settings.azurite_table_port).start()
        log.info("Azurite %s on blob port %d (pid %d)", "adopted from a previous host" if azurite.adopted
                 else "listening", azurite.blob_port, azurite.pid)
    try:
        host = DevHost(settings, poll_interval=args.poll_interval, workers=args.workers).start()
        if args.drop:
            names = [drop_file(settings, path) for path in args.drop]
            _wait_for_runs(settings, names)
            print()
            cmd_runs(argparse.Namespace(json=False, limit=len(names) * 2), settings)
            print()
            cmd_datasets(argparse.Namespace(json=False, name=None), settings)
            print("\nwatching for new workbooks: `sheetdrop drop FILE` from another shell; Ctrl-C stops\n")
        while True:
            time.sleep(1)
            if azurite and not azurite.alive():
                # Whatever it acknowledged since its last save may be gone: restart it and check the
                # runs it served (recovery.py).
                lost_since = azurite.started_at
                log.warning("Azurite exited unexpectedly; starting it again")
                azurite.start()
                host.storage_restarted(lost_since)
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        # A second Ctrl-C must not cut the shutdown short and leave Azurite holding its ports.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if "host" in locals():
                host.stop()
        finally:
            if azurite:
                azurite.stop()
    return 0


def cmd_publish(args: argparse.Namespace, settings: LocalSettings | None) -> int:
    from sheetdrop_local import REPO

    # --v2 first: the batch endpoint publisher (azure-ai-ml, .venv-aml2); otherwise the v1 one.
    v2 = args.rest[:1] == ["--v2"]
    venv, module, rest = (".venv-aml2", "pipeline.v2.publish", args.rest[1:]) if v2 else \
        (".venv-aml", "pipeline.publish", args.rest)
    python = REPO / venv / "bin" / "python"
    if not python.exists():
        print(f"error: the AzureML environment is missing: run `make setup-aml{'2' if v2 else ''}`", file=sys.stderr)
        return 2
    return subprocess.run([str(python), "-m", module, *rest], cwd=REPO, check=False).returncode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sheetdrop", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("host", help="run the dev host: watch the input container and run the local pipeline")
    p.add_argument("--azurite", action="store_true",
                   help="start Azurite (data in the state folder) and stop it on exit")
    p.add_argument("--drop", type=Path, nargs="*", default=[], help="workbooks to drop once the host is up")
    p.add_argument("--poll-interval", type=float, default=1.0, help="seconds between scans (default 1)")
    p.add_argument("--workers", type=int, default=2, help="runs executed at once (default 2)")
    p.set_defaults(func=cmd_host)

    p = sub.add_parser("drop", help="upload a file into the input container")
    p.add_argument("file", type=Path)
    p.add_argument("--as", dest="as_name", help="blob name (default: the file's name); folders feed datasets")
    p.set_defaults(func=cmd_drop)

    p = sub.add_parser("runs", help="list pipeline runs, newest first")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("datasets", help="list registered dataset versions")
    p.add_argument("name", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("show", help="load a dataset version back from storage: NAME[:VERSION]")
    p.add_argument("dataset")
    p.add_argument("--head", type=int, default=10)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("convert", help="convert a workbook to parquet without storage")
    p.add_argument("input", type=Path)
    p.add_argument("outdir", type=Path)
    p.set_defaults(func=cmd_convert, no_settings=True)

    p = sub.add_parser("publish", help="publish the extract pipeline to AzureML (uses .venv-aml; --v2: the batch "
                       "endpoint, .venv-aml2)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for python -m pipeline.publish")
    p.set_defaults(func=cmd_publish, no_settings=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["publish"]:
        # Everything after `publish` belongs to pipeline.publish, --help included.
        return cmd_publish(argparse.Namespace(rest=argv[1:]), None)
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S",
    )
    # The storage SDK logs every request at INFO; that is noise here.
    logging.getLogger("azure").setLevel(logging.WARNING)
    try:
        settings = None if getattr(args, "no_settings", False) else load_local_settings()
        return int(args.func(args, settings) or 0)
    except SettingsError as exc:
        print(f"error: settings: {exc}", file=sys.stderr)
        return 2
    except LookupError as exc:
        print(f"error: not-found: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # HostError, AzuriteError: their messages say what to do
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from azure.core.exceptions import ServiceRequestError

        if isinstance(exc, ServiceRequestError):
            print("error: storage-unreachable: cannot reach the storage account; is Azurite running? "
                  "(`make run` starts it, or `sheetdrop host --azurite`)", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
