"""The policy pack: each policy on good and bad resources, unknown values, the served pack, and the
whole pack over what the program registers for every shipped stack (and for bad ones)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pulumi.output
import pytest
from conftest import SHIPPED_STACKS
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import EnforcementLevel

from components.azure import (
    CONTRIBUTOR_ROLE_ID,
    COOLDOWN_MAX_SECONDS,
    COOLDOWN_MIN_SECONDS,
    MANAGEMENT_LOCK_TYPE,
    MAX_SESSIONS_LIMIT,
    MIN_SESSIONS,
    OWNER_ROLE_ID,
    SESSION_EXECUTOR_ROLE_ID,
    SESSION_EXECUTOR_ROLE_NAME,
    USER_ACCESS_ADMINISTRATOR_ROLE_ID,
    role_definition_id,
)
from offline.engine import ProgramRun, load_stack_config, run_program
from policy.guardrails import (
    PACK_NAME,
    POLICIES,
    RESOURCE_GROUP_TYPE,
    ROLE_ASSIGNMENT_TYPE,
    SESSION_POOL_TYPE,
    is_production_stack,
    lookup,
    stack_name,
)
from policy.run_offline import Violation, evaluate, output_names, stack_validation_args
from tests.support.policy_helpers import (
    EXECUTOR_ROLE,
    POOL_SCOPE,
    PRODUCTION_TAGS,
    RESOURCE_GROUP,
    SUBSCRIPTION_ID,
    UNKNOWN_NUMBER,
    UNKNOWN_STRING,
    FakeRegisteredResource,
    lock_props,
    make_args,
    pool_props,
    resource_group_props,
    role_assignment_props,
    violations,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
POLICY_DIR = PROJECT_ROOT / "policy"
BY_NAME = {policy.name: policy for policy in POLICIES}
ROLE_ONLY = BY_NAME["session-executor-role-only"]
POOL_SCOPED = BY_NAME["role-assignment-scoped-to-session-pool"]
LIMITS = BY_NAME["session-pool-within-limits"]
PRODUCTION_RULES = ("production-egress-disabled", "production-resources-protected", "production-ownership-tags")
LOCK_RULE = "production-resource-group-locked"
READER_ROLE_ID = "acdd72a7-3385-48ef-bd42-f606fba81ae7"

ALLOWED_ROLE = f"only the {SESSION_EXECUTOR_ROLE_NAME} role ({SESSION_EXECUTOR_ROLE_ID}) may be assigned"
POOL_SHAPE = "/subscriptions/<sub>/resourceGroups/<group>/providers/Microsoft.App/sessionPools/<pool>"


def role_assignment(**kwargs: object) -> object:
    return make_args(ROLE_ASSIGNMENT_TYPE, role_assignment_props(**kwargs), name="pool-executor-deployer")


# --- The pack itself ----------------------------------------------------------------------------


def test_policy_names_are_unique_and_every_production_rule_comes_as_a_pair() -> None:
    names = [policy.name for policy in POLICIES]
    assert len(names) == len(set(names))
    for rule in (*PRODUCTION_RULES, LOCK_RULE):
        assert BY_NAME[rule].enforcement_level == EnforcementLevel.MANDATORY
        assert BY_NAME[f"{rule}-advisory"].enforcement_level == EnforcementLevel.ADVISORY
    for policy in (ROLE_ONLY, POOL_SCOPED, LIMITS):
        assert policy.enforcement_level == EnforcementLevel.MANDATORY


def test_pack_metadata_and_pins_match_the_project() -> None:
    import yaml

    manifest = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    project_pins = {
        line.split("==")[0].lower(): line
        for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line
    }
    pack_pins = [
        line for line in (POLICY_DIR / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")
    ]
    assert {pin.split("==")[0].lower() for pin in pack_pins} == {"pulumi", "pulumi-policy"}
    for pin in pack_pins:
        assert pin == project_pins[pin.split("==")[0].lower()], f"{pin} differs from the project's requirements.txt"


@pytest.mark.parametrize(
    ("urn", "stack", "production"),
    [
        ("urn:pulumi:prod::dynamic-sessions::azure-native:app:ContainerAppsSessionPool::p", "prod", True),
        ("urn:pulumi:prod-eu::dynamic-sessions::a$b::p", "prod-eu", True),
        ("urn:pulumi:production::dynamic-sessions::a::p", "production", True),
        ("urn:pulumi:dev::dynamic-sessions::a::p", "dev", False),
        ("urn:pulumi:preprod::dynamic-sessions::a::p", "preprod", False),
        ("not-a-urn", "", False),
    ],
)
def test_stack_name_comes_from_the_urn(urn: str, stack: str, production: bool) -> None:
    assert stack_name(urn) == stack
    assert is_production_stack(stack) is production


# --- Role assignments ---------------------------------------------------------------------------


def test_session_executor_role_scoped_to_the_pool_passes() -> None:
    args = role_assignment()
    assert violations(ROLE_ONLY, args) == []
    assert violations(POOL_SCOPED, args) == []


def test_role_guid_and_provider_segment_are_compared_case_insensitively() -> None:
    args = role_assignment(
        role=EXECUTOR_ROLE.upper().replace("/SUBSCRIPTIONS", "/subscriptions"),
        scope=POOL_SCOPE.replace("Microsoft.App/sessionPools", "microsoft.app/SESSIONPOOLS"),
    )
    assert violations(ROLE_ONLY, args) == []
    assert violations(POOL_SCOPED, args) == []


@pytest.mark.parametrize(
    ("role_id", "role_name"),
    [
        (OWNER_ROLE_ID, "Owner"),
        (CONTRIBUTOR_ROLE_ID, "Contributor"),
        (USER_ACCESS_ADMINISTRATOR_ROLE_ID, "User Access Administrator"),
    ],
)
def test_privileged_roles_are_rejected_by_name(role_id: str, role_name: str) -> None:
    role = role_definition_id(SUBSCRIPTION_ID, role_id)
    assert violations(ROLE_ONLY, role_assignment(role=role)) == [
        f"Role assignment 'pool-executor-deployer' grants {role_name} (roleDefinitionId '{role}'). "
        "Owner, Contributor and User Access Administrator are never assigned by this project: "
        f"{ALLOWED_ROLE}, which lets a principal run code in the pool and nothing more."
    ]


def test_any_other_role_is_rejected() -> None:
    role = role_definition_id(SUBSCRIPTION_ID, READER_ROLE_ID)
    assert violations(ROLE_ONLY, role_assignment(role=role)) == [
        f"Role assignment 'pool-executor-deployer' grants the role {READER_ROLE_ID} (roleDefinitionId "
        f"'{role}'); {ALLOWED_ROLE}. Grant other roles outside this stack, deliberately."
    ]


def test_missing_role_definition_is_rejected() -> None:
    props = role_assignment_props()
    del props["roleDefinitionId"]
    [message] = violations(ROLE_ONLY, make_args(ROLE_ASSIGNMENT_TYPE, props, name="ra"))
    assert message.startswith("Role assignment 'ra' has no roleDefinitionId")
    assert SESSION_EXECUTOR_ROLE_ID in message


@pytest.mark.parametrize(
    ("scope", "described_as"),
    [
        (
            f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg",
            f"the resource group '/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg'",
        ),
        (f"/subscriptions/{SUBSCRIPTION_ID}", f"the subscription '/subscriptions/{SUBSCRIPTION_ID}'"),
        (
            "/providers/Microsoft.Management/managementGroups/corp",
            "the management group '/providers/Microsoft.Management/managementGroups/corp'",
        ),
        ("/", "the whole tenant (root scope '/')"),
        (
            f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg/providers/Microsoft.App/containerApps/app",
            f"'/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg/providers/Microsoft.App/containerApps/app', "
            "which is not a session pool",
        ),
        (
            f"{POOL_SCOPE}/extra",
            f"'{POOL_SCOPE}/extra', which is not a session pool",
        ),
    ],
)
def test_scopes_wider_or_other_than_a_pool_are_rejected(scope: str, described_as: str) -> None:
    assert violations(POOL_SCOPED, role_assignment(scope=scope)) == [
        f"Role assignment 'pool-executor-deployer' is scoped to {described_as}; role assignments must be scoped "
        f"to a session pool ({POOL_SHAPE}) so the principal can run code in that pool only. "
        "Pass scope=session_pool.id."
    ]


def test_missing_scope_is_rejected() -> None:
    props = role_assignment_props()
    del props["scope"]
    assert violations(POOL_SCOPED, make_args(ROLE_ASSIGNMENT_TYPE, props, name="ra")) == [
        f"Role assignment 'ra' has no scope; scope it to the session pool's id ({POOL_SHAPE}), "
        "e.g. scope=session_pool.id."
    ]


@pytest.mark.parametrize("unknown", [UNKNOWN_STRING, pulumi.output.UNKNOWN])
def test_unknown_scope_under_preview_is_skipped_but_the_role_is_still_checked(unknown: object) -> None:
    owner = role_definition_id(SUBSCRIPTION_ID, OWNER_ROLE_ID)
    args = role_assignment(role=owner, scope=unknown)
    assert violations(POOL_SCOPED, args) == []
    assert len(violations(ROLE_ONLY, args)) == 1


def test_unknown_role_is_skipped_but_the_scope_is_still_checked() -> None:
    args = role_assignment(role=UNKNOWN_STRING, scope=f"/subscriptions/{SUBSCRIPTION_ID}")
    assert violations(ROLE_ONLY, args) == []
    assert len(violations(POOL_SCOPED, args)) == 1


def test_role_policies_ignore_other_resource_types() -> None:
    args = make_args(SESSION_POOL_TYPE, {"scope": "/", "roleDefinitionId": OWNER_ROLE_ID})
    assert violations(ROLE_ONLY, args) == []
    assert violations(POOL_SCOPED, args) == []


# --- Session pool limits ------------------------------------------------------------------------

SESSIONS_FIX = f"Set dynamic-sessions:maxSessions between {MIN_SESSIONS} and {MAX_SESSIONS_LIMIT}."
COOLDOWN_FIX = f"Set dynamic-sessions:cooldownSeconds between {COOLDOWN_MIN_SECONDS} and {COOLDOWN_MAX_SECONDS}."


@pytest.mark.parametrize(
    ("max_sessions", "cooldown"),
    [
        (MIN_SESSIONS, COOLDOWN_MIN_SECONDS),
        (MAX_SESSIONS_LIMIT, COOLDOWN_MAX_SECONDS),
        (5, 300),
    ],
)
def test_pool_inside_the_limits_passes(max_sessions: int, cooldown: int) -> None:
    args = make_args(SESSION_POOL_TYPE, pool_props(max_sessions=max_sessions, cooldown=cooldown))
    assert violations(LIMITS, args) == []


@pytest.mark.parametrize(
    ("max_sessions", "shown"),
    [
        (0, "0"),
        (MAX_SESSIONS_LIMIT + 1, "601"),
        (-3, "-3"),
        (2.5 * MAX_SESSIONS_LIMIT, "1500"),
        ("many", "'many', which is not a number"),
        (True, "True, which is not a number"),
    ],
)
def test_session_count_outside_the_limits_is_rejected(max_sessions: object, shown: str) -> None:
    args = make_args(SESSION_POOL_TYPE, pool_props(max_sessions=max_sessions), name="pool-pool")
    assert violations(LIMITS, args) == [
        f"Session pool 'pool-pool' sets scaleConfiguration.maxConcurrentSessions to {shown}; "
        f"Azure allows 1 to 600. {SESSIONS_FIX}"
    ]


@pytest.mark.parametrize("cooldown", [COOLDOWN_MIN_SECONDS - 1, COOLDOWN_MAX_SECONDS + 1, 0])
def test_cooldown_outside_the_limits_is_rejected(cooldown: int) -> None:
    args = make_args(SESSION_POOL_TYPE, pool_props(cooldown=cooldown), name="pool-pool")
    assert violations(LIMITS, args) == [
        "Session pool 'pool-pool' sets dynamicPoolConfiguration.lifecycleConfiguration.cooldownPeriodInSeconds "
        f"(seconds) to {cooldown}; Azure allows 300 to 3600. {COOLDOWN_FIX}"
    ]


def test_both_limits_are_reported_together() -> None:
    args = make_args(SESSION_POOL_TYPE, pool_props(max_sessions=700, cooldown=60))
    assert len(violations(LIMITS, args)) == 2


def test_the_older_flat_cooldown_shape_is_checked_too() -> None:
    props = pool_props()
    props["dynamicPoolConfiguration"] = {"executionType": "Timed", "cooldownPeriodInSeconds": 30.0}
    [message] = violations(LIMITS, make_args(SESSION_POOL_TYPE, props))
    assert "dynamicPoolConfiguration.cooldownPeriodInSeconds (seconds) to 30;" in message


def test_unknown_or_unset_limits_are_skipped() -> None:
    assert (
        violations(
            LIMITS, make_args(SESSION_POOL_TYPE, pool_props(max_sessions=UNKNOWN_NUMBER, cooldown=UNKNOWN_NUMBER))
        )
        == []
    )
    unknown_blocks = {**pool_props(), "scaleConfiguration": UNKNOWN_STRING, "dynamicPoolConfiguration": UNKNOWN_STRING}
    assert violations(LIMITS, make_args(SESSION_POOL_TYPE, unknown_blocks)) == []
    assert violations(LIMITS, make_args(SESSION_POOL_TYPE, {"sessionPoolName": "p"})) == []


# --- Production rules: mandatory on production stacks, advisory elsewhere -----------------------


def production_messages(args: object) -> dict[str, list[str]]:
    """Messages of every production policy (both levels) that reported something."""
    found = {}
    for rule in PRODUCTION_RULES:
        for name in (rule, f"{rule}-advisory"):
            messages = violations(BY_NAME[name], args)
            if messages:
                found[name] = messages
    return found


def test_a_compliant_production_pool_passes_everything() -> None:
    args = make_args(SESSION_POOL_TYPE, pool_props(), stack="prod", protect=True)
    assert production_messages(args) == {}


EGRESS_MESSAGE = (
    "Session pool 'pool-pool' lets session code reach the network (sessionNetworkConfiguration.status = "
    "'EgressEnabled'); production stacks must use 'EgressDisabled'. "
    "Set dynamic-sessions:networkStatus: EgressDisabled in the stack's config."
)


def test_egress_is_mandatory_on_prod() -> None:
    args = make_args(
        SESSION_POOL_TYPE, pool_props(network_status="EgressEnabled"), stack="prod", name="pool-pool", protect=True
    )
    assert production_messages(args) == {"production-egress-disabled": [EGRESS_MESSAGE]}


def test_egress_is_advisory_elsewhere() -> None:
    args = make_args(
        SESSION_POOL_TYPE, pool_props(network_status="EgressEnabled"), stack="dev", name="pool-pool", protect=True
    )
    assert production_messages(args) == {
        "production-egress-disabled-advisory": [
            EGRESS_MESSAGE
            + " (Advisory on stack 'dev'; mandatory on production stacks, whose names start with 'prod'.)"
        ]
    }


def test_unset_or_unknown_network_status_counts_as_azures_default_disabled() -> None:
    props = pool_props()
    del props["sessionNetworkConfiguration"]
    assert production_messages(make_args(SESSION_POOL_TYPE, props, stack="prod", protect=True)) == {}
    unknown = pool_props(network_status=UNKNOWN_STRING)
    assert production_messages(make_args(SESSION_POOL_TYPE, unknown, stack="prod", protect=True)) == {}


@pytest.mark.parametrize(
    ("resource_type", "kind"), [(RESOURCE_GROUP_TYPE, "Resource group"), (SESSION_POOL_TYPE, "Session pool")]
)
def test_unprotected_production_resources_are_rejected(resource_type: str, kind: str) -> None:
    props = pool_props() if resource_type == SESSION_POOL_TYPE else resource_group_props()
    args = make_args(resource_type, props, stack="prod", name="x", protect=False)
    assert production_messages(args) == {
        "production-resources-protected": [
            f"{kind} 'x' is not protected, so a `pulumi destroy` or a replacement could delete it; production "
            "stacks must protect the resource group and the session pool. "
            "Set dynamic-sessions:protect: true in the stack's config."
        ]
    }


def test_role_assignments_need_no_protection_or_tags() -> None:
    args = make_args(ROLE_ASSIGNMENT_TYPE, role_assignment_props(), stack="prod", protect=False)
    assert production_messages(args) == {}


@pytest.mark.parametrize(
    ("tags", "missing"),
    [
        ({}, "owner, costCenter"),
        ({"costCenter": "cc-1"}, "owner"),
        ({"owner": "team", "costCenter": "  "}, "costCenter"),
        ({"owner": "", "costcenter": "cc-1"}, "owner"),
    ],
)
def test_production_resources_need_owner_and_cost_center_tags(tags: dict[str, str], missing: str) -> None:
    args = make_args(RESOURCE_GROUP_TYPE, resource_group_props(tags=tags), stack="prod", name="pool-rg", protect=True)
    assert production_messages(args) == {
        "production-ownership-tags": [
            f"Resource group 'pool-rg' lacks the tag(s) {missing} (or they are empty); production stacks must tag "
            "the resource group and the session pool with owner and costCenter. "
            "Add them under dynamic-sessions:tags in the stack's config."
        ]
    }


def test_tag_names_are_case_insensitive_and_unknown_tags_are_skipped() -> None:
    tagged = resource_group_props(tags={"Owner": "team", "COSTCENTER": "cc-1"})
    assert production_messages(make_args(RESOURCE_GROUP_TYPE, tagged, stack="prod", protect=True)) == {}
    unknown_value = resource_group_props(tags={"owner": UNKNOWN_STRING, "costCenter": "cc-1"})
    assert production_messages(make_args(RESOURCE_GROUP_TYPE, unknown_value, stack="prod", protect=True)) == {}
    unknown_map = {**resource_group_props(), "tags": UNKNOWN_STRING}
    assert production_messages(make_args(RESOURCE_GROUP_TYPE, unknown_map, stack="prod", protect=True)) == {}


def test_lookup_reports_unknown_and_missing_without_raising() -> None:
    args = make_args(SESSION_POOL_TYPE, {"a": {"b": UNKNOWN_STRING}, "c": UNKNOWN_STRING, "d": 1.0})
    assert repr(lookup(args.props, "a", "b")) == "<unknown until the deploy runs>"
    assert repr(lookup(args.props, "c", "x")) == "<unknown until the deploy runs>"
    assert repr(lookup(args.props, "a", "zzz")) == "<not set>"
    assert repr(lookup(args.props, "d", "x")) == "<not set>"
    assert lookup(args.props, "d") == 1.0


# --- The resource group lock: a stack policy pair ----------------------------------------------

LOCK_MESSAGE = (
    "Resource group 'pool-rg' has no CanNotDelete or ReadOnly management lock, so anyone with delete rights can "
    "remove it, and the session pool with it, outside Pulumi (in the portal or the Azure CLI); production stacks "
    "must lock the resource group. Set dynamic-sessions:lock: CanNotDelete in the stack's config."
)


def lock_violations(resources: list[FakeRegisteredResource]) -> list[tuple[str, str, str]]:
    """(policy, resource name, message) of each lock-rule violation over `resources`."""
    return [
        (v.policy, v.urn.rsplit("::", 1)[-1], v.message)
        for v in evaluate(resources, [BY_NAME[LOCK_RULE], BY_NAME[f"{LOCK_RULE}-advisory"]])
    ]


def group(stack: str = "prod", name: str = "pool-rg") -> FakeRegisteredResource:
    return FakeRegisteredResource(RESOURCE_GROUP_TYPE, name, resource_group_props(), stack=stack, protect=True)


def lock(guards: FakeRegisteredResource | None = None, stack: str = "prod", **kwargs: object) -> FakeRegisteredResource:
    """A lock whose resourceGroupName is `guards`'s name output (as the program wires it), or a literal."""
    links = {"resourceGroupName": frozenset({guards.urn})} if guards is not None else {}
    return FakeRegisteredResource(
        MANAGEMENT_LOCK_TYPE, "pool-lock", lock_props(**kwargs), stack=stack, property_dependencies=links
    )


