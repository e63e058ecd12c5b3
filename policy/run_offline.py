"""Run the pack's resource policies over resources registered without a Pulumi CLI (e.g. under mocks).

The Pulumi CLI hands each resource to the pack as ResourceValidationArgs; this builds the same
arguments from any object shaped like the offline harness's RegisteredResource (type, name, urn,
inputs, parent, protect) and collects every violation with the enforcement level the CLI would
give it. Inputs go through pulumi-policy's unknown-checking proxy, as they do under the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pulumi.output
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
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


def validation_args(resource: RegisteredResourceLike) -> ResourceValidationArgs:
    """Build the arguments the CLI would pass to a resource policy for `resource`."""
    options = PolicyResourceOptions(
        protect=bool(resource.protect),
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=resource.parent or None,
    )
    props = unknown_checking_proxy(_as_wire_value(dict(resource.inputs)))
    return ResourceValidationArgs(resource.type, props, resource.urn, resource.name, options, None)


def _reporter(
    violations: list[Violation], policy: str, level: EnforcementLevel, resource: RegisteredResourceLike
) -> ReportViolation:
    """Return a report_violation callback that records into `violations`."""

    def report(message: str, urn: str | None = None) -> None:
        violations.append(Violation(policy, level, urn or resource.urn, resource.type, message))

    return report


def evaluate(
    resources: Iterable[RegisteredResourceLike],
    policies: Sequence[ResourceValidationPolicy] = POLICIES,
) -> list[Violation]:
    """Run every resource policy over every resource and return the violations, in order."""
    violations: list[Violation] = []
    for resource in resources:
        for policy in policies:
            level = policy.enforcement_level or EnforcementLevel.ADVISORY
            if level == EnforcementLevel.DISABLED:
                continue
            policy.validate(validation_args(resource), _reporter(violations, policy.name, level, resource))
    return violations
