// The controller: a Python 3.11 Function App on the Flex Consumption plan, running as the
// user-assigned identity, with every setting the code reads (see local.settings.sample.json;
// tests/unit/test_settings_sets.py keeps the three lists equal).
param location string
param tags object
param name string
param identityId string
param identityClientId string
param storageAccountName string
param storageBlobEndpoint string
param deploymentContainerName string
param dataStorageAccountName string
param dataContainers string
@secure()
param applicationInsightsConnectionString string
param keyVaultUrl string
param buildResourceGroupName string
param autostopResourceGroups array
param sshSourceCidr string

@description('Client id of the Microsoft Entra app registration people sign in to (App Service authentication); it defines the labimage.admin app role. See docs/deploy.md.')
@minLength(36)
param authClientId string

@description('Application ID URI of that registration (the audience of tokens the CLI gets), e.g. api://<client id>.')
param authAudience string

@description('Largest number of instances the plan may scale out to.')
param maximumInstanceCount int = 40

@allowed([2048, 4096])
param instanceMemoryMB int = 2048

var armEndpoint = environment().resourceManager
var armEndpointNoSlash = endsWith(armEndpoint, '/') ? substring(armEndpoint, 0, length(armEndpoint) - 1) : armEndpoint

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${name}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true // Linux
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: {
    // Storage through the managed identity (identity-based connections, no keys).
    AzureWebJobsStorage__accountName: storageAccountName
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    LABIMAGE_DATA_STORAGE__accountName: dataStorageAccountName
    LABIMAGE_DATA_CONTAINERS: dataContainers
    AZURE_CLIENT_ID: identityClientId
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
    // Where builds go.
    AZURE_SUBSCRIPTION_ID: subscription().subscriptionId
    LABIMAGE_RESOURCE_GROUP: buildResourceGroupName
    LABIMAGE_LOCATION: location
    LABIMAGE_ARM_ENDPOINT: armEndpointNoSlash
    LABIMAGE_ARM_CA_BUNDLE: ''
    LABIMAGE_SSH_KEY_DIR: ''
    // The workstations' link-signing key is a Key Vault secret on Azure; this is offline only.
    LABIMAGE_WORKSTATION_LINK_KEY: ''
    LABIMAGE_KEY_VAULT_URL: keyVaultUrl
    LABIMAGE_SSH_SOURCE_CIDR: sshSourceCidr
    // The queue other services submit build requests to (same body as POST /api/builds).
    BUILD_REQUESTS_QUEUE: 'build-requests'
    // Timers (NCRONTAB, UTC).
    AUTOSTOP_SCHEDULE: '0 */15 * * * *'
    WATCHDOG_SCHEDULE: '0 */5 * * * *'
    SWEEPER_SCHEDULE: '0 0 * * * *'
    IDLE_SCHEDULE: '0 */10 * * * *'
    WORKSTATION_SCHEDULE: '0 */5 * * * *'
    // Cost guards.
    LABIMAGE_AUTOSTOP_RESOURCE_GROUPS: join(autostopResourceGroups, ',')
    LABIMAGE_AUTOSTOP_CONCURRENCY: '8'
    LABIMAGE_AUTOSTOP_CATCH_UP_HOURS: '6'
    LABIMAGE_AUTOSTOP_WEBHOOK_URL: ''
    LABIMAGE_AUTOSTOP_WARN_MINUTES: '30'
    LABIMAGE_PUBLIC_URL: 'https://${site.properties.defaultHostName}'
    LABIMAGE_SNOOZE_MAX_HOURS: '12'
    LABIMAGE_IDLE_MINUTES: '60'
    LABIMAGE_IDLE_CPU_PERCENT: '10'
    LABIMAGE_SWEEPER_GRACE_HOURS: '2'
    LABIMAGE_INSTALL_PARALLEL: '4'
    LABIMAGE_SPANS_FILE: ''
  }
}

output name string = site.name
output url string = 'https://${site.properties.defaultHostName}'

// App Service authentication (Microsoft Entra ID) in front of the user routes: sign-in is
// required and answered 401 without it; the OpenAPI document and the automation routes (function
// keys, acting as an administrator) are left out. The platform, validation and login parts are
// infra/authsettings.json, which localcloud's Functions host applies too.
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'authsettingsV2'
  properties: union(loadJsonContent('../authsettings.json'), {
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: authClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            authAudience
            authClientId
          ]
        }
      }
    }
  })
}
