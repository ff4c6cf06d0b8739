"""Builds and publishes the AzureML extract pipeline (runs in .venv-aml; never deployed with the Function).

Every name and argument comes from the step's contract, ``step_scripts.contract``, which the Function
and the local runner read too.
"""
