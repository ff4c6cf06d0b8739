"""Regenerates the committed fixtures that no Python library can write (.xls, .ods, .xlsm).

A source workbook is written with openpyxl, then LibreOffice converts it:
    apt-get install -y libreoffice-calc-nogui
    python tests/workbooks/make_fixtures.py
The expected values are in tests/test_convert_formats.py (FIXTURE_ROWS).
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import tempfile
from pathlib import Path

import openpyxl

HERE = Path(__file__).resolve().parent
HEADER = ["id", "code", "amount", "when", "ok", "mixed"]
ROWS = [
    [1, "00123", 1.5, dt.datetime(2021, 3, 4, 5, 6, 7), True, 456],
    [2, "00456", 2.25, dt.datetime(1999, 12, 31), False, "n/a"],
    [3, "07", -3.0, dt.datetime(2024, 2, 29, 23, 59), True, 7.5],
]
TARGETS = {
    "sample.xls": "xls:MS Excel 97",
    "sample.ods": "ods",
    "sample.xlsm": 'xlsm:Calc MS Excel 2007 VBA XML',
}


def build_source(path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Data"
    ws.append(HEADER)
    for row in ROWS:
        ws.append(row)
    for cell in ws["D"][1:]:
        cell.number_format = "yyyy-mm-dd hh:mm:ss"
    hidden = wb.create_sheet("Secret")
    hidden.append(["x"])
    hidden.append([1])
    hidden.sheet_state = "hidden"
    wb.create_sheet("Blank")
    wb.save(path)


def main() -> None:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if not soffice:
        raise SystemExit("LibreOffice (soffice) is needed: apt-get install -y libreoffice-calc-nogui")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "sample.xlsx"
        build_source(src)
        for name, target in TARGETS.items():
            out = Path(tmp) / "out"
            subprocess.run(
                [soffice, "--headless", f"-env:UserInstallation=file://{tmp}/profile",
                 "--convert-to", target, "--outdir", str(out), str(src)],
                check=True, capture_output=True, timeout=180,
            )
            produced = next(out.glob("sample.*"))
            shutil.move(produced, HERE / name)
            print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
