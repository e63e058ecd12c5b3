"""The policies of the dynamic-sessions pack: least-privilege access, service limits, production rules.

Importable without starting anything (policy/__main__.py is what serves the pack), so tests call
each policy's `validate` directly. The limits and role ids come from components/azure.py, where
the program reads them too, so they live once.

Enforcement:
- Always mandatory: role assignments grant only the Session Executor role, scoped to a session
  pool; a pool stays inside Azure's session and cooldown limits.
- Production rules (egress disabled, resource group and pool protected, resource group locked,
  owner and costCenter tags) come as a pair of policies per rule: `<rule>` is mandatory and checks only production
  stacks, `<rule>-advisory` is advisory and checks every other stack. pulumi-policy fixes one
  enforcement level per policy, and the stack is read from each resource's URN, so one pack
  blocks a production deploy and only warns on dev. The lock rule looks at the whole stack (a
  resource group and the lock whose resourceGroupName input comes from it), so it is a stack
  policy; the others are resource policies.

Unknown values (under `pulumi preview` a role assignment's scope is the id of a pool that does
not exist yet) are skipped, never reported: each check looks at what is already known.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import pulumi.output
from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

from components.azure import (
    CONTRIBUTOR_ROLE_ID,
    COOLDOWN_MAX_SECONDS,
    COOLDOWN_MIN_SECONDS,
    LOCK_LEVELS,
    MANAGEMENT_LOCK_TYPE,
    MAX_SESSIONS_LIMIT,
    MIN_SESSIONS,
    OWNER_ROLE_ID,
    RESOURCE_GROUP_TYPE,
    ROLE_ASSIGNMENT_TYPE,
    SESSION_EXECUTOR_ROLE_ID,
    SESSION_EXECUTOR_ROLE_NAME,
    SESSION_POOL_TYPE,
    USER_ACCESS_ADMINISTRATOR_ROLE_ID,
)
from components.stacks import PRODUCTION_STACK_PREFIX, is_production_stack

PACK_NAME = "dynamic-sessions-guardrails"


# The resources a production stack must protect and tag (role assignments take no tags and go
# with their scope).
PRODUCTION_RESOURCE_TYPES: Final = (RESOURCE_GROUP_TYPE, SESSION_POOL_TYPE)
RESOURCE_KINDS: Final[Mapping[str, str]] = {
    RESOURCE_GROUP_TYPE: "Resource group",
    SESSION_POOL_TYPE: "Session pool",
    ROLE_ASSIGNMENT_TYPE: "Role assignment",
    MANAGEMENT_LOCK_TYPE: "Management lock",
}
REQUIRED_PRODUCTION_TAGS: Final = ("owner", "costCenter")
EGRESS_DISABLED = "EgressDisabled"

# Roles that would hand out far more than running code in one pool; named in the messages.
FORBIDDEN_ROLES: Final[Mapping[str, str]] = {
    OWNER_ROLE_ID: "Owner",
    CONTRIBUTOR_ROLE_ID: "Contributor",
    USER_ACCESS_ADMINISTRATOR_ROLE_ID: "User Access Administrator",
}

# A session pool's resource id; Azure treats ids case-insensitively.
SESSION_POOL_SCOPE_PATTERN = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.App/sessionPools/[^/]+/?$",
    re.IGNORECASE,
)
SUBSCRIPTION_SCOPE_PATTERN = re.compile(r"^/subscriptions/[^/]+/?$", re.IGNORECASE)
RESOURCE_GROUP_SCOPE_PATTERN = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/?$", re.IGNORECASE)
MANAGEMENT_GROUP_SCOPE_PATTERN = re.compile(
    r"^/providers/Microsoft\.Management/managementGroups/[^/]+/?$", re.IGNORECASE
)
POOL_SCOPE_SHAPE = "/subscriptions/<sub>/resourceGroups/<group>/providers/Microsoft.App/sessionPools/<pool>"

# What pulumi-policy puts in place of a value that is not known until the deploy runs.
_UNKNOWN_SENTINELS: Final = frozenset(
    {
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_OBJECT_VALUE,
        UNKNOWN_STRING_VALUE,
    }
)


class _Marker:
    """A named sentinel returned by `lookup`."""

    def __init__(self, label: str) -> None:
        self._label = label

    def __repr__(self) -> str:
        return self._label


UNKNOWN: Final = _Marker("<unknown until the deploy runs>")
MISSING: Final = _Marker("<not set>")

# A check reads one resource (or, for a stack check, every resource) and returns the problems it
# found, as sentences for a person.
Check = Callable[[ResourceValidationArgs], list[str]]
# A stack check returns (problem, URN of the resource it is about) pairs.
StackCheck = Callable[[list[PolicyResource]], list[tuple[str, str]]]


def is_unknown(value: Any) -> bool:
    """Tell whether `value` stands for something only the deploy will know."""
    if isinstance(value, pulumi.output.Unknown):
        return True
    return isinstance(value, str) and value in _UNKNOWN_SENTINELS


def lookup(props: Mapping[str, Any], *path: str) -> Any:
    """Return the value at `path` in a resource's inputs, or UNKNOWN, or MISSING.

    Works on plain dicts and on pulumi-policy's proxies, which raise UnknownValueError when an
    unknown value is touched.
    """
    current: Any = props
    for key in path:
        try:
            if is_unknown(current):
                return UNKNOWN
            if not isinstance(current, Mapping) or key not in current:
                return MISSING
            current = current[key]
        except UnknownValueError:
            return UNKNOWN
    return UNKNOWN if is_unknown(current) else current


def stack_name(urn: str) -> str:
    """Return the stack of a URN `urn:pulumi:<stack>::<project>::<type>::<name>` ("" if malformed)."""
    head = urn.split("::", 1)[0]
    parts = head.split(":", 2)
    return parts[2] if len(parts) == 3 and parts[0] == "urn" else ""


def describe(args: ResourceValidationArgs) -> str:
    """Name a resource for a message, e.g. "Session pool 'pool-pool'"."""
    kind = RESOURCE_KINDS.get(args.resource_type, args.resource_type)
    return f"{kind} '{args.name}'"


def _format_number(value: Any) -> str:
    """Show 5.0 (numbers arrive as floats) as 5, and anything else as the program passed it."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _role_guid(role_definition_id: str) -> str:
    """Return the GUID at the end of a role definition id, lowercased."""
    return role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()


