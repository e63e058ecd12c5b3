"""The component package `dynamic-sessions` (package/): its schema, checked against Pulumi's metaschema and the
docs; its examples; and the plugin driven over Pulumi's provider protocol as the CLI drives it for a TypeScript
or YAML program (GetSchema, then Construct with a ResourceMonitor this test serves)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from packaging.requirements import Requirement
from pulumi.runtime.proto import errors_pb2, provider_pb2, status_pb2
from pulumi.runtime.rpc import UNKNOWN

import components
from components.access import role_assignment_name
from components.azure import (
    RESOURCE_GROUP_TYPE,
    ROLE_ASSIGNMENT_TYPE,
    SESSION_POOL_TYPE,
    role_definition_id,
    session_pool_id,
)
from components.package import schema as code_schema
from components.session_pool import COMPONENT_TYPE
from offline.engine import GET_CLIENT_CONFIG, OFFLINE_DEPLOYER_OBJECT_ID, OFFLINE_SUBSCRIPTION_ID
from tests.support.provider_engine import PLUGIN_DIR, Plugin, from_struct, running_plugin, to_struct

PROJECT_ROOT = Path(__file__).resolve().parent.parent
METASCHEMA = PROJECT_ROOT / "tests/data/pulumi-package-metaschema.json"
COMPONENT_DOC = PROJECT_ROOT / "docs/component.md"
GROUP = "3f2b8c1e-6d4a-4e7b-9a5c-1d2e3f4a5b6c"
IDENTITY = "0b7c3f2e-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
EXECUTOR_TYPE = "dynamic-sessions:index:Executor"

INPUTS = [
    "location",
    "containerType",
    "maxSessions",
    "readySessions",
    "cooldownSeconds",
    "networkStatus",
    "poolName",
    "resourceGroupName",
    "createResourceGroup",
    "executors",
    "assignDeployer",
    "deployerPrincipalType",
    "tags",
    "lock",
    "protect",
]
OUTPUTS = [
    "resourceGroupName",
    "sessionPoolName",
    "sessionPoolId",
    "poolManagementEndpoint",
    "location",
    "containerType",
    "networkStatus",
    "executorPrincipalIds",
    "lock",
]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return code_schema()


@pytest.fixture(scope="module")
def component(schema: dict[str, Any]) -> dict[str, Any]:
    return schema["resources"][COMPONENT_TYPE]


@pytest.fixture(scope="module")
def plugin() -> Iterator[Plugin]:
    with running_plugin() as running:
        yield running


# --- The schema ----------------------------------------------------------------------------------------------


def _metaschema_check(document: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # check-jsonschema: the metaschema's patterns are ECMA-262 regular expressions, which it evaluates as such.
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(document))
    command = [sys.executable, "-m", "check_jsonschema", "--schemafile", str(METASCHEMA), str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_the_schema_validates_against_pulumis_package_metaschema(schema: dict[str, Any], tmp_path: Path) -> None:
    checked = _metaschema_check(schema, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = json.loads(json.dumps(schema))
    broken["resources"][COMPONENT_TYPE]["inputProperties"]["maxSessions"]["type"] = "int"
    assert _metaschema_check(broken, tmp_path).returncode != 0, "the metaschema check cannot fail"


def test_the_schema_names_every_input_and_output_with_a_type_and_a_description(component: dict[str, Any]) -> None:
    assert list(component["inputProperties"]) == INPUTS
    assert sorted(component["properties"]) == sorted(OUTPUTS)
    assert component["requiredInputs"] == []
    assert sorted(component["required"]) == sorted(OUTPUTS)
    for kind in ("inputProperties", "properties"):
        for name, spec in component[kind].items():
            assert spec.get("type") or spec.get("$ref"), (kind, name)
            assert len(spec.get("description", "")) > 20, (kind, name)
            assert "\n" not in spec["description"], (kind, name)
    assert component["isComponent"] is True and component["description"]


def test_the_executor_type_is_a_principal_id_and_its_type(schema: dict[str, Any]) -> None:
    executor = schema["types"][EXECUTOR_TYPE]
    assert executor["type"] == "object" and executor["required"] == ["principalId", "principalType"]
    assert {name: spec["type"] for name, spec in executor["properties"].items()} == {
        "principalId": "string",
        "principalType": "string",
    }
    assert all(spec["description"] for spec in executor["properties"].values())


def test_the_package_has_its_name_and_one_version(schema: dict[str, Any]) -> None:
    assert schema["name"] == "dynamic-sessions"
    assert schema["version"] == components.__version__ == "0.1.0"
    changelog = (PLUGIN_DIR / "CHANGELOG.md").read_text()
    assert re.findall(r"^## (\S+)", changelog, flags=re.MULTILINE)[0] == components.__version__
    for document in (COMPONENT_DOC, PROJECT_ROOT / "README.md"):
        shown = set(re.findall(r"package@v(\d+\.\d+\.\d+)", document.read_text()))
        assert shown == {components.__version__}, document.name


def test_the_plugin_folder_is_what_pulumi_package_add_runs() -> None:
    plugin_file = yaml.safe_load((PLUGIN_DIR / "PulumiPlugin.yaml").read_text())
    assert plugin_file["runtime"]["name"] == "python"
    assert (PLUGIN_DIR / "__main__.py").is_file()
    # The plugin's own virtualenv gets the same pins as the project's.
    project_pins = {Requirement(line).name: str(Requirement(line).specifier) for line in _requirements(PROJECT_ROOT)}
    plugin_pins = {Requirement(line).name: str(Requirement(line).specifier) for line in _requirements(PLUGIN_DIR)}
    assert set(plugin_pins) == {"pulumi", "pulumi-azure-native"}
    assert {name: project_pins[name] for name in plugin_pins} == plugin_pins


def _requirements(folder: Path) -> list[str]:
    lines = (folder / "requirements.txt").read_text().splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


# --- docs/component.md against the schema --------------------------------------------------------------------


def _table(heading: str) -> dict[str, list[str]]:
    """The rows of the first table after a heading (or a line) of docs/component.md, by their first cell."""
    text = COMPONENT_DOC.read_text()
    after = text[text.index(heading) :]
    rows: dict[str, list[str]] = {}
    for line in after.splitlines()[1:]:
        if rows and not line.startswith("|"):
            break
        if line.startswith("|") and not line.startswith("|---"):
            cells = [cell.strip().replace("`", "") for cell in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    rows.pop(next(iter(rows)))  # the header row
    return rows


def _doc_type(spec: dict[str, Any]) -> str:
    if "$ref" in spec:
        return spec["$ref"].rsplit(":", 1)[-1]
    if spec["type"] == "array":
        return f"array of {_doc_type(spec['items'])}"
    if spec["type"] == "object":
        return f"map of {_doc_type(spec['additionalProperties'])}"
    return spec["type"]


def _shown(spec: dict[str, Any]) -> str:
    """How the docs show a property's type: plain inputs as their type, others with '(output accepted)'."""
    return _doc_type(spec) if spec.get("plain") else f"{_doc_type(spec)} (output accepted)"


