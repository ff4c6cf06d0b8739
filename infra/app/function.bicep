// The Function app: Flex Consumption, Python 3.11, one user-assigned identity for everything it
// reaches (host storage, the input account, Application Insights, the AzureML workspace).
// Its app settings are all here, in four groups; tests/test_infra.py checks each name against what
// the Functions host, the blob extension and sheetdrop/settings.py read.
param location string
param tags object
param identityName string
param planName string
param functionAppName string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
param inputContainerName string
param claimsContainerName string
param inputDatastoreName string
param experimentName string
param pipelineEndpointUrl string
@allowed(['azureml', 'azureml-v2'])
param azuremlApi string = 'azureml'
param batchEndpointUrl string = ''
param workspaceName string = ''

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: identityName
  location: location
  tags: tags
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

var userAssignedIdentities = {
  '${identity.id}': {}
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: functionAppName
  location: location
  // azd deploys the service "function" of azure.yaml to the resource with this tag.
  tags: union(tags, {
    'azd-service-name': 'function'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: userAssignedIdentities
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: 40
        instanceMemoryMB: 2048
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Read by the Functions host: its own storage, identity-based (no AzureWebJobsStorage connection
// string); learn: azure-functions/functions-reference#connecting-to-host-storage-with-an-identity.
var hostSettings = {
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.properties.clientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
}

// The blob trigger's connection "INPUT_STORAGE" (function_app.py), identity-based: the blob extension
// reads all four; sheetdrop/settings.py reads the blob endpoint and the client id too (claims).
var connectionSettings = {
  INPUT_STORAGE__blobServiceUri: storage.properties.primaryEndpoints.blob
  INPUT_STORAGE__queueServiceUri: storage.properties.primaryEndpoints.queue
  INPUT_STORAGE__credential: 'managedidentity'
  INPUT_STORAGE__clientId: identity.properties.clientId
}

// azureml-v2 is named only once its batch endpoint URL is known: the backend without its URL makes every
// invocation a SettingsError. Until then (the first provision of `azd env set SHEETDROP_AZUREML_API
// azureml-v2 && azd up`, before the post-provision hook has published) the app keeps azureml and, when it
// was a v1 deployment, its v1 URL; the hook then writes the URL and azureml-v2 in one update.
// Parenthesised so that every reader, pycep in tests/test_infra.py included, groups it as Bicep does.
var v2Ready = (azuremlApi == 'azureml-v2') && !empty(batchEndpointUrl)
var backend = v2Ready ? 'azureml-v2' : 'azureml'

// Read by sheetdrop/settings.py.
var sheetdropSettings = {
  SHEETDROP_BACKEND: backend
  INPUT_CONTAINER: inputContainerName
  CLAIMS_CONTAINER: claimsContainerName
  INPUT_DATASTORE: inputDatastoreName
  EXPERIMENT_NAME: experimentName
  AZUREML_MANAGED_IDENTITY_CLIENT_ID: identity.properties.clientId
}

// Known once the pipeline is published (the post-provision hook), then kept by every provision, after a
// switch to azureml-v2 too: runs submitted before the switch go on in AzureML regardless, and switching
// back is `azd env set SHEETDROP_AZUREML_API azureml && azd up`.
var endpointSettings = empty(pipelineEndpointUrl) ? {} : {
  AZUREML_PIPELINE_ENDPOINT_URL: pipelineEndpointUrl
}

// azureml-v2: the batch endpoint (known once the post-provision hook published v2) and the workspace whose
// jobs the Function looks up after a lost answer (sheetdrop/settings.py, _azureml_v2).
var batchSettings = empty(batchEndpointUrl) ? {} : {
  AZUREML_BATCH_ENDPOINT_URL: batchEndpointUrl
  AZUREML_SUBSCRIPTION_ID: subscription().subscriptionId
  AZUREML_RESOURCE_GROUP: resourceGroup().name
  AZUREML_WORKSPACE: workspaceName
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: union(hostSettings, connectionSettings, sheetdropSettings, endpointSettings, batchSettings)
}

output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
output identityPrincipalId string = identity.properties.principalId
output identityClientId string = identity.properties.clientId
