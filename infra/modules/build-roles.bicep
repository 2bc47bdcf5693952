// Roles of the controller's identity on the build resource group, as infra/roles.json lists
// them (assignments.buildGroup): built-in roles by id, plus the image publisher custom role
// defined in main.bicep.
param principalId string
param imagePublisherRoleId string

var roles = loadJsonContent('../roles.json')
var builtInIds = [for name in roles.assignments.buildGroup.builtIn: roles.builtInRoles[name].id]

resource builtIn 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in builtInIds: {
  name: guid(resourceGroup().id, principalId, role)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
  }
}]

resource imagePublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, imagePublisherRoleId)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: imagePublisherRoleId
  }
}
