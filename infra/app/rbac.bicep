// Every role assignment of the deployment, each with its built-in role id written out
// (learn: role-based-access-control/built-in-roles); docs/azureml.md, "Role assignments", says why.
// tests/test_infra.py holds each (principal, role id, scope) against that table.
param storageAccountName string
@description('The container the Function watches: the person running azd may upload into it.')
param inputContainerName string
@description('The claims container: `sheetdrop backfill --azure`, run as the person, claims through it.')
param claimsContainerName string
param workspaceName string
@description('The workspace storage (workspaceblobstore): the person running azd reads the step\'s parquet there.')
param workspaceStorageName string
param applicationInsightsName string
param functionPrincipalId string
param computePrincipalId string
@description('Which AzureML the Function submits to: with azureml-v2 the step registers data assets as the cluster.')
param azuremlApi string = 'azureml'
@description('The person or CI principal running azd; empty: no assignment.')
param deployerPrincipalId string
@description('User or ServicePrincipal, as azd reports the login (main.bicep, principalType).')
@allowed([
  'User'
  'ServicePrincipal'
])
param deployerPrincipalType string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource inputContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: inputContainerName
}

resource claimsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: claimsContainerName
}

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' existing = {
  name: workspaceName
}

resource workspaceStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: workspaceStorageName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Function identity: Storage Blob Data Owner on the input account (blob trigger, claims, host storage,
// deployment package).
resource functionBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionPrincipalId, 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b')
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b')
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Function identity: Storage Queue Data Contributor on the input account (poison queue; host storage
// with blob triggers).
resource functionQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionPrincipalId, '974c5e8b-45b9-4653-ba55-5f855dd0fb88')
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '974c5e8b-45b9-4653-ba55-5f855dd0fb88')
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Function identity: Storage Account Contributor on the input account (AzureWebJobsStorage with blob
// triggers).
resource functionAccountContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionPrincipalId, '17d1049b-9a84-46fb-8f53-869881c3d3ab')
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '17d1049b-9a84-46fb-8f53-869881c3d3ab')
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Function identity: Storage Table Data Contributor on the input account, which is also the host's
// storage: the host persists its diagnostic events in tables through AzureWebJobsStorage ("No extension
// (host only), with support for diagnostic events: Storage Blob Data Owner, Storage Table Data
// Contributor", azure-docs includes/functions-azurewebjobsstorage-permissions.md).
resource functionTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionPrincipalId, '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3')
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3')
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Function identity: AzureML Data Scientist on the workspace (submit PipelineEndpoint runs, query runs).
resource functionDataScientist 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, functionPrincipalId, 'f6c7c914-8db3-469d-8ca1-694a8f32e121')
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'f6c7c914-8db3-469d-8ca1-694a8f32e121')
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Function identity: Monitoring Metrics Publisher on Application Insights (Entra-authenticated
// telemetry; learn: azure-monitor/app/azure-ad-authentication).
resource functionMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, functionPrincipalId, '3913510d-42f4-4e42-8a64-420c390055eb')
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '3913510d-42f4-4e42-8a64-420c390055eb')
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Cluster identity (system-assigned): Storage Blob Data Reader on the input account (the step reads the blob
// version it converts as the cluster).
resource computeBlobReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, computePrincipalId, '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1')
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1')
    principalId: computePrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Cluster identity, v2 only: AzureML Data Scientist on the workspace. The v2 step registers its data assets and
// reads the previous versions as the cluster's identity (data read + versions write); v1's step does that with
// its run's own token.
resource computeDataScientist 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (azuremlApi == 'azureml-v2') {
  name: guid(workspace.id, computePrincipalId, 'f6c7c914-8db3-469d-8ca1-694a8f32e121')
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'f6c7c914-8db3-469d-8ca1-694a8f32e121')
    principalId: computePrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Cluster identity: Storage Blob Data Contributor on the workspace storage, where a table-mode folder's step writes
// each table version's manifest create-only as the cluster (docs/azureml.md, "A folder as one table"); a step's
// parquet goes through its output mount, which needs no role of the cluster's.
resource computeOutputContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspaceStorage.id, computePrincipalId, 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')
  scope: workspaceStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')
    principalId: computePrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The person (or CI principal) running azd: Storage Blob Data Contributor on the input container, so
// that `az storage blob upload --auth-mode login` into it works with shared keys off: management roles
// such as Owner grant no data access ("Even though you are the account owner, you need explicit
// permissions to perform data operations", azure-docs storage/blobs/authorize-data-operations-cli.md;
// container scope: storage/blobs/assign-azure-role-data-access.md).
resource deployerBlobContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(inputContainer.id, deployerPrincipalId, 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')
  scope: inputContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}

// The same principal: Storage Blob Data Contributor on the claims container, which `sheetdrop backfill
// --azure` (signed in as the person) reads and writes as the trigger does: one claim per blob version.
// Two containers rather than the account, which also holds the host's storage and deployment package.
resource deployerClaimsContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(claimsContainer.id, deployerPrincipalId, 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')
  scope: claimsContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}

// The person running azd: AzureML Data Scientist on the workspace, what publishing needs once the
// cluster exists (this template creates it; its NotActions exclude creating computes).
resource deployerDataScientist 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(workspace.id, deployerPrincipalId, 'f6c7c914-8db3-469d-8ca1-694a8f32e121')
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'f6c7c914-8db3-469d-8ca1-694a8f32e121')
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}

// The same principal: Storage Blob Data Reader on the workspace storage, where the step writes its parquet
// (workspaceblobstore), so that `sheetdrop smoke` reads a registered version back as the person (or CI) with
// an Entra token, never the datastore's key; Owner and Data Scientist grant no data access.
resource deployerOutputReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(workspaceStorage.id, deployerPrincipalId, '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1')
  scope: workspaceStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1')
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}
