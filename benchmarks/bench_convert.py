"""Whole-process conversion benchmark (issue 4): python benchmarks/bench_convert.py

For each workbook (20 mixed-type columns: 10k, 100k, 500k rows, and 3 sheets of
100k) it times, as separate processes, (a) pandas.read_excel(openpyxl) +
to_parquet, (b) polars.read_excel + write_parquet, (c) step_scripts/convert.py,
and prints medians, rows/s, peak RSS and the ratios c/a and c/b.

Options: --sizes 10000,100000 --repeat 3 --skip-pandas-above 100000 --baseline DIR
Workbooks are cached in benchmarks/.cache (git-ignored by its own .gitignore).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
CONVERT = HERE.parent / "step_scripts" / "convert.py"

PANDAS = (
    "import sys, pandas as pd\n"
    "for i, df in enumerate(pd.read_excel(sys.argv[1], engine='openpyxl', sheet_name=None).values()):\n"
    "    df.to_parquet(f'{sys.argv[2]}/{i}.parquet')\n"
)
POLARS = (
    "import sys, polars as pl\n"
    "for i, df in enumerate(pl.read_excel(sys.argv[1], sheet_id=0).values()):\n"
    "    df.write_parquet(f'{sys.argv[2]}/{i}.parquet')\n"
)


def run_once(cmd: list[str]) -> tuple[float, int]:
    """Wall time and peak RSS (bytes) of one process tree, measured by a fresh wrapper."""
    # A wrapper process per run, so RUSAGE_CHILDREN covers only this run's descendants.
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "w = time.perf_counter() - t\n"
        "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=True)
    wall, rss, rc = out.stdout.split()
    if rc != "0":
        raise RuntimeError(f"{cmd[:3]} failed with {rc}")
    return float(wall), int(rss) * 1024


def bench(cmd_for, src: Path, repeat: int) -> tuple[float, int]:
    walls, rsss = [], []
    for _ in range(repeat):
        out = Path(tempfile.mkdtemp(prefix="bench-out-"))
        try:
            wall, rss = run_once(cmd_for(src, out))
        finally:
            shutil.rmtree(out, ignore_errors=True)
        walls.append(wall)
        rsss.append(rss)
    return statistics.median(walls), max(rsss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,500000")
    parser.add_argument("--sheets3", type=int, default=100000, help="rows per sheet of the 3-sheet workbook (0: skip)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pandas-repeat", type=int, default=1, help="pandas is slow; fewer repeats")
    parser.add_argument("--skip-pandas-above", type=int, default=100000)
    parser.add_argument("--baseline", type=Path, help="another step_scripts/ folder, timed as contender 'd' "
                        "(e.g. an earlier version exported with git archive) for before/after numbers")
    args = parser.parse_args()

    # Run as a script, this folder is sys.path[0]: the sibling module imports as is.
    from gen_workbooks import make_workbook

    cases = [(int(n), 1) for n in args.sizes.split(",") if n]
    if args.sheets3:
        cases.append((args.sheets3, 3))
    py = sys.executable
    contenders = {
        "a pandas+openpyxl": lambda s, o: [py, "-c", PANDAS, str(s), str(o)],
        "b polars": lambda s, o: [py, "-c", POLARS, str(s), str(o)],
        "c sheetdrop": lambda s, o: [py, str(CONVERT), str(s), str(o)],
    }
    if args.baseline:
        baseline = args.baseline.resolve() / "convert.py"
        contenders["d baseline"] = lambda s, o: [py, str(baseline), str(s), str(o)]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{platform.python_implementation()} {platform.python_version()}")
    header = f"{'workbook':<18}{'contender':<20}{'median s':>10}{'rows/s':>12}{'peak RSS MiB':>14}"
    print(header)
    for rows, sheets in cases:
        CACHE.mkdir(exist_ok=True)
        (CACHE / ".gitignore").write_text("*\n")
        src = CACHE / f"bench-{rows}x{sheets}.xlsx"
        if not src.exists():
            t = time.perf_counter()
            make_workbook(src, rows, sheets)
            print(f"(generated {src.name} in {time.perf_counter() - t:.0f} s)")
        total = rows * sheets
        results = {}
        for name, cmd_for in contenders.items():
            if name.startswith("a") and rows > args.skip_pandas_above:
                continue
            repeat = args.pandas_repeat if name.startswith("a") else args.repeat
            wall, rss = bench(cmd_for, src, repeat)
            results[name[0]] = (wall, rss)
            label = f"{rows // 1000}k x{sheets}"
            print(f"{label:<18}{name:<20}{wall:>10.2f}{total / wall:>12,.0f}{rss / 1024**2:>14.0f}")
        c = results["c"]
        ratios = []
        if "a" in results:
            ratios.append(f"speed c vs a: {results['a'][0] / c[0]:.1f}x faster; RSS c/a {c[1] / results['a'][1]:.2f}")
        ratios.append(f"speed c vs b: {results['b'][0] / c[0]:.2f}x (>=1 means c is at least as fast); "
                      f"RSS c/b {c[1] / results['b'][1]:.2f}")
        if "d" in results:
            ratios.append(f"c vs baseline d: {results['d'][0] / c[0]:.2f}x")
        print("   " + " | ".join(ratios))


if __name__ == "__main__":
    main()
