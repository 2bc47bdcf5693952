// The ops workbook and alert rules on Application Insights, from the KQL in infra/monitoring
// (the same queries as docs/monitoring.md; tests/unit/test_infra_monitoring.py checks both).
param location string
param tags object
param token string
param insightsId string
@description('Where the alerts are sent (an e-mail action group); empty: shown in the portal only.')
param alertEmail string

var tiles = [
  { title: 'Builds funnel by stage (7 days)', query: loadTextContent('../monitoring/builds-funnel.kql') }
  { title: 'Stage durations (30 days)', query: loadTextContent('../monitoring/stage-durations.kql') }
  { title: 'Failures by stage and error (7 days)', query: loadTextContent('../monitoring/failures.kql') }
  { title: 'Workstations running now', query: loadTextContent('../monitoring/workstations-running.kql') }
  { title: 'VMs stopped, hours and cost saved by rule: auto-stop and idle stop (30 days)', query: loadTextContent('../monitoring/autostop-savings.kql') }
]

var workbookContent = {
  version: 'Notebook/1.0'
  items: [for (tile, i) in tiles: {
    type: 3
    name: 'tile-${i}'
    content: {
      version: 'KqlItem/1.0'
      query: tile.query
      size: 0
      title: tile.title
      queryType: 0
      resourceType: 'microsoft.insights/components'
    }
  }]
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, 'labimage-workbook', token)
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'labimage operations'
    category: 'workbook'
    sourceId: insightsId
    serializedData: string(workbookContent)
  }
}

var alerts = [
  { name: 'failed-builds', severity: 2, window: 'PT15M', description: 'Builds that failed', query: loadTextContent('../monitoring/alert-failed-builds.kql') }
  { name: 'stuck-builds', severity: 2, window: 'PT1H', description: 'A build stuck in a stage past its time limit', query: loadTextContent('../monitoring/alert-stuck-builds.kql') }
  { name: 'autostop-failed', severity: 2, window: 'PT15M', description: 'An auto-stop run could not deallocate a VM', query: loadTextContent('../monitoring/alert-autostop-failed.kql') }
  { name: 'sweeper-failed', severity: 3, window: 'PT1H', description: 'Resources the sweeper could not delete', query: loadTextContent('../monitoring/alert-sweeper-failed.kql') }
]

// Action groups are global resources; the short name (at most 12 characters) is the SMS/e-mail sender.
var actionGroupName = 'ag-labimage-${token}'
resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: actionGroupName
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'labimage'
    enabled: true
    emailReceivers: [
      { name: 'labimage-ops', emailAddress: alertEmail, useCommonAlertSchema: true }
    ]
  }
}

resource rules 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = [for alert in alerts: {
  name: 'labimage-${alert.name}-${token}'
  location: location
  tags: tags
  dependsOn: [actionGroup]
  properties: {
    displayName: 'labimage: ${alert.description}'
    description: alert.description
    severity: alert.severity
    enabled: true
    scopes: [insightsId]
    evaluationFrequency: alert.window
    windowSize: alert.window
    actions: empty(alertEmail) ? {} : {
      actionGroups: [resourceId('Microsoft.Insights/actionGroups', actionGroupName)]
    }
    criteria: {
      allOf: [
        {
          query: alert.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
  }
}]