def test_the_docs_inputs_table_is_the_schemas_inputs(component: dict[str, Any]) -> None:
    documented = _table("## Inputs")
    assert list(documented) == list(component["inputProperties"])
    for name, spec in component["inputProperties"].items():
        assert documented[name][0] == _shown(spec), name
        default = spec["description"].rsplit("Default: ", 1)[-1]
        assert default.rstrip(".") in ("unset", "none", "the project and stack names, letters and digits only") or (
            default.rstrip(".") in documented[name][1]
        ), (name, default, documented[name][1])


def test_the_docs_executor_table_is_the_schemas_executor(schema: dict[str, Any]) -> None:
    documented = _table("`Executor`:")
    properties = schema["types"][EXECUTOR_TYPE]["properties"]
    assert list(documented) == list(properties)
    for name, spec in properties.items():
        assert documented[name][0] == _shown(spec), name


def test_the_docs_outputs_table_is_the_schemas_outputs(component: dict[str, Any]) -> None:
    documented = _table("## Outputs")
    assert list(documented) == OUTPUTS
    for name, spec in component["properties"].items():
        assert documented[name][0] == _doc_type(spec), name


# --- The examples --------------------------------------------------------------------------------------------

PRIMITIVES = {"string": str, "integer": int, "boolean": bool}


