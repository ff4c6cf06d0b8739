"""sheetdrop's Function app: qualify a new blob, claim its version, submit its run.

Deployed as part of the folder ``function/`` (README, "Layout"). Imports stay light: nothing here imports
azureml, pandas or pyarrow, at module level or later.
"""

__version__ = "0.1.0"
