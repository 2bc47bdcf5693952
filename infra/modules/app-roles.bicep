// Roles of the controller's identity in its own resource group (infra/roles.json,
// assignments.controllerStorage and .keyVault; built-in role ids from Azure's reference).
param principalId string
param storageAccountName string
param keyVaultName string
@description('Optional: a person who may read the builds table and queues while debugging.')
param userPrincipalId string = ''

var roles = loadJsonContent('../roles.json')
var storageRoleIds = [for name in roles.assignments.controllerStorage.builtIn: roles.builtInRoles[name].id]
var vaultRoleIds = [for name in roles.assignments.keyVault.builtIn: roles.builtInRoles[name].id]
var userRoleIds = [for name in roles.assignments.debugUserStorage.builtIn: roles.builtInRoles[name].id]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in storageRoleIds: {
  name: guid(account.id, principalId, role)
  scope: account
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
  }
}]

resource vaultRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in vaultRoleIds: {
  name: guid(vault.id, principalId, role)
  scope: vault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
  }
}]

resource userRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in (empty(userPrincipalId) ? [] : userRoleIds): {
  name: guid(account.id, userPrincipalId, role)
  scope: account
  properties: {
    principalId: userPrincipalId
    principalType: 'User'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
  }
}]
