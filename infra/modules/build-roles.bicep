// Roles of the controller's identity on the build resource group: VMs and disks, networks,
// images (custom role defined in main.bicep), and Reader for the leak sweeper's tag scan.
param principalId string
param imagePublisherRoleId string

var virtualMachineContributor = '9980e02c-c2be-4d73-94e8-173b1dc7cf3c'
var networkContributor = '4d97b98b-1d4f-4787-a291-c67834d212e7'
var reader = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'

resource builtIn 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in [virtualMachineContributor, networkContributor, reader]: {
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
