// sheetdrop on Azure: `azd up` creates everything below, with identities and role assignments only:
// nothing here or in the hooks creates, reads or passes an account key, SAS or connection string with a
// key. Two keys exist outside that claim, by the services' design (README, "Deploy to Azure", "Keys"):
// the AzureML workspace's own storage (app/azureml.bicep) and the Event Grid webhook URL (hooks/postdeploy.py).
// The Function's app settings are set in app/function.bicep (tests/test_infra.py holds them against
// sheetdrop/settings.py); the role assignments are in app/rbac.bicep (held against docs/azureml.md).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name: names the resource group and seeds every resource name.')
param environmentName string

@minLength(1)
@description('Region of every resource. It must offer Flex Consumption and Azure Machine Learning.')
param location string

@description('Object id of the person (or CI principal) running azd: granted what publishing the pipeline needs. azd sets AZURE_PRINCIPAL_ID.')
param principalId string = ''

// main.parameters.json maps it from ${AZURE_PRINCIPAL_TYPE}, which azd substitutes with its own login:
// ServicePrincipal after `azd auth login --client-id` (CI), User otherwise (Azure/azure-dev,
// pkg/infra/provisioning/current_principal_id_provider.go). A role assignment whose principalType does
// not match the principal fails with UnmatchedPrincipalType.
@allowed([
  'User'
  'ServicePrincipal'
])
@description('Kind of principalId: User for a person, ServicePrincipal for CI. azd sets AZURE_PRINCIPAL_TYPE.')
param principalType string = 'User'

@description('Container the Function watches (app setting INPUT_CONTAINER).')
param inputContainerName string = 'input'

@description('Container of the claim blobs (app setting CLAIMS_CONTAINER).')
param claimsContainerName string = 'sheetdrop-claims'

@description('AzureML datastore on the input container (app setting INPUT_DATASTORE).')
param inputDatastoreName string = 'sheetdrop_input'

@description('Experiment of the pipeline runs (app setting EXPERIMENT_NAME).')
param experimentName string = 'sheetdrop-extract'

@description('AmlCompute cluster the published step runs on (python -m pipeline.publish --compute).')
param computeName string = 'sheetdrop-cpu'

@description('VM size of the cluster nodes.')
param computeVmSize string = 'STANDARD_DS3_V2'

@minValue(1)
@description('Most nodes the cluster scales out to; it scales in to 0 when idle.')
param computeMaxNodes int = 2

@description('Name of the PipelineEndpoint the post-provision hook publishes behind.')
param pipelineEndpointName string = 'sheetdrop-extract'

@description('REST URL of the PipelineEndpoint: empty on the first provision; the post-provision hook publishes and stores it in the azd environment, and every later provision keeps it in the app settings.')
param pipelineEndpointUrl string = ''

@description('Which AzureML the Function submits to (azd env SHEETDROP_AZUREML_API): azureml (SDK v1 PipelineEndpoint, the default) or azureml-v2 (a batch endpoint, docs/azureml-v2.md). The post-provision hook publishes the chosen one.')
@allowed(['azureml', 'azureml-v2'])
param azuremlApi string = 'azureml'

@description('azureml-v2: the batch endpoint scoring URI; empty until the post-provision hook has published v2 and stored it in the azd environment.')
param batchEndpointUrl string = ''

@description('Set by the pre-provision hook when the workspace it published to is gone (azd down): a deleted workspace is soft-deleted and its name held for up to 14 days, so the next one and its dependencies take new names. Empty: the first names.')
param workspaceGeneration string = ''

var tags = {
  'azd-env-name': environmentName
}
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
// The workspace and its two dependencies carry the generation: after `azd down` the workspace is
// soft-deleted (azd purges key vaults on request, never workspaces) and the key vault may be too.
var workspaceSuffix = empty(workspaceGeneration) ? '' : '-${workspaceGeneration}'
var workspaceName = 'mlw-${resourceToken}${workspaceSuffix}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    location: location
    tags: tags
    storageAccountName: 'st${resourceToken}'
    containerNames: [
      inputContainerName
      claimsContainerName
      'app-package-${resourceToken}'
    ]
    systemTopicName: 'evgt-${resourceToken}'
  }
}

