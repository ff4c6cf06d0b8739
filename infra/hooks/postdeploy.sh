#!/usr/bin/env bash
# azd postdeploy: subscribe the Function's blob extension to the input account's BlobCreated events.
#
# Only now can it be done: the webhook needs the host's blobs_extension system key, which the host
# creates once it runs with the blob extension (azure-functions-host DefaultScriptWebHookProvider.cs).
# The host name is the app's real defaultHostName (apps created since June 2024 may have
# <app>-<hash>.<region>-01.azurewebsites.net). Safe to run again: an existing subscription is updated
# to the same endpoint and filters. The URL carries the key: it is never printed.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=infra/hooks/lib.sh
. infra/hooks/lib.sh

need az
need azd

subscription=$(env_value AZUREML_SUBSCRIPTION_ID)
rg=$(env_value AZURE_RESOURCE_GROUP)
app=$(env_value AZURE_FUNCTION_APP_NAME)
topic=$(env_value EVENTGRID_SYSTEM_TOPIC_NAME)
container=$(env_value INPUT_CONTAINER)
# function_app.py: @app.function_name("workbook_dropped")
function_name=workbook_dropped
subscription_name=sheetdrop-workbook-dropped
attempts=${SHEETDROP_KEY_ATTEMPTS:-30}

host=$(az functionapp show --subscription "$subscription" -g "$rg" -n "$app" --query defaultHostName -o tsv)
if [[ -z $host ]]; then
  echo "error: no defaultHostName for $app" >&2
  exit 1
fi

key=""
for ((attempt = 1; attempt <= attempts; attempt++)); do
  key=$(az functionapp keys list --subscription "$subscription" -g "$rg" -n "$app" \
    --query "systemKeys.blobs_extension" -o tsv 2>/dev/null || true)
  if [[ -n $key ]]; then
    break
  fi
  echo "waiting for the host's blobs_extension key ($attempt/$attempts)"
  sleep 10
done
if [[ -z $key ]]; then
  echo "error: $app has no blobs_extension system key yet: is the code deployed and the host running? Run \`azd deploy\` again" >&2
  exit 1
fi

endpoint="https://$host/runtime/webhooks/blobs?functionName=Host.Functions.$function_name&code=$key"
subject="/blobServices/default/containers/$container/"
common=(--subscription "$subscription" -g "$rg" --system-topic-name "$topic" -n "$subscription_name"
  --endpoint-type webhook --endpoint "$endpoint"
  --included-event-types Microsoft.Storage.BlobCreated --subject-begins-with "$subject" --output none)
if az eventgrid system-topic event-subscription show --subscription "$subscription" -g "$rg" \
  --system-topic-name "$topic" -n "$subscription_name" --output none 2>/dev/null; then
  az eventgrid system-topic event-subscription update "${common[@]}"
  echo "event subscription $subscription_name updated: BlobCreated under $subject -> $host ($function_name)"
else
  az eventgrid system-topic event-subscription create "${common[@]}"
  echo "event subscription $subscription_name created: BlobCreated under $subject -> $host ($function_name)"
fi
