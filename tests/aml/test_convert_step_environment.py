"""The converter under the step's AzureML environment: pyarrow 23 and numpy < 2.3.3, as
azureml-dataset-runtime resolves them (this venv, .venv-aml, resolves exactly those). The readers,
which the step's own requirements add (fastexcel, python-calamine, xlrd, defusedxml), are taken from
the project venv. Each workbook must give the same tables as under the project venv's pyarrow.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
FIXTURES = ROOT / "tests" / "workbooks"
CONVERT = (
    "import sys; from sheetdrop_step.converter import convert_workbook; "
    "from sheetdrop_contract.read_options import parse; "
    "options = parse(sys.argv[3], 'sheetdrop.json') if len(sys.argv) > 3 else None; "
    "convert_workbook(sys.argv[1], sys.argv[2], workers=2, options=options)"
)
#: Read options that take every path of the column rules with a type asked for.
HINTED = ('{"mixed_columns": "rescue", "types": {"n": "string", "x": "float", "code": "int", "when": "date", '
          '"at": "time", "spent": "duration", "ok": "bool", "ratio": "int"}}')
# Every column rule: numbers, text, dates, times, durations, booleans, errors, mixed columns, a header
# row below an empty row, a leading empty column; 3,000 rows, so that cells come after the first rows.
GENERATE = """
import datetime as dt, sys, xlsxwriter
wb = xlsxwriter.Workbook(sys.argv[1])
ws = wb.add_worksheet("Data")
day, hms, span = (wb.add_format({"num_format": f}) for f in ("yyyy-mm-dd", "hh:mm:ss", "[h]:mm:ss"))
ws.write_string(0, 2, "")
ws.write_row(1, 1, ["n", "x", "code", "when", "at", "spent", "ok", "mix", "ratio"])
for r in range(2, 3002):
    ws.write_number(r, 1, r)
    ws.write_number(r, 2, r / 7)
    ws.write_string(r, 3, f"{r:05d}")
    ws.write_datetime(r, 4, dt.datetime(2020, 1, 1) + dt.timedelta(hours=r), day)
    ws.write_datetime(r, 5, dt.time(r % 24, 30), hms)
    ws.write_number(r, 6, r / 100, span)
    ws.write_boolean(r, 7, r % 3 == 0)
    ws.write(r, 8, [1.5, "TBD", True, 0.652027207027097][r % 4])
    if r % 500 == 0:
        ws.write_formula(r, 9, "=1/0", None, "#DIV/0!")
    else:
        ws.write_number(r, 9, r / 3)
wb.close()
"""


@pytest.fixture(scope="module")
def readers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not PROJECT_PYTHON.exists():
        pytest.skip("the project venv (.venv) is needed for the readers")
    site = next((ROOT / ".venv" / "lib").glob("python3*/site-packages"))
    folder = tmp_path_factory.mktemp("readers")
    for name in ("fastexcel", "python_calamine", "xlrd", "defusedxml"):
        (folder / name).symlink_to(site / name)
    return folder


def _convert(python: Path | str, src: Path, out: Path, path: Path | None = None, options: str | None = None,
             ) -> list[Path]:
    env = {"PYTHONPATH": str(path)} if path else {}
    proc = subprocess.run([str(python), "-c", CONVERT, str(src), str(out), *([options] if options else [])],
                          capture_output=True, text=True, env={**_base_env(), **env}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return sorted(out.glob("*.parquet"))


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.mark.parametrize(("name", "options"), [
    ("sample.xlsm", None), ("sample.xls", None), ("sample.ods", None), ("sample.xlsb", None),
    ("generated.xlsx", None), ("generated.xlsx", HINTED),
    # A title block, a two-row header under a merged cell, a rescued cell, a date type, a dropped footer.
    ("finance", (ROOT / "samples" / "finance" / "sheetdrop.json").read_text()),
])
def test_same_tables_as_under_the_project_pyarrow(readers: Path, tmp_path: Path, name: str, options: str | None,
                                                  ) -> None:
    assert pa.__version__.startswith("23."), pa.__version__  # the environment this test is about
    src = FIXTURES / name
    if name == "generated.xlsx":
        src = tmp_path / name
        subprocess.run([str(PROJECT_PYTHON), "-c", GENERATE, str(src)], check=True, timeout=120)
    elif name == "finance":
        src = ROOT / "samples" / "finance" / "q3-2026-report.xlsx"
    here = _convert(sys.executable, src, tmp_path / "aml", readers, options)
    project = _convert(PROJECT_PYTHON, src, tmp_path / "project", options=options)
    assert [p.name for p in here] == [p.name for p in project] and here
    for a, b in zip(here, project, strict=True):
        left, right = pq.read_table(a), pq.read_table(b)
        assert left.schema.metadata == right.schema.metadata
        assert left.equals(right), (a.name, left.to_pydict(), right.to_pydict())
