"""The local studio: a read-only web page over the embedded default's runs and datasets, the way
AzureML studio shows them in Azure (``sheetdrop ui``; ``make run`` starts it with the dev host).

Never deployed: nothing in ``sheetdrop/`` imports it (tests/test_deploy_bundle.py).
"""
