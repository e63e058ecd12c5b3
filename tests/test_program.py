"""The program under Pulumi's mock engine (update mode): exactly what each stack registers.

Inputs are read from the registrations the recording monitor kept, never inside an `apply`, so
every assertion below runs; each test also checks how many resources it looked at.
"""

from __future__ import annotations

import re

import pytest
from conftest import SHIPPED_STACKS
from pulumi.output import Unknown

from components.access import role_assignment_name
from components.azure import (
    MANAGEMENT_LOCK_TYPE,
    RESOURCE_GROUP_TYPE,
    ROLE_ASSIGNMENT_TYPE,
    SESSION_EXECUTOR_ROLE_ID,
    SESSION_POOL_TYPE,
)
from components.session_pool import COMPONENT_TYPE
from offline.engine import (
    OFFLINE_DEPLOYER_OBJECT_ID,
    OFFLINE_SUBSCRIPTION_ID,
    EngineError,
    OfflineIdentity,
    ProgramRun,
    run_program,
    stack_outputs,
)

SUB = OFFLINE_SUBSCRIPTION_ID
EXECUTOR_ROLE = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{SESSION_EXECUTOR_ROLE_ID}"
PROD_GROUP = "3f2b8c1e-6d4a-4e7b-9a5c-1d2e3f4a5b6c"

DEV_TAGS = {"managed-by": "pulumi", "pulumi-project": "dynamic-sessions", "pulumi-stack": "dev"}
PROD_TAGS = {
    "environment": "prod",
    "owner": "platform-team",
    "costCenter": "cc-1234",
    "managed-by": "pulumi",
    "pulumi-project": "dynamic-sessions",
    "pulumi-stack": "prod",
}

# What each shipped stack must send, written out by hand from the stack files and the tutorial.
EXPECTED = {
    "dev": {
        RESOURCE_GROUP_TYPE: {
            "resourceGroupName": "rg-dynamic-sessions-dev",
            "location": "northcentralus",
            "tags": DEV_TAGS,
        },
        SESSION_POOL_TYPE: {
            "resourceGroupName": "rg-dynamic-sessions-dev",
            "sessionPoolName": "dynamicsessionsdev",
            "location": "northcentralus",
            "containerType": "NodeLTS",
            "poolManagementType": "Dynamic",
            "scaleConfiguration": {"maxConcurrentSessions": 5},
            "dynamicPoolConfiguration": {
                "lifecycleConfiguration": {"lifecycleType": "Timed", "cooldownPeriodInSeconds": 300}
            },
            "sessionNetworkConfiguration": {"status": "EgressEnabled"},
            "tags": DEV_TAGS,
        },
        "executors": {OFFLINE_DEPLOYER_OBJECT_ID: "User"},
        "protect": False,
        MANAGEMENT_LOCK_TYPE: None,
    },
    "prod": {
        RESOURCE_GROUP_TYPE: {
            "resourceGroupName": "rg-dynamic-sessions-prod",
            "location": "northcentralus",
            "tags": PROD_TAGS,
        },
        SESSION_POOL_TYPE: {
            "resourceGroupName": "rg-dynamic-sessions-prod",
            "sessionPoolName": "dynamicsessionsprod",
            "location": "northcentralus",
            "containerType": "NodeLTS",
            "poolManagementType": "Dynamic",
            "scaleConfiguration": {"maxConcurrentSessions": 50, "readySessionInstances": 2},
            "dynamicPoolConfiguration": {
                "lifecycleConfiguration": {"lifecycleType": "Timed", "cooldownPeriodInSeconds": 600}
            },
            "sessionNetworkConfiguration": {"status": "EgressDisabled"},
            "tags": PROD_TAGS,
        },
        "executors": {OFFLINE_DEPLOYER_OBJECT_ID: "ServicePrincipal", PROD_GROUP: "Group"},
        "protect": True,
        MANAGEMENT_LOCK_TYPE: {
            "resourceGroupName": "rg-dynamic-sessions-prod",
            "lockName": "dynamicsessionsprod-lock",
            "level": "CanNotDelete",
            "notes": "Managed by Pulumi stack prod of project dynamic-sessions. To lift it, set "
            "dynamic-sessions:lock to none and run pulumi up (docs/teardown.md).",
        },
    },
}


