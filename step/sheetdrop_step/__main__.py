"""``python -m sheetdrop_step INPUT OUTDIR [--options FILE]``: the converter without storage or a run, as
``sheetdrop convert`` starts it (README, "The converter"). Exits 0, or non-zero with one ``error:`` line."""

import sys

from sheetdrop_step.converter import main

sys.exit(main())
