"""Builds and publishes the AzureML extract pipeline: v1 (azureml-core, in .venv-aml) and v2 (``pipeline.v2``,
azure-ai-ml, in .venv-aml2); never deployed with the Function.

Every name and argument comes from the step's contract, ``sheetdrop_contract.contract``, which the Function
and the local runner read too; the step's source is the snapshot ``pipeline.snapshot`` assembles.
"""
