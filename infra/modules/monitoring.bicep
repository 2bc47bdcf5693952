// Application Insights on a Log Analytics workspace (where the KQL in docs/monitoring.md runs).
param location string
param tags object
param token string
param alertEmail string

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-labimage-${token}'
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-labimage-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
  }
}

module workbook 'workbook.bicep' = {
  name: 'labimage-workbook'
  params: {
    location: location
    tags: tags
    token: token
    insightsId: insights.id
    alertEmail: alertEmail
  }
}

output connectionString string = insights.properties.ConnectionString
output name string = insights.name
