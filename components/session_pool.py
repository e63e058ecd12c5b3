"""The component: a resource group, a NodeLTS code-interpreter session pool and its executor roles.

It declares resources only; the settings and the role assignment plan arrive validated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import app, authorization, resources

from components.access import ExecutorGrant
from components.azure import LIFECYCLE_TYPE_TIMED, POOL_MANAGEMENT_TYPE_DYNAMIC
from components.settings import PoolSettings

COMPONENT_TYPE = "dynamic-sessions:index:CodeInterpreterPool"


@dataclass(frozen=True)
class CodeInterpreterPoolArgs:
    """What the component needs: the stack's settings and the role assignments to create."""

    settings: PoolSettings
    executor_grants: Sequence[ExecutorGrant]


class CodeInterpreterPool(pulumi.ComponentResource):
    """A dynamic-sessions code-interpreter pool in its own resource group, with executor roles."""

    resource_group: resources.ResourceGroup
    session_pool: app.ContainerAppsSessionPool
    role_assignments: list[authorization.RoleAssignment]
    pool_management_endpoint: pulumi.Output[str]

    def __init__(self, name: str, args: CodeInterpreterPoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(COMPONENT_TYPE, name, None, opts)
        settings = args.settings
        # Names are fixed (not auto-named), so a replacement must delete the old resource first.
        kept = pulumi.ResourceOptions(parent=self, protect=settings.protect, delete_before_replace=True)

        self.resource_group = resources.ResourceGroup(
            f"{name}-rg",
            resource_group_name=settings.resource_group_name,
            location=settings.location,
            tags=settings.resource_tags,
            opts=kept,
        )

        scale: app.ScaleConfigurationArgsDict = {"max_concurrent_sessions": settings.max_sessions}
        if settings.ready_sessions is not None:
            scale["ready_session_instances"] = settings.ready_sessions
        self.session_pool = app.ContainerAppsSessionPool(
            f"{name}-pool",
            resource_group_name=self.resource_group.name,
            session_pool_name=settings.pool_name,
            location=settings.location,
            # A plain string: the SDK's ContainerType enum lacks NodeLTS, but the API's enum is open.
            container_type=settings.container_type,
            pool_management_type=POOL_MANAGEMENT_TYPE_DYNAMIC,
            scale_configuration=scale,
            dynamic_pool_configuration={
                "lifecycle_configuration": {
                    "lifecycle_type": LIFECYCLE_TYPE_TIMED,
                    "cooldown_period_in_seconds": settings.cooldown_seconds,
                }
            },
            session_network_configuration={"status": settings.network_status},
            tags=settings.resource_tags,
            opts=kept,
        )

        # Least privilege: each grant is scoped to the pool itself, never the group or subscription.
        self.role_assignments = [
            authorization.RoleAssignment(
                f"{name}-executor-{grant.label}",
                role_assignment_name=grant.assignment_name,
                role_definition_id=grant.role_definition_id,
                principal_id=grant.principal_id,
                principal_type=grant.principal_type,
                scope=self.session_pool.id,
                opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
            )
            for grant in args.executor_grants
        ]

        self.pool_management_endpoint = self.session_pool.pool_management_endpoint
        self.register_outputs(
            {
                "resourceGroupName": self.resource_group.name,
                "sessionPoolId": self.session_pool.id,
                "poolManagementEndpoint": self.pool_management_endpoint,
            }
        )