@pytest.mark.parametrize("level", ["CanNotDelete", "ReadOnly", UNKNOWN_STRING])
def test_a_locked_production_group_passes(level: str) -> None:
    assert lock_violations([group(), lock(group(), level=level)]) == []


def test_an_unlocked_production_group_is_refused() -> None:
    assert lock_violations([group()]) == [(LOCK_RULE, "pool-rg", LOCK_MESSAGE)]


def test_a_lock_of_level_not_specified_does_not_count() -> None:
    assert lock_violations([group(), lock(group(), level="NotSpecified")]) == [(LOCK_RULE, "pool-rg", LOCK_MESSAGE)]


def test_a_lock_on_another_group_does_not_count() -> None:
    other = group(name="other-rg")
    found = lock_violations([group(), other, lock(other)])
    assert found == [(LOCK_RULE, "pool-rg", LOCK_MESSAGE)]


def test_a_lock_naming_the_group_only_by_a_string_does_not_count() -> None:
    # A stack policy sees outputs, and resourceGroupName is input-only on both: equal names
    # cannot be compared, so only the program's link (the group's name output) counts.
    assert lock_violations([group(), lock(resource_group=RESOURCE_GROUP)]) == [(LOCK_RULE, "pool-rg", LOCK_MESSAGE)]


