"""sheetdrop: run the embedded default, drop files, watch runs and datasets, convert, publish.

Exit codes: 0 ok; 1 not found, a failed run, a rejected workbook, or the work could not be done
(storage unreachable, a port in use); 2 a usage or settings error.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sheetdrop.settings import SettingsError
from sheetdrop_contract.read_options import OptionsError
from sheetdrop_local.cli_read import cmd_datasets, cmd_logs, cmd_runs, cmd_show
from sheetdrop_local.readmodel.runs import STATUSES
from sheetdrop_local.rerun import STATUSES as RERUN_STATUSES
from sheetdrop_local.settings import LocalSettings, load_local_settings


class UsageError(ValueError):
    """A command line that cannot mean anything: one ``error: usage:`` line, exit 2."""


def blob_name_for(path: Path, as_name: str | None) -> str:
    """The blob a file is dropped as: ``--as`` as given, or into the folder ``--as`` names when it
    ends in ``/`` (keeping the file's name), or the file's name. A name is a place inside the
    container, never a path: no leading ``/``, and no empty, ``.`` or ``..`` segment."""
    if not as_name:
        return path.name
    name = f"{as_name}{path.name}" if as_name.endswith("/") else as_name
    if name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
        raise UsageError(f"--as {as_name!r}: a blob name inside the input container, like sales/q3.xlsx or sales/ "
                         "(no leading /, no empty, . or .. folder)")
    return name


def positive(text: str) -> int:
    """An argparse type: a whole number above 0."""
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"a whole number above 0, not {text!r}")
    return int(text)


def not_negative(text: str) -> int:
    """An argparse type: a whole number, 0 or more."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"a whole number, 0 or more, not {text!r}")
    return int(text)


def check_options_file(path: Path, blob_name: str) -> None:
    """A folder's options file is checked before it is uploaded: every mistake at once."""
    from posixpath import basename

    from sheetdrop_contract import read_options

    if basename(blob_name) == read_options.OPTIONS_FILE:
        read_options.parse(path.read_bytes().decode("utf-8", errors="replace"), blob_name)


def drop_file(settings: LocalSettings, path: Path, blob_name: str,
              say: Callable[[str], None] = print) -> tuple[str, str]:
    """Upload a file into the input container as ``blob_name``; return its blob name and etag."""
    from sheetdrop.storage import ensure_container
    from sheetdrop_local import events
    from sheetdrop_local.readmodel.locations import quick_service

    check_options_file(path, blob_name)
    # A person waits: storage that does not answer is said at once (quick_service), not after the retries.
    container = ensure_container(quick_service(settings, retry_answers=True), settings.input_container)
    blob = container.get_blob_client(blob_name)
    with open(path, "rb") as handle:
        props = blob.upload_blob(handle, overwrite=True)
    # What Event Grid would send: the dev host notices the drop within a poll (events.py).
    events.post(events.events_queue(settings.storage), events.blob_created(
        blob.account_name or "", settings.input_container, blob_name, props["etag"], path.stat().st_size, blob.url))
    say(f"dropped {path} as {settings.input_container}/{blob_name} (etag {props['etag']})")
    return blob_name, props["etag"]


def cmd_drop(args: argparse.Namespace, settings: LocalSettings) -> int:
    if args.wait is not None and args.wait <= 0:
        print("error: usage: --wait takes a number of seconds above 0", file=sys.stderr)
        return 2
    version = drop_file(settings, args.file, blob_name_for(args.file, args.as_name))
    if args.wait is None:
        return 0
    return _report_run(settings, version, args.wait)


def _report_run(settings: LocalSettings, version: tuple[str, str], timeout: float) -> int:
    """Wait for the run of one dropped blob version and say how it ended: exit 0 if it completed,
    1 if it failed, was skipped or poisoned, or did not end in time."""
    from sheetdrop_local import db, registry, runstore
    from sheetdrop_local.readmodel import locations, runs
    from sheetdrop_local.readmodel.labels import ref, short

    print(f"waiting up to {timeout:.0f} s for its run (the dev host must be running: `make run`)", flush=True)
    conn = db.connect(settings.state_dir)
    claims = locations.claims_reader(settings, locations.quick_service(settings))
    where = (settings.input_container, *version)
    deadline = time.monotonic() + timeout
    while True:
        found = runstore.find_by_source(conn, *where)
        run = runstore.get(conn, found[-1]) if found else None
        if run is not None and run.status in runstore.ENDED:
            break
        if run is None:
            # No run (yet): the trigger may have decided there will be none.
            why = runs.no_run_reason(claims, *where)
            if why:
                print(f"no run: {why}")
                return 1
        if time.monotonic() > deadline:
            print(f"no finished run after {timeout:.0f} s (status: {run.status if run else 'not submitted'}); "
                  "see `sheetdrop runs`", file=sys.stderr)
            return 1
        time.sleep(0.25)
    if run.status in (runstore.RunStatus.FAILED, runstore.RunStatus.SUPERSEDED):
        print(f"run {short(run.run_id)} {run.status}: {run.error}")
        return 1
    made = ", ".join(ref(v) for v in registry.for_run(conn, run.run_id))
    print(f"run {short(run.run_id)} completed in {run.seconds or 0:.1f} s: {made}")
    return 0


#: The converter's ``error:`` lines that are the caller's doing (exit 2); any other is the workbook's (exit 1).
USAGE_ERRORS = ("error: options:", "error: settings:", "usage:")


def cmd_convert(args: argparse.Namespace, settings: LocalSettings | None) -> int:
    # The step's own converter, in its own process: the same code AzureML runs, and a reader
    # that aborts cannot take the CLI down with it. It exits 2 for a rejected workbook as for a bad
    # options file; here, as for `drop --wait`, a rejected workbook is 1 and a usage error 2.
    options = ["--options", str(args.options)] if args.options else []
    proc = subprocess.Popen([sys.executable, "-m", "sheetdrop_step", str(args.input), str(args.outdir), *options],
                            stderr=subprocess.PIPE, text=True, errors="replace")
    assert proc.stderr is not None
    last_error = ""
    for line in proc.stderr:
        sys.stderr.write(line)
        if line.startswith(("error:", "usage:")):
            last_error = line
    if proc.wait() == 0:
        return 0
    return 2 if last_error.startswith(USAGE_ERRORS) else 1


def _interrupt(signum: int, frame: object) -> None:
    # Shutting down is bounded (threads are joined with a timeout); a second signal, as `make`
    # forwards its own, must not cut it short and leave Azurite behind.
    for other in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(other, signal.SIG_IGN)
    raise KeyboardInterrupt


def cmd_host(args: argparse.Namespace, settings: LocalSettings) -> int:
    from sheetdrop_local import startup
    from sheetdrop_local.azurite import Azurite
    from sheetdrop_local.devhost import DevHost
    from sheetdrop_local.hostlock import HostLock
    from sheetdrop_local.readmodel.locations import check_reachable
    from sheetdrop_local.studio.server import url_for

    # Usage first: nothing starts for a command line that cannot work.
    folder = f"{args.drop_into.rstrip('/')}/" if args.drop_into else None
    files = [(path, blob_name_for(path, folder)) for path in args.drop]
    studio_url = url_for(settings.ui_bind, args.ui_port or settings.ui_port) if args.ui else None
    # Before anything is started or adopted: a second host of this state folder touches nothing.
    lock = HostLock.take(settings.state_dir, studio_url)
    # `kill`, a closed terminal or a `timeout` stop the host like Ctrl-C, so Azurite is stopped too. Ctrl-C
    # itself is handled here as well: a shell without job control starts a background command with SIGINT
    # ignored, and Python then leaves it ignored (a CI job's `make test &`, say).
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    log = logging.getLogger("sheetdrop.host")
    azurite = host = studio = None
    try:
        if args.azurite:
            azurite = Azurite(settings.state_dir / "azurite", settings.azurite_blob_port,
                              settings.azurite_queue_port, settings.azurite_table_port).start()
            log.info("Azurite %s on blob port %d (pid %d)", "adopted from a previous host" if azurite.adopted
                     else "listening", azurite.blob_port, azurite.pid)
        else:
            check_reachable(settings)  # storage that is not there is said at once
        host = DevHost(settings, poll_interval=args.poll_interval, workers=args.workers, lock=lock).start()
        if args.ui:
            from sheetdrop_local.studio.server import start_in_thread

            studio = start_in_thread(settings, settings.ui_bind, args.ui_port or settings.ui_port)
            startup.say(f"studio: {studio.url}")
        if files:
            dropped = startup.drop_new(settings, files, lambda path, blob: drop_file(settings, path, blob,
                                                                                      say=startup.say))
            startup.wait_for_runs(settings, [(d.blob, d.etag) for d in dropped if d.etag])
            startup.say("\n".join(["", *startup.summary(settings, dropped)]))
        if files or studio:
            startup.say("\n".join(["", "watching for new workbooks: `sheetdrop drop FILE` from another shell",
                                    "Ctrl-C stops", ""]))
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
            if studio:
                studio.stop()
            if host:
                host.stop()
        finally:
            if azurite:
                azurite.stop()
            lock.release()
    return 0


def cmd_ui(args: argparse.Namespace, settings: LocalSettings) -> int:
    from sheetdrop_local.studio.server import serve

    serve(settings, args.bind or settings.ui_bind, args.port or settings.ui_port)
    return 0


def cmd_backfill(args: argparse.Namespace, settings: LocalSettings) -> int:
    from sheetdrop_local import backfill

    if args.max_in_flight < 0:
        print("error: usage: --max-in-flight takes 0 (no limit) or more", file=sys.stderr)
        return 2
    try:
        since = backfill.parse_since(args.since) if args.since else None
    except ValueError as exc:
        print(f"error: usage: {exc}", file=sys.stderr)
        return 2
    return backfill.command(args.prefix, since, dry_run=args.dry_run, yes=args.yes, max_in_flight=args.max_in_flight,
                            local=None if args.azure else settings, env_file=args.env_file, out=sys.stdout)


def cmd_rerun(args: argparse.Namespace, settings: LocalSettings) -> int:
    from sheetdrop_local import rerun

    if args.run and (args.prefix or args.status):
        print("error: usage: either RUN or --prefix/--status, not both", file=sys.stderr)
        return 2
    return rerun.command(settings, args.run, args.prefix, args.status, args.dry_run, sys.stdout)


def cmd_smoke(args: argparse.Namespace, settings: LocalSettings | None) -> int:
    from sheetdrop_local.smoke.command import command

    return command(env_file=args.env_file, yes=args.yes, clean=args.clean, timeout=args.timeout,
                   logs_timeout=args.logs_timeout, poll=args.poll, log_analytics_url=args.log_analytics_url,
                   out=sys.stdout)


def cmd_publish(args: argparse.Namespace, settings: LocalSettings | None) -> int:
    from pipeline import PUBLISHERS
    from sheetdrop_local import REPO

    # `--backend NAME` (or `--v2`, for azureml-v2) first; the rest is the publisher's own.
    rest, backend = list(args.rest), "azureml"
    if rest[:1] == ["--v2"]:
        rest, backend = rest[1:], "azureml-v2"
    elif rest[:1] == ["--backend"] and len(rest) > 1:
        rest, backend = rest[2:], rest[1]
    if backend not in PUBLISHERS:
        print(f"error: no publisher for backend {backend!r}: one of {', '.join(PUBLISHERS)}", file=sys.stderr)
        return 2
    publisher = PUBLISHERS[backend]
    python = REPO / publisher.venv / "bin" / "python"
    if not python.exists():
        print(f"error: the AzureML environment is missing: run `make {publisher.setup}`", file=sys.stderr)
        return 2
    return subprocess.run([str(python), "-m", publisher.module, *rest], cwd=REPO, check=False).returncode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sheetdrop", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, func: object, **defaults: object) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func, **defaults)
        return p

    p = command("host", "run the dev host: watch the input container and run the local pipeline", cmd_host)
    p.add_argument("--azurite", action="store_true",
                   help="start Azurite (data in the state folder) and stop it on exit")
    p.add_argument("--drop", type=Path, nargs="*", default=[], metavar="FILE",
                   help="workbooks to drop once the host is up; their runs and datasets are printed")
    p.add_argument("--drop-into", metavar="FOLDER",
                   help="drop them into this folder of the input container (the folder names the dataset)")
    p.add_argument("--ui", action="store_true", help="also serve the local studio (see `sheetdrop ui`)")
    p.add_argument("--ui-port", type=int, metavar="PORT",
                   help="the studio's port (default: SHEETDROP_UI_PORT or 8765)")
    p.add_argument("--poll-interval", type=float, default=1.0, metavar="S",
                   help="seconds between polls of the event queue (default 1)")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="runs executed at once (default 2)")

    p = command("drop", "upload a file into the input container and post its BlobCreated event", cmd_drop)
    p.add_argument("file", type=Path, help="the workbook to upload")
    p.add_argument("--as", dest="as_name", metavar="BLOBNAME",
                   help="blob name (default: the file's name); its folder names the dataset: sales/q3.xlsx feeds "
                        "sales; ending in / it names the folder and keeps the file's name")
    p.add_argument("--wait", type=float, nargs="?", const=120.0, metavar="S",
                   help="wait (up to S seconds, default 120) for the run and print how it ended; exit 1 if it failed")

    p = command("backfill", "convert the workbooks already in the input container (versions no run has taken "
                "yet), once each", cmd_backfill)
    p.add_argument("--prefix", default="", metavar="P", help="only blobs whose names start with P (a folder: sales/)")
    p.add_argument("--since", metavar="T", help="only blobs written at or after T (2026-11-30, 2026-11-30T08:00; UTC)")
    p.add_argument("--dry-run", action="store_true", help="say what it would convert and start, start nothing")
    p.add_argument("--max-in-flight", type=int, default=4, metavar="N",
                   help="at most N of its runs unfinished at once (default 4; 0: no limit)")
    p.add_argument("--azure", action="store_true",
                   help="the deployed app (`azd up`), with your Azure CLI login, instead of the local one")
    p.add_argument("--env-file", type=Path, metavar="FILE",
                   help="with --azure: the output of `azd env get-values` (default: ask azd)")
    p.add_argument("--yes", action="store_true", help="with --azure: do not ask before starting many runs")

    p = command("rerun", "convert blob versions again as a new attempt: a run's version, or every version whose "
                "latest attempt failed (or was poisoned, or held back by invalid options)", cmd_rerun)
    p.add_argument("run", nargs="?", metavar="RUN", help="a run id, its first characters, or latest")
    p.add_argument("--prefix", default="", metavar="P", help="without RUN: only blobs whose names start with P")
    p.add_argument("--status", choices=RERUN_STATUSES, help="without RUN: which versions (default failed)")
    p.add_argument("--dry-run", action="store_true", help="say what it would re-run, re-run nothing")

    p = command("smoke", "prove the deployment `azd up` made: drop a workbook, follow its run, check its datasets "
                "and what only a real workspace confirms; exit 1 if anything is not confirmed", cmd_smoke,
                no_settings=True)
    p.add_argument("--env-file", type=Path, metavar="FILE",
                   help="the output of `azd env get-values` (default: ask azd)")
    p.add_argument("--yes", action="store_true", help="do not ask before starting (CI)")
    p.add_argument("--clean", action="store_true",
                   help="afterwards delete the smoke workbooks and unregister (v2: archive) their datasets")
    p.add_argument("--timeout", type=float, default=2700.0, metavar="S",
                   help="seconds to wait for each run to appear and end (default 2700: a first run builds its image)")
    p.add_argument("--logs-timeout", type=float, default=900.0, metavar="S",
                   help="seconds to wait for the workbook's query to show the run (default 900)")
    p.add_argument("--poll", type=float, default=15.0, metavar="S", help="seconds between looks (default 15)")
    p.add_argument("--log-analytics-url", default="https://api.loganalytics.io", metavar="URL",
                   help="the Log Analytics query endpoint (another cloud's, e.g. https://api.loganalytics.azure.cn)")

    p = command("runs", "list pipeline runs, newest first; skipped and poisoned blob versions too", cmd_runs)
    p.add_argument("--status", choices=STATUSES, help="only rows with this status")
    p.add_argument("--dataset", metavar="NAME",
                   help="only runs that feed a dataset whose name holds NAME, any case (the folder's: sales, or a "
                        "sheet's: sales_orders)")
    p.add_argument("--blob", metavar="TEXT", help="only rows whose container/blob holds TEXT, any case")
    p.add_argument("--since", metavar="WHEN", help="only rows from WHEN on: 2026-10-01 or 2026-10-01T09:30 (UTC)")
    p.add_argument("--until", metavar="WHEN", help="only rows up to WHEN (a date: to its end; UTC)")
    p.add_argument("--limit", type=positive, default=50, metavar="N", help="at most N rows (default 50)")
    p.add_argument("--page", type=positive, default=1, metavar="P", help="the P-th page of N rows (default 1)")
    p.add_argument("--json", action="store_true", help="print JSON (every field) for scripts")
    runs_sub = p.add_subparsers(dest="runs_command", metavar="show")
    show = runs_sub.add_parser("show", help="one run: parameters, tags, sheets, metrics, outputs",
                               description="One run: parameters, tags, per-sheet columns, metrics and the dataset "
                                           "versions it registered. Exit 1 if the run failed.")
    show.add_argument("run", metavar="RUN", help="run id, its first characters (as the tables show), or latest")
    show.add_argument("--json", action="store_true", help="print JSON for scripts")

    p = command("logs", "print a run's step log (std_log.txt); exit 1 if the run failed", cmd_logs)
    p.add_argument("run", metavar="RUN", help="run id, its first characters (as the tables show), or latest")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the run has ended")

    p = command("datasets", "list registered dataset versions with the run that made each", cmd_datasets)
    p.add_argument("name", nargs="?", metavar="NAME", help="only this dataset's versions")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")

    p = command("show", "load a dataset version back from storage and print its first rows", cmd_show)
    p.add_argument("dataset", metavar="NAME[:VERSION|:latest]", help="dataset and version (default: latest)")
    p.add_argument("--head", type=not_negative, default=10, metavar="N",
                   help="rows to print (default 10; 0 for all)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="table (with a line saying where it is stored), csv or json (rows as objects)")

    p = command("ui", "serve the local studio: runs, logs and datasets in the browser (read-only)", cmd_ui)
    p.add_argument("--port", type=int, metavar="PORT", help="port (default: SHEETDROP_UI_PORT or 8765)")
    p.add_argument("--bind", metavar="ADDRESS",
                   help="address to listen on (default: SHEETDROP_UI_BIND or 127.0.0.1, this machine only)")

    p = command("convert", "convert a workbook to parquet without storage", cmd_convert, no_settings=True)
    p.add_argument("input", type=Path, help="the workbook")
    p.add_argument("outdir", type=Path, help="folder for one <sheet>.parquet per sheet (created)")
    p.add_argument("--options", type=Path, metavar="FILE",
                   help="read options as a folder's sheetdrop.json gives them (README, 'Read options')")

    p = command("publish", "publish the extract step to AzureML (v1 by default, in .venv-aml; --v2 or --backend "
                "azureml-v2: a batch endpoint, in .venv-aml2)", cmd_publish, no_settings=True)
    p.add_argument("rest", nargs=argparse.REMAINDER, metavar="ARGS",
                   help="[--v2 | --backend NAME] then the publisher's own arguments (`sheetdrop publish [--v2] "
                        "--help` lists them)")
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
    except UsageError as exc:
        print(f"error: usage: {exc}", file=sys.stderr)
        return 2
    except OptionsError as exc:  # `drop` of a folder's sheetdrop.json with mistakes: nothing uploaded
        print(f"error: options: {exc}; nothing was uploaded", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # `logs --follow`, `ui`: Ctrl-C is how they end
        return 130
    except LookupError as exc:
        print(f"error: not-found: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # HostError, AzuriteError, StudioError: their messages say what to do
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from sheetdrop.storage import storage_unreachable

        if storage_unreachable(exc):
            from sheetdrop_local.readmodel.locations import storage_endpoint

            print(f"error: storage-unreachable: nothing answers at {storage_endpoint(settings) if settings else '?'}; "
                  "is Azurite running? (`make run` starts it, or `sheetdrop host --azurite`)", file=sys.stderr)
            return 1
        if isinstance(exc, OSError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise

if __name__ == "__main__":
    sys.exit(main())
