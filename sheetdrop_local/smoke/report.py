"""What `sheetdrop smoke` prints: what it will do and cost before it starts, why a run did not appear, the latency of
each stage, and each item with its evidence."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

from sheetdrop_local.smoke import items, table_version
from sheetdrop_local.smoke.facts import Item, Observed, duration

if TYPE_CHECKING:
    from sheetdrop.claims import Claim
    from sheetdrop_local.smoke.facts import Context

#: azure-ai-ml 1.34's ``compute.get`` (its 2023-08-01-preview client): an AmlCompute's ``properties.properties``
#: hold ``vmSize`` and ``scaleSettings`` (``minNodeCount``, ``maxNodeCount``, ``nodeIdleTimeBeforeScaleDown``).
COMPUTE_API_VERSION = "2023-08-01-preview"
DOCS = {"azureml": "docs/azureml.md", "azureml-v2": "docs/azureml-v2.md"}


def cluster(ctx: Context) -> str:
    """The cluster a run starts, as ARM describes it (what it costs is per node and minute while a node is up)."""
    from sheetdrop.submit.azureml_v2 import ARM_SCOPE

    name = ctx.values.get("AZUREML_COMPUTE", "").strip()
    if not name:
        return "the workspace's cluster (the azd environment does not name it: AZUREML_COMPUTE)"
    url = f"{ctx.arm_url}/{ctx.settings.backend_settings.the_workspace().path()}/computes/{quote(name, safe='')}"
    response = ctx.service.send("GET", url, scope=ARM_SCOPE, what=f"read cluster {name}",
                                params={"api-version": COMPUTE_API_VERSION})
    if response.status_code >= 400:
        return f"cluster {name} (not readable: HTTP {response.status_code})"
    inner = (response.json().get("properties") or {}).get("properties") or {}
    scale = inner.get("scaleSettings") or {}
    idle = re.fullmatch(r"PT(\d+)S", str(scale.get("nodeIdleTimeBeforeScaleDown") or ""))
    return (f"cluster {name}: {scale.get('minNodeCount', '?')} to {scale.get('maxNodeCount', '?')} nodes of "
            f"{inner.get('vmSize', '?')}, each back to 0 {idle[1] + ' s' if idle else 'some time'} after its last run")


def plan(ctx: Context, plugin: Any, blobs: list[str], stamp: str, timeout: float, logs_timeout: float) -> str:
    settings = ctx.settings
    runs = sum(len(labels) for labels in plugin.ROUNDS)
    rounds = "" if runs == 1 else " (" + ", then ".join(
        f"{len(labels)} at once" if len(labels) > 1 else "the first again" for labels in plugin.ROUNDS) + ")"
    tables = len(table_version.LABELS) if table_version.KEY in plugin.ITEMS else 0
    table_read = " and the table's last version" if tables else ""
    return "\n".join([
        f"sheetdrop smoke: the {settings.backend} deployment in workspace {settings.backend_settings.workspace}, "
        "as the signed-in Azure CLI identity",
        f"  uploads {runs} generated workbook{'s' if runs > 1 else ''}{rounds} into {settings.input_container}/"
        "sheetdrop_smoke/: " + "; ".join(repr(b) for b in blobs),
        *([f"  then {table_version.OPTIONS.decode()} as {settings.input_container}/{table_version.OPTIONS_BLOB} "
           f"and {tables} workbooks, each after the previous one's run ended, into {settings.input_container}/"
           f"{table_version.FOLDER}/ (table mode: " + "; ".join(
               repr(table_version.blob_name(stamp, label)) for label in table_version.LABELS) + ")"] if tables else []),
        f"  each workbook is a {plugin.NOUN} the deployed Function starts: {runs + tables} {plugin.NOUN}"
        f"{'s' if runs + tables > 1 else ''} on {cluster(ctx)}",
        "  cost: a cluster start from 0 nodes (minutes of a node, billed per node-minute, the first run also builds "
        "the step's image) and a few storage and log queries",
        f"  waits up to {duration(timeout)} for each run, then up to {duration(logs_timeout)} for Log Analytics; "
        f"reads back one dataset{table_read}; checks each item of "
        f"{DOCS.get(settings.backend, 'the docs')}, 'What only a real workspace confirms'",
        "  leaves behind the workbooks, their runs and datasets (--clean deletes the workbooks and unregisters the "
        "datasets; AzureML keeps runs)",
    ])


def explain_missing_run(ctx: Context, seen: Observed, claim: Claim | None, timeout: float) -> str:
    """No run was found for the version: say how far it got, from the claim the Function writes, and what next."""
    settings = ctx.settings
    where = f"{settings.input_container}/{seen.blob} (etag {seen.etag})"
    if claim is None:
        return (f"no run appeared for {where} in {duration(timeout)}: the Function never claimed it, so no event "
                f"reached it. next: check the Event Grid subscription (`az eventgrid system-topic event-subscription "
                f"show -g {settings.backend_settings.resource_group} --system-topic-name "
                f"{ctx.values.get('EVENTGRID_SYSTEM_TOPIC_NAME', '<topic>')} -n sheetdrop-workbook-dropped`), that "
                "the Function is deployed (`azd deploy`), and the workbook's 'Failed and poisoned deliveries'")
    state = str(claim.state)
    if claim.run_id:
        return (f"no run appeared for {where} in {duration(timeout)}: the Function submitted it as run {claim.run_id} "
                f"(claim {state}), but the Function's own look-up finds no run for this version: the service dropped "
                "its tags and the step never started to set them. next: open the run in AzureML studio and read why "
                "it did not start")
    return (f"no run appeared for {where} in {duration(timeout)}: the Function claimed it ({state}, "
            f"{claim.failures} failed submissions) and did not submit it: {claim.last_error or 'no error recorded'}. "
            "next: the Function's log (workbook 'Failed and poisoned deliveries'); a missing role reads 'HTTP 403'")


def print_latency(out: TextIO, seen: Observed) -> None:
    print(f"latency of {seen.blob} (run {seen.run_id}):", file=out)
    for name, seconds, what in items.stages(seen):
        print(f"  {name:<34} {duration(seconds):>12}   {what}", file=out)
    own = seen.step_seconds()
    print(f"  the step's own conversion          {duration(own):>12}   (its 'converted: … in N s' line)", file=out)


def print_items(out: TextIO, found: list[Item], plugin: Any) -> None:
    print("what only a real workspace confirms:", file=out)
    for item in found:
        print(f"  {item.key:<20} {'confirmed' if item.confirmed else 'NOT confirmed':<14} {item.evidence}", file=out)
