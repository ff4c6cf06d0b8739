"""The embedded default: everything that stands in for Azure on a machine without it.

Never deployed (``.funcignore`` keeps it out of the Function's bundle). The dev host plays the
Functions host, the local runner plays AzureML's pipeline runs, the run store and registry play run
history and the dataset registry, and Azurite plays Azure Storage. See README.md, "Layout".
"""

from pathlib import Path

#: The checkout this package runs from (an editable install): Azurite is installed into its
#: node_modules/ and the AzureML tools into its .venv-aml/ by `make`.
REPO = Path(__file__).resolve().parent.parent