def _check_value(value: Any, spec: dict[str, Any], schema: dict[str, Any], where: str) -> None:
    if isinstance(value, str) and value.startswith("${"):
        assert not spec.get("plain"), f"{where} takes a plain value, not {value}"
        return
    if "$ref" in spec:
        properties = schema["types"][spec["$ref"].removeprefix("#/types/")]["properties"]
        assert isinstance(value, dict) and set(value) <= set(properties), where
        for key, item in value.items():
            _check_value(item, properties[key], schema, f"{where}.{key}")
    elif spec["type"] == "array":
        assert isinstance(value, list), where
        for index, item in enumerate(value):
            _check_value(item, spec["items"], schema, f"{where}[{index}]")
    elif spec["type"] == "object":
        assert isinstance(value, dict), where
    else:
        assert type(value) is PRIMITIVES[spec["type"]], (where, value)


def test_the_yaml_example_uses_the_schemas_type_and_properties(schema: dict[str, Any]) -> None:
    program = yaml.safe_load((PROJECT_ROOT / "examples/yaml/Pulumi.yaml").read_text())
    assert program["packages"] == {
        "dynamic-sessions": f"github.com/<org>/dynamic-sessions/package@v{schema['version']}"
    }
    pools = {name: r for name, r in program["resources"].items() if r["type"].startswith("dynamic-sessions:")}
    assert len(pools) == 1
    ((name, pool),) = pools.items()
    # YAML's short form <package>:<Type> stands for <package>:index:<Type>.
    assert pool["type"].replace(":", ":index:", 1) in schema["resources"]
    inputs = schema["resources"][COMPONENT_TYPE]["inputProperties"]
    assert set(pool["properties"]) <= set(inputs)
    for key, value in pool["properties"].items():
        _check_value(value, inputs[key], schema, key)
    assert len(pool["properties"]["executors"]) == 2 and pool["properties"]["createResourceGroup"] is False
    for value in program["outputs"].values():
        reference = re.fullmatch(r"\$\{(\w+)\.(\w+)\}", value)
        assert reference and reference[1] == name and reference[2] in schema["resources"][COMPONENT_TYPE]["properties"]


def test_the_typescript_and_python_examples_use_only_the_schemas_names(schema: dict[str, Any]) -> None:
    component = schema["resources"][COMPONENT_TYPE]
    names = {*component["inputProperties"], *schema["types"][EXECUTOR_TYPE]["properties"]}
    typescript = (PROJECT_ROOT / "examples/typescript/index.ts").read_text()
    call = typescript[typescript.index("new dynamicSessions.CodeInterpreterPool(") :]
    call = call[: call.index("});")]
    used = set(re.findall(r"(\w+):", call))
    assert used and used <= names, used - names
    assert set(re.findall(r"pool\.(\w+)", typescript)) <= set(component["properties"])
    python = (PROJECT_ROOT / "examples/python/__main__.py").read_text()
    call = python[python.index("dynamic_sessions.CodeInterpreterPool(") :]
    used = {
        re.sub(r"_(\w)", lambda m: m[1].upper(), key)
        for key in re.findall(r"(\w+)=|\"(\w+)\":", call)
        for key in key
        if key
    }
    assert used and used <= names, used - names


# --- The plugin over Pulumi's provider protocol ------------------------------------------------------------------


def test_get_schema_answers_the_schema_derived_from_the_code(plugin: Plugin, schema: dict[str, Any]) -> None:
    assert plugin.schema() == schema


