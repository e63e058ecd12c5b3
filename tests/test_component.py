"""CodeInterpreterPool used directly from another Python program, under the mock engine: its own validation,
an existing resource group, inputs that are other resources' outputs, and getClientConfig only when needed.

Inputs are read from the registrations the recording monitor kept (never inside an `apply`), and each test
says how many registrations it looked at.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from pulumi_azure_native import resources

from components.access import role_assignment_name
from components.azure import (
    RESOURCE_GROUP_TYPE,
    ROLE_ASSIGNMENT_TYPE,
    SESSION_POOL_TYPE,
    role_definition_id,
)
from components.session_pool import COMPONENT_TYPE, CodeInterpreterPool, CodeInterpreterPoolArgs
from offline.engine import (
    GET_CLIENT_CONFIG,
    OFFLINE_DEPLOYER_OBJECT_ID,
    OFFLINE_SUBSCRIPTION_ID,
    ProgramRun,
    run_offline,
)

GROUP = "3f2b8c1e-6d4a-4e7b-9a5c-1d2e3f4a5b6c"
IDENTITY = "0b7c3f2e-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
EXECUTOR_ROLE = role_definition_id(OFFLINE_SUBSCRIPTION_ID)


def run_pool(
    args: CodeInterpreterPoolArgs | dict[str, Any], *, before: Any = None, preview: bool = False
) -> ProgramRun:
    """A program (project dynamic-sessions, stack staging) that creates one pool named jspool.

    `before()` runs first and returns a dict of resources; any value in `args` may be a callable taking it
    (to give another resource's output, made inside the program)."""

    def body() -> dict[str, Any]:
        made = before() if before else {}
        given = _resolve(args, made)
        return CodeInterpreterPool("jspool", given).outputs  # type: ignore[arg-type]

    return run_offline(body, "staging", preview=preview)


def _resolve(value: Any, made: dict[str, Any]) -> Any:
    if callable(value):
        return value(made)
    if isinstance(value, dict):
        return {key: _resolve(item, made) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, made) for item in value]
    return value


def shared_group() -> dict[str, Any]:
    """The application's resource group, made by the application's program (not by the component)."""
    return {"group": resources.ResourceGroup("app-rg", resource_group_name="rg-agents-app", location="westeurope")}


def test_an_existing_group_by_name_is_used_and_not_created() -> None:
    run = run_pool(
        {
            "create_resource_group": False,
            "resource_group_name": "rg-agents-app",
            "location": "westeurope",
            "assign_deployer": False,
            "executors": [
                {"principal_id": GROUP, "principal_type": "Group"},
                {"principal_id": IDENTITY, "principal_type": "ServicePrincipal"},
            ],
        }
    )
    assert run.error is None
    assert [r.type for r in run.resources] == [
        COMPONENT_TYPE,
        SESSION_POOL_TYPE,
        ROLE_ASSIGNMENT_TYPE,
        ROLE_ASSIGNMENT_TYPE,
    ]
    pool = run.one(SESSION_POOL_TYPE)
    assert pool.inputs["resourceGroupName"] == "rg-agents-app"
    assert pool.inputs["location"] == "westeurope"
    assert pool.inputs["sessionPoolName"] == "dynamicsessionsstaging"
    assert pool.property_dependencies.get("resourceGroupName", frozenset()) == frozenset()
    names = {r.name: r.inputs for r in run.by_type(ROLE_ASSIGNMENT_TYPE)}
    assert set(names) == {f"jspool-executor-{GROUP}", f"jspool-executor-{IDENTITY}"}
    for inputs in names.values():
        # Without getClientConfig the role's id comes from the pool's subscription.
        assert inputs["roleDefinitionId"] == EXECUTOR_ROLE
        assert inputs["scope"] == pool.id
        assert inputs["roleAssignmentName"] == role_assignment_name(pool.id, inputs["principalId"])
    assert run.invokes == []
    assert run.outputs["resourceGroupName"] == "rg-agents-app"
    assert run.outputs["executorPrincipalIds"] == [GROUP, IDENTITY]


def test_an_existing_group_given_as_another_resources_output_is_waited_for() -> None:
    run = run_pool(
        {
            "create_resource_group": False,
            "resource_group_name": lambda made: made["group"].name,
            "location": lambda made: made["group"].location,
        },
        before=shared_group,
    )
    assert run.error is None
    group, pool = run.one(RESOURCE_GROUP_TYPE), run.one(SESSION_POOL_TYPE)
    assert group.name == "app-rg" and group.parent != run.one(COMPONENT_TYPE).urn  # the application's, not ours
    assert pool.inputs["resourceGroupName"] == "rg-agents-app" and pool.inputs["location"] == "westeurope"
    assert pool.property_dependencies["resourceGroupName"] == {group.urn}
    (deployer,) = run.by_type(ROLE_ASSIGNMENT_TYPE)
    assert deployer.name == "jspool-executor-deployer"
    assert deployer.inputs["principalId"] == OFFLINE_DEPLOYER_OBJECT_ID
    assert run.invokes == [GET_CLIENT_CONFIG]
    assert len(run.resources) == 4


