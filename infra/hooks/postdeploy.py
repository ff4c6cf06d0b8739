"""azd postdeploy: subscribe the Function's blob extension to the input container's BlobCreated events.

Only now can it be done: the webhook needs the host's blobs_extension system key, which the host creates
once it runs with the blob extension (azure-functions-host DefaultScriptWebHookProvider.cs), so the key
is polled for. The host name is the app's real defaultHostName (apps created since June 2024 may have
<app>-<hash>.<region>-01.azurewebsites.net). The endpoint URL carries that key by design (learn:
azure-functions/functions-event-grid-blob-trigger): it is never printed.

Run twice, it changes nothing: an existing subscription with the same endpoint (read back with
--include-full-endpoint-url), event type and subject filter is left alone; one that differs is updated,
never duplicated.
"""

from __future__ import annotations

import json
import os
import time

from hooklib import HookError, az, az_json, last_line, main, run, value

#: function_app.py: @app.function_name("workbook_dropped").
FUNCTION_NAME = "workbook_dropped"
SUBSCRIPTION_NAME = "sheetdrop-workbook-dropped"
EVENT_TYPE = "Microsoft.Storage.BlobCreated"


def blobs_extension_key(target: list[str]) -> str:
    attempts = int(os.environ.get("SHEETDROP_KEY_ATTEMPTS", "30"))
    wait = float(os.environ.get("SHEETDROP_KEY_WAIT_SECONDS", "10"))
    answer = ""
    for attempt in range(1, attempts + 1):
        # Only this key is asked for (--query), so the master and function keys never reach this process.
        result = run(["az", "functionapp", "keys", "list", *target, "--query", "systemKeys.blobs_extension",
                      "--output", "tsv"])
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
        answer = f" (az: {last_line(result.stderr)})" if result.returncode != 0 else ""
        print(f"waiting for the host's blobs_extension key ({attempt}/{attempts})", flush=True)
        time.sleep(wait)
    raise HookError(f"{value('AZURE_FUNCTION_APP_NAME')} has no blobs_extension system key yet{answer}: is the "
                    "code deployed and the host running? Run `azd deploy` again")


def existing_subscription(topic: list[str]) -> dict | None:
    result = run(["az", "eventgrid", "system-topic", "event-subscription", "show", *topic,
                  "--include-full-endpoint-url", "--output", "json"])
    if result.returncode == 0:
        return json_or_none(result.stdout)
    if "not found" in result.stderr.lower() or "notfound" in result.stderr.lower():
        return None
    raise HookError(f"az eventgrid system-topic event-subscription show failed: {last_line(result.stderr)}")


def json_or_none(text: str) -> dict | None:
    return json.loads(text) if text.strip() else None


def postdeploy() -> None:
    subscription = value("AZUREML_SUBSCRIPTION_ID")
    group = value("AZURE_RESOURCE_GROUP")
    app = value("AZURE_FUNCTION_APP_NAME")
    container = value("INPUT_CONTAINER")
    target = ["--subscription", subscription, "--resource-group", group, "--name", app]
    site = az_json("functionapp", "show", *target) or {}
    host = site.get("defaultHostName")
    if not host:
        raise HookError(f"no defaultHostName for {app}")
    key = blobs_extension_key(target)

    endpoint = f"https://{host}/runtime/webhooks/blobs?functionName=Host.Functions.{FUNCTION_NAME}&code={key}"
    subject = f"/blobServices/default/containers/{container}/"
    topic = ["--subscription", subscription, "--resource-group", group, "--system-topic-name",
             value("EVENTGRID_SYSTEM_TOPIC_NAME"), "--name", SUBSCRIPTION_NAME]
    wanted = ["--endpoint-type", "webhook", "--endpoint", endpoint, "--included-event-types", EVENT_TYPE,
              "--subject-begins-with", subject, "--output", "none"]
    what = f"BlobCreated under {subject} -> {host} ({FUNCTION_NAME})"
    current = existing_subscription(topic)
    if current is not None:
        destination, filters = current.get("destination") or {}, current.get("filter") or {}
        if (destination.get("endpointUrl") == endpoint and filters.get("includedEventTypes") == [EVENT_TYPE]
                and filters.get("subjectBeginsWith") == subject):
            print(f"event subscription {SUBSCRIPTION_NAME} already up to date: {what}")
            return
    verb = "create" if current is None else "update"
    try:
        az("eventgrid", "system-topic", "event-subscription", verb, *topic, *wanted)
    except HookError as exc:  # az may quote the endpoint back: not the key
        raise HookError(str(exc).replace(key, "<blobs_extension key>")) from None
    print(f"event subscription {SUBSCRIPTION_NAME} {verb}d: {what}")


if __name__ == "__main__":
    main(postdeploy)
