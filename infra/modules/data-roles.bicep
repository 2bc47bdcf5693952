// The data account (an existing one the team owns): read its blobs, and sign user delegation
// SAS URLs the build VMs use (the SAS can grant no more than the identity holds: read, list).
// Roles: infra/roles.json, assignments.dataStorage.
param principalId string
param storageAccountName string

var roles = loadJsonContent('../roles.json')
var builtInIds = [for name in roles.assignments.dataStorage.builtIn: roles.builtInRoles[name].id]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in builtInIds: {
  name: guid(account.id, principalId, role)
  scope: account
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
  }
}]