# --- Always mandatory ------------------------------------------------------------------------


def check_role_is_session_executor(args: ResourceValidationArgs) -> list[str]:
    """A role assignment must grant the Azure ContainerApps Session Executor role and nothing else."""
    if args.resource_type != ROLE_ASSIGNMENT_TYPE:
        return []
    role_definition_id = lookup(args.props, "roleDefinitionId")
    if role_definition_id is UNKNOWN:
        return []
    allowed = f"only the {SESSION_EXECUTOR_ROLE_NAME} role ({SESSION_EXECUTOR_ROLE_ID}) may be assigned"
    if role_definition_id is MISSING or not isinstance(role_definition_id, str) or not role_definition_id:
        return [
            f"{describe(args)} has no roleDefinitionId, so what it grants cannot be checked; {allowed}. "
            f"Set roleDefinitionId to /subscriptions/<sub>/providers/Microsoft.Authorization/roleDefinitions/"
            f"{SESSION_EXECUTOR_ROLE_ID}."
        ]
    guid = _role_guid(role_definition_id)
    if guid == SESSION_EXECUTOR_ROLE_ID:
        return []
    if guid in FORBIDDEN_ROLES:
        return [
            f"{describe(args)} grants {FORBIDDEN_ROLES[guid]} (roleDefinitionId {role_definition_id!r}). "
            "Owner, Contributor and User Access Administrator are never assigned by this project: "
            f"{allowed}, which lets a principal run code in the pool and nothing more."
        ]
    return [
        f"{describe(args)} grants the role {guid} (roleDefinitionId {role_definition_id!r}); {allowed}. "
        "Grant other roles outside this stack, deliberately."
    ]


