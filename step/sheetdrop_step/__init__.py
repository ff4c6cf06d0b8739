"""The extract step: workbook in, parquet and registered dataset versions out.

One package under one import name, run by the entry script ``step/extract.py`` from the step's snapshot,
which ``pipeline.snapshot`` assembles from ``step/`` and the shared ``sheetdrop_contract`` (README,
"Layout"). ``extract`` is the step (arguments, run context), ``registration`` what a converted version
registers, ``batch`` the batch step (many pinned versions in one run); ``converter`` the converter.
"""
