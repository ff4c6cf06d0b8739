"""The converter: a workbook in, one parquet file per sheet out, or a rejection with a reason
(README, "The converter"). This is its one public surface; every other module here is private to it.

* :func:`convert_workbook` (and :class:`Converted`, :class:`SheetOutput`: what it returns;
  :class:`Limits`, its bounds; :func:`usable_cores`, its default for ``workers``), the version written
  into every file (:data:`CONVERTER_VERSION`), :func:`options_from_env` (its keyword options from the
  step settings) and :func:`main` (``python -m sheetdrop_step IN OUT``);
* :func:`convert_many` (and :class:`Workbook`, one of its inputs; :func:`reader_count`, its default for
  ``readers``): many workbooks, each converted as ``convert_workbook`` converts it, by long-lived reader
  processes instead of a process start per workbook;
* :class:`WorkbookRejected`, the one way a workbook is refused, with its :data:`CODES`; and
  :class:`ReaderKilled`, a reader ended from outside (not the workbook's doing: run it again);
* :func:`staging_folder`, a temporary folder that the next conversion on the machine removes if its
  owner is killed (the step downloads its workbook into one).

Inside, the modules are cut by what a caller asks them: ``_safety`` whether the file may be opened
(the quick guard, the bounded scan, the zip and XML checks); ``_reading`` what the sheets hold (the
reader process and the packages written for it, fastexcel, xls, xlsb); ``_table`` where each sheet's
table is (header, range, footer, pieces merged, the names, the table written); ``_columns`` what
type each column has (the column rules, type hints, rescue, cells shown as text). The type
vocabulary they all read is ``sheetdrop_contract.column_types``.
"""

from __future__ import annotations

import importlib
from typing import Any

#: The public names, by the private module each lives in; loaded when first asked for. The reader
#: process imports this package too (its modules are inside it) and needs none of the parent's side:
#: eagerly, subprocess, argparse and the step contract would add ~20 ms to every conversion.
_PUBLIC = {
    "_entry": ("CONVERTER_VERSION", "Converted", "SheetOutput", "convert_workbook", "options_from_env",
               "usable_cores"),
    "_job": ("Limits",),
    "_batch": ("Workbook", "convert_many", "reader_count"),
    "_cli": ("main",),
    "_staging": ("staging_folder",),
    "_rejection": ("CODES", "ReaderKilled", "RejectionCode", "WorkbookRejected"),
}
_HOME = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value  # looked up once
    return value
