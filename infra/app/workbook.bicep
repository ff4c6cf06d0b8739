// The monitoring workbook (Azure portal: Monitor > Workbooks, or the resource group). Its queries run
// on the Log Analytics workspace, where the Function's traces (AppTraces) and the AzureML run status
// events (AmlRunStatusChangedEvent) both land. tests/test_infra.py checks every field they read.
param location string
param tags object
param logAnalyticsName string
param workbookName string

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsName
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: workbookName
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'sheetdrop: drops and runs'
    category: 'workbook'
    sourceId: logAnalytics.id
    serializedData: replace(loadTextContent('workbook.json'), '__LOG_ANALYTICS_WORKSPACE_ID__', logAnalytics.id)
  }
}

output id string = workbook.id
