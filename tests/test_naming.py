import hashlib

import pytest

from sheetdrop.naming import dataset_name, dataset_source, skip_reason
from sheetdrop_contract.contract import MAX_NAME, slug


@pytest.mark.parametrize("name", ["a.xlsx", "A.XLSX", "f/b.xlsm", "old.xls", "bin.XLSB", "calc.ods"])
def test_workbook_extensions_qualify(name: str) -> None:
    assert skip_reason(name, 1234) is None


@pytest.mark.parametrize(
    ("name", "size", "expected"),
    [
        ("report.csv", 10, "not a workbook extension (.csv"),
        ("README", 10, "not a workbook extension (none"),
        ("team/~$budget.xlsx", 165, "lock file"),
        ("team/budget.xlsx", 0, "empty blob"),
        ("archive.xlsx.zip", 10, "not a workbook extension (.zip"),
    ],
)
def test_other_blobs_are_skipped_with_a_reason(name: str, size: int, expected: str) -> None:
    reason = skip_reason(name, size)
    assert reason is not None and expected in reason


@pytest.mark.parametrize(
    ("blob", "dataset"),
    [
        ("sales/2026-q3.xlsx", "sales"),
        ("Sales Team/q3.xlsx", "sales_team"),
        ("finance/emea/q3.xlsx", "finance_emea"),
        ("budget 2026.xlsx", "budget_2026"),
        ("sales-2026-q3.xlsx", "sales_2026_q3"),
        ("Überweisungen/jan.xlsx", "uberweisungen"),
        ("数据/jan.xlsx", "f_" + hashlib.sha256("数据".encode()).hexdigest()[:8]),
        ("/leading/slash.xlsx", "leading"),
    ],
)
def test_dataset_name_follows_the_folder(blob: str, dataset: str) -> None:
    assert dataset_name(dataset_source(blob)) == dataset


def test_sanitized_names_fit_azureml() -> None:
    name = slug("  ---" + "x" * 400 + "!!", "workbook")
    assert name[0].isalnum() and len(name) <= MAX_NAME
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789_")


def test_long_names_that_share_a_beginning_stay_apart() -> None:
    first, second = slug("x" * 200 + "a", "w"), slug("x" * 200 + "b", "w")
    assert first != second and len(first) == len(second) == MAX_NAME


def test_the_sheet_dataset_rule_names_and_recognises_alike() -> None:
    from sheetdrop_contract.contract import BASE_TAG, fed_by, named_like_a_sheet_of, sheet_dataset_name

    assert sheet_dataset_name("sales", "orders", 1) == "sales"
    assert sheet_dataset_name("sales", "orders", 3) == "sales_orders"
    for sheets in (1, 3):
        name = sheet_dataset_name("sales", "orders", sheets)
        assert named_like_a_sheet_of(name, "sales") and fed_by(name, {BASE_TAG: "sales"}, "sales")
    # The folder sales/emea has its own dataset sales_emea: named like a sheet of sales, tagged otherwise.
    assert named_like_a_sheet_of("sales_emea", "sales") and not fed_by("sales_emea", {BASE_TAG: "sales_emea"}, "sales")
    assert not named_like_a_sheet_of("salesforce", "sales") and not fed_by("salesforce", {BASE_TAG: "sales"}, "sales")
    # Versions registered before the base tag: only the bare name counts.
    assert fed_by("sales", {}, "sales") and not fed_by("sales_orders", {}, "sales")
