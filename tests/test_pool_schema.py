"""The pool and the lock the program declares are valid for Azure's own API descriptions.

Azure's spec (tests/data, source in SOURCES.md) is Swagger 2.0; it is turned into JSON Schema here:
`$ref`s into the same file are inlined, enums marked `modelAsString` are open, read-only properties
must not be sent, and unknown properties are refused so that a misspelled wire name fails. The
`location` and `tags` of ARM's TrackedResource come from common-types, which the spec only links to,
so they are written out here.

The spec kept is the newest stable one (2026-01-01); pulumi-azure-native 3.x sends the pool with
2025-02-02-preview, whose session-pool schema has the same shape for every property sent here
(scaleConfiguration, dynamicPoolConfiguration.lifecycleConfiguration, sessionNetworkConfiguration).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import SHIPPED_STACKS

from components.azure import LOCK_LEVELS, MANAGEMENT_LOCK_TYPE, SESSION_POOL_TYPE
from offline.engine import ProgramRun, run_program

SPEC_FILE = "resource-manager__Microsoft.App__ContainerApps__2026-01-01__SessionPools.json"
EXAMPLE_FILE = (
    "resource-manager__Microsoft.App__ContainerApps__2026-01-01__examples__"
    "SessionPools_LifecycleTimed_CreateOrUpdate.json"
)
# Inputs that are path parameters or top-level ARM fields; everything else goes under "properties".
PATH_PARAMETERS = {"resourceGroupName", "sessionPoolName"}
TOP_LEVEL = {"location", "tags", "identity"}
LOCAL_REF = "#/definitions/"
SIMPLE_KEYWORDS = ("type", "pattern", "minLength", "maxLength", "minimum", "maximum", "required")


def convert(node: dict[str, Any], definitions: dict[str, Any], *, closed_enums: bool = False) -> dict[str, Any]:
    """Turn one Swagger schema node into JSON Schema (see the module docstring for the rules)."""
    ref = node.get("$ref")
    if ref is not None:
        if not ref.startswith(LOCAL_REF):
            return {}  # common-types, not part of this file: accept anything
        return convert(definitions[ref[len(LOCAL_REF) :]], definitions, closed_enums=closed_enums)
    schema: dict[str, Any] = {key: node[key] for key in SIMPLE_KEYWORDS if key in node}
    if "enum" in node and (closed_enums or not node.get("x-ms-enum", {}).get("modelAsString", False)):
        schema["enum"] = node["enum"]
    if "properties" in node:
        schema["properties"] = {
            name: {"not": {}} if child.get("readOnly") else convert(child, definitions, closed_enums=closed_enums)
            for name, child in node["properties"].items()
        }
        schema["additionalProperties"] = False
    if "items" in node:
        schema["items"] = convert(node["items"], definitions, closed_enums=closed_enums)
    if isinstance(node.get("additionalProperties"), dict):
        schema["additionalProperties"] = convert(node["additionalProperties"], definitions, closed_enums=closed_enums)
    return schema


@pytest.fixture(scope="module")
def spec(data_dir: Path) -> dict[str, Any]:
    return json.loads((data_dir / SPEC_FILE).read_text())


def session_pool_schema(spec: dict[str, Any], *, closed_enums: bool = False) -> dict[str, Any]:
    schema = convert(spec["definitions"]["SessionPool"], spec["definitions"], closed_enums=closed_enums)
    schema["properties"]["location"] = {"type": "string", "minLength": 1}
    schema["properties"]["tags"] = {"type": "object", "additionalProperties": {"type": "string"}}
    schema["required"] = ["location"]
    # ARM echoes these; a client never sends them.
    for read_only in ("id", "name", "type", "systemData"):
        schema["properties"][read_only] = {"not": {}}
    return schema


def arm_body(inputs: dict[str, Any]) -> dict[str, Any]:
    """Shape the pool's Pulumi wire inputs as the PUT body the provider sends."""
    body = {key: value for key, value in inputs.items() if key in TOP_LEVEL}
    body["properties"] = {key: value for key, value in inputs.items() if key not in TOP_LEVEL | PATH_PARAMETERS}
    return body


