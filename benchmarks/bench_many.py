"""Many small workbooks (``make bench-many``): backfilled, in batch runs, and converted alone, each beside polars
converting the same files in one loop in the same run.

N workbooks (default 1,000; ``gen_workbooks.make_small``: 2 sheets x 2,000 rows of mixed types, one late ``n/a``,
generated once into ``benchmarks/.cache``) are already in the input container of a fresh Azurite and state folder
before the dev host first watches it. Timed, in one run:

* **polars loop**: ``pl.read_excel(path, sheet_id=0, infer_schema_length=None)`` then ``write_parquet`` per sheet,
  every workbook in one process, one after the other (the baseline; median of ``--repeat``);
* **batch conversion alone**: the same files through ``convert_many`` (the converter's long-lived readers, as the
  batch step runs them; median of ``--repeat``, taking turns with polars);
* **backfill end to end** (after the batch runs): ``sheetdrop backfill`` started, with the dev host and its two
  runner workers running, to the last dataset version registered (listing, claims, submissions, the step reading
  each version from Azurite, converting, uploading and registering);
* **batch runs end to end**: the same workbooks in a second container, submitted as batch runs
  (``LocalBackend.submit_batch``, ``--batch-size`` versions each, no claims) to the same host, to the last
  dataset version registered: the batch path alone, whatever the backfill submits.

It prints each time, the rate, and the ratios to the polars loop (per workbook); ``--small`` runs 20 workbooks
(tests/test_readme_many.py runs ``make bench-many BENCH_MANY_ARGS=--small``). On a shared VM compare ratios
within one run, never across runs.

    .venv/bin/python benchmarks/bench_many.py [--count 1000] [--repeat 3] [--batch-size 250] [--small]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from gen_workbooks import make_small

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / ".cache"


def workbooks(count: int) -> list[Path]:
    """``count`` distinct small workbooks, generated once (xlsxwriter takes ~0.3 s each, on every core)."""
    folder = CACHE / "many"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"wb{i:05d}.xlsx" for i in range(count)]
    missing = [(p, i) for i, p in enumerate(paths) if not p.exists()]
    if missing:
        print(f"generating {len(missing)} workbooks into {folder} (once)", flush=True)
        with ProcessPoolExecutor() as pool:
            list(pool.map(_make, missing, chunksize=16))
    return paths


def _make(item: tuple[Path, int]) -> None:
    path, seed = item
    tmp = path.with_suffix(".tmp")
    make_small(tmp, seed)
    tmp.rename(path)


def polars_loop(files: list[Path], out: Path) -> float:
    import polars as pl

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    started = time.perf_counter()
    for i, path in enumerate(files):
        for j, frame in enumerate(pl.read_excel(path, sheet_id=0, infer_schema_length=None).values()):
            frame.write_parquet(out / f"{i}-{j}.parquet")
    return time.perf_counter() - started


def convert_alone(files: list[Path], out: Path) -> float:
    from sheetdrop_step.converter import Workbook, convert_many

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    results = list(convert_many(Workbook(path, out / path.stem) for path in files))
    took = time.perf_counter() - started
    failed = [(w.src.name, r) for w, r in results if not isinstance(r, list)]
    if failed:
        raise SystemExit(f"convert_many failed on {len(failed)} workbooks: {failed[:3]}")
    return took


def wait_until(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def registered(conn: object, blobs_in: str) -> int:
    return conn.execute("SELECT COUNT(*) FROM datasets WHERE json_extract(tags, '$.source_container') = ?",
                        (blobs_in,)).fetchone()[0]


def end_to_end(files: list[Path], root: Path, batch_size: int,
               report: Callable[[str, float], None]) -> dict[str, float]:
    """The batch runs, then the backfill, each timed to its last registration, on one Azurite and dev host."""
    from sheetdrop.storage import blob_service, ensure_container
    from sheetdrop.submit import BatchRequest
    from sheetdrop.trigger import BlobVersion, build_request
    from sheetdrop_contract import batch
    from sheetdrop_local import backend, db, runstore
    from sheetdrop_local.azurite import Azurite, free_port
    from sheetdrop_local.devhost import DevHost
    from sheetdrop_local.settings import load_local_settings

    azurite = Azurite(location=root / "azurite", blob_port=free_port(), queue_port=free_port(),
                      table_port=free_port()).start()
    try:
        env = {**os.environ, "INPUT_STORAGE": azurite.connection_string, "SHEETDROP_STATE_DIR": str(root / "state"),
               "INPUT_CONTAINER": "input"}
        env.pop("SHEETDROP_BACKEND", None)
        settings = load_local_settings(env)
        service = blob_service(settings.storage)
        data = [path.read_bytes() for path in files]
        # Already there when the app first watches: only a backfill converts them. The batch runs' copies are in a
        # container the host does not watch.
        etags: dict[str, list[str]] = {}
        for container in (settings.input_container, "batches"):
            client = ensure_container(service, container)
            etags[container] = [client.get_blob_client(f"many/{p.name}").upload_blob(d, overwrite=True)["etag"]
                                for p, d in zip(files, data, strict=True)]
        want = 2 * len(files)  # two sheets each
        conn = db.connect(settings.state_dir)
        times: dict[str, float] = {}
        os.environ.update({k: v for k, v in env.items() if k in ("INPUT_STORAGE", "SHEETDROP_STATE_DIR",
                                                                  "INPUT_CONTAINER")})
        with DevHost(settings).running():
            backend.install(settings)
            local = backend.LocalBackend.from_settings(settings)
            requests = [build_request(BlobVersion("batches", f"many/{p.name}", etag, None), settings, "bench",
                                      "many") for p, etag in zip(files, etags["batches"], strict=True)]
            started = time.perf_counter()
            by_key = {(r.source_blob, r.source_etag): r for r in requests}
            for cut in batch.batches([batch.PinnedVersion(r.source_container, r.source_blob, r.source_etag,
                                                          r.dataset_name) for r in requests], batch_size):
                local.submit_batch(BatchRequest(uuid.uuid4().hex, tuple(by_key[(v.blob, v.etag)] for v in cut)))
            wait_until(lambda: registered(conn, "batches") >= want, 3600, "the batch runs' versions")
            times["batch runs end to end"] = time.perf_counter() - started
            report("batch runs end to end", times["batch runs end to end"])
            batches = [r for r in runstore.list_runs(conn, None, as_submitted=True) if r.kind == "batch"]
            times["batch runs"] = len(batches)
            times["batch step seconds"] = sum(r.seconds or 0 for r in batches)

            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "sheetdrop_local.cli", "backfill"], env=env, cwd=REPO,
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"backfill failed ({done.returncode}): {done.stdout}{done.stderr}")
            times["backfill submitted"] = time.perf_counter() - started
            wait_until(lambda: registered(conn, settings.input_container) >= want, 4 * 3600, "the backfill's versions")
            times["backfill end to end"] = time.perf_counter() - started
            report("backfill end to end", times["backfill end to end"])
            # The runs the backfill made (its batches, if it submits batches, or a run per version).
            times["backfill runs"] = len(runstore.list_runs(conn, None, as_submitted=True)) - len(batches)
        return times
    finally:
        azurite.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--small", action="store_true", help="20 workbooks, one repetition (the test's mode)")
    args = parser.parse_args()
    if args.small:
        args.count, args.repeat = 20, 1
    # The converter's notes (each workbook's late n/a made its column text) are the step log's business, not this.
    logging.getLogger("sheetdrop").setLevel(logging.ERROR)
    from sheetdrop_step.converter import Limits, reader_count, usable_cores

    # Stopped (SIGTERM, as `timeout` sends it), it still stops its Azurite on the way out.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    files = workbooks(args.count)
    print(f"machine: {platform.machine()}, {usable_cores()} usable cores, {reader_count(Limits())} readers, "
          f"load average {os.getloadavg()[0]:.1f}; {args.count} workbooks (2 sheets x 2,000 rows)", flush=True)
    base = 0.0

    def line(what: str, seconds: float) -> None:
        n = args.count
        print(f"{what:<32} {seconds:8.2f} s  {seconds / n * 1000:7.1f} ms/workbook  {n / seconds:7.1f}/s  "
              f"{seconds / base:5.2f}x polars", flush=True)

    with tempfile.TemporaryDirectory(prefix="sheetdrop-many-") as tmp:
        root = Path(tmp)
        polars, alone = [], []
        for _ in range(args.repeat):  # taking turns: the VM's noise falls on both alike
            polars.append(polars_loop(files, root / "polars"))
            alone.append(convert_alone(files, root / "alone"))
        base = statistics.median(polars)
        line("polars loop (baseline)", base)
        line("batch conversion alone", statistics.median(alone))
        e2e = end_to_end(files, root, args.batch_size, line)
    print(f"backfill: submitted in {e2e['backfill submitted']:.1f} s as {e2e['backfill runs']:.0f} runs; batch runs: "
          f"{e2e['batch runs']:.0f} of up to {args.batch_size} versions, {e2e['batch step seconds']:.1f} s of runs")
    print(f"ratios: backfill end to end / polars loop = {e2e['backfill end to end'] / base:.2f} (goal <= 3); "
          f"batch conversion alone / polars loop = {statistics.median(alone) / base:.2f} (goal <= 1.5); "
          f"batch runs end to end / polars loop = {e2e['batch runs end to end'] / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