def test_construct_into_an_existing_group_registers_the_pool_and_two_executors(plugin: Plugin) -> None:
    inputs = {
        "createResourceGroup": False,
        "resourceGroupName": "rg-agents-app",
        "location": "westeurope",
        "maxSessions": 20,
        "assignDeployer": False,
        "executors": [
            {"principalId": GROUP, "principalType": "Group"},
            {"principalId": IDENTITY, "principalType": "ServicePrincipal"},
        ],
    }
    response = plugin.construct("jspool", inputs)
    monitor = plugin.monitor
    component_urn = "urn:pulumi:staging::agents::dynamic-sessions:index:CodeInterpreterPool::jspool"
    assert response.urn == component_urn
    # The role assignments are registered concurrently, in either order.
    children = sorted((r.type, r.name, r.parent) for r in monitor.registrations)
    assert children == [
        (SESSION_POOL_TYPE, "jspool-pool", component_urn),
        (ROLE_ASSIGNMENT_TYPE, f"jspool-executor-{IDENTITY}", component_urn),
        (ROLE_ASSIGNMENT_TYPE, f"jspool-executor-{GROUP}", component_urn),
        (COMPONENT_TYPE, "jspool", "urn:pulumi:staging::agents::pulumi:pulumi:Stack::agents-staging"),
    ]
    assert monitor.registrations[0].type == COMPONENT_TYPE  # the component first, its children after
    pool_id = session_pool_id(OFFLINE_SUBSCRIPTION_ID, "rg-agents-app", "agentsstaging")
    (pool,) = [r for r in monitor.registrations if r.type == SESSION_POOL_TYPE]
    assert pool.inputs == {
        "resourceGroupName": "rg-agents-app",
        "sessionPoolName": "agentsstaging",
        "location": "westeurope",
        "containerType": "NodeLTS",
        "poolManagementType": "Dynamic",
        "scaleConfiguration": {"maxConcurrentSessions": 20},
        "dynamicPoolConfiguration": {
            "lifecycleConfiguration": {"lifecycleType": "Timed", "cooldownPeriodInSeconds": 300}
        },
        "sessionNetworkConfiguration": {"status": "EgressDisabled"},
        "tags": {"managed-by": "pulumi", "pulumi-project": "agents", "pulumi-stack": "staging"},
    }
    assignments = {r.name: r for r in monitor.registrations if r.type == ROLE_ASSIGNMENT_TYPE}
    for principal, kind in [(GROUP, "Group"), (IDENTITY, "ServicePrincipal")]:
        assignment = assignments[f"jspool-executor-{principal}"]
        assert assignment.inputs == {
            "roleAssignmentName": role_assignment_name(pool_id, principal),
            "roleDefinitionId": role_definition_id(OFFLINE_SUBSCRIPTION_ID),
            "principalId": principal,
            "principalType": kind,
            "scope": pool_id,
        }
    assert monitor.invokes == []  # assignDeployer is false: the deployer's identity is not asked for
    expected_outputs = {
        "resourceGroupName": "rg-agents-app",
        "sessionPoolName": "agentsstaging",
        "sessionPoolId": pool_id,
        "poolManagementEndpoint": (
            f"https://westeurope.dynamicsessions.io/subscriptions/{OFFLINE_SUBSCRIPTION_ID}"
            "/resourceGroups/rg-agents-app/sessionPools/agentsstaging"
        ),
        "location": "westeurope",
        "containerType": "NodeLTS",
        "networkStatus": "EgressDisabled",
        "executorPrincipalIds": [GROUP, IDENTITY],
        "lock": "none",
    }
    assert from_struct(response.state) == expected_outputs
    assert monitor.outputs[component_urn] == expected_outputs


def test_construct_with_the_defaults_creates_a_group_and_grants_the_deployer(plugin: Plugin) -> None:
    response = plugin.construct("pool", {}, project="agents", stack="dev")
    monitor = plugin.monitor
    assert [(r.type, r.name) for r in monitor.registrations] == [
        (COMPONENT_TYPE, "pool"),
        (RESOURCE_GROUP_TYPE, "pool-rg"),
        (SESSION_POOL_TYPE, "pool-pool"),
        (ROLE_ASSIGNMENT_TYPE, "pool-executor-deployer"),
    ]
    assert monitor.invokes == [GET_CLIENT_CONFIG]
    assert monitor.registrations[1].inputs["resourceGroupName"] == "rg-agents-dev"
    assert monitor.registrations[3].inputs["principalId"] == OFFLINE_DEPLOYER_OBJECT_ID
    assert from_struct(response.state)["executorPrincipalIds"] == [OFFLINE_DEPLOYER_OBJECT_ID]


