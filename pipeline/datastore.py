"""Register the input container as an identity-based AzureML datastore: ``python -m pipeline.datastore``.

No account key and no SAS token is stored in the workspace: data access goes through
identities. The compute cluster's managed identity mounts the blobs for the step (it
needs 'Storage Blob Data Reader' on the account); the workspace's managed identity
previews data in studio when ``--grant-workspace-access`` is given (it then needs the
same role). See docs/azureml.md for the role assignments.
"""

from __future__ import annotations

import argparse
import os
import sys

from azureml.core import Datastore

from pipeline.publish import get_auth, get_workspace


def register_input_datastore(workspace: object, name: str, container: str, account: str,
                             subscription_id: str | None, resource_group: str | None,
                             grant_workspace_access: bool) -> object:
    return Datastore.register_azure_blob_container(
        workspace=workspace,
        datastore_name=name,
        container_name=container,
        account_name=account,
        # Neither account_key nor sas_token: a credential-less, identity-based datastore.
        grant_workspace_access=grant_workspace_access,
        subscription_id=subscription_id,
        resource_group=resource_group,
        overwrite=True,
    )


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m pipeline.datastore", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=".")
    parser.add_argument("--subscription-id", default=env.get("AZUREML_SUBSCRIPTION_ID"))
    parser.add_argument("--resource-group", default=env.get("AZUREML_RESOURCE_GROUP"))
    parser.add_argument("--workspace", default=env.get("AZUREML_WORKSPACE"))
    parser.add_argument("--auth", choices=["interactive", "cli", "msi"], default=env.get("AZUREML_AUTH", "cli"))
    parser.add_argument("--tenant-id", default=env.get("AZURE_TENANT_ID"))
    parser.add_argument("--client-id", default=env.get("AZUREML_MANAGED_IDENTITY_CLIENT_ID"))
    parser.add_argument("--name", default=env.get("INPUT_DATASTORE", "sheetdrop_input"))
    parser.add_argument("--container", default=env.get("INPUT_CONTAINER", "input"))
    parser.add_argument("--storage-account", required=True, help="the input storage account's name")
    parser.add_argument("--storage-subscription-id", help="if the account is in another subscription")
    parser.add_argument("--storage-resource-group", help="if the account is in another resource group")
    parser.add_argument("--grant-workspace-access", action="store_true",
                        help="let the workspace's identity read it too (data preview in studio)")
    args = parser.parse_args(argv)
    workspace = get_workspace(args, get_auth(args.auth, args.tenant_id, args.client_id))
    datastore = register_input_datastore(
        workspace, args.name, args.container, args.storage_account,
        args.storage_subscription_id, args.storage_resource_group, args.grant_workspace_access)
    print(f"datastore {datastore.name}: {args.storage_account}/{args.container} (identity-based, no stored key)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
