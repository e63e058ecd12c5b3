// A pool beside an application, in its existing resource group, for a group of developers and the
// application's managed identity. `pulumi package add github.com/<org>/dynamic-sessions/package@v0.1.0`
// generates the "@pulumi/dynamic-sessions" SDK this imports.
import * as azure from "@pulumi/azure-native";
import * as dynamicSessions from "@pulumi/dynamic-sessions";

const identity = new azure.managedidentity.UserAssignedIdentity("agent", {
    resourceGroupName: "rg-agents-app",
    location: "westeurope",
});

const pool = new dynamicSessions.CodeInterpreterPool("pool", {
    createResourceGroup: false,
    resourceGroupName: "rg-agents-app",
    location: "westeurope",
    maxSessions: 20,
    assignDeployer: false,
    executors: [
        { principalId: "3f2b8c1e-6d4a-4e7b-9a5c-1d2e3f4a5b6c", principalType: "Group" },
        { principalId: identity.principalId, principalType: "ServicePrincipal" },
    ],
});

export const poolManagementEndpoint = pool.poolManagementEndpoint;
