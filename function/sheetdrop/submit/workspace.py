"""An AzureML workspace as both AzureML backends address it: its ARM scope, and the studio links to its runs."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

STUDIO_URL = "https://ml.azure.com"
SCOPE = ("subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/"
         "Microsoft.MachineLearningServices/workspaces/{workspace}")


@dataclass(frozen=True)
class Workspace:
    subscription_id: str
    resource_group: str
    name: str

    def scope(self) -> dict[str, str]:
        return {"subscription_id": self.subscription_id, "resource_group": self.resource_group,
                "workspace": self.name}

    def path(self) -> str:
        """``subscriptions/…/workspaces/<name>``, each part URL-quoted."""
        return SCOPE.format(**{key: quote(value, safe="") for key, value in self.scope().items()})

    def describe(self) -> str:
        return f"workspace {self.name} (resource group {self.resource_group}, subscription {self.subscription_id})"


def studio_run_url(run_id: str, workspace: Workspace, studio_url: str = STUDIO_URL) -> str:
    """The run's page in AzureML studio, in the form azureml-core's HasRunPortal builds."""
    return (f"{studio_url.rstrip('/')}/runs/{run_id}?wsid=/subscriptions/{workspace.subscription_id}"
            f"/resourcegroups/{workspace.resource_group}/workspaces/{workspace.name}")
