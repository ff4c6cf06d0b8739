#!/usr/bin/env bash
# azd postprovision: publish the extract pipeline behind its PipelineEndpoint and give the Function
# the endpoint's REST URL (app setting AZUREML_PIPELINE_ENDPOINT_URL).
#
# Safe to run again: publishing again puts a new default version behind the same endpoint (same id,
# same URL), the URL is kept in the azd environment so the next provision sets it in the template
# (infra/main.parameters.json), and the app setting is only written when it differs.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=infra/hooks/lib.sh
. infra/hooks/lib.sh

need az
need azd
need make

subscription=$(env_value AZUREML_SUBSCRIPTION_ID)
rg=$(env_value AZURE_RESOURCE_GROUP)
app=$(env_value AZURE_FUNCTION_APP_NAME)
workspace=$(env_value AZUREML_WORKSPACE)
compute=$(env_value AZUREML_COMPUTE)
datastore=$(env_value INPUT_DATASTORE)
endpoint_name=$(env_value AZUREML_PIPELINE_ENDPOINT_NAME)
# The AzureML environment's interpreter (tests point it elsewhere).
aml_python=${SHEETDROP_AML_PYTHON:-.venv-aml/bin/python}

# .venv-aml (azureml-core, azureml-pipeline), built as `make test` builds it; nothing if up to date.
make setup-aml

# The person running azd publishes: --auth az takes tokens from the Azure CLI's login (`az login`),
# no managed identity, no key. The cluster and the input datastore exist already (infra/app/azureml.bicep).
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$aml_python" -m pipeline.publish --auth az --subscription-id "$subscription" --resource-group "$rg" \
  --workspace "$workspace" --compute "$compute" --input-datastore "$datastore" \
  --endpoint-name "$endpoint_name" | tee "$out"
url=$(sed -n 's/^AZUREML_PIPELINE_ENDPOINT_URL=//p' "$out" | tail -n 1)
if [[ -z $url ]]; then
  echo "error: python -m pipeline.publish printed no AZUREML_PIPELINE_ENDPOINT_URL line" >&2
  exit 1
fi

azd env set AZUREML_PIPELINE_ENDPOINT_URL "$url"
current=$(az functionapp config appsettings list --subscription "$subscription" -g "$rg" -n "$app" \
  --query "[?name=='AZUREML_PIPELINE_ENDPOINT_URL'].value | [0]" -o tsv)
if [[ $current != "$url" ]]; then
  az functionapp config appsettings set --subscription "$subscription" -g "$rg" -n "$app" \
    --settings "AZUREML_PIPELINE_ENDPOINT_URL=$url" --output none
  echo "app setting AZUREML_PIPELINE_ENDPOINT_URL of $app set"
else
  echo "app setting AZUREML_PIPELINE_ENDPOINT_URL of $app already set"
fi
