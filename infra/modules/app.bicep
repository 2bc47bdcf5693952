// The controller's resource group: identity, storage, monitoring, Key Vault and the Function App.
param location string
param tags object
param token string
param buildResourceGroupName string
param dataStorageAccountName string
param dataContainers string
param autostopResourceGroups array
param sshSourceCidr string
param authClientId string
param authAudience string
param principalId string
param alertEmail string

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-labimage-${token}'
  location: location
  tags: tags
}

module storage 'storage.bicep' = {
  name: 'labimage-storage'
  params: {
    location: location
    tags: tags
    name: 'stlabimage${take(token, 14)}'
    deploymentContainerName: 'app-package'
  }
}

module monitoring 'monitoring.bicep' = {
  name: 'labimage-monitoring'
  params: {
    location: location
    tags: tags
    token: token
    alertEmail: alertEmail
  }
}

module vault 'keyvault.bicep' = {
  name: 'labimage-keyvault'
  params: {
    location: location
    tags: tags
    name: 'kv-labimage-${take(token, 11)}'
  }
}

module roles 'app-roles.bicep' = {
  name: 'labimage-app-roles'
  params: {
    principalId: identity.properties.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: vault.outputs.name
    userPrincipalId: principalId
  }
}

module functionApp 'functionapp.bicep' = {
  name: 'labimage-functionapp'
  dependsOn: [roles] // the host needs its storage roles before its first start
  params: {
    location: location
    tags: tags
    name: 'func-labimage-${token}'
    identityId: identity.id
    identityClientId: identity.properties.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: 'app-package'
    // Never the controller's own account: its containers hold host keys and the package.
    dataStorageAccountName: dataStorageAccountName
    dataContainers: dataContainers
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    keyVaultUrl: vault.outputs.url
    buildResourceGroupName: buildResourceGroupName
    autostopResourceGroups: autostopResourceGroups
    sshSourceCidr: sshSourceCidr
    authClientId: authClientId
    authAudience: authAudience
  }
}

output identityPrincipalId string = identity.properties.principalId
output functionAppName string = functionApp.outputs.name
output apiUrl string = functionApp.outputs.url
output keyVaultUrl string = vault.outputs.url