def validate(body: dict[str, Any], schema: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(schema).validate(body)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_pool_matches_azure_session_pool_schema(
    stack_runs: dict[str, ProgramRun], spec: dict[str, Any], stack: str
) -> None:
    pool = stack_runs[stack].one(SESSION_POOL_TYPE)
    body = arm_body(pool.inputs)
    assert set(body["properties"]) == {
        "containerType",
        "poolManagementType",
        "scaleConfiguration",
        "dynamicPoolConfiguration",
        "sessionNetworkConfiguration",
    }
    validate(body, session_pool_schema(spec))


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_pool_name_matches_the_spec_path_parameter(
    stack_runs: dict[str, ProgramRun], spec: dict[str, Any], stack: str
) -> None:
    rule = spec["parameters"]["SessionPoolNameParameter"]
    name = stack_runs[stack].one(SESSION_POOL_TYPE).inputs["sessionPoolName"]
    assert re.fullmatch(rule["pattern"], name)
    assert rule["minLength"] <= len(name) <= rule["maxLength"]


def test_nodelts_needs_the_open_enum(stack_runs: dict[str, ProgramRun], spec: dict[str, Any]) -> None:
    # The spec lists only CustomContainer and PythonLTS: NodeLTS is valid only because the enum is open.
    body = arm_body(stack_runs["dev"].one(SESSION_POOL_TYPE).inputs)
    with pytest.raises(jsonschema.ValidationError, match="NodeLTS"):
        validate(body, session_pool_schema(spec, closed_enums=True))


def test_azure_example_request_passes_the_converted_schema(data_dir: Path, spec: dict[str, Any]) -> None:
    example = json.loads((data_dir / EXAMPLE_FILE).read_text())
    validate(example["parameters"]["sessionPoolEnvelope"], session_pool_schema(spec))


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("properties", "dynamicPoolConfiguration", "lifecycleConfig"),
            {"cooldownPeriodInSeconds": 300},
            "lifecycleConfig",
        ),
        (("properties", "scaleConfiguration", "maxConcurrentSessions"), "5", "is not of type 'integer'"),
        (("properties", "poolManagementEndpoint"), "https://example.invalid", "poolManagementEndpoint"),
        (("properties", "sessionNetworkConfiguration"), "EgressEnabled", "is not of type 'object'"),
    ],
)
def test_schema_catches_wire_mistakes(
    stack_runs: dict[str, ProgramRun], spec: dict[str, Any], path: tuple[str, ...], value: Any, message: str
) -> None:
    body = copy.deepcopy(arm_body(stack_runs["dev"].one(SESSION_POOL_TYPE).inputs))
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError) as caught:
        validate(body, session_pool_schema(spec))
    assert message in str(caught.value)


# --- The management lock (Microsoft.Authorization/locks, 2020-05-01) ------------------------------

LOCK_SPEC_FILE = "resource-manager__Microsoft.Authorization__locks__2020-05-01__locks.excerpt.json"
LOCK_PATH_PARAMETERS = {"resourceGroupName", "lockName"}


@pytest.fixture(scope="module")
def lock_spec(data_dir: Path) -> dict[str, Any]:
    return json.loads((data_dir / LOCK_SPEC_FILE).read_text())


def lock_schema(lock_spec: dict[str, Any], *, closed_enums: bool = False) -> dict[str, Any]:
    definitions = lock_spec["definitions"]
    return convert(definitions["ManagementLockObject"], definitions, closed_enums=closed_enums)


def lock_body(inputs: dict[str, Any]) -> dict[str, Any]:
    """Shape the lock's Pulumi wire inputs as the PUT body the provider sends."""
    return {"properties": {key: value for key, value in inputs.items() if key not in LOCK_PATH_PARAMETERS}}


@pytest.mark.parametrize("level", LOCK_LEVELS)
def test_lock_matches_azure_lock_schema_with_the_spec_levels(lock_spec: dict[str, Any], level: str) -> None:
    lock = run_program("dev", {"lock": level}).one(MANAGEMENT_LOCK_TYPE)
    body = lock_body(lock.inputs)
    assert set(body["properties"]) == {"level", "notes"}
    # Closed enums: each level this project allows is one the spec lists.
    validate(body, lock_schema(lock_spec, closed_enums=True))


def test_lock_path_parameters_keep_to_the_spec(stack_runs: dict[str, ProgramRun], lock_spec: dict[str, Any]) -> None:
    lock = stack_runs["prod"].one(MANAGEMENT_LOCK_TYPE)
    # The excerpt keeps one path: the PUT of a lock at resource group level.
    [path] = lock_spec["paths"].values()
    parameters = {p["name"]: p for p in path["put"]["parameters"]}
    group_rule = parameters["resourceGroupName"]
    group = lock.inputs["resourceGroupName"]
    assert re.fullmatch(group_rule["pattern"], group) and len(group) <= group_rule["maxLength"]
    # The lock name's rule is prose in the spec: at most 260 characters, none of < > % & : \ ? /.
    assert "maximum of 260 characters" in parameters["lockName"]["description"]
    name = lock.inputs["lockName"]
    assert len(name) <= 260 and not set(name) & set("<>%&:\\?/")


def test_lock_schema_catches_wire_mistakes(lock_spec: dict[str, Any]) -> None:
    body = lock_body(run_program("dev", {"lock": "CanNotDelete"}).one(MANAGEMENT_LOCK_TYPE).inputs)
    for broken in (
        {"properties": {"lockLevel": "CanNotDelete"}},
        {"properties": {**body["properties"], "level": "Delete"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken, lock_schema(lock_spec, closed_enums=True))
