"""azd preprovision: if the AzureML workspace of the last deployment is gone, give the next one new names.

`azd down` deletes the resource group; an AzureML workspace is then soft-deleted, and "You can't reuse
the name of a workspace that has been soft deleted until the retention period has passed or the
workspace is permanently deleted" (14 days; learn: machine-learning/concept-soft-delete). azd purges key
vaults, managed HSMs, App Configuration, API Management and Cognitive Services on `--purge`, never
workspaces (Azure/azure-dev, pkg/infra/provisioning/bicep/bicep_provider.go, Destroy). So the next
provision of the same names would fail with "Soft-deleted workspace exists. Please purge or recover it."

Purging is not what this hook does: a soft-deleted workspace whose resource group is gone cannot be
reliably found to purge (`az ml workspace delete --permanently-delete` answers "Unable to find
workspace", Azure/azure-cli#33756), and a predown purge would run before azd asks whether to delete at
all (hooks get no `--force`/`--purge`). Instead, when the workspace the post-provision hook last
published to no longer exists, this hook raises SHEETDROP_WORKSPACE_GENERATION; infra/main.bicep puts it
into the names of the workspace, its storage and its key vault, so nothing collides, and the old
workspace expires on its own (its compute is hard-deleted: no cost). The endpoint URLs of the old
workspace are cleared, so no provision gives the Function a URL that no longer answers.
"""

from __future__ import annotations

from hooklib import HookError, az_json, main, set_values, value

#: Written by the post-provision hook after each publish: "<api> <sources digest> <workspace ARM id>".
PUBLISHED = "SHEETDROP_PUBLISHED"
GENERATION = "SHEETDROP_WORKSPACE_GENERATION"
#: Point at the old workspace: cleared with it.
STALE = ("AZUREML_PIPELINE_ENDPOINT_URL", "AZUREML_BATCH_ENDPOINT_URL", PUBLISHED)


def workspace_parts(workspace_id: str) -> tuple[str, str, str]:
    """(subscription, resource group, name) of /subscriptions/<s>/resourceGroups/<rg>/providers/
    Microsoft.MachineLearningServices/workspaces/<name>."""
    parts = workspace_id.strip("/").split("/")
    if len(parts) != 8 or [p.lower() for p in parts[0:7:2]] != ["subscriptions", "resourcegroups", "providers",
                                                                  "workspaces"]:
        raise HookError(f"{PUBLISHED} holds no workspace id ({workspace_id!r}): clear it with "
                        f"`azd env set {PUBLISHED}=` and run `azd up` again")
    return parts[1], parts[3], parts[7]


def workspace_exists(subscription: str, group: str, name: str) -> bool:
    if not az_json("group", "exists", "--name", group, "--subscription", subscription):
        return False
    found = az_json("resource", "list", "--subscription", subscription, "--resource-group", group,
                    "--resource-type", "Microsoft.MachineLearningServices/workspaces")
    return any(item.get("name", "").lower() == name.lower() for item in found or [])


def preprovision() -> None:
    published = value(PUBLISHED, required=False)
    if not published:
        return  # nothing published yet: the first provision, or the first after a generation change
    subscription, group, name = workspace_parts(published.split()[-1])
    if workspace_exists(subscription, group, name):
        return
    generation = value(GENERATION, required=False) or "0"
    if not generation.isdigit():
        raise HookError(f"{GENERATION}={generation!r} is not a number: set it with `azd env set {GENERATION} 1`")
    following = str(int(generation) + 1)
    set_values({GENERATION: following, **{key: "" for key in STALE}})
    print(f"workspace {name} ({group}) is gone (azd down): AzureML keeps a deleted workspace's name for up to "
          f"14 days, so this provision creates generation {following} (workspace, its storage and key vault "
          f"with the suffix {following}) and publishes the pipeline there")


if __name__ == "__main__":
    main(preprovision)
