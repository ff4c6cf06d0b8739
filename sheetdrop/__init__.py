"""sheetdrop: Excel workbooks dropped into storage become registered AzureML datasets.

This package is the Function's logic plus the local runtime. It keeps imports
light: nothing here imports azureml or pandas at module level.
"""

__version__ = "0.1.0"
