// One more resource group in the auto-stop scope: list, deallocate and snooze its VMs, nothing
// else (infra/roles.json, assignments.autostopGroups: the VM stopper custom role from
// main.bicep, plus any built-in role listed there).
param principalId string
param vmStopperRoleId string

var roles = loadJsonContent('../roles.json')
var builtInIds = [for name in roles.assignments.autostopGroups.builtIn: roles.builtInRoles[name].id]

resource stopper 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, vmStopperRoleId)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: vmStopperRoleId
  }
}

resource builtIn 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in builtInIds: {
  name: guid(resourceGroup().id, principalId, role)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
  }
}]