def test_an_output_that_turns_out_bad_stops_the_resources_that_use_it() -> None:
    run = run_pool(
        {
            "create_resource_group": False,
            "resource_group_name": "rg-agents-app",
            "location": lambda made: pulumi.Output.from_input("West Europe"),
        }
    )
    assert run.error is not None
    assert "location = 'West Europe': expected an Azure region name" in run.error
    assert "(did you mean westeurope?)" in run.error
    assert run.by_type(SESSION_POOL_TYPE) == [] and run.by_type(ROLE_ASSIGNMENT_TYPE) == []


def test_an_executor_given_as_an_output_is_granted_and_named_by_position() -> None:
    run = run_pool(
        {
            "assign_deployer": False,
            "executors": [
                {"principal_id": GROUP, "principal_type": "Group"},
                {
                    "principal_id": lambda made: pulumi.Output.from_input(IDENTITY.upper()),
                    "principal_type": "ServicePrincipal",
                },
            ],
        }
    )
    assert run.error is None
    pool = run.one(SESSION_POOL_TYPE)
    assignments = {r.name: r.inputs for r in run.by_type(ROLE_ASSIGNMENT_TYPE)}
    assert set(assignments) == {f"jspool-executor-{GROUP}", "jspool-executor-1"}
    late = assignments["jspool-executor-1"]
    assert late["principalId"] == IDENTITY  # checked and normalized once known
    assert late["roleAssignmentName"] == role_assignment_name(pool.id, IDENTITY)
    assert run.outputs["executorPrincipalIds"] == [GROUP, IDENTITY]


def test_an_executor_output_that_is_the_deployer_is_refused_once_known() -> None:
    run = run_pool(
        {
            "executors": [
                {
                    "principal_id": lambda made: pulumi.Output.from_input(OFFLINE_DEPLOYER_OBJECT_ID),
                    "principal_type": "User",
                }
            ]
        }
    )
    assert run.error is not None
    assert "executors[0].principalId" in run.error and "assignDeployer already grants" in run.error
    # The deployment stops: the refused principal is never granted.
    assert "jspool-executor-0" not in {r.name for r in run.by_type(ROLE_ASSIGNMENT_TYPE)}


def test_bad_inputs_are_named_as_inputs_all_at_once_and_nothing_is_registered() -> None:
    run = run_pool(
        {"max_sessions": 0, "network_status": "On", "executors": [{"principal_id": "x", "principal_type": "Group"}]}
    )
    assert run.resources == []
    assert run.invokes == []  # nothing asked of Azure either
    assert run.error == (
        "Invalid inputs of CodeInterpreterPool 'jspool':\n"
        "  - networkStatus = 'On': expected one of EgressEnabled, EgressDisabled.\n"
        "  - maxSessions = 0: expected a whole number from 1 to 600.\n"
        "  - executors[0].principalId = 'x': expected an Entra ID object id GUID like "
        "00000000-0000-0000-0000-000000000000 (az ad user show / az ad group show / az ad sp show --query id).\n"
        "Fix these in the arguments the program gives the component (docs/component.md)."
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            {"create_resource_group": False},
            "resourceGroupName = null: expected the name of the existing resource group",
        ),
        (
            {"create_resource_group": False, "resource_group_name": "rg-agents-app", "lock": "CanNotDelete"},
            "lock = 'CanNotDelete': expected none when createResourceGroup is false",
        ),
        ({"cooldown_seconds": 60}, "cooldownSeconds = 60: expected a whole number of seconds from 300 to 3600"),
    ],
)
def test_settings_that_need_a_group_of_ones_own_are_refused(args: dict[str, Any], expected: str) -> None:
    run = run_pool(args)
    assert run.resources == []
    assert run.error is not None and expected in run.error


def test_the_deployer_identity_is_asked_for_only_when_granted() -> None:
    granted, not_granted = run_pool({}), run_pool({"assign_deployer": False})
    assert granted.invokes == [GET_CLIENT_CONFIG] and not_granted.invokes == []
    assert [r.name for r in granted.by_type(ROLE_ASSIGNMENT_TYPE)] == ["jspool-executor-deployer"]
    assert not_granted.by_type(ROLE_ASSIGNMENT_TYPE) == []
    # The defaults: a group of its own, named after the project and stack.
    assert granted.one(RESOURCE_GROUP_TYPE).inputs["resourceGroupName"] == "rg-dynamic-sessions-staging"
    assert granted.one(SESSION_POOL_TYPE).inputs["containerType"] == "NodeLTS"


def test_whole_numbers_that_arrive_as_floats_are_taken_as_written() -> None:
    # The provider protocol carries every number as a float.
    run = run_pool({"max_sessions": 20.0, "cooldown_seconds": 600.0, "assign_deployer": False})
    assert run.error is None
    pool = run.one(SESSION_POOL_TYPE)
    assert pool.inputs["scaleConfiguration"] == {"maxConcurrentSessions": 20}
    assert pool.inputs["dynamicPoolConfiguration"]["lifecycleConfiguration"]["cooldownPeriodInSeconds"] == 600
    assert run_pool({"max_sessions": 2.5}).error is not None