def _scope_kind(scope: str) -> str:
    """Name what a role assignment scope covers, for a message."""
    if scope.strip() == "/":
        return "the whole tenant (root scope '/')"
    if SUBSCRIPTION_SCOPE_PATTERN.fullmatch(scope):
        return f"the subscription {scope!r}"
    if RESOURCE_GROUP_SCOPE_PATTERN.fullmatch(scope):
        return f"the resource group {scope!r}"
    if MANAGEMENT_GROUP_SCOPE_PATTERN.fullmatch(scope):
        return f"the management group {scope!r}"
    return f"{scope!r}, which is not a session pool"


def check_scope_is_session_pool(args: ResourceValidationArgs) -> list[str]:
    """A role assignment must be scoped to one session pool, never a resource group or subscription."""
    if args.resource_type != ROLE_ASSIGNMENT_TYPE:
        return []
    scope = lookup(args.props, "scope")
    if scope is UNKNOWN:
        # Under preview the scope is the id of a pool that does not exist yet; `pulumi up`
        # checks it again once it is known.
        return []
    if scope is MISSING or not isinstance(scope, str) or not scope:
        return [
            f"{describe(args)} has no scope; scope it to the session pool's id ({POOL_SCOPE_SHAPE}), "
            "e.g. scope=session_pool.id."
        ]
    if SESSION_POOL_SCOPE_PATTERN.fullmatch(scope):
        return []
    return [
        f"{describe(args)} is scoped to {_scope_kind(scope)}; role assignments must be scoped to a session "
        f"pool ({POOL_SCOPE_SHAPE}) so the principal can run code in that pool only. "
        "Pass scope=session_pool.id."
    ]


def _range_problem(args: ResourceValidationArgs, value: Any, what: str, low: int, high: int, fix: str) -> list[str]:
    """Report `value` unless it is a number within [low, high]; unknown or unset values pass."""
    if value is UNKNOWN or value is MISSING:
        return []
    if _is_number(value) and low <= value <= high:
        return []
    shown = _format_number(value)
    if not _is_number(value):
        shown += ", which is not a number"
    return [f"{describe(args)} sets {what} to {shown}; Azure allows {low} to {high}. {fix}"]


def check_session_pool_limits(args: ResourceValidationArgs) -> list[str]:
    """A session pool's session count and cooldown must be inside Azure's limits."""
    if args.resource_type != SESSION_POOL_TYPE:
        return []
    problems = _range_problem(
        args,
        lookup(args.props, "scaleConfiguration", "maxConcurrentSessions"),
        "scaleConfiguration.maxConcurrentSessions",
        MIN_SESSIONS,
        MAX_SESSIONS_LIMIT,
        f"Set dynamic-sessions:maxSessions between {MIN_SESSIONS} and {MAX_SESSIONS_LIMIT}.",
    )
    cooldown_path = ("dynamicPoolConfiguration", "lifecycleConfiguration", "cooldownPeriodInSeconds")
    cooldown = lookup(args.props, *cooldown_path)
    if cooldown is MISSING:
        # Older API versions put the cooldown directly under dynamicPoolConfiguration.
        cooldown_path = ("dynamicPoolConfiguration", "cooldownPeriodInSeconds")
        cooldown = lookup(args.props, *cooldown_path)
    problems += _range_problem(
        args,
        cooldown,
        ".".join(cooldown_path) + " (seconds)",
        COOLDOWN_MIN_SECONDS,
        COOLDOWN_MAX_SECONDS,
        f"Set dynamic-sessions:cooldownSeconds between {COOLDOWN_MIN_SECONDS} and {COOLDOWN_MAX_SECONDS}.",
    )
    return problems


# --- Production rules ------------------------------------------------------------------------


