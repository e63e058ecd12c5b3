"""Run the pack's policies over resources registered without a Pulumi CLI (e.g. under mocks).

The Pulumi CLI hands each resource to a resource policy as ResourceValidationArgs, and every
resource at once to a stack policy as StackValidationArgs; this builds the same arguments from any
object shaped like the offline harness's RegisteredResource (type, name, urn, inputs, parent,
protect) and collects every violation with the enforcement level the CLI would give it. Inputs go
through pulumi-policy's unknown-checking proxy, as they do under the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pulumi.output
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

from policy.guardrails import POLICIES


class RegisteredResourceLike(Protocol):
    """What the adapter reads from a registered resource."""

    type: str
    name: str
    urn: str
    inputs: Mapping[str, Any]
    parent: str
    protect: bool


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


def validation_args(resource: RegisteredResourceLike) -> ResourceValidationArgs:
    """Build the arguments the CLI would pass to a resource policy for `resource`."""
    return ResourceValidationArgs(
        resource.type, _props(resource), resource.urn, resource.name, _options(resource), None
    )


def stack_validation_args(resources: Iterable[RegisteredResourceLike]) -> StackValidationArgs:
    """Build the arguments the CLI would pass to a stack policy (parents and dependencies left out)."""
    return StackValidationArgs(
        [PolicyResource(r.type, _props(r), r.urn, r.name, _options(r), None, None, [], {}) for r in resources]
    )


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
    for policy in (p for p in active if isinstance(p, StackValidationPolicy)):
        level = policy.enforcement_level or EnforcementLevel.ADVISORY
        policy.validate(stack_validation_args(resources), _reporter(violations, policy.name, level, "", ""))
    return violations
