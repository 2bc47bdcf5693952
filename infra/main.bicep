// labimage on Azure: the controller (a Function App on Flex Consumption), its storage,
// Application Insights, a Key Vault for per-build SSH keys, and one user-assigned identity
// holding only the roles the controller uses. `azd up` deploys it; see docs/deploy.md.
targetScope = 'subscription'

@minLength(1)
@maxLength(40)
@description('Name of the azd environment; resource names derive from it.')
param environmentName string

@minLength(1)
@description('Region for every resource (one where Flex Consumption is offered).')
param location string

@description('Resource group for the controller. Default: rg-<environmentName>.')
param resourceGroupName string = ''

@description('Resource group where build VMs, networks and images go. Default: rg-<environmentName>-builds.')
param buildResourceGroupName string = ''

@description('Existing storage account holding the data containers requests name. Empty: requests may not pull data (never the controller account, whose containers hold host keys and the deployed package).')
param dataStorageAccountName string = ''

@description('Comma-separated containers (patterns such as research-*) of dataStorageAccountName that requests may name. Empty: none.')
param dataContainers string = ''

@description('Resource group of dataStorageAccountName. Empty: the controller resource group.')
param dataStorageResourceGroupName string = ''

@description('More resource groups (existing) whose tagged VMs auto-stop may deallocate.')
param autostopResourceGroups array = []

@description('Address range allowed to SSH into build VMs (the NSG rule): the controller\'s outbound address, e.g. a NAT gateway\'s public IP with /32. Required; no wildcard (the controller refuses \'*\' and ranges wider than /16).')
@minLength(7)
param sshSourceCidr string

@description('Client id of the Microsoft Entra app registration people sign in to (App Service authentication; defines the labimage.admin app role). Required: see docs/deploy.md.')
@minLength(36)
param authClientId string

@description('Application ID URI of that registration (the token audience). Default: api://<authClientId>.')
param authAudience string = ''

@description('Object id of a person to grant data access for debugging (optional).')
param principalId string = ''

@description('E-mail address the alert rules notify (an action group). Empty: the alerts show in the portal only.')
param alertEmail string = ''

var token = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName, application: 'labimage' }
var appGroupName = !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
var buildGroupName = !empty(buildResourceGroupName) ? buildResourceGroupName : 'rg-${environmentName}-builds'

resource appGroup 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: appGroupName
  location: location
  tags: tags
}

resource buildGroup 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: buildGroupName
  location: location
  tags: tags
}

// The controller identity's roles, custom and built-in, per scope: one file the emulator
// (localcloud) reads too, so what it enforces is what this template grants.
var roles = loadJsonContent('roles.json')
var imagePublisher = roles.customRoles.imagePublisher
var vmStopper = roles.customRoles.vmStopper

// What capture needs beyond Virtual Machine Contributor: managed images and gallery versions.
resource imagePublisherRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'labimage-image-publisher')
  properties: {
    roleName: '${imagePublisher.roleName} (${environmentName})'
    description: imagePublisher.description
    type: 'CustomRole'
    assignableScopes: [buildGroup.id]
    permissions: [
      {
        actions: imagePublisher.actions
        notActions: imagePublisher.notActions
        dataActions: imagePublisher.dataActions
        notDataActions: imagePublisher.notDataActions
      }
    ]
  }
}

// Auto-stop outside the build group: list VMs, deallocate them, snooze them (tags).
resource vmStopperRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (!empty(autostopResourceGroups)) {
  name: guid(subscription().id, environmentName, 'labimage-vm-stopper')
  properties: {
    roleName: '${vmStopper.roleName} (${environmentName})'
    description: vmStopper.description
    type: 'CustomRole'
    assignableScopes: [for group in autostopResourceGroups: subscriptionResourceId('Microsoft.Resources/resourceGroups', group)]
    permissions: [
      {
        actions: vmStopper.actions
        notActions: vmStopper.notActions
        dataActions: vmStopper.dataActions
        notDataActions: vmStopper.notDataActions
      }
    ]
  }
}

module app 'modules/app.bicep' = {
  name: 'labimage-app'
  scope: appGroup
  params: {
    location: location
    tags: tags
    token: token
    buildResourceGroupName: buildGroup.name
    dataStorageAccountName: dataStorageAccountName
    dataContainers: dataContainers
    autostopResourceGroups: union([buildGroup.name], autostopResourceGroups)
    sshSourceCidr: sshSourceCidr
    authClientId: authClientId
    authAudience: !empty(authAudience) ? authAudience : 'api://${authClientId}'
    principalId: principalId
    alertEmail: alertEmail
  }
}

module buildRoles 'modules/build-roles.bicep' = {
  name: 'labimage-build-roles'
  scope: buildGroup
  params: {
    principalId: app.outputs.identityPrincipalId
    imagePublisherRoleId: imagePublisherRole.id
  }
}

module dataRoles 'modules/data-roles.bicep' = if (!empty(dataStorageAccountName)) {
  name: 'labimage-data-roles'
  scope: resourceGroup(!empty(dataStorageResourceGroupName) ? dataStorageResourceGroupName : appGroupName)
  params: {
    principalId: app.outputs.identityPrincipalId
    storageAccountName: dataStorageAccountName
  }
}

module autostopRoles 'modules/autostop-roles.bicep' = [for group in autostopResourceGroups: {
  name: 'labimage-autostop-${uniqueString(group)}'
  scope: resourceGroup(group)
  params: {
    principalId: app.outputs.identityPrincipalId
    vmStopperRoleId: !empty(autostopResourceGroups) ? vmStopperRole.id : ''
  }
}]

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = appGroup.name
output LABIMAGE_BUILD_RESOURCE_GROUP string = buildGroup.name
output AZURE_FUNCTION_APP_NAME string = app.outputs.functionAppName
output LABIMAGE_API_URL string = app.outputs.apiUrl
output AZURE_KEY_VAULT_URL string = app.outputs.keyVaultUrl
