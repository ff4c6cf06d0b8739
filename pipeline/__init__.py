"""Builds and publishes the AzureML extract pipeline; holds the step contract.

Only :mod:`pipeline.contract` is imported by the Function side. Everything that
needs azureml lives in other modules and is imported only by the publish tools.
"""
