"""Whole-process conversion benchmark (``make bench``): python benchmarks/bench_convert.py

Shapes (workbooks generated once into benchmarks/.cache, see gen_workbooks.py): uniform 100k x 20;
numeric 100k x 20 with one text cell near the end of 6 columns; numeric-only 100k x 20; 3 sheets x
50k (uniform); uniform 100k x 20 with an ID column alternating numbers and zero-padded codes beside a
numeric column with one late n/a (id-mixed); uniform 500k x 20.

Contenders, each a whole process timed from outside, taking turns within every repetition so that
the VM's noise falls on all of them alike: sheetdrop (``python -m sheetdrop_step IN OUT``), polars
with full inference (``infer_schema_length=None``), polars by default, pandas + openpyxl (once, on
the shapes of ``--pandas``: it takes ~40 s on 100k rows), and with ``--baseline DIR`` another
converter (a step snapshot of another commit, or its ``step_scripts/`` folder before the move). It
prints medians, the peak RSS (the largest resident set of any process of a run) and ratios: the other's
time / sheetdrop's (above 1: sheetdrop is faster), sheetdrop's peak RSS / the other's. On a shared VM compare ratios
within one run, never across runs.

Options: --shapes uniform-100k,numeric-text-100k,... --repeat 7 --repeat-large 3 --pandas uniform-100k
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
#: Another converter, from a folder holding the package (a step snapshot: step/ + sheetdrop_contract/), run
#: as ``python -m sheetdrop_step`` runs it, whatever its modules are called inside.
BASELINE = ("import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); sys.argv[0] = 'sheetdrop_step'; "
            "runpy.run_module('sheetdrop_step', run_name='__main__', alter_sys=True)")
# name: (rows, sheets, workbook shape)
SHAPES = {
    "uniform-100k": (100_000, 1, "uniform"),
    "numeric-text-100k": (100_000, 1, "numeric-text"),
    "numeric-100k": (100_000, 1, "numeric"),
    "3-sheets-50k": (50_000, 3, "uniform"),
    "id-mixed-100k": (100_000, 1, "id-mixed"),
    "uniform-500k": (500_000, 1, "uniform"),
}
# pyarrow refuses an object column mixing numbers and text (numeric-text): as a pandas user would,
# such columns are written as text.
PANDAS = (
    "import sys, pandas as pd\n"
    "for i, df in enumerate(pd.read_excel(sys.argv[1], engine='openpyxl', sheet_name=None).values()):\n"
    "    mixed = [c for c in df.columns[df.dtypes == object] if df[c].map(type).nunique() > 1]\n"
    "    df[mixed] = df[mixed].astype('string')\n"
    "    df.to_parquet(f'{sys.argv[2]}/{i}.parquet')\n"
)
POLARS = (
    "import sys, polars as pl\n"
    "for i, df in enumerate(pl.read_excel(sys.argv[1], sheet_id=0, infer_schema_length={}).values()):\n"
    "    df.write_parquet(f'{{sys.argv[2]}}/{{i}}.parquet')\n"
)


def run_once(cmd: list[str]) -> tuple[float, int] | None:
    """Wall time and peak RSS (bytes) of one process tree, measured by a fresh wrapper; None when the
    process failed (its last line of error output is printed)."""
    # A wrapper process per run, so RUSAGE_CHILDREN covers only this run's descendants.
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
        "w = time.perf_counter() - t\n"
        "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)\n"
        "sys.stderr.buffer.write(r.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True)
    fields = out.stdout.split()
    if out.returncode or len(fields) != 3 or fields[2] != "0":
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"  failed ({' '.join(fields[2:]) or out.returncode}): {' '.join(cmd[:2])}...: {tail[:200]}", flush=True)
        return None
    return float(fields[0]), int(fields[1]) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--repeat", type=int, default=7, help="runs per contender on 100k-row shapes")
    parser.add_argument("--repeat-large", type=int, default=3, help="runs per contender on 500k rows")
    parser.add_argument("--pandas", default="uniform-100k", help="shapes pandas+openpyxl runs on (once each)")
    parser.add_argument("--baseline", type=Path, help="another converter, timed as contender 'baseline': a step "
                        "snapshot folder, or a step_scripts/ folder from before the move to step/")
    args = parser.parse_args()

    # Run as a script, this folder is sys.path[0]: the sibling module imports as is.
    from gen_workbooks import make_workbook

    py = sys.executable
    contenders = {
        "sheetdrop": lambda s, o: [py, "-m", "sheetdrop_step", str(s), str(o)],
        "polars full": lambda s, o: [py, "-c", POLARS.format("None"), str(s), str(o)],
        "polars default": lambda s, o: [py, "-c", POLARS.format(100), str(s), str(o)],
    }
    if args.baseline:
        folder = args.baseline.resolve()
        if (folder / "convert.py").exists():  # the layout before step/: a script among its modules
            contenders["baseline"] = lambda s, o: [py, str(folder / "convert.py"), str(s), str(o)]
        else:
            contenders["baseline"] = lambda s, o: [py, "-P", "-c", BASELINE, str(folder), str(s), str(o)]
    from sheetdrop_step.converter import usable_cores

    print(f"machine: {platform.machine()}, usable cores {usable_cores()}, {platform.python_implementation()} "
          f"{platform.python_version()}, load average at start {os.getloadavg()[0]:.2f}")
    rows_out = []
    for shape in args.shapes.split(","):
        rows, sheets, kind = SHAPES[shape]
        CACHE.mkdir(exist_ok=True)
        (CACHE / ".gitignore").write_text("*\n")
        src = CACHE / f"{shape}.xlsx"
        if not src.exists():
            t = time.perf_counter()
            make_workbook(src, rows, sheets, kind)
            print(f"(generated {src.name} in {time.perf_counter() - t:.0f} s)")
        runs: dict[str, list[tuple[float, int]]] = {name: [] for name in contenders}
        if shape in args.pandas.split(","):
            runs["pandas+openpyxl"] = [_timed(lambda s, o: [py, "-c", PANDAS, str(s), str(o)], src)]
        for _ in range(args.repeat_large if rows * sheets > 200_000 else args.repeat):
            for name, cmd_for in contenders.items():
                runs[name].append(_timed(cmd_for, src))
        results = {name: (statistics.median(w for w, _ in ok), max(m for _, m in ok)) if (
            ok := [x for x in r if x is not None]) else None for name, r in runs.items()}
        mine = results["sheetdrop"]
        for name, result in results.items():
            if result is None:
                rows_out.append((shape, name, None, None, "", ""))
                print(f"{shape:<18}{name:<17}  failed", flush=True)
                continue
            wall, rss = result
            speed = "" if name == "sheetdrop" or mine is None else f"{wall / mine[0]:.2f}x"
            memory = "" if name == "sheetdrop" or mine is None else f"{mine[1] / rss:.2f}"
            rows_out.append((shape, name, wall, rss, speed, memory))
            print(f"{shape:<18}{name:<17}{wall:>8.2f} s{rss / 1024**2:>8.0f} MiB{speed:>9}{memory:>7}", flush=True)
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    print("\nshape | contender | median s | peak RSS MiB | other/sheetdrop time | sheetdrop/other RSS")
    for shape, name, wall, rss, speed, memory in rows_out:
        if wall is None:
            print(f"{shape} | {name} | failed | | |")
        else:
            print(f"{shape} | {name} | {wall:.2f} | {rss / 1024**2:.0f} | {speed} | {memory}")


def _timed(cmd_for, src: Path) -> tuple[float, int] | None:
    out = Path(tempfile.mkdtemp(prefix="bench-out-"))
    try:
        return run_once(cmd_for(src, out))
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
