"""``sheetdrop smoke``: the deployment `azd up` made, proven with the signed-in identity (README, "Smoke test").

It runs here, in the CLI's environment, over REST with azure-identity (the Azure CLI login, as ``sheetdrop backfill
--azure``): it finds each run with the deployed Function's own code (its backend's ``find_runs``: the blob version's
tags or inputs, through the Function's one resend loop), reads the claim the Function wrote, and talks to AzureML and
Log Analytics with routes that are the SDKs' own (each module cites them; tests/aml and tests/aml2 compare them with
azureml-core's and azure-ai-ml's). No AzureML SDK is needed: neither their pinned azure-identity nor a second
environment, and the same command serves v1 and v2, whichever the azd environment names.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from sheetdrop_local.smoke import checks as backend_checks
from sheetdrop_local.smoke import items, loganalytics, table_version
from sheetdrop_local.smoke.facts import Context, Item, Observed, SmokeFailure, duration
from sheetdrop_local.smoke.report import explain_missing_run, plan, print_items, print_latency
from sheetdrop_local.smoke.workbook import smoke_workbook

#: The folder every smoke workbook goes into: its dataset is named after it (README, "Rules").
FOLDER = "sheetdrop_smoke"
#: A run's last states, in v1's run history and v2's jobs alike (azureml-core RunStatus; azure-ai-ml JobStatus).
ENDED = ("Completed", "Failed", "Canceled", "NotResponding")


def blob_name(stamp: str, label: str) -> str:
    """A name with ``'``, ``$`` and spaces, which must reach the step intact (mount-layout)."""
    return f"{FOLDER}/{stamp}-{label} it's $HOME smoke.xlsx"


