"""The extract step's entry script: what AzureML (v1 ``PythonScriptStep``, v2 command component) and the
local runner start as ``python extract.py --input_account … --output_extract … …``.

Thin on purpose: the step is the package ``sheetdrop_step`` beside this file (``sheetdrop_step.extract``);
Python puts this script's folder, the snapshot's root, first on ``sys.path``, so the package and the shared
``sheetdrop_contract`` are imported from the snapshot AzureML was given, under one name each.
"""

import sys

from sheetdrop_step.extract import main

if __name__ == "__main__":
    sys.exit(main())
