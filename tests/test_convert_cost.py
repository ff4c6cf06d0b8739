"""A sheet costs what its XML holds, not what it declares: a sheet padded to the whole grid's width with
styled empty cells (as Gnumeric writes them) and a row of 16,384 real cells each convert under a 30 s
reader limit (a hang detector: each took minutes), and a reader that overruns its time bound is
stopped with a rejection naming the bound (``Limits.time_bound``)."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sheetdrop_step.converter import Limits, WorkbookRejected, convert_workbook
from tests.workbooks.make_xlsx import Sheet, column, write_xlsx

HANG_DETECTOR = Limits(timeout_seconds=30)


def padded_sheet(path: Path) -> Path:
    """What Gnumeric wrote (calamine issue 174): the whole grid declared, the XML indented, a header and
    two data rows, and the grid's last three rows each with all 16,384 cells, styled and empty."""
    header = ["Your Ref #", "Contact Name", "Contact Number", "City ", "Weight"]
    data = [[123, "Test Contact Name", "555-0100", "Paris", 2.5], [124, "Other Name", "555-0101", "Oslo", 3]]

    def indented(r: int, values: list[object]) -> str:
        cells = []
        for j, v in enumerate(values):
            inner = f"\n          <v>{v}</v>\n" if not isinstance(v, str) else (
                f'\n          <is>\n            <t>{v}</t>\n          </is>\n')
            kind = ' t="inlineStr"' if isinstance(v, str) else ""
            cells.append(f'\n      <c r="{column(j)}{r}" s="1"{kind}>{inner}        </c>')
        return f'\n    <row r="{r}" spans="1:16384">{"".join(cells)}\n    </row>'

    padding = "".join(
        f'\n    <row r="{r}" spans="1:16384">'
        + "".join(f'\n      <c r="{column(c)}{r}" s="1"/>' for c in range(16384)) + "\n    </row>"
        for r in (1048574, 1048575, 1048576))
    body = indented(1, header) + "".join(indented(r, v) for r, v in enumerate(data, start=2)) + padding + "\n  "
    return write_xlsx(path, [Sheet("Sheet1", body, dimension="A1:XFD1048576")], formats=["@"])


def test_a_sheet_padded_to_the_whole_grid_gives_its_rows(tmp_path: Path) -> None:
    src = padded_sheet(tmp_path / "gnumeric.xlsx")
    start = time.monotonic()
    (out,) = convert_workbook(src, tmp_path / "out", limits=HANG_DETECTOR)
    print(f"padded sheet: {time.monotonic() - start:.2f} s")
    table = pq.read_table(out.path)
    assert table.column_names == ["Your_Ref_#", "Contact_Name", "Contact_Number", "City", "Weight"]
    assert table.to_pylist() == [
        {"Your_Ref_#": 123, "Contact_Name": "Test Contact Name", "Contact_Number": "555-0100", "City": "Paris",
         "Weight": 2.5},
        {"Your_Ref_#": 124, "Contact_Name": "Other Name", "Contact_Number": "555-0101", "City": "Oslo", "Weight": 3.0}]


def test_a_row_of_16384_cells_gives_16384_columns(tmp_path: Path) -> None:
    # POI's 53105: row 1 holds 1 in every column of the grid (16,384 equal names), row 2 a value under each.
    width = 16384
    first = "".join(f'<c r="{column(c)}1"><v>1</v></c>' for c in range(width))
    second = "".join(f'<c r="{column(c)}2"><v>{c}</v></c>' for c in range(width))
    src = write_xlsx(tmp_path / "wide.xlsx", [Sheet("Wide", f'<row r="1">{first}</row><row r="2">{second}</row>',
                                                    dimension="A1:XFD2")])
    start = time.monotonic()
    (out,) = convert_workbook(src, tmp_path / "out", limits=HANG_DETECTOR)
    print(f"16,384 columns: {time.monotonic() - start:.2f} s")
    table = pq.read_table(out.path)
    assert table.num_rows == 1 and table.num_columns == width
    assert table.column_names[:3] == ["1", "1_1", "1_2"] and table.column_names[-1] == "1_16383"
    assert table.column("1_16383").to_pylist() == [16383]


def test_the_time_bound_grows_with_the_content_and_is_capped() -> None:
    limits = Limits(timeout_seconds=900)
    assert limits.time_bound(0) == 60
    assert limits.time_bound(100 * 1024**2) == 160
    assert limits.time_bound(4 * 1024**3) == 900  # capped by SHEETDROP_READER_TIMEOUT_S
    assert Limits(timeout_seconds=30).time_bound(1024**2) == 30


@pytest.mark.parametrize(("limits", "named"), [
    (Limits(time_base_seconds=0, time_per_mib_seconds=0.001), "its time bound of "),
    (Limits(timeout_seconds=0.05), "the 0.05 s limit (SHEETDROP_READER_TIMEOUT_S)"),
])
def test_a_reader_past_its_bound_is_stopped_with_a_rejection_naming_it(tmp_path: Path, limits: Limits,
                                                                        named: str) -> None:
    src = padded_sheet(tmp_path / "gnumeric.xlsx")
    with pytest.raises(WorkbookRejected) as caught:
        convert_workbook(src, tmp_path / "out", limits=limits)
    assert caught.value.code == "too-large"
    assert f"reading the workbook took longer than {named}" in caught.value.reason
    if "time bound" in named:
        # The formula, with this workbook's content (its parts as inflated).
        assert "(0 s + 0.001 s per MiB of its 1.5" in caught.value.reason
    assert not (tmp_path / "out").exists()