def command(*, env_file: Path | None, yes: bool, clean: bool, timeout: float, logs_timeout: float, poll: float,
            log_analytics_url: str, out: TextIO, ask: Callable[[str], str] = input) -> int:
    from sheetdrop.settings import SettingsError, load_settings
    from sheetdrop.submit.retry import Retrier, RetryPolicy
    from sheetdrop.submit.service import ServiceClient
    from sheetdrop_local import deployed

    try:
        values = deployed.azd_values(env_file)
        settings = load_settings(deployed.app_settings(values))
    except (deployed.DeployedError, SettingsError) as exc:
        print(f"error: no-azd-env: {exc}", file=out)
        print("next: run `azd up` in this checkout (or `azd env select NAME`), or pass --env-file with the output "
              "of `azd env get-values`", file=out)
        return 2
    deployed.use_signed_in_identity()
    from azure.core.exceptions import HttpResponseError
    from azure.identity import DefaultAzureCredential

    from sheetdrop.submit import SubmitError
    from sheetdrop.submit.azureml_v2 import ARM_SCOPE

    credential = DefaultAzureCredential()
    try:
        credential.get_token(ARM_SCOPE)
    except Exception as exc:  # azure-identity raises several types; all mean "no token"
        print(f"error: not-signed-in: the Azure CLI gave no token: {str(exc).splitlines()[0][:300]}", file=out)
        print(f"next: `az login` (CI: `az login --service-principal …`), then `az account set --subscription "
              f"{values.get('AZUREML_SUBSCRIPTION_ID', '<subscription>')}`", file=out)
        return 2
    service = ServiceClient(credential, Retrier(RetryPolicy(deadline_seconds=120)),
                            gave_up="the service kept failing; run `sheetdrop smoke` again later")
    ctx = Context(settings, values, service, out, poll)
    plugin = backend_checks(settings.backend)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    print(plan(ctx, plugin, [blob_name(stamp, label) for label in sorted({x for r in plugin.ROUNDS for x in r})],
               stamp, timeout, logs_timeout), file=out)
    if not yes:
        try:
            answer = ask("go ahead? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("not started (pass --yes to skip this question)", file=out)
            return 1
    observed: list[Observed] = []
    tables: list[Observed] = []  # the table folder's uploads (table-version), apart from the rounds the items read
    found: list[Item] = []
    failure = None
    try:
        found = run_smoke(ctx, plugin, stamp, observed, timeout, logs_timeout, log_analytics_url, tables)
    except (SmokeFailure, SubmitError) as exc:  # SubmitError: a service that kept failing, or no token
        failure = str(exc)
        print(f"error: {failure}", file=out)
    except HttpResponseError as exc:  # storage refused the upload or a read of the Function's claim
        code = str(getattr(exc.error_code, "value", exc.error_code) or "")
        failure = f"storage answered HTTP {exc.status_code} {code}".strip()
        # Storage's codes: a missing data role is AuthorizationPermissionMismatch (or AuthorizationFailure), a token
        # it does not take AuthenticationFailed or InvalidAuthenticationInfo (learn: rest/api/storageservices/
        # blob-service-error-codes, common-rest-api-error-codes).
        next_step = ("storage did not take the Azure CLI's token (another tenant, or expired): `az login` again"
                     if code in ("AuthenticationFailed", "InvalidAuthenticationInfo") or exc.status_code == 401 else
                     f"the signed-in identity needs Storage Blob Data Contributor on the {settings.input_container} "
                     f"and {settings.claims_container} containers (infra/app/rbac.bicep gives it to whoever runs "
                     "`azd up`; a new assignment takes minutes)")
        print(f"error: {failure}: {str(exc).splitlines()[0][:300]}; next: {next_step}", file=out)
    decided = {item.key: item for item in found}
    every = [decided.get(key) or Item(key, False, "not checked: " + ("the smoke test stopped (error: above)"
                                                                    if failure else "nothing decided it"))
             for key in plugin.ITEMS]
    print_items(out, every, plugin)
    left_behind(ctx, plugin, observed, clean, tables)
    unconfirmed = [item.key for item in every if not item.confirmed]
    if failure or unconfirmed:
        print(f"smoke: FAILED ({'a failure' if failure else ''}{', ' if failure and unconfirmed else ''}"
              f"{len(unconfirmed)} not confirmed: {', '.join(unconfirmed)})" if unconfirmed else
              "smoke: FAILED", file=out)
        return 1
    print(f"smoke: every item confirmed ({len(every)})", file=out)
    return 0


def run_smoke(ctx: Context, plugin: Any, stamp: str, observed: list[Observed], timeout: float, logs_timeout: float,
              log_analytics_url: str, tables: list[Observed]) -> list[Item]:
    from sheetdrop.claims import ClaimStore
    from sheetdrop.storage import blob_service
    from sheetdrop.submit.backends import get_backend

    settings = ctx.settings
    service = blob_service(settings.storage)
    container = service.get_container_client(settings.input_container)
    claims = ClaimStore(service.get_container_client(settings.claims_container),
                        stale_after=settings.claim_stale_seconds, max_failures=settings.claim_max_failures)
    function = get_backend(settings)
    checks = plugin.open_checks(ctx)
    for labels in plugin.ROUNDS:
        this_round = []
        for label in labels:
            seen = upload(ctx, container, label, blob_name(stamp, label), f"{stamp}-{label}")
            this_round.append(seen)
            observed.append(seen)
        for seen in this_round:
            wait_for_run(ctx, seen, claims, function, checks, timeout)
    for seen in observed:
        checks.observe(seen)
        if seen.status != "Completed" or not seen.datasets:
            tail = "\n    ".join(seen.log.splitlines()[-15:]) or "(no step log found)"
            raise SmokeFailure(f"{plugin.NOUN} {seen.run_id} for {seen.blob} ended {seen.status or '?'} and "
                               f"registered {'no dataset' if not seen.datasets else 'datasets'}; the step log ends:\n"
                               f"    {tail}\nnext: open the run in AzureML studio, workspace "
                               f"{settings.backend_settings.workspace}, and read its step's log")
    first = observed[0]
    first.seen["read_back"] = read_back(ctx, checks, first)
    # Before the workbook's query: Log Analytics has the table runs' minutes to ingest the first run's events.
    table = [table_item(ctx, checks, stamp, container, claims, function, timeout, tables)] \
        if table_version.KEY in plugin.ITEMS else []  # a backend whose docs do not list it is not run through it
    print_latency(ctx.out, first)
    found = [*checks.items(observed), items.per_run_overhead(first), *table]
    found.append(workbook_item(ctx, first, logs_timeout, log_analytics_url))
    return found


def upload(ctx: Context, container: Any, label: str, name: str, marker: str) -> Observed:
    """A smoke workbook holding ``marker``, uploaded as ``name``; the version the Function will be sent."""
    client = container.get_blob_client(name)
    client.upload_blob(smoke_workbook(marker), overwrite=True)
    properties = client.get_blob_properties()
    seen = Observed(label, name, properties.etag, properties.last_modified.timestamp())
    seen.seen["marker"] = marker
    print(f"uploaded {ctx.settings.input_container}/{name} (etag {seen.etag})", file=ctx.out, flush=True)
    return seen


def table_item(ctx: Context, checks: Any, stamp: str, container: Any, claims: Any, function: Any, timeout: float,
               tables: list[Observed]) -> Item:
    """table-version: the table folder's options, then its workbooks one at a time, each run awaited before the next
    upload (the second version must follow the first, not race it); whatever stops it leaves the item unconfirmed
    with the reason, not the items already decided."""
    try:
        container.get_blob_client(table_version.OPTIONS_BLOB).upload_blob(table_version.OPTIONS, overwrite=True)
        print(f"uploaded {ctx.settings.input_container}/{table_version.OPTIONS_BLOB} "
              f"({table_version.OPTIONS.decode()})", file=ctx.out, flush=True)
        for label in table_version.LABELS:
            seen = upload(ctx, container, label, table_version.blob_name(stamp, label), f"{stamp}-{label}")
            tables.append(seen)
            wait_for_run(ctx, seen, claims, function, checks, timeout)
        for seen in tables:
            checks.observe(seen)
    except SmokeFailure as exc:
        return Item(table_version.KEY, False, f"the table folder's runs: {exc}")
    return table_version.decide(ctx, checks, tables)


def wait_for_run(ctx: Context, seen: Observed, claims: Any, function: Any, checks: Any, timeout: float) -> None:
    """Until the Function's own look-up finds the run of this version (its tags or inputs), then until it ends."""
    deadline = time.monotonic() + timeout
    claim = None
    while not seen.run_id:
        claim = read_claim(ctx, seen, claims)
        runs = function.find_runs(ctx.settings.input_container, seen.blob, seen.etag)
        if runs:
            seen.run_id = runs[0]
            print(f"found run {seen.run_id} for {seen.blob} (by the Function's look-up)", file=ctx.out, flush=True)
            break
        if time.monotonic() > deadline:
            raise SmokeFailure(explain_missing_run(ctx, seen, claim, timeout))
        ctx.sleep(ctx.poll)
    while (status := checks.status(seen.run_id)) not in ENDED:
        if time.monotonic() > deadline:
            raise SmokeFailure(f"run {seen.run_id} is still {status or 'unknown'} after {duration(timeout)}; "
                               "next: a first run builds the step's image (up to 20 minutes): run `sheetdrop smoke` "
                               "again with a longer --timeout")
        ctx.sleep(ctx.poll)
    print(f"run {seen.run_id}: {status}", file=ctx.out, flush=True)
    read_claim(ctx, seen, claims)  # read before the run was found, it may have been written just after


def read_claim(ctx: Context, seen: Observed, claims: Any) -> Any:
    """The claim the Function wrote for the version: when it claimed it, and how far it got."""
    claim = claims.read(ctx.settings.input_container, seen.blob, seen.etag)
    if claim is not None:
        seen.claimed = claim.created_at or None
    return claim


def read_back(ctx: Context, checks: Any, seen: Observed) -> str:
    """One dataset's parquet, read from the workspace's storage as the signed-in identity; it holds the marker."""
    import io

    import pyarrow.parquet as pq
    from azure.core.exceptions import HttpResponseError
    from azure.identity import DefaultAzureCredential
    from azure.storage.blob import BlobClient

    dataset = seen.datasets[0]
    account, container = checks.container(dataset.datastore)
    endpoint = (ctx.values.get("AZUREML_STORAGE_BLOB_ENDPOINT") or "").rstrip("/")
    if not endpoint:
        raise SmokeFailure("the azd environment has no AZUREML_STORAGE_BLOB_ENDPOINT (the workspace storage): "
                           "next: `azd provision` with this checkout's infra/")
    if account and account not in endpoint:
        raise SmokeFailure(f"datastore {dataset.datastore} is on account {account}, not the workspace storage "
                           f"{endpoint}")
    try:
        data = BlobClient(endpoint, container, dataset.path, credential=DefaultAzureCredential()
                          ).download_blob().readall()
    except HttpResponseError as exc:
        next_step = ("the signed-in identity needs Storage Blob Data Reader on the workspace storage (infra/app/"
                     "rbac.bicep gives it to whoever runs `azd up`; a new assignment takes minutes to apply)"
                     if exc.status_code == 403 else "the dataset points where the step's output is not: compare its "
                     "path with the run's output in AzureML studio (output-path)")
        raise SmokeFailure(f"reading {dataset.ref} back from {container}/{dataset.path}: HTTP {exc.status_code} "
                           f"{exc.error_code or ''}; next: {next_step}") from exc
    table = pq.read_table(io.BytesIO(data))
    marker = seen.seen["marker"]
    if marker not in table.column("marker").to_pylist():
        raise SmokeFailure(f"{dataset.ref} read back, but its marker column does not hold {marker!r}: "
                           f"{table.column('marker').to_pylist()[:3]}")
    return f"{dataset.ref}: {table.num_rows} rows, columns {', '.join(table.column_names)}, marker {marker!r} found"


def workbook_item(ctx: Context, seen: Observed, logs_timeout: float, endpoint: str) -> Item:
    workspace = ctx.values.get("LOG_ANALYTICS_WORKSPACE_ID", "").strip()
    if not workspace:
        return Item("workbook-finds-run", False, "the azd environment has no LOG_ANALYTICS_WORKSPACE_ID: "
                    "next: `azd provision` with this checkout's infra/")
    text = loganalytics.workbook_query("runs")
    started = time.monotonic()
    while True:
        rows = loganalytics.query(ctx.service, workspace, text, hours=24, endpoint=endpoint)
        item = items.workbook_finds_run(seen, rows, time.monotonic() - started)
        if item.confirmed or time.monotonic() - started > logs_timeout:
            if not item.confirmed:
                item = Item(item.key, False, item.evidence + "; next: Log Analytics ingests within minutes: run "
                            "again with a longer --logs-timeout; else check the workspace's diagnostic setting "
                            "(AmlRunStatusChangedEvent, infra/app/azureml.bicep) and the Function's traces")
            return item
        ctx.sleep(ctx.poll)


def left_behind(ctx: Context, plugin: Any, observed: list[Observed], clean: bool, tables: list[Observed]) -> None:
    from sheetdrop.storage import blob_service

    settings, out = ctx.settings, ctx.out
    every = [*observed, *tables]
    blobs = sorted({seen.blob for seen in every})
    # The table folder's options file, once the table rounds began (it is uploaded before their first workbook).
    options = [table_version.OPTIONS_BLOB] if tables else []
    folders = f"{settings.input_container}/{FOLDER}/" + (f" and {table_version.FOLDER}/" if tables else "")
    if not blobs:
        print("left behind: nothing (nothing was uploaded)", file=out)
        return
    datasets = [d.ref for s in every for d in s.datasets]
    if clean:
        container = blob_service(settings.storage).get_container_client(settings.input_container)
        for name in [*blobs, *options]:
            container.delete_blob(name, delete_snapshots="include")
        print(f"cleaned: {len(blobs)} smoke workbooks{' and ' + options[0] if options else ''} deleted from "
              f"{folders}", file=out)
        for line in plugin.open_checks(ctx).clean(every) if datasets else []:
            print(f"cleaned: {line}", file=out)
    else:
        print(f"left behind: {len(blobs)} workbooks in {folders} ({', '.join(blobs)})"
              f"{' and ' + options[0] if options else ''}; datasets "
              f"{', '.join(datasets) or 'none'} (`sheetdrop smoke --clean` deletes the workbooks and unregisters or "
              "archives the datasets)", file=out)
    tables_written = f" and the table versions' manifests and segments under tables/{table_version.DATASET}/" \
        if tables else ""
    print(f"left behind in any case: the {plugin.NOUN}s {', '.join(s.run_id for s in every if s.run_id) or '-'} "
          f"(AzureML keeps them), their parquet on {settings.output_datastore}{tables_written}, the claims in "
          f"{settings.claims_container}; the cluster goes back to 0 nodes after its idle time", file=out)
