"""The extract step's snapshot (uploaded to AzureML as the step's source directory).

The step's modules import each other as top-level modules (the script's folder is on sys.path when
AzureML or the local runner starts extract.py). Outside the step only ``step_scripts.contract`` is imported.
"""
