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

from pipeline.workspace import SetupError, add_connection_arguments, connect


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
    add_connection_arguments(parser, env)
    parser.add_argument("--name", default=env.get("INPUT_DATASTORE", "sheetdrop_input"))
    parser.add_argument("--container", default=env.get("INPUT_CONTAINER", "input"))
    parser.add_argument("--storage-account", required=True, help="the input storage account's name")
    parser.add_argument("--storage-subscription-id",
                        help="the account's subscription (default with --grant-workspace-access: the workspace's)")
    parser.add_argument("--storage-resource-group",
                        help="the account's resource group (default with --grant-workspace-access: the workspace's)")
    parser.add_argument("--grant-workspace-access", action="store_true",
                        help="let the workspace's identity read it too (data preview in studio); the SDK then "
                             "grants it Reader and Storage Blob Data Reader on the account, which needs you to be "
                             "Owner or User Access Administrator there")
    args = parser.parse_args(argv)
    try:
        workspace = connect(args)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    subscription_id, resource_group = args.storage_subscription_id, args.storage_resource_group
    if args.grant_workspace_access:
        # The SDK refuses to grant the workspace identity access without the account's subscription
        # and resource group (azureml/data/datastore_client.py, register_azure_blob_container);
        # unless told otherwise, the account is where the workspace is.
        subscription_id = subscription_id or workspace.subscription_id
        resource_group = resource_group or workspace.resource_group
    datastore = register_input_datastore(
        workspace, args.name, args.container, args.storage_account,
        subscription_id, resource_group, args.grant_workspace_access)
    print(f"datastore {datastore.name}: {args.storage_account}/{args.container} (identity-based, no stored key)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
