"""A pool beside an application, in its existing resource group, for a group of developers and the application's
managed identity. `pulumi package add github.com/<org>/dynamic-sessions/package@v0.1.0` generates the
pulumi_dynamic_sessions SDK this imports."""

import pulumi
import pulumi_dynamic_sessions as dynamic_sessions
from pulumi_azure_native import managedidentity

identity = managedidentity.UserAssignedIdentity("agent", resource_group_name="rg-agents-app", location="westeurope")

pool = dynamic_sessions.CodeInterpreterPool(
    "pool",
    create_resource_group=False,
    resource_group_name="rg-agents-app",
    location="westeurope",
    max_sessions=20,
    assign_deployer=False,
    executors=[
        {"principal_id": "3f2b8c1e-6d4a-4e7b-9a5c-1d2e3f4a5b6c", "principal_type": "Group"},
        {"principal_id": identity.principal_id, "principal_type": "ServicePrincipal"},
    ],
)

pulumi.export("poolManagementEndpoint", pool.pool_management_endpoint)