def check_egress_disabled(args: ResourceValidationArgs) -> list[str]:
    """A production session pool must not let session code reach the network."""
    if args.resource_type != SESSION_POOL_TYPE:
        return []
    status = lookup(args.props, "sessionNetworkConfiguration", "status")
    # Unset means Azure's default, which is EgressDisabled.
    if status is UNKNOWN or status is MISSING or status == EGRESS_DISABLED:
        return []
    return [
        f"{describe(args)} lets session code reach the network (sessionNetworkConfiguration.status = "
        f"{status!r}); production stacks must use {EGRESS_DISABLED!r}. "
        f"Set dynamic-sessions:networkStatus: {EGRESS_DISABLED} in the stack's config."
    ]


def check_protected(args: ResourceValidationArgs) -> list[str]:
    """Production resource groups and session pools must be protected from deletion."""
    if args.resource_type not in PRODUCTION_RESOURCE_TYPES or args.opts.protect:
        return []
    return [
        f"{describe(args)} is not protected, so a `pulumi destroy` or a replacement could delete it; "
        "production stacks must protect the resource group and the session pool. "
        "Set dynamic-sessions:protect: true in the stack's config."
    ]


def _tag_is_set(value: Any) -> bool:
    """A tag counts when it has a non-blank value, or a value the deploy will fill in."""
    return value is UNKNOWN or (isinstance(value, str) and bool(value.strip()))


def check_ownership_tags(args: ResourceValidationArgs) -> list[str]:
    """Production resource groups and session pools must carry non-empty owner and costCenter tags."""
    if args.resource_type not in PRODUCTION_RESOURCE_TYPES:
        return []
    tags = lookup(args.props, "tags")
    if tags is UNKNOWN:
        return []
    # Azure tag names are case-insensitive.
    present = {str(key).lower(): lookup(tags, str(key)) for key in tags} if isinstance(tags, Mapping) else {}
    missing = [tag for tag in REQUIRED_PRODUCTION_TAGS if not _tag_is_set(present.get(tag.lower(), MISSING))]
    if not missing:
        return []
    return [
        f"{describe(args)} lacks the tag(s) {', '.join(missing)} (or they are empty); production stacks "
        f"must tag the resource group and the session pool with {' and '.join(REQUIRED_PRODUCTION_TAGS)}. "
        "Add them under dynamic-sessions:tags in the stack's config."
    ]


def check_resource_group_locked(resources: list[PolicyResource]) -> list[tuple[str, str]]:
    """Production resource groups must carry a CanNotDelete or ReadOnly management lock.

    A stack policy sees each resource's outputs, and `resourceGroupName` is an input only (a path
    parameter) of both the group and the lock, so the link is the lock's input dependency: the
    program passes the group's `name` output as the lock's `resourceGroupName`.
    """
    locked = {
        group.urn
        for lock in resources
        if lock.resource_type == MANAGEMENT_LOCK_TYPE
        # Under preview the level may be unknown; it counts.
        and (lookup(lock.props, "level") is UNKNOWN or lookup(lock.props, "level") in LOCK_LEVELS)
        for group in lock.property_dependencies.get("resourceGroupName", [])
    }
    return [
        (
            f"Resource group '{group.name}' has no {' or '.join(LOCK_LEVELS)} management lock, so anyone with "
            "delete rights can remove it, and the session pool with it, outside Pulumi (in the portal or the "
            "Azure CLI); production stacks must lock the resource group. "
            f"Set dynamic-sessions:lock: {LOCK_LEVELS[0]} in the stack's config.",
            group.urn,
        )
        for group in resources
        if group.resource_type == RESOURCE_GROUP_TYPE and group.urn not in locked
    ]


# --- Policies --------------------------------------------------------------------------------


def _validation(check: Check) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    """Turn a check into a validate function that reports each problem."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for problem in check(args):
            report_violation(problem, None)

    validate.__doc__ = check.__doc__
    return validate


def _production_validation(
    check: Check, *, production: bool
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    """Run `check` only on production stacks (production=True) or only on the others."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        stack = stack_name(args.urn)
        if is_production_stack(stack) != production:
            return
        for problem in check(args):
            report_violation(problem if production else problem + _advisory_suffix(stack), None)

    validate.__doc__ = check.__doc__
    return validate


