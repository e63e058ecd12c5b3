"""Run the pack's policies over resources registered without a Pulumi CLI (e.g. under mocks).

The Pulumi CLI hands each resource to a resource policy as ResourceValidationArgs, and every
resource at once to a stack policy as StackValidationArgs; this builds the same arguments from any
object shaped like the offline harness's RegisteredResource (type, name, urn, inputs, parent,
protect, property_dependencies) and collects every violation with the enforcement level the CLI
would give it. Values go through pulumi-policy's unknown-checking proxy, as they do under the CLI.

A resource policy sees a resource's inputs; a stack policy sees its outputs, which for
pulumi-azure-native lack the input-only path parameters (`resourceGroupName`, `lockName`, ...).
So a stack policy gets the inputs cut down to the properties the SDK's class declares as outputs,
and each resource's dependencies as PolicyResource objects, as the CLI links them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pulumi.output
from pulumi_azure_native import app, authorization, resources
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from components.azure import MANAGEMENT_LOCK_TYPE, RESOURCE_GROUP_TYPE, ROLE_ASSIGNMENT_TYPE, SESSION_POOL_TYPE
from policy.guardrails import POLICIES

# The SDK class of each resource type the program declares: its getters are the outputs.
SDK_CLASSES: dict[str, type[pulumi.CustomResource]] = {
    RESOURCE_GROUP_TYPE: resources.ResourceGroup,
    SESSION_POOL_TYPE: app.ContainerAppsSessionPool,
    ROLE_ASSIGNMENT_TYPE: authorization.RoleAssignment,
    MANAGEMENT_LOCK_TYPE: authorization.ManagementLockAtResourceGroupLevel,
}


class RegisteredResourceLike(Protocol):
    """What the adapter reads from a registered resource."""

    type: str
    name: str
    urn: str
    inputs: Mapping[str, Any]
    parent: str
    protect: bool
    property_dependencies: Mapping[str, Iterable[str]]


@dataclass(frozen=True)
class Violation:
    """One policy violation, as the CLI would print it."""

    policy: str
    enforcement_level: EnforcementLevel
    urn: str
    resource_type: str
    message: str

    @property
    def mandatory(self) -> bool:
        """Whether this violation would stop `pulumi preview` / `pulumi up`."""
        return self.enforcement_level == EnforcementLevel.MANDATORY


def _as_wire_value(value: Any) -> Any:
    """Copy inputs, replacing the SDK's Unknown with the sentinel the CLI sends for unknowns."""
    if isinstance(value, pulumi.output.Unknown):
        return UNKNOWN_STRING_VALUE
    if isinstance(value, Mapping):
        return {str(key): _as_wire_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_wire_value(item) for item in value]
    return value


def _options(resource: RegisteredResourceLike) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=bool(resource.protect),
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=resource.parent or None,
    )


def _props(resource: RegisteredResourceLike) -> Any:
    return unknown_checking_proxy(_as_wire_value(dict(resource.inputs)))


def output_names(resource_type: str) -> frozenset[str]:
    """The wire names of the outputs the SDK declares for `resource_type` (its `pulumi.getter`s).

    The SDK keeps each getter's wire name on the function (pulumi._types sets `_pulumi_name`);
    a test fails if that ever changes.
    """
    cls = SDK_CLASSES[resource_type]
    return frozenset(
        member.fget._pulumi_name
        for member in vars(cls).values()
        if isinstance(member, property) and hasattr(member.fget, "_pulumi_name")
    )


def _output_props(resource: RegisteredResourceLike) -> Any:
    """The resource's inputs as the outputs a stack policy would see (input-only properties gone)."""
    inputs = _as_wire_value(dict(resource.inputs))
    if resource.type in SDK_CLASSES:
        names = output_names(resource.type)
        inputs = {key: value for key, value in inputs.items() if key in names}
    return unknown_checking_proxy(inputs)


def validation_args(resource: RegisteredResourceLike) -> ResourceValidationArgs:
    """Build the arguments the CLI would pass to a resource policy for `resource`."""
    return ResourceValidationArgs(
        resource.type, _props(resource), resource.urn, resource.name, _options(resource), None
    )


def stack_validation_args(resources: Iterable[RegisteredResourceLike]) -> StackValidationArgs:
    """Build the arguments the CLI would pass to a stack policy: outputs, parents and dependencies."""
    resources = list(resources)
    by_urn = {
        r.urn: PolicyResource(r.type, _output_props(r), r.urn, r.name, _options(r), None, None, [], {})
        for r in resources
    }
    for r in resources:
        linked = by_urn[r.urn]
        linked.parent = by_urn.get(r.parent)
        linked.property_dependencies = {
            name: [by_urn[urn] for urn in sorted(urns) if urn in by_urn]
            for name, urns in r.property_dependencies.items()
        }
        linked.dependencies = list({d.urn: d for deps in linked.property_dependencies.values() for d in deps}.values())
    return StackValidationArgs(list(by_urn.values()))


def _reporter(
    violations: list[Violation], policy: str, level: EnforcementLevel, urn: str, resource_type: str
) -> ReportViolation:
    """Return a report_violation callback that records into `violations`."""

    def report(message: str, reported_urn: str | None = None) -> None:
        violations.append(Violation(policy, level, reported_urn or urn, resource_type, message))

    return report


def evaluate(
    resources: Iterable[RegisteredResourceLike],
    policies: Sequence[ResourceValidationPolicy | StackValidationPolicy] = POLICIES,
) -> list[Violation]:
    """Run every resource policy over every resource, then every stack policy over all of them.

    Returns the violations in that order; a stack policy's violation carries no resource URN or
    type unless the policy names one, as under the CLI.
    """
    resources = list(resources)
    violations: list[Violation] = []
    active = [p for p in policies if (p.enforcement_level or EnforcementLevel.ADVISORY) != EnforcementLevel.DISABLED]
    for resource in resources:
        for policy in (p for p in active if isinstance(p, ResourceValidationPolicy)):
            level = policy.enforcement_level or EnforcementLevel.ADVISORY
            report = _reporter(violations, policy.name, level, resource.urn, resource.type)
            policy.validate(validation_args(resource), report)
    stack_args = stack_validation_args(resources)
    for policy in (p for p in active if isinstance(p, StackValidationPolicy)):
        level = policy.enforcement_level or EnforcementLevel.ADVISORY
        policy.validate(stack_args, _reporter(violations, policy.name, level, "", ""))
    return violations
