"""Generate the bundled sample workbooks: small, realistic three-sheet sales workbooks.

``sales-2026-q3.xlsx`` is what ``make run`` drops; ``sales-2026-q4.xlsx`` is the README's second
drop: the next quarter, with a ``Discount`` column added to Orders, the Targets months moved on and
an empty ``Scratch`` sheet (skipped, with its reason in the run's log), so that the second
version of each dataset shows a schema change. ``finance/q3-2026-report.xlsx`` is a report as a
finance team sends it (a title block, a two-row header under a merged group name, an ``n/a`` among
the prices, a totals row, a notes sheet), which ``finance/sheetdrop.json`` says how to read.
Deterministic (fixed seeds, fixed document properties) so the committed files only change when this
script does. Run with ``make sample``.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import xlsxwriter

OUT = Path(__file__).with_name("sales-2026-q3.xlsx")
OUT_Q4 = Path(__file__).with_name("sales-2026-q4.xlsx")
OUT_REPORT = Path(__file__).parent / "finance" / "q3-2026-report.xlsx"
REGIONS = ["North", "South", "East", "West"]
PRODUCTS = [("SKU-0012", "Desk lamp", 24.5), ("SKU-0107", "Office chair", 189.0), ("SKU-0231", "Monitor arm", 74.9),
            ("SKU-0345", "Keyboard", 49.99), ("SKU-0400", "USB-C dock", 129.0), ("00777", "Cable set", 9.95)]


def main() -> None:
    rng = random.Random(20260701)
    wb = xlsxwriter.Workbook(str(OUT))
    wb.set_properties({"title": "Sales Q3 2026", "author": "sheetdrop sample", "created": dt.datetime(2026, 10, 1)})
    date_fmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    money = wb.add_format({"num_format": "#,##0.00"})
    bold = wb.add_format({"bold": True})

    orders = wb.add_worksheet("Orders")
    headers = ["Order ID", "Order date", "Region", "SKU", "Quantity", "Unit price", "Paid", "Notes"]
    orders.write_row(0, 0, headers, bold)
    start = dt.date(2026, 7, 1)
    for r in range(1, 241):
        sku, _, price = rng.choice(PRODUCTS)
        orders.write_number(r, 0, 10000 + r)
        day = start + dt.timedelta(days=rng.randrange(92))
        orders.write_datetime(r, 1, dt.datetime.combine(day, dt.time()), date_fmt)
        orders.write_string(r, 2, rng.choice(REGIONS))
        orders.write_string(r, 3, sku)
        orders.write_number(r, 4, rng.randint(1, 12))
        orders.write_number(r, 5, price, money)
        orders.write_boolean(r, 6, rng.random() > 0.1)
        if rng.random() < 0.08:
            orders.write_string(r, 7, rng.choice(["gift wrap", "express", "returned 1"]))

    products = wb.add_worksheet("Products")
    products.write_row(0, 0, ["SKU", "Name", "List price", "Discontinued"], bold)
    for r, (sku, name, price) in enumerate(PRODUCTS, start=1):
        products.write_string(r, 0, sku)
        products.write_string(r, 1, name)
        products.write_number(r, 2, price, money)
        products.write_boolean(r, 3, sku == "SKU-0012")

    targets = wb.add_worksheet("Targets")
    targets.write_row(0, 0, ["Region", "July", "August", "September", "Owner"], bold)
    for r, region in enumerate(REGIONS, start=1):
        targets.write_string(r, 0, region)
        for c in range(1, 4):
            # A target not set yet is written as text, as people do: the column becomes text.
            if region == "West" and c == 3:
                targets.write_string(r, c, "tbd")
            else:
                targets.write_number(r, c, rng.randrange(20, 60) * 500)
        targets.write_string(r, 4, rng.choice(["A. Jensen", "M. Okafor", "L. Moreau", "K. Tanaka"]))
    wb.close()
    print(f"wrote {OUT}")
    q4()


def q4() -> None:
    rng = random.Random(20261001)
    wb = xlsxwriter.Workbook(str(OUT_Q4))
    wb.set_properties({"title": "Sales Q4 2026", "author": "sheetdrop sample", "created": dt.datetime(2027, 1, 4)})
    date_fmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    money = wb.add_format({"num_format": "#,##0.00"})
    bold = wb.add_format({"bold": True})
    catalog = [*PRODUCTS, ("SKU-0512", "Webcam", 59.0)]

    orders = wb.add_worksheet("Orders")
    headers = ["Order ID", "Order date", "Region", "SKU", "Quantity", "Unit price", "Discount", "Paid", "Notes"]
    orders.write_row(0, 0, headers, bold)
    start = dt.date(2026, 10, 1)
    for r in range(1, 261):
        sku, _, price = rng.choice(catalog)
        orders.write_number(r, 0, 10240 + r)
        day = start + dt.timedelta(days=rng.randrange(92))
        orders.write_datetime(r, 1, dt.datetime.combine(day, dt.time()), date_fmt)
        orders.write_string(r, 2, rng.choice(REGIONS))
        orders.write_string(r, 3, sku)
        orders.write_number(r, 4, rng.randint(1, 12))
        orders.write_number(r, 5, price, money)
        orders.write_number(r, 6, rng.choice([0, 0, 0, 0.05, 0.1]))
        orders.write_boolean(r, 7, rng.random() > 0.1)
        if rng.random() < 0.08:
            orders.write_string(r, 8, rng.choice(["gift wrap", "express", "holiday promo"]))

    products = wb.add_worksheet("Products")
    products.write_row(0, 0, ["SKU", "Name", "List price", "Discontinued"], bold)
    for r, (sku, name, price) in enumerate(catalog, start=1):
        products.write_string(r, 0, sku)
        products.write_string(r, 1, name)
        products.write_number(r, 2, price, money)
        products.write_boolean(r, 3, sku == "SKU-0012")

    targets = wb.add_worksheet("Targets")
    targets.write_row(0, 0, ["Region", "October", "November", "December", "Owner"], bold)
    for r, region in enumerate(REGIONS, start=1):
        targets.write_string(r, 0, region)
        for c in range(1, 4):
            targets.write_number(r, c, rng.randrange(20, 60) * 500)
        targets.write_string(r, 4, rng.choice(["A. Jensen", "M. Okafor", "L. Moreau", "K. Tanaka"]))

    wb.add_worksheet("Scratch")  # left empty: the converter skips it and says so in the run's log
    wb.close()
    print(f"wrote {OUT_Q4}")
    report()


def report() -> None:
    rng = random.Random(20261002)
    wb = xlsxwriter.Workbook(str(OUT_REPORT))
    wb.set_properties({"title": "Sales by region Q3 2026", "author": "sheetdrop sample",
                       "created": dt.datetime(2026, 10, 2)})
    title = wb.add_format({"bold": True, "font_size": 14})
    bold = wb.add_format({"bold": True, "align": "center"})
    date_fmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    money = wb.add_format({"num_format": "#,##0.00"})

    sheet = wb.add_worksheet("Report")
    sheet.write_string(0, 0, "ACME Corp — Sales by region, Q3 2026", title)
    sheet.write_string(1, 0, "Generated 2026-10-02 from the ERP export")
    sheet.merge_range(3, 2, 3, 4, "Units sold", bold)
    sheet.write_row(4, 0, ["Region", "Rep", "Jul", "Aug", "Sep", "Unit price", "Last order"], bold)
    reps = ["A. Jensen", "M. Okafor", "L. Moreau", "K. Tanaka", "R. Silva", "J. Novak"]
    totals = [0, 0, 0]
    for i, rep in enumerate(reps * 2):
        r = 5 + i
        sheet.write_string(r, 0, REGIONS[i % len(REGIONS)])
        sheet.write_string(r, 1, rep)
        for m in range(3):
            units = rng.randrange(20, 120)
            totals[m] += units
            sheet.write_number(r, 2 + m, units)
        if i == 7:  # not known yet when the report was run
            sheet.write_string(r, 5, "n/a")
        else:
            sheet.write_number(r, 5, rng.choice([24.5, 49.99, 74.9, 129.0]), money)
        day = dt.date(2026, 7, 1) + dt.timedelta(days=rng.randrange(92))
        sheet.write_datetime(r, 6, dt.datetime.combine(day, dt.time()), date_fmt)
    sheet.write_row(5 + len(reps) * 2, 0, ["TOTAL", "", *totals], bold)

    notes = wb.add_worksheet("Notes")
    notes.write_string(0, 0, "Units are net of returns. Prices are list prices in EUR.")
    wb.close()
    print(f"wrote {OUT_REPORT}")


if __name__ == "__main__":
    main()