def _advisory_suffix(stack: str) -> str:
    return (
        f" (Advisory on stack '{stack}'; mandatory on production stacks, whose names start with "
        f"'{PRODUCTION_STACK_PREFIX}'.)"
    )


def _production_stack_validation(
    check: StackCheck, *, production: bool
) -> Callable[[StackValidationArgs, ReportViolation], None]:
    """Run a stack check only on production stacks (production=True) or only on the others."""

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        if not args.resources:
            return
        stack = stack_name(args.resources[0].urn)
        if is_production_stack(stack) != production:
            return
        for problem, urn in check(list(args.resources)):
            report_violation(problem if production else problem + _advisory_suffix(stack), urn)

    validate.__doc__ = check.__doc__
    return validate


def _mandatory_and_advisory(
    policy_class: type[ResourceValidationPolicy] | type[StackValidationPolicy],
    name: str,
    description: str,
    validation_for: Callable[[bool], Callable[..., None]],
) -> list[Any]:
    """Build `<name>` (mandatory, production stacks) and `<name>-advisory` (advisory, other stacks)."""
    return [
        policy_class(
            name=name,
            description=f"{description} (production stacks).",
            validate=validation_for(True),
            enforcement_level=EnforcementLevel.MANDATORY,
        ),
        policy_class(
            name=f"{name}-advisory",
            description=f"{description} (advisory outside production).",
            validate=validation_for(False),
            enforcement_level=EnforcementLevel.ADVISORY,
        ),
    ]


def _production_stack_pair(name: str, description: str, check: StackCheck) -> list[StackValidationPolicy]:
    """A stack policy pair: mandatory on production stacks, advisory elsewhere."""
    return _mandatory_and_advisory(
        StackValidationPolicy, name, description, lambda prod: _production_stack_validation(check, production=prod)
    )


def _production_pair(name: str, description: str, check: Check) -> list[ResourceValidationPolicy]:
    """A resource policy pair: mandatory on production stacks, advisory elsewhere."""
    return _mandatory_and_advisory(
        ResourceValidationPolicy, name, description, lambda prod: _production_validation(check, production=prod)
    )


session_executor_role_only = ResourceValidationPolicy(
    name="session-executor-role-only",
    description=f"Role assignments grant only the {SESSION_EXECUTOR_ROLE_NAME} role.",
    validate=_validation(check_role_is_session_executor),
    enforcement_level=EnforcementLevel.MANDATORY,
)

role_assignment_scoped_to_pool = ResourceValidationPolicy(
    name="role-assignment-scoped-to-session-pool",
    description="Role assignments are scoped to a session pool, never a resource group or subscription.",
    validate=_validation(check_scope_is_session_pool),
    enforcement_level=EnforcementLevel.MANDATORY,
)

session_pool_limits = ResourceValidationPolicy(
    name="session-pool-within-limits",
    description=(
        f"Session pools allow {MIN_SESSIONS}-{MAX_SESSIONS_LIMIT} concurrent sessions and a "
        f"{COOLDOWN_MIN_SECONDS}-{COOLDOWN_MAX_SECONDS} s cooldown."
    ),
    validate=_validation(check_session_pool_limits),
    enforcement_level=EnforcementLevel.MANDATORY,
)

POLICIES: list[ResourceValidationPolicy | StackValidationPolicy] = [
    session_executor_role_only,
    role_assignment_scoped_to_pool,
    session_pool_limits,
    *_production_pair(
        "production-egress-disabled", "Session pools keep session code off the network", check_egress_disabled
    ),
    *_production_pair(
        "production-resources-protected",
        "The resource group and the session pool are protected",
        check_protected,
    ),
    *_production_pair(
        "production-ownership-tags",
        "The resource group and the session pool carry owner and costCenter tags",
        check_ownership_tags,
    ),
    *_production_stack_pair(
        "production-resource-group-locked",
        "The resource group carries a CanNotDelete or ReadOnly management lock",
        check_resource_group_locked,
    ),
]
