"""Who gets the Session Executor role on the pool, and under which deterministic assignment name.

Pure Python: the component checks the deployer and names each assignment before it registers anything.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from components.azure import GUID_PATTERN, SESSION_EXECUTOR_ROLE_ID
from components.settings import Executor, PoolSettings, SettingsError

# Namespace of this project's role assignment names (uuid5), so that the same (scope, principal,
# role) always yields the same name: a second `pulumi up` changes nothing and never collides.
ROLE_ASSIGNMENT_NAMESPACE = uuid.UUID("5b0e7f64-3c1a-4f0e-9d7e-2a6c1d9b8e41")

DEPLOYER_LABEL = "deployer"


@dataclass(frozen=True)
class DeploymentIdentity:
    """The subscription deployed into and the identity running the deploy (from getClientConfig)."""

    subscription_id: str
    object_id: str


def role_assignment_name(scope: str, principal_id: str, role_id: str = SESSION_EXECUTOR_ROLE_ID) -> str:
    """Return the deterministic GUID name of the assignment of `role_id` to a principal at `scope`."""
    key = "|".join(part.lower() for part in (scope, principal_id, role_id))
    return str(uuid.uuid5(ROLE_ASSIGNMENT_NAMESPACE, key))


def subscription_of(resource_id: str) -> str:
    """The subscription id in an Azure resource id (/subscriptions/<id>/...)."""
    return resource_id.split("/")[2]


def deployer_executor(
    settings: PoolSettings, identity: DeploymentIdentity, component: str | None = None
) -> Executor | None:
    """The deployer as an executor when assignDeployer asks for it, else None.

    Raises SettingsError when the deployer cannot be granted or is also listed as an executor (Azure
    would reject the second, identical assignment). Executors known only later are checked with
    `check_not_deployer` once known.
    """
    if not settings.assign_deployer:
        return None
    if not GUID_PATTERN.fullmatch(identity.object_id or ""):
        raise SettingsError(
            [
                f"assignDeployer = true: the object id of the identity running the deploy is unknown "
                f"({identity.object_id!r}); set assignDeployer to false and list the principals under "
                "executors instead."
            ],
            settings.stack,
            component=component,
        )
    deployer = identity.object_id.lower()
    for index, executor in enumerate(settings.executors):
        if isinstance(executor.principal_id, str):
            check_not_deployer(index, executor.principal_id, deployer, settings.stack, component)
    return Executor(deployer, settings.deployer_principal_type)


def check_not_deployer(index: int, principal_id: str, deployer: str, stack: str, component: str | None) -> None:
    """Refuse an executor that is the deployer, whom assignDeployer already grants."""
    if principal_id.lower() == deployer:
        raise SettingsError(
            [
                f"executors[{index}].principalId = {principal_id!r}: this is the identity running the deploy, "
                "which assignDeployer already grants; remove it from executors or set assignDeployer to false."
            ],
            stack,
            component=component,
        )
