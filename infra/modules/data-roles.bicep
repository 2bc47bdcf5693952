// The data account (an existing one the team owns): read its blobs, and sign user delegation
// SAS URLs the build VMs use (the SAS can grant no more than the identity holds: read, list).
param principalId string
param storageAccountName string

var storageBlobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
var storageBlobDelegator = 'db58b8e5-c6ad-4a2a-8342-4190687cbf4a'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource roles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in [storageBlobDataReader, storageBlobDelegator]: {
  name: guid(account.id, principalId, role)
  scope: account
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
  }
}]