def test_every_shipped_stack_has_expectations() -> None:
    assert sorted(EXPECTED) == SHIPPED_STACKS, "a new Pulumi.<stack>.yaml needs its expected inputs here"


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_resource_group_and_pool_inputs_are_exact(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    run = stack_runs[stack]
    assert run.error is None
    expected = EXPECTED[stack]
    group = run.one(RESOURCE_GROUP_TYPE)
    pool = run.one(SESSION_POOL_TYPE)
    assert group.inputs == expected[RESOURCE_GROUP_TYPE]
    assert pool.inputs == expected[SESSION_POOL_TYPE]
    # NodeLTS goes out as a plain string: the SDK's enum does not list it.
    assert type(pool.inputs["containerType"]) is str
    assert group.protect is expected["protect"]
    assert pool.protect is expected["protect"]
    # Fixed names mean a replacement must delete first, or Azure reports a name conflict.
    assert group.delete_before_replace and pool.delete_before_replace


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_executor_role_assignments(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    run = stack_runs[stack]
    pool = run.one(SESSION_POOL_TYPE)
    assignments = run.by_type(ROLE_ASSIGNMENT_TYPE)
    expected = EXPECTED[stack]["executors"]
    assert {a.inputs["principalId"]: a.inputs["principalType"] for a in assignments} == expected
    assert len(assignments) == len(expected)
    for assignment in assignments:
        assert set(assignment.inputs) == {
            "roleAssignmentName",
            "roleDefinitionId",
            "principalId",
            "principalType",
            "scope",
        }
        assert assignment.inputs["roleDefinitionId"] == EXECUTOR_ROLE
        # Least privilege: the scope is the pool itself, not its group or subscription.
        assert assignment.inputs["scope"] == pool.id
        assert assignment.inputs["roleAssignmentName"] == role_assignment_name(
            pool.id, assignment.inputs["principalId"]
        )
        assert assignment.protect is False


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_resource_is_a_child_of_the_component(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    run = stack_runs[stack]
    component = run.one(COMPONENT_TYPE)
    children = [resource for resource in run.resources if resource is not component]
    locks = 1 if EXPECTED[stack][MANAGEMENT_LOCK_TYPE] else 0
    assert len(children) == 2 + len(EXPECTED[stack]["executors"]) + locks
    for child in children:
        assert child.parent == component.urn
        assert child.name.startswith(f"{component.name}-")
        assert child.custom


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_stack_outputs(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    run = stack_runs[stack]
    group = run.one(RESOURCE_GROUP_TYPE)
    pool = run.one(SESSION_POOL_TYPE)
    expected_pool = EXPECTED[stack][SESSION_POOL_TYPE]
    assert run.outputs == {
        "resourceGroupName": expected_pool["resourceGroupName"],
        "sessionPoolName": expected_pool["sessionPoolName"],
        "sessionPoolId": pool.id,
        # Wired from the pool's own read-only output, as Azure reports it.
        "poolManagementEndpoint": pool.state["poolManagementEndpoint"],
        "location": "northcentralus",
        "containerType": "NodeLTS",
        "networkStatus": expected_pool["sessionNetworkConfiguration"]["status"],
        "executorPrincipalIds": list(EXPECTED[stack]["executors"]),
        "lock": (EXPECTED[stack][MANAGEMENT_LOCK_TYPE] or {"level": "none"})["level"],
    }
    assert group.state["name"] == run.outputs["resourceGroupName"]
    assert pool.id == (
        f"/subscriptions/{SUB}/resourceGroups/{expected_pool['resourceGroupName']}"
        f"/providers/Microsoft.App/sessionPools/{expected_pool['sessionPoolName']}"
    )


def test_role_definition_and_deployer_come_from_the_client_config_invoke() -> None:
    other = OfflineIdentity(
        subscription_id="11111111-2222-4333-8444-555555555555",
        object_id="66666666-7777-4888-9999-aaaaaaaaaaaa",
    )
    run = run_program("dev", identity=other)
    (assignment,) = run.by_type(ROLE_ASSIGNMENT_TYPE)
    assert assignment.inputs["roleDefinitionId"] == (
        f"/subscriptions/{other.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{SESSION_EXECUTOR_ROLE_ID}"
    )
    assert assignment.inputs["principalId"] == other.object_id
    assert assignment.inputs["scope"].startswith(f"/subscriptions/{other.subscription_id}/resourceGroups/")


def test_two_runs_give_identical_names() -> None:
    first, second = run_program("prod"), run_program("prod")
    assert len(first.resources) == len(second.resources) == 6

    def names(run: ProgramRun) -> list[tuple[str, str, str]]:
        return sorted((r.type, r.name, str(r.inputs.get("roleAssignmentName"))) for r in run.resources)

    assert names(first) == names(second)
    assert {r.inputs["roleAssignmentName"] for r in first.by_type(ROLE_ASSIGNMENT_TYPE)} == {
        r.inputs["roleAssignmentName"] for r in second.by_type(ROLE_ASSIGNMENT_TYPE)
    }


def test_different_principals_and_stacks_get_different_assignment_names() -> None:
    principals = ["aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002"]
    config = {
        "assignDeployer": False,
        "executors": [{"principalId": principal, "principalType": "User"} for principal in principals],
    }
    run = run_program("dev", config)
    assignments = run.by_type(ROLE_ASSIGNMENT_TYPE)
    assert len(assignments) == 2
    assert len({a.inputs["roleAssignmentName"] for a in assignments}) == 2
    dev, prod = run_program("dev"), run_program("prod")
    dev_names = {a.inputs["roleAssignmentName"] for a in dev.by_type(ROLE_ASSIGNMENT_TYPE)}
    prod_names = {a.inputs["roleAssignmentName"] for a in prod.by_type(ROLE_ASSIGNMENT_TYPE)}
    assert len(dev_names) == 1 and not dev_names & prod_names


def test_assign_deployer_false_grants_only_the_listed_executors() -> None:
    run = run_program("dev", {"assignDeployer": False})
    assert run.error is None
    assert run.by_type(ROLE_ASSIGNMENT_TYPE) == []
    assert run.outputs["executorPrincipalIds"] == []
    assert len(run.resources) == 3


def test_pipeline_deployer_is_granted_as_a_service_principal() -> None:
    run = run_program("dev", {"deployerPrincipalType": "ServicePrincipal"})
    (assignment,) = run.by_type(ROLE_ASSIGNMENT_TYPE)
    assert assignment.inputs["principalType"] == "ServicePrincipal"


def test_ready_sessions_is_sent_only_when_set() -> None:
    run = run_program("dev", {"maxSessions": 10, "readySessions": 10})
    assert run.one(SESSION_POOL_TYPE).inputs["scaleConfiguration"] == {
        "maxConcurrentSessions": 10,
        "readySessionInstances": 10,
    }
    assert "readySessionInstances" not in run_program("dev").one(SESSION_POOL_TYPE).inputs["scaleConfiguration"]


def test_executor_that_is_also_the_deployer_is_rejected_before_anything_is_registered() -> None:
    run = run_program("dev", {"executors": [{"principalId": OFFLINE_DEPLOYER_OBJECT_ID, "principalType": "User"}]})
    assert run.resources == []
    assert "dynamic-sessions:executors[0].principalId" in run.error
    assert "assignDeployer" in run.error


def test_unknown_deployer_object_id_is_a_clear_error() -> None:
    run = run_program("dev", identity=OfflineIdentity(object_id=""))
    assert run.resources == []
    assert "assignDeployer" in run.error and "set assignDeployer to false" in run.error
    ok = run_program("dev", {"assignDeployer": False}, identity=OfflineIdentity(object_id=""))
    assert ok.error is None and len(ok.resources) == 3


def test_custom_names_are_used_as_given() -> None:
    run = run_program("dev", {"poolName": "jsinterp01", "resourceGroupName": "rg-team.js(sandbox)"})
    assert run.one(SESSION_POOL_TYPE).inputs["sessionPoolName"] == "jsinterp01"
    assert run.one(RESOURCE_GROUP_TYPE).inputs["resourceGroupName"] == "rg-team.js(sandbox)"
    assert run.outputs["sessionPoolId"].endswith(
        "/resourceGroups/rg-team.js(sandbox)/providers/Microsoft.App/sessionPools/jsinterp01"
    )


def test_first_preview_has_unknowns_only_where_resources_feed_each_other() -> None:
    preview, update = run_program("prod", preview=True), run_program("prod")
    assert preview.error is None
    assert len(preview.resources) == len(update.resources) == 6
    unknown = {
        (resource.name, key)
        for resource in preview.resources
        for key, value in resource.inputs.items()
        if isinstance(value, Unknown)
    }
    assert unknown == {
        ("pool-pool", "resourceGroupName"),
        ("pool-lock", "resourceGroupName"),
        ("pool-executor-deployer", "scope"),
        (f"pool-executor-{PROD_GROUP}", "scope"),
    }
    known_in_update = {r.name: r.inputs for r in update.resources}
    for resource in preview.resources:
        for key, value in resource.inputs.items():
            if (resource.name, key) not in unknown:
                assert value == known_in_update[resource.name][key], (resource.name, key)
    # Role assignment names never wait for Azure: a preview shows the same names as the deploy.
    assert {r.inputs["roleAssignmentName"] for r in preview.by_type(ROLE_ASSIGNMENT_TYPE)} == {
        r.inputs["roleAssignmentName"] for r in update.by_type(ROLE_ASSIGNMENT_TYPE)
    }
    assert preview.outputs["poolManagementEndpoint"] is None  # known after the deploy
    assert preview.outputs["executorPrincipalIds"] == update.outputs["executorPrincipalIds"]


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_pool_waits_for_its_group_and_roles_wait_for_the_pool(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    run = stack_runs[stack]
    group, pool = run.one(RESOURCE_GROUP_TYPE), run.one(SESSION_POOL_TYPE)
    assert pool.property_dependencies["resourceGroupName"] == {group.urn}
    assignments = run.by_type(ROLE_ASSIGNMENT_TYPE)
    assert assignments
    for assignment in assignments:
        # The scope is the pool's own output, so Azure sees the pool before its role assignments.
        assert assignment.property_dependencies["scope"] == {pool.urn}


# --- The management lock -----------------------------------------------------------------------


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_lock_inputs_are_exact(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    run = stack_runs[stack]
    expected = EXPECTED[stack][MANAGEMENT_LOCK_TYPE]
    locks = run.by_type(MANAGEMENT_LOCK_TYPE)
    assert [lock.inputs for lock in locks] == ([expected] if expected else [])
    for lock in locks:
        # Never `protect`ed (lock: none must delete it with a plain pulumi up, even on a protected
        # stack), and replaced delete-first (its name is fixed).
        assert lock.protect is False
        assert lock.delete_before_replace


def test_the_lock_comes_last_so_destroy_removes_it_first(stack_runs: dict[str, ProgramRun]) -> None:
    run = stack_runs["prod"]
    group, pool, lock = run.one(RESOURCE_GROUP_TYPE), run.one(SESSION_POOL_TYPE), run.one(MANAGEMENT_LOCK_TYPE)
    assignments = run.by_type(ROLE_ASSIGNMENT_TYPE)
    assert len(assignments) == 2
    # Created after everything it guards (a ReadOnly lock would refuse them otherwise); Pulumi
    # deletes dependents first, so `pulumi destroy` deletes the lock before the rest.
    assert lock.property_dependencies["resourceGroupName"] == {group.urn}
    assert lock.dependencies == {group.urn, pool.urn, *(assignment.urn for assignment in assignments)}


@pytest.mark.parametrize("level", ["CanNotDelete", "ReadOnly"])
def test_each_lock_level_is_sent_as_given(level: str) -> None:
    run = run_program("dev", {"lock": level})
    assert run.one(MANAGEMENT_LOCK_TYPE).inputs["level"] == level
    assert run.outputs["lock"] == level


def test_no_lock_by_default_and_with_none() -> None:
    for config in ({}, {"lock": "none"}):
        run = run_program("dev", config)
        assert run.error is None and len(run.resources) == 4
        assert run.by_type(MANAGEMENT_LOCK_TYPE) == []
        assert run.outputs["lock"] == "none"


# --- The component's contract and the SDK adapter ---------------------------------------------


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_the_component_registers_every_stack_output(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    run = stack_runs[stack]
    component = run.one(COMPONENT_TYPE)
    # register_outputs reaches the engine as the component's outputs: the same names the stack exports.
    assert run.registered_outputs[component.urn] == run.outputs
    assert run.outputs["poolManagementEndpoint"].startswith("https://")


def test_the_sdk_adapter_still_sees_registrations_and_exports(stack_runs: dict[str, ProgramRun]) -> None:
    run = stack_runs["dev"]
    adapter = "offline/engine.py's SDK adapter (RecordingMonitor, stack_outputs)"
    assert run.resources, f"{adapter} saw no registration under this Pulumi SDK"
    assert all(resource.urn.startswith("urn:pulumi:dev::") for resource in run.resources), adapter
    assert run.outputs.get("resourceGroupName") == "rg-dynamic-sessions-dev", f"{adapter} lost the stack outputs"


def test_the_adapter_says_what_broke_when_the_sdk_keeps_no_outputs() -> None:
    # Outside a program run there is no root Stack resource: the same state a changed SDK would leave.
    with pytest.raises(EngineError, match=re.escape("update offline/engine.py's stack_outputs")):
        stack_outputs()


# --- Config keys nothing reads ------------------------------------------------------------------


def test_a_key_in_a_misspelled_namespace_is_warned_about_under_pulumi_up() -> None:
    # The offline plan refuses such a stack file; under the real CLI the program is what can tell.
    run = run_program("dev", {"dynamic-session:maxSessions": "0", "azure-native:location": "westus"})
    assert run.error is None
    assert run.warnings == [
        "The config key 'dynamic-session:maxSessions' is read by nothing (this program reads "
        "dynamic-sessions:<name>), so it has no effect; did you mean dynamic-sessions:maxSessions? "
        "Fix or remove it in the stack file."
    ]
    assert run_program("dev").warnings == []
