// Registers botloom as an Azure Bot, enables the Microsoft Teams and Direct Line / Web Chat
// channels, and points the messaging endpoint at the deployment (the Ingress or tunnel in front
// of `botloom serve`). Deploy into a resource group:
//
//   az deployment group create -g <group> -f deployment/azure/main.bicep \
//     -p botName=<unique-name> messagingEndpoint=https://<host>/api/messages appId=<client-id>
//
// Azure no longer accepts new MultiTenant bots, so the identity is SingleTenant (an Entra app
// registration in this tenant: MicrosoftAppId + MicrosoftAppPassword) or UserAssignedMSI (a
// managed identity this template creates; the bot must then run where it can use that identity).

@description('The Azure Bot resource name (the bot handle): unique across Azure, 2 to 64 characters.')
@minLength(2)
@maxLength(64)
param botName string

@description('The name people see in channels.')
param displayName string = 'botloom'

@description('The public HTTPS URL that channels POST activities to, ending in /api/messages.')
param messagingEndpoint string

@description('SingleTenant (an app registration, with a client secret) or UserAssignedMSI (a managed identity created here).')
@allowed([
  'SingleTenant'
  'UserAssignedMSI'
])
param appType string = 'SingleTenant'

@description('SingleTenant: the app registration\'s application (client) id, which is MicrosoftAppId.')
param appId string = ''

@description('The Entra tenant of the app registration: MicrosoftAppTenantId.')
param tenantId string = tenant().tenantId

@description('F0 is free (standard channels only, message quota); S1 is the paid tier.')
@allowed([
  'F0'
  'S1'
])
param sku string = 'F0'

@description('Where the managed identity (UserAssignedMSI only) lives; the bot itself is global.')
param location string = resourceGroup().location

var useManagedIdentity = appType == 'UserAssignedMSI'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = if (useManagedIdentity) {
  name: '${botName}-identity'
  location: location
}

resource bot 'Microsoft.BotService/botServices@2022-09-15' = {
  name: botName
  location: 'global'
  kind: 'azurebot'
  sku: {
    name: sku
  }
  properties: {
    displayName: displayName
    endpoint: messagingEndpoint
    msaAppType: appType
    msaAppId: useManagedIdentity ? identity.properties.clientId : appId
    msaAppTenantId: useManagedIdentity ? identity.properties.tenantId : tenantId
    msaAppMSIResourceId: useManagedIdentity ? identity.id : null
  }
}

resource teamsChannel 'Microsoft.BotService/botServices/channels@2022-09-15' = {
  parent: bot
  name: 'MsTeamsChannel'
  location: 'global'
  properties: {
    channelName: 'MsTeamsChannel'
    properties: {
      isEnabled: true
      enableCalling: false
    }
  }
}

resource directLineChannel 'Microsoft.BotService/botServices/channels@2022-09-15' = {
  parent: bot
  name: 'DirectLineChannel'
  location: 'global'
  properties: {
    channelName: 'DirectLineChannel'
    properties: {
      sites: [
        {
          siteName: 'botloom'
          isEnabled: true
          isV1Enabled: false
          isV3Enabled: true
          isSecureSiteEnabled: false
        }
      ]
    }
  }
}

resource webChatChannel 'Microsoft.BotService/botServices/channels@2022-09-15' = {
  parent: bot
  name: 'WebChatChannel'
  location: 'global'
  properties: {
    channelName: 'WebChatChannel'
    properties: {
      sites: [
        {
          siteName: 'botloom'
          isEnabled: true
          isWebchatPreviewEnabled: true
        }
      ]
    }
  }
}

@description('The bot\'s resource id.')
output botResourceId string = bot.id

@description('MicrosoftAppId for the bot\'s settings (and botId in the Teams app manifest).')
output microsoftAppId string = bot.properties.msaAppId

@description('MicrosoftAppTenantId for the bot\'s settings.')
output microsoftAppTenantId string = bot.properties.msaAppTenantId

@description('MicrosoftAppType for the bot\'s settings.')
output microsoftAppType string = appType
