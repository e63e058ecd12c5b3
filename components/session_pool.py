"""The component: a resource group, a NodeLTS code-interpreter session pool, its executor roles and,
when asked, a management lock on the group.

It declares resources only; the settings and the role assignment plan arrive validated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import app, authorization, resources

from components.access import ExecutorGrant
from components.azure import LIFECYCLE_TYPE_TIMED, POOL_MANAGEMENT_TYPE_DYNAMIC
from components.settings import CONFIG_NAMESPACE, NO_LOCK, PoolSettings

# The component's Pulumi type token, <package>:<module>:<Type>.
COMPONENT_TYPE = f"{CONFIG_NAMESPACE}:index:CodeInterpreterPool"


@dataclass(frozen=True)
class CodeInterpreterPoolArgs:
    """What the component needs: the stack's settings and the role assignments to create."""

    settings: PoolSettings
    executor_grants: Sequence[ExecutorGrant]


def lock_name(settings: PoolSettings) -> str:
    """The management lock's name: fixed per pool, so changing the level updates the lock in place."""
    return f"{settings.pool_name}-lock"


def lock_notes(settings: PoolSettings) -> str:
    """What someone who meets the lock in the portal reads: who owns it and how it is lifted."""
    return (
        f"Managed by Pulumi stack {settings.stack} of project {settings.project}. To lift it, set "
        f"{CONFIG_NAMESPACE}:lock to {NO_LOCK} and run pulumi up (docs/teardown.md)."
    )


class CodeInterpreterPool(pulumi.ComponentResource):
    """A dynamic-sessions code-interpreter pool in its own resource group, with executor roles.

    Every stack output is an attribute here and registered with `register_outputs`; `outputs`
    maps each output's name to its value for the program to export.
    """

    resource_group: resources.ResourceGroup
    session_pool: app.ContainerAppsSessionPool
    role_assignments: list[authorization.RoleAssignment]
    lock: authorization.ManagementLockAtResourceGroupLevel | None

    resource_group_name: pulumi.Output[str]
    session_pool_name: pulumi.Output[str]
    session_pool_id: pulumi.Output[str]
    pool_management_endpoint: pulumi.Output[str]
    location: pulumi.Output[str]
    container_type: pulumi.Output[str]
    network_status: pulumi.Output[str | None]
    executor_principal_ids: pulumi.Output[list[str]]
    lock_level: pulumi.Output[str]

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

        # The lock waits for every other resource: a ReadOnly lock taken earlier would refuse the
        # pool and the role assignments. Pulumi deletes dependents first, so `pulumi destroy`
        # removes the lock before anything it guards. It is not `protect`ed itself: it is the
        # protection, and `lock: none` must be able to delete it with a plain `pulumi up`.
        self.lock = None
        if settings.lock is not None:
            self.lock = authorization.ManagementLockAtResourceGroupLevel(
                f"{name}-lock",
                resource_group_name=self.resource_group.name,
                lock_name=lock_name(settings),
                level=settings.lock,
                notes=lock_notes(settings),
                opts=pulumi.ResourceOptions(
                    parent=self,
                    delete_before_replace=True,
                    depends_on=[self.session_pool, *self.role_assignments],
                ),
            )

        self.resource_group_name = self.resource_group.name
        self.session_pool_name = self.session_pool.name
        self.session_pool_id = self.session_pool.id
        self.pool_management_endpoint = self.session_pool.pool_management_endpoint
        self.location = self.session_pool.location
        self.container_type = self.session_pool.container_type
        self.network_status = self.session_pool.session_network_configuration.apply(lambda net: net and net.status)
        self.executor_principal_ids = pulumi.Output.all(*(ra.principal_id for ra in self.role_assignments))
        self.lock_level = self.lock.level if self.lock is not None else pulumi.Output.from_input(NO_LOCK)
        self.register_outputs(self.outputs)

    @property
    def outputs(self) -> dict[str, pulumi.Output]:
        """The stack outputs, by the name the stack exports them under."""
        return {
            "resourceGroupName": self.resource_group_name,
            "sessionPoolName": self.session_pool_name,
            "sessionPoolId": self.session_pool_id,
            "poolManagementEndpoint": self.pool_management_endpoint,
            "location": self.location,
            "containerType": self.container_type,
            "networkStatus": self.network_status,
            "executorPrincipalIds": self.executor_principal_ids,
            "lock": self.lock_level,
        }
