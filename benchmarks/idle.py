"""What an idle dev host costs as the input container grows, how soon it notices a drop, and how long
`sheetdrop runs` takes with thousands of claims.

For each container size: the blobs are uploaded with receipts and claims (as if handled long ago),
then a real `sheetdrop host` runs idle for --seconds while its CPU and Azurite's are read from
/proc. The baseline, measured in the same run, is what the host did before: list the whole
container every second. Then a drop through `sheetdrop drop` (the local Event Grid queue) and an
upload by another tool (no event) are timed until their runs exist.

    .venv/bin/python benchmarks/idle.py --sizes 20,5000 --seconds 30
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sheetdrop.claims import ClaimStore, version_key
from sheetdrop.storage import blob_service, ensure_container
from sheetdrop_local import REPO, cli, db, runstore
from sheetdrop_local.azurite import Azurite, free_port
from sheetdrop_local.devhost import RECEIPTS_CONTAINER
from sheetdrop_local.settings import load_local_settings

SAMPLE = REPO / "samples" / "sales-2026-q3.xlsx"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def fill(settings: object, count: int) -> None:
    service = blob_service(settings.storage)  # type: ignore[attr-defined]
    data = SAMPLE.read_bytes()
    inputs = ensure_container(service, settings.input_container)  # type: ignore[attr-defined]
    receipts = ensure_container(service, RECEIPTS_CONTAINER)
    claims = ClaimStore(ensure_container(service, settings.claims_container), 900, 3)  # type: ignore[attr-defined]

    def one(i: int) -> None:
        name = f"team{i % 50}/book{i}.xlsx"
        etag = inputs.get_blob_client(name).upload_blob(data, overwrite=True)["etag"]
        receipts.upload_blob(f"receipts/{settings.input_container}/{version_key(name, etag)}", b"{}",  # type: ignore[attr-defined]
                             overwrite=True)
        got = claims.acquire(settings.input_container, name, etag, "bench")  # type: ignore[attr-defined]
        claims.mark_submitted(got.claim, f"run-{i}")  # type: ignore[union-attr]

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(count)))


def measure(count: int, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="sheetdrop-idle-") as tmp:
        root = Path(tmp)
        azurite = Azurite(root / "azurite", free_port(), free_port(), free_port()).start()
        env = {**os.environ, "SHEETDROP_STATE_DIR": str(root / "state"), "INPUT_STORAGE": azurite.connection_string,
               "AZURITE_BLOB_PORT": str(azurite.blob_port), "AZURITE_QUEUE_PORT": str(azurite.queue_port)}
        settings = load_local_settings(env)
        try:
            fill(settings, count)
            container = blob_service(settings.storage).get_container_client(settings.input_container)
            # Baseline: what the host did before, a full listing every second.
            started, cpu = time.monotonic(), time.process_time()
            azurite_cpu = cpu_seconds(azurite.pid or 0)
            while time.monotonic() - started < seconds:
                tick = time.monotonic()
                sum(1 for _ in container.list_blobs())
                time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
            baseline = (time.process_time() - cpu) / seconds
            baseline_azurite = (cpu_seconds(azurite.pid or 0) - azurite_cpu) / seconds

            host = subprocess.Popen([sys.executable, "-m", "sheetdrop_local.cli", "host"], cwd=REPO, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(5)  # start-up and its first listing
                host_cpu, azurite_cpu = cpu_seconds(host.pid), cpu_seconds(azurite.pid or 0)
                time.sleep(seconds)
                idle = (cpu_seconds(host.pid) - host_cpu) / seconds
                idle_azurite = (cpu_seconds(azurite.pid or 0) - azurite_cpu) / seconds
                conn = db.connect(settings.state_dir)

                def noticed(name: str) -> float:
                    began = time.monotonic()
                    while not runstore.find_by_source(conn, settings.input_container, name, etag_of[name]):
                        time.sleep(0.02)
                    return time.monotonic() - began

                etag_of: dict[str, str] = {}
                # `sheetdrop drop`'s own code, timed from the moment storage acknowledged the upload.
                name, etag_of["fresh/by-drop.xlsx"] = cli.drop_file(settings, SAMPLE, "fresh/by-drop.xlsx")
                drop_latency = noticed(name)
                etag_of["fresh/by-tool.xlsx"] = container.get_blob_client("fresh/by-tool.xlsx").upload_blob(
                    SAMPLE.read_bytes())["etag"]
                tool_latency = noticed("fresh/by-tool.xlsx")
            finally:
                host.terminate()
                host.wait(60)
            began = time.monotonic()
            subprocess.run([sys.executable, "-m", "sheetdrop_local.cli", "runs"], cwd=REPO, env=env, check=True,
                           capture_output=True)
            runs_seconds = time.monotonic() - began
        finally:
            azurite.stop()
    return {"blobs": count, "baseline host %": 100 * baseline, "baseline Azurite %": 100 * baseline_azurite,
            "idle host %": 100 * idle, "idle Azurite %": 100 * idle_azurite,
            "drop noticed s": drop_latency, "other upload noticed s": tool_latency, "runs s": runs_seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20,5000", help="container sizes, comma-separated")
    parser.add_argument("--seconds", type=float, default=30, help="idle seconds measured per size")
    args = parser.parse_args()
    rows = [measure(int(size), args.seconds) for size in args.sizes.split(",")]
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---:|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(f"{v:.0f}" if k == "blobs" else f"{v:.2f}" for k, v in row.items()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
