"""Who gets the Session Executor role on the pool, and under which deterministic assignment name.

Pure Python: the plan is computed and checked before any resource is registered.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from components.azure import GUID_PATTERN, SESSION_EXECUTOR_ROLE_ID, role_definition_id, session_pool_id
from components.settings import CONFIG_NAMESPACE, PoolSettings, SettingsError

# Namespace of this project's role assignment names (uuid5), so that the same (scope, principal,
# role) always yields the same name: a second `pulumi up` changes nothing and never collides.
ROLE_ASSIGNMENT_NAMESPACE = uuid.UUID("5b0e7f64-3c1a-4f0e-9d7e-2a6c1d9b8e41")

DEPLOYER_LABEL = "deployer"


@dataclass(frozen=True)
class DeploymentIdentity:
    """The subscription deployed into and the identity running the deploy (from getClientConfig)."""

    subscription_id: str
    object_id: str


@dataclass(frozen=True)
class ExecutorGrant:
    """One Session Executor role assignment on the pool."""

    label: str
    principal_id: str
    principal_type: str
    assignment_name: str
    role_definition_id: str


def role_assignment_name(scope: str, principal_id: str, role_id: str = SESSION_EXECUTOR_ROLE_ID) -> str:
    """Return the deterministic GUID name of the assignment of `role_id` to a principal at `scope`."""
    key = "|".join(part.lower() for part in (scope, principal_id, role_id))
    return str(uuid.uuid5(ROLE_ASSIGNMENT_NAMESPACE, key))


def plan_executor_grants(settings: PoolSettings, identity: DeploymentIdentity) -> tuple[ExecutorGrant, ...]:
    """List the role assignments the stack needs: the deployer (if asked) and every executor.

    Raises SettingsError when the deployer cannot be granted or is also listed as an executor
    (Azure would reject the second, identical assignment).
    """
    scope = session_pool_id(identity.subscription_id, settings.resource_group_name, settings.pool_name)
    role_id = role_definition_id(identity.subscription_id)
    principals: list[tuple[str, str, str]] = []
    if settings.assign_deployer:
        if not GUID_PATTERN.fullmatch(identity.object_id or ""):
            raise SettingsError(
                [
                    f"{CONFIG_NAMESPACE}:assignDeployer = true: the object id of the identity running the "
                    f"deploy is unknown ({identity.object_id!r}); set assignDeployer to false and list "
                    "the principals under executors instead."
                ],
                settings.stack,
            )
        deployer = identity.object_id.lower()
        for index, executor in enumerate(settings.executors):
            if executor.principal_id == deployer:
                raise SettingsError(
                    [
                        f"{CONFIG_NAMESPACE}:executors[{index}].principalId = {executor.principal_id!r}: "
                        "this is the identity running the deploy, which assignDeployer already grants; "
                        "remove it from executors or set assignDeployer to false."
                    ],
                    settings.stack,
                )
        principals.append((DEPLOYER_LABEL, deployer, settings.deployer_principal_type))
    principals += [
        (executor.principal_id, executor.principal_id, executor.principal_type) for executor in settings.executors
    ]
    return tuple(
        ExecutorGrant(
            label=label,
            principal_id=principal_id,
            principal_type=principal_type,
            assignment_name=role_assignment_name(scope, principal_id),
            role_definition_id=role_id,
        )
        for label, principal_id, principal_type in principals
    )