def test_a_bad_input_comes_back_from_construct_as_the_one_message_with_nothing_registered(plugin: Plugin) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        plugin.construct(
            "jspool", {"maxSessions": 0, "networkStatus": "On", "lock": "CanNotDelete", "createResourceGroup": False}
        )
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "Invalid inputs of CodeInterpreterPool 'jspool':\n"
        "  - networkStatus = 'On': expected one of EgressEnabled, EgressDisabled.\n"
        "  - maxSessions = 0: expected a whole number from 1 to 600.\n"
        "  - resourceGroupName = null: expected the name of the existing resource group to deploy into, since "
        "createResourceGroup is false.\n"
        "  - lock = 'CanNotDelete': expected none when createResourceGroup is false: the lock is on the resource "
        "group, which belongs to whoever created it (lock it there).\n"
        "Fix these in the arguments the program gives the component (docs/component.md)."
    )
    # Each bad input by its path, as Pulumi's structured InputPropertiesError.
    details = dict(error.trailing_metadata())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    reported = errors_pb2.InputPropertiesError()
    assert status.details[0].Unpack(reported)
    assert [e.property_path for e in reported.errors] == ["networkStatus", "maxSessions", "resourceGroupName", "lock"]
    assert plugin.monitor.registrations == [] and plugin.monitor.invokes == []


def _construct_with_dependency(plugin: Plugin, principal: str, *, dry_run: bool) -> provider_pb2.ConstructResponse:
    """Construct as for `executors: [{group}, {principalId: identity.principalId}]`: the list depends on the
    identity, so the engine sends it with that dependency (and, in a first preview, the id unknown)."""
    plugin.monitor.reset("agents", "staging")
    identity_urn = "urn:pulumi:staging::agents::azure-native:managedidentity:UserAssignedIdentity::agent"
    inputs = {
        "assignDeployer": False,
        "executors": [
            {"principalId": GROUP, "principalType": "Group"},
            {"principalId": principal, "principalType": "ServicePrincipal"},
        ],
    }
    request = provider_pb2.ConstructRequest(
        project="agents",
        stack="staging",
        dryRun=dry_run,
        parallel=4,
        monitorEndpoint=plugin.monitor_address,
        type=COMPONENT_TYPE,
        name="jspool",
        parent="urn:pulumi:staging::agents::pulumi:pulumi:Stack::agents-staging",
        inputs=to_struct(inputs),
        inputDependencies={"executors": provider_pb2.ConstructRequest.PropertyDependencies(urns=[identity_urn])},
    )
    return plugin.provider.Construct(request, timeout=60)


def test_executors_that_wait_for_another_resource_are_granted_once_known(plugin: Plugin) -> None:
    response = _construct_with_dependency(plugin, IDENTITY, dry_run=False)
    assignments = [r for r in plugin.monitor.registrations if r.type == ROLE_ASSIGNMENT_TYPE]
    assert sorted((a.name, a.inputs["principalId"]) for a in assignments) == [
        ("jspool-executor-0", GROUP),
        ("jspool-executor-1", IDENTITY),
    ]
    assert from_struct(response.state)["executorPrincipalIds"] == [GROUP, IDENTITY]
    # In a first preview the identity's id is unknown: the pool is planned, its grants wait for the id.
    preview = _construct_with_dependency(plugin, UNKNOWN, dry_run=True)
    assert [r.type for r in plugin.monitor.registrations] == [COMPONENT_TYPE, RESOURCE_GROUP_TYPE, SESSION_POOL_TYPE]
    assert from_struct(preview.state).get("executorPrincipalIds") in (None, UNKNOWN)


def test_an_executor_that_turns_out_bad_is_refused_before_it_is_granted(plugin: Plugin) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        _construct_with_dependency(plugin, "not-a-guid", dry_run=False)
    assert "executors[1].principalId = 'not-a-guid': expected an Entra ID object id GUID" in caught.value.details()
    assert [r for r in plugin.monitor.registrations if r.type == ROLE_ASSIGNMENT_TYPE] == []