module functionApp 'app/function.bicep' = {
  name: 'function'
  scope: rg
  params: {
    location: location
    tags: tags
    identityName: 'id-func-${resourceToken}'
    planName: 'plan-${resourceToken}'
    functionAppName: 'func-${resourceToken}'
    storageAccountName: storage.outputs.name
    deploymentContainerName: 'app-package-${resourceToken}'
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    inputContainerName: inputContainerName
    claimsContainerName: claimsContainerName
    inputDatastoreName: inputDatastoreName
    experimentName: experimentName
    pipelineEndpointUrl: pipelineEndpointUrl
    azuremlApi: azuremlApi
    batchEndpointUrl: batchEndpointUrl
    // The same name the azureml module gives the workspace (v2 recovery reads its jobs).
    workspaceName: workspaceName
  }
}

module azureml 'app/azureml.bicep' = {
  name: 'azureml'
  scope: rg
  params: {
    location: location
    tags: tags
    workspaceName: workspaceName
    workspaceStorageName: 'stml${resourceToken}${workspaceGeneration}'
    keyVaultName: 'kv-${resourceToken}${workspaceSuffix}'
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    logAnalyticsName: monitoring.outputs.logAnalyticsName
    computeName: computeName
    computeVmSize: computeVmSize
    computeMaxNodes: computeMaxNodes
    inputStorageAccountName: storage.outputs.name
    inputContainerName: inputContainerName
    inputDatastoreName: inputDatastoreName
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    inputContainerName: inputContainerName
    claimsContainerName: claimsContainerName
    workspaceName: azureml.outputs.workspaceName
    workspaceStorageName: azureml.outputs.workspaceStorageName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    functionPrincipalId: functionApp.outputs.identityPrincipalId
    computePrincipalId: azureml.outputs.computePrincipalId
    azuremlApi: azuremlApi
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
  }
}

module workbook 'app/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    logAnalyticsName: monitoring.outputs.logAnalyticsName
    workbookName: guid(rg.id, 'sheetdrop-workbook')
  }
}

// azd stores every output in the environment (.azure/<env>/.env) and deletes them on `azd down`
// (pkg/infra/provisioning/manager.go, Destroy); the hooks and `sheetdrop smoke` read them from there.
// No AZURE_LOCATION output: azd keeps the region it asked for there, and an output would be deleted with
// the others on `azd down`, so that the next `azd up` asked again (and failed with --no-prompt in CI).
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
// The input account's blob endpoint as the cloud spells it (sovereign clouds too): `sheetdrop backfill --azure`.
output AZURE_STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output EVENTGRID_SYSTEM_TOPIC_NAME string = storage.outputs.systemTopicName
output INPUT_CONTAINER string = inputContainerName
output CLAIMS_CONTAINER string = claimsContainerName
output INPUT_DATASTORE string = inputDatastoreName
output EXPERIMENT_NAME string = experimentName
output AZUREML_SUBSCRIPTION_ID string = subscription().subscriptionId
output AZUREML_RESOURCE_GROUP string = rg.name
output AZUREML_WORKSPACE string = azureml.outputs.workspaceName
output AZUREML_WORKSPACE_ID string = azureml.outputs.workspaceId
// The workspace storage's blob endpoint, where `sheetdrop smoke` reads a registered version back.
output AZUREML_STORAGE_BLOB_ENDPOINT string = azureml.outputs.workspaceStorageBlobEndpoint
output AZUREML_COMPUTE string = computeName
output AZUREML_PIPELINE_ENDPOINT_NAME string = pipelineEndpointName
// Batch endpoint names are unique per region (they name the scoring host), so this one carries the token.
output AZUREML_BATCH_ENDPOINT_NAME string = 'sheetdrop-${resourceToken}${workspaceSuffix}'
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output LOG_ANALYTICS_WORKSPACE_NAME string = monitoring.outputs.logAnalyticsName
// The workspace (customer) id that `az monitor log-analytics query --workspace` takes.
output LOG_ANALYTICS_WORKSPACE_ID string = monitoring.outputs.logAnalyticsCustomerId
output WORKBOOK_ID string = workbook.outputs.id
