"""Drop → registered dataset latency on the embedded default, for a 10k-row workbook.

Starts its own Azurite and dev host (default poll interval, two runner workers), drops the
workbook N times under new names, and measures per drop: how long until the dev host noticed it
(the run's submission time) and until its datasets were registered (the run's end). As a
baseline measured in the same run it times the conversion alone (``python -m sheetdrop_step``,
a whole process), so the ratio shows what the storage, the trigger and the runner add.

    .venv/bin/python benchmarks/latency.py [--rows 10000] [--drops 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gen_workbooks import make_workbook

from sheetdrop.storage import blob_service, ensure_container
from sheetdrop_local import db, runstore
from sheetdrop_local.azurite import Azurite, free_port
from sheetdrop_local.devhost import DevHost
from sheetdrop_local.settings import load_local_settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--drops", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sheetdrop-latency-") as tmp:
        root = Path(tmp)
        workbook = make_workbook(root / "bench.xlsx", rows=args.rows)
        size = workbook.stat().st_size
        baseline = []
        for i in range(args.drops):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "sheetdrop_step", str(workbook), str(root / f"out{i}")],
                           check=True, stdout=subprocess.DEVNULL)
            baseline.append(time.perf_counter() - started)

        azurite = Azurite(location=root / "azurite", blob_port=free_port(), queue_port=free_port(),
                          table_port=free_port()).start()
        try:
            os.environ["INPUT_STORAGE"] = azurite.connection_string
            settings = load_local_settings({**os.environ, "SHEETDROP_STATE_DIR": str(root / "state")})
            container = ensure_container(blob_service(settings.storage), settings.input_container)
            conn = db.connect(settings.state_dir)
            noticed, finished = [], []
            with DevHost(settings).running():
                data = workbook.read_bytes()
                for i in range(args.drops):
                    name = f"bench/drop-{i}.xlsx"
                    dropped = time.time()
                    container.get_blob_client(name).upload_blob(data)
                    run = None
                    while run is None or run.status not in runstore.ENDED:
                        if time.time() - dropped > 120:
                            print(f"no finished run for {name} after 120 s", file=sys.stderr)
                            return 1
                        time.sleep(0.05)
                        run = next((r for r in runstore.list_runs(conn, 20) if r.source_blob == name), None)
                    if run.status != "completed":
                        print(f"run for {name} failed: {run.error}", file=sys.stderr)
                        return 1
                    noticed.append(run.submitted_at - dropped)
                    finished.append((run.ended_at or 0) - dropped)
        finally:
            azurite.stop()

    med = statistics.median
    print(f"workbook: {args.rows:,} rows x 20 columns, {size / 1e6:.1f} MB; {args.drops} drops")
    print(f"conversion alone (baseline, whole process): median {med(baseline):.2f} s")
    print(f"drop -> noticed by the dev host:            median {med(noticed):.2f} s (max {max(noticed):.2f} s)")
    print(f"drop -> datasets registered:                median {med(finished):.2f} s (max {max(finished):.2f} s)")
    print(f"end-to-end / conversion alone:              {med(finished) / med(baseline):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
