// The AzureML workspace (SDK v1: the published extract pipeline runs here), its cluster, the input
// datastore without credentials, and the run-status events the monitoring workbook reads.
param location string
param tags object
param workspaceName string
param workspaceStorageName string
param keyVaultName string
param applicationInsightsName string
param logAnalyticsName string
param computeName string
param computeVmSize string
param computeMaxNodes int
param inputStorageAccountName string
param inputContainerName string
param inputDatastoreName string

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsName
}

resource inputStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: inputStorageAccountName
}

// The workspace's own storage (snapshots, the step's output datastore workspaceblobstore). Shared-key
// access stays on here, as AzureML creates it: "An Azure Machine Learning workspace defaults to use of a
// shared key to access its default Azure Storage account" (learn: machine-learning/
// how-to-disable-local-auth-storage), so the system datastore workspaceblobstore carries the key the
// workspace stores; SDK v1 uploads the step's snapshot to the blob URLs the service hands back
// (azureml/_restclient/snapshots_client.py, _upload_snapshot_files). Nothing in this template or the
// hooks reads that key.
resource workspaceStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: workspaceStorageName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowSharedKeyAccess: true
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
  }
}

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' = {
  name: workspaceName
  location: location
  tags: tags
  sku: {
    name: 'Basic'
    tier: 'Basic'
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    friendlyName: 'sheetdrop'
    storageAccount: workspaceStorage.id
    keyVault: keyVault.id
    applicationInsights: applicationInsights.id
    publicNetworkAccess: 'Enabled'
  }
}

// 0 nodes when idle (nothing billed), its own identity reads the input account (rbac.bicep).
// python -m pipeline.publish finds it by name and uses it.
resource compute 'Microsoft.MachineLearningServices/workspaces/computes@2024-04-01' = {
  parent: workspace
  name: computeName
  location: location
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    computeType: 'AmlCompute'
    properties: {
      vmSize: computeVmSize
      vmPriority: 'Dedicated'
      osType: 'Linux'
      remoteLoginPortPublicAccess: 'Disabled'
      scaleSettings: {
        minNodeCount: 0
        maxNodeCount: computeMaxNodes
        nodeIdleTimeBeforeScaleDown: 'PT15M'
      }
    }
  }
}

// The DataPath's DataStoreName (app setting INPUT_DATASTORE); no credentials: the step's job reads the
// container with the compute identity (docs/azureml.md, "Datastore").
resource inputDatastore 'Microsoft.MachineLearningServices/workspaces/datastores@2024-04-01' = {
  parent: workspace
  name: inputDatastoreName
  properties: {
    datastoreType: 'AzureBlob'
    description: 'sheetdrop input container, identity-based'
    accountName: inputStorage.name
    containerName: inputContainerName
    endpoint: environment().suffixes.storage
    protocol: 'https'
    serviceDataAccessAuthIdentity: 'None'
    credentials: {
      credentialsType: 'None'
    }
  }
}

// Run status changes into the resource-specific table AmlRunStatusChangedEvent: the workbook's
// "in flight" and "failed runs" come from here (the Function only knows what it submitted).
resource runEvents 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'sheetdrop-run-status'
  scope: workspace
  properties: {
    workspaceId: logAnalytics.id
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        category: 'AmlRunStatusChangedEvent'
        enabled: true
      }
    ]
  }
}

output workspaceName string = workspace.name
output workspaceId string = workspace.id
output computePrincipalId string = compute.identity.principalId
// Where the step's parquet is (workspaceblobstore is on this account): `sheetdrop smoke` reads one version back.
output workspaceStorageName string = workspaceStorage.name
output workspaceStorageBlobEndpoint string = workspaceStorage.properties.primaryEndpoints.blob