def test_a_stack_policy_sees_outputs_without_the_input_only_path_parameters() -> None:
    assert "resourceGroupName" not in output_names(RESOURCE_GROUP_TYPE)
    assert {"resourceGroupName", "lockName"}.isdisjoint(output_names(MANAGEMENT_LOCK_TYPE))
    assert {"level", "notes", "name"} <= output_names(MANAGEMENT_LOCK_TYPE)
    [seen] = stack_validation_args([lock(group())]).resources
    assert dict(seen.props) == {"level": "CanNotDelete", "notes": "n"}


def test_an_unlocked_group_is_only_an_advisory_outside_production() -> None:
    assert lock_violations([group(stack="dev")]) == [
        (
            f"{LOCK_RULE}-advisory",
            "pool-rg",
            LOCK_MESSAGE + " (Advisory on stack 'dev'; mandatory on production stacks, whose names start with 'prod'.)",
        )
    ]


# --- The pack as the Pulumi CLI runs it -----------------------------------------------------------


@pytest.fixture(scope="module")
def served_pack() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """Start policy/ the way the CLI does (pulumi.policy runs its __main__.py) and connect to it."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(POLICY_DIR)],
        cwd=POLICY_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = process.stdout.readline().strip()
        assert port.isdigit(), f"the pack did not start: {process.stderr.read() if process.poll() is not None else ''}"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.terminate()
        process.wait(timeout=10)


def analyze(stub: analyzer_pb2_grpc.AnalyzerStub, resource_type: str, props: dict, stack: str, protect: bool) -> list:
    properties = struct_pb2.Struct()
    properties.update(props)
    request = analyzer_pb2.AnalyzeRequest(
        type=resource_type,
        properties=properties,
        urn=f"urn:pulumi:{stack}::dynamic-sessions::{resource_type}::r",
        name="r",
        options=analyzer_pb2.AnalyzerResourceOptions(protect=protect),
    )
    return list(stub.Analyze(request).diagnostics)


def test_served_pack_lists_every_policy_with_its_level(served_pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = served_pack.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == PACK_NAME
    levels = {policy.name: policy.enforcementLevel for policy in info.policies}
    assert levels == {
        policy.name: analyzer_pb2.MANDATORY
        if policy.enforcement_level == EnforcementLevel.MANDATORY
        else analyzer_pb2.ADVISORY
        for policy in POLICIES
    }


def test_served_pack_blocks_prod_and_only_warns_on_dev(served_pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    bad_pool = pool_props(network_status="EgressEnabled")
    on_prod = analyze(served_pack, SESSION_POOL_TYPE, bad_pool, "prod", protect=True)
    on_dev = analyze(served_pack, SESSION_POOL_TYPE, bad_pool, "dev", protect=True)
    assert [(d.policyName, d.enforcementLevel) for d in on_prod] == [
        ("production-egress-disabled", analyzer_pb2.MANDATORY)
    ]
    assert [(d.policyName, d.enforcementLevel) for d in on_dev] == [
        ("production-egress-disabled-advisory", analyzer_pb2.ADVISORY)
    ]


def stack_resource(resource_type: str, name: str, outputs: dict, **links: str) -> analyzer_pb2.AnalyzerResource:
    """A resource as the CLI sends it to AnalyzeStack: its outputs, and the URN each input came from."""
    properties = struct_pb2.Struct()
    properties.update(outputs)
    return analyzer_pb2.AnalyzerResource(
        type=resource_type,
        properties=properties,
        urn=f"urn:pulumi:prod::dynamic-sessions::{resource_type}::{name}",
        name=name,
        options=analyzer_pb2.AnalyzerResourceOptions(protect=True),
        propertyDependencies={key: analyzer_pb2.AnalyzerPropertyDependencies(urns=[urn]) for key, urn in links.items()},
    )


# The outputs pulumi-azure-native returns: no resourceGroupName on either (it is a path parameter).
GROUP_OUTPUTS = {"name": RESOURCE_GROUP, "location": "northcentralus", "tags": PRODUCTION_TAGS}
LOCK_OUTPUTS = {"name": "pool-lock", "level": "CanNotDelete", "notes": "n"}


def lock_diagnostics(stub: analyzer_pb2_grpc.AnalyzerStub, resources: list) -> list:
    diagnostics = stub.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources)).diagnostics
    # The served pack puts the policy's description on the line before the message.
    return [(d.policyName, d.enforcementLevel, d.urn, d.message.splitlines()[-1]) for d in diagnostics]


def test_served_pack_refuses_an_unlocked_production_group(served_pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    unlocked = stack_resource(RESOURCE_GROUP_TYPE, "pool-rg", GROUP_OUTPUTS)
    expected = [(LOCK_RULE, analyzer_pb2.MANDATORY, unlocked.urn, LOCK_MESSAGE)]
    assert lock_diagnostics(served_pack, [unlocked]) == expected


def test_served_pack_accepts_the_lock_whose_group_input_came_from_the_group(
    served_pack: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    rg = stack_resource(RESOURCE_GROUP_TYPE, "pool-rg", GROUP_OUTPUTS)
    guard = stack_resource(MANAGEMENT_LOCK_TYPE, "pool-lock", LOCK_OUTPUTS, resourceGroupName=rg.urn)
    assert lock_diagnostics(served_pack, [rg, guard]) == []


def test_served_pack_refuses_a_group_whose_only_lock_is_unrelated(
    served_pack: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    rg = stack_resource(RESOURCE_GROUP_TYPE, "pool-rg", GROUP_OUTPUTS)
    other = stack_resource(RESOURCE_GROUP_TYPE, "other-rg", {**GROUP_OUTPUTS, "name": "rg-other"})
    unrelated = stack_resource(MANAGEMENT_LOCK_TYPE, "pool-lock", LOCK_OUTPUTS, resourceGroupName=other.urn)
    found = lock_diagnostics(served_pack, [rg, other, unrelated])
    assert [(policy, urn) for policy, _, urn, _ in found] == [(LOCK_RULE, rg.urn)]


def test_served_pack_checks_what_it_can_during_preview(served_pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    owner = role_definition_id(SUBSCRIPTION_ID, OWNER_ROLE_ID)
    diagnostics = analyze(
        served_pack, ROLE_ASSIGNMENT_TYPE, role_assignment_props(role=owner, scope=UNKNOWN_STRING), "dev", False
    )
    # Only the role is reported: no "can't run policy during preview" for the unknown scope.
    assert [d.policyName for d in diagnostics] == ["session-executor-role-only"]
    assert "grants Owner" in diagnostics[0].message


# --- The whole pack over what the program registers ----------------------------------------------


def mandatory(found: list[Violation]) -> list[tuple[str, str]]:
    return [(v.policy, v.urn.rsplit("::", 1)[-1]) for v in found if v.mandatory]


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
def test_every_shipped_stack_passes_the_mandatory_policies(stack: str, preview: bool) -> None:
    run = run_program(stack, preview=preview)
    assert run.error is None
    assert {r.type for r in run.resources} >= {RESOURCE_GROUP_TYPE, SESSION_POOL_TYPE, ROLE_ASSIGNMENT_TYPE}
    found = evaluate(run.resources)
    assert mandatory(found) == []
    if is_production_stack(stack):
        assert found == [], "a production stack should pass the advisory policies too"


def test_dev_gets_only_advisories_about_production_rules(stack_runs: dict[str, ProgramRun]) -> None:
    found = evaluate(stack_runs["dev"].resources)
    assert found, "dev (egress enabled, unprotected, untagged) should draw advisories"
    assert {v.policy for v in found} <= {f"{rule}-advisory" for rule in (*PRODUCTION_RULES, LOCK_RULE)}
    assert all(v.enforcement_level == EnforcementLevel.ADVISORY for v in found)


def test_a_careless_production_config_is_caught() -> None:
    config = load_stack_config("prod")
    config.update(networkStatus="EgressEnabled", protect=False, lock="none", tags={"costCenter": "cc-1234"})
    run = run_program("prod", config=config)
    assert run.error is None
    assert sorted(mandatory(evaluate(run.resources))) == [
        ("production-egress-disabled", "pool-pool"),
        ("production-ownership-tags", "pool-pool"),
        ("production-ownership-tags", "pool-rg"),
        ("production-resource-group-locked", "pool-rg"),
        ("production-resources-protected", "pool-pool"),
        ("production-resources-protected", "pool-rg"),
    ]


def test_the_same_careless_config_only_warns_outside_production() -> None:
    config = load_stack_config("prod")
    config.update(networkStatus="EgressEnabled", protect=False, lock="none", tags={"costCenter": "cc-1234"})
    run = run_program("staging", config=config)
    assert run.error is None
    found = evaluate(run.resources)
    assert mandatory(found) == []
    assert len(found) == 6


def test_out_of_range_pools_and_wide_role_assignments_are_caught_by_the_pack() -> None:
    # Settings validation refuses these before any resource exists, so build the resources directly.
    resources = [
        FakeRegisteredResource(SESSION_POOL_TYPE, "pool-pool", pool_props(max_sessions=700, cooldown=30)),
        FakeRegisteredResource(
            ROLE_ASSIGNMENT_TYPE,
            "pool-executor-ops",
            role_assignment_props(
                role=role_definition_id(SUBSCRIPTION_ID, CONTRIBUTOR_ROLE_ID), scope=f"/subscriptions/{SUBSCRIPTION_ID}"
            ),
        ),
    ]
    found = evaluate(resources)
    assert mandatory(found) == [
        ("session-pool-within-limits", "pool-pool"),
        ("session-pool-within-limits", "pool-pool"),
        ("session-executor-role-only", "pool-executor-ops"),
        ("role-assignment-scoped-to-session-pool", "pool-executor-ops"),
    ]
    [role_message] = [v.message for v in found if v.policy == "session-executor-role-only"]
    assert "grants Contributor" in role_message


def test_settings_refuse_out_of_range_values_before_any_resource_exists() -> None:
    config = load_stack_config("dev")
    config["maxSessions"] = MAX_SESSIONS_LIMIT + 1
    run = run_program("dev", config=config)
    assert run.error is not None and "maxSessions" in run.error
    assert [r for r in run.resources if r.type == SESSION_POOL_TYPE] == []
