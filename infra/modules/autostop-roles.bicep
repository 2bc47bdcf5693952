// One more resource group in the auto-stop scope: list and deallocate its VMs, nothing else.
param principalId string
param vmStopperRoleId string

resource stopper 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, vmStopperRoleId)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: vmStopperRoleId
  }
}
