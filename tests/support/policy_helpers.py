"""Builders for policy tests: resource inputs as the program sends them, and the arguments and
report_violation callback that the Pulumi CLI would hand a policy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_NUMBER_VALUE, UNKNOWN_STRING_VALUE, unknown_checking_proxy

from components.azure import SESSION_EXECUTOR_ROLE_ID, role_definition_id, session_pool_id
from components.session_pool import COMPONENT_TYPE
from components.settings import CONFIG_NAMESPACE
from policy.guardrails import RESOURCE_GROUP_TYPE, ROLE_ASSIGNMENT_TYPE, SESSION_POOL_TYPE

PROJECT = CONFIG_NAMESPACE
SUBSCRIPTION_ID = "11111111-2222-4333-8444-555555555555"
RESOURCE_GROUP = "rg-dynamic-sessions-test"
POOL_NAME = "dynamicsessionstest"
POOL_SCOPE = session_pool_id(SUBSCRIPTION_ID, RESOURCE_GROUP, POOL_NAME)
EXECUTOR_ROLE = role_definition_id(SUBSCRIPTION_ID, SESSION_EXECUTOR_ROLE_ID)
PRINCIPAL_ID = "99999999-8888-4777-8666-555555555555"

# What the CLI sends for values that are only known once the deploy runs.
UNKNOWN_STRING = UNKNOWN_STRING_VALUE
UNKNOWN_NUMBER = UNKNOWN_NUMBER_VALUE

PRODUCTION_TAGS = {"owner": "platform-team", "costCenter": "cc-1234"}


def urn(stack: str, resource_type: str, name: str) -> str:
    """The URN of a child of the component, as the engine builds it."""
    return f"urn:pulumi:{stack}::{PROJECT}::{COMPONENT_TYPE}${resource_type}::{name}"


def make_args(
    resource_type: str,
    props: Mapping[str, Any],
    *,
    stack: str = "dev",
    name: str = "test",
    protect: bool = False,
) -> ResourceValidationArgs:
    """Arguments for a resource policy, with inputs behind pulumi-policy's unknown-checking proxy."""
    options = PolicyResourceOptions(
        protect=protect,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=None,
    )
    return ResourceValidationArgs(
        resource_type, unknown_checking_proxy(dict(props)), urn(stack, resource_type, name), name, options, None
    )


@dataclass
class Collector:
    """A report_violation callback that keeps what it was told."""

    messages: list[str] = field(default_factory=list)

    def __call__(self, message: str, urn: str | None = None) -> None:
        self.messages.append(message)


def violations(policy: ResourceValidationPolicy, args: ResourceValidationArgs) -> list[str]:
    """Run one policy's validate on one resource and return the violation messages."""
    collector = Collector()
    policy.validate(args, collector)
    return collector.messages


def as_wire(value: Any) -> Any:
    """Numbers reach a policy as floats (the engine's JSON numbers); everything else as given."""
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def pool_props(
    *,
    max_sessions: Any = 5,
    cooldown: Any = 300,
    network_status: Any = "EgressDisabled",
    tags: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A session pool's wire inputs (numbers as floats, as they arrive from the engine)."""
    return {
        "resourceGroupName": RESOURCE_GROUP,
        "sessionPoolName": POOL_NAME,
        "location": "northcentralus",
        "containerType": "NodeLTS",
        "poolManagementType": "Dynamic",
        "scaleConfiguration": {"maxConcurrentSessions": as_wire(max_sessions)},
        "dynamicPoolConfiguration": {
            "lifecycleConfiguration": {"lifecycleType": "Timed", "cooldownPeriodInSeconds": as_wire(cooldown)}
        },
        "sessionNetworkConfiguration": {"status": network_status},
        "tags": dict(tags if tags is not None else PRODUCTION_TAGS),
    }


def resource_group_props(tags: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A resource group's wire inputs."""
    return {
        "resourceGroupName": RESOURCE_GROUP,
        "location": "northcentralus",
        "tags": dict(tags if tags is not None else PRODUCTION_TAGS),
    }


def role_assignment_props(*, role: Any = EXECUTOR_ROLE, scope: Any = POOL_SCOPE) -> dict[str, Any]:
    """A role assignment's wire inputs."""
    return {
        "roleAssignmentName": "0d2c3b4a-1111-5222-9333-444455556666",
        "roleDefinitionId": role,
        "principalId": PRINCIPAL_ID,
        "principalType": "ServicePrincipal",
        "scope": scope,
    }


def lock_props(*, level: Any = "CanNotDelete", resource_group: Any = RESOURCE_GROUP) -> dict[str, Any]:
    """A resource group management lock's wire inputs."""
    return {"resourceGroupName": resource_group, "lockName": f"{POOL_NAME}-lock", "level": level, "notes": "n"}


@dataclass(frozen=True)
class FakeRegisteredResource:
    """A resource shaped like the offline harness's RegisteredResource, built by hand."""

    type: str
    name: str
    inputs: dict[str, Any]
    stack: str = "dev"
    protect: bool = False
    parent: str = ""
    # The URNs each input waits for, by input name (the lock's resourceGroupName: the group's URN).
    property_dependencies: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def urn(self) -> str:
        return urn(self.stack, self.type, self.name)


__all__ = [
    "EXECUTOR_ROLE",
    "POOL_SCOPE",
    "RESOURCE_GROUP_TYPE",
    "ROLE_ASSIGNMENT_TYPE",
    "SESSION_POOL_TYPE",
    "SUBSCRIPTION_ID",
    "Collector",
    "FakeRegisteredResource",
    "lock_props",
    "make_args",
    "pool_props",
    "resource_group_props",
    "role_assignment_props",
    "violations",
]
