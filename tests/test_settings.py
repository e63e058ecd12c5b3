"""Settings: defaults, derived names, and every kind of bad value rejected before anything exists."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from components.settings import (
    DEFAULTS,
    SETTINGS,
    PoolSettings,
    SettingsError,
    default_pool_name,
    default_resource_group_name,
    parse_settings,
)
from offline.engine import as_cli_value, run_program

GUID = "0b7c3f2e-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
# Pulumi's project schema has no object type, and a declared key without a default is required.
UNDECLARABLE = {"readySessions", "poolName", "resourceGroupName", "executors", "tags"}
PULUMI_TYPES = {"string": "string", "integer": "integer", "boolean": "boolean"}


def parse(raw: dict[str, Any], stack: str = "dev") -> PoolSettings:
    return parse_settings(raw, project="dynamic-sessions", stack=stack)


def project_file(project_root: Path) -> dict[str, Any]:
    return yaml.safe_load((project_root / "Pulumi.yaml").read_text())


# --- defaults --------------------------------------------------------------------------------------


def test_defaults_are_the_safe_tutorial_pool() -> None:
    settings = parse({})
    assert settings.location == "northcentralus"
    assert settings.container_type == "NodeLTS"
    assert settings.max_sessions == 5
    assert settings.ready_sessions is None
    assert settings.cooldown_seconds == 300
    assert settings.network_status == "EgressDisabled"  # safe default: no outbound network
    assert settings.pool_name == "dynamicsessionsdev"
    assert settings.resource_group_name == "rg-dynamic-sessions-dev"
    assert settings.executors == ()
    assert settings.assign_deployer is True
    assert settings.deployer_principal_type == "User"
    assert dict(settings.tags) == {}
    assert settings.protect is False
    assert settings.lock is None


def test_pulumi_yaml_declares_the_same_defaults_as_the_code(project_root: Path) -> None:
    declared = project_file(project_root)["config"]
    specs = {spec.key: spec for spec in SETTINGS}
    assert set(declared) | UNDECLARABLE == set(specs), "every setting is declared or listed as undeclarable"
    assert not set(declared) & UNDECLARABLE
    for key, declaration in declared.items():
        assert declaration["type"] == PULUMI_TYPES[specs[key].type], key
        assert declaration["default"] == DEFAULTS[key], key
        assert declaration["description"].strip(), key


def test_pulumi_yaml_documents_the_keys_it_cannot_declare(project_root: Path) -> None:
    text = (project_root / "Pulumi.yaml").read_text()
    comments = "\n".join(line for line in text.splitlines() if line.strip().startswith("#"))
    for key in UNDECLARABLE:
        assert f"#   {key} " in comments, key


def test_applying_pulumi_yaml_defaults_changes_nothing(project_root: Path) -> None:
    # The CLI applies Pulumi.yaml's defaults; the mocks do not. Both must give the same program.
    declared = project_file(project_root)["config"]
    stack_values = yaml.safe_load((project_root / "Pulumi.dev.yaml").read_text())["config"]
    with_defaults = {key: spec["default"] for key, spec in declared.items()}
    with_defaults.update({key.split(":", 1)[1]: value for key, value in stack_values.items()})
    plain, applied = run_program("dev"), run_program("dev", with_defaults)
    assert len(plain.resources) == len(applied.resources) == 4
    assert {r.name: r.inputs for r in plain.resources} == {r.name: r.inputs for r in applied.resources}


def test_pulumi_yaml_is_valid_for_pulumi(project_root: Path, data_dir: Path) -> None:
    schema = json.loads((data_dir / "pulumi-project.schema.json").read_text())
    document = project_file(project_root)
    jsonschema.validate(document, schema)
    # The same check fails on what Pulumi refuses, so it is not vacuous.
    broken = copy.deepcopy(document)
    broken["config"]["tags"] = {"type": "object", "default": {}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_cli_string_values_parse_like_native_ones() -> None:
    native = {
        "maxSessions": 7,
        "readySessions": 3,
        "protect": True,
        "assignDeployer": False,
        "executors": [{"principalId": GUID, "principalType": "Group"}],
        "tags": {"owner": "me"},
    }
    as_strings = {key: as_cli_value(key, value) for key, value in native.items()}
    assert as_strings["protect"] == "true" and isinstance(as_strings["executors"], str)
    assert parse(native) == parse(as_strings)


# --- derived names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stack", "expected"),
    [
        ("dev", "dynamicsessionsdev"),
        ("Prod-EU_2", "dynamicsessionsprodeu2"),
        ("feature.x", "dynamicsessionsfeaturex"),
    ],
)
def test_default_pool_name_keeps_to_the_spec(stack: str, expected: str) -> None:
    assert default_pool_name("dynamic-sessions", stack) == expected


def test_long_stack_names_get_a_hashed_pool_name_that_still_fits() -> None:
    first = default_pool_name("dynamic-sessions", "a" * 80)
    second = default_pool_name("dynamic-sessions", "a" * 81)
    assert len(first) == len(second) == 63
    assert first != second
    assert parse({}, stack="a" * 80).pool_name == first


def test_pool_name_never_starts_with_a_digit() -> None:
    assert default_pool_name("9", "1") == "pool91"


def test_default_resource_group_name() -> None:
    assert default_resource_group_name("dynamic-sessions", "dev") == "rg-dynamic-sessions-dev"
    assert len(default_resource_group_name("dynamic-sessions", "x" * 200)) == 90


def test_resource_tags_merge_user_tags_with_the_program_tags() -> None:
    settings = parse({"tags": {"owner": "team-a"}}, stack="qa")
    assert settings.resource_tags == {
        "owner": "team-a",
        "managed-by": "pulumi",
        "pulumi-project": "dynamic-sessions",
        "pulumi-stack": "qa",
    }


def test_executors_are_normalized_to_lowercase() -> None:
    settings = parse({"executors": [{"principalId": GUID.upper(), "principalType": "User"}]})
    assert settings.executors[0].principal_id == GUID


def test_boundary_values_are_accepted() -> None:
    low = parse({"maxSessions": 1, "readySessions": 1, "cooldownSeconds": 300})
    high = parse({"maxSessions": 600, "readySessions": 600, "cooldownSeconds": 3600})
    assert (low.max_sessions, low.cooldown_seconds) == (1, 300)
    assert (high.max_sessions, high.ready_sessions, high.cooldown_seconds) == (600, 600, 3600)
    assert len(parse({"tags": {f"t{i}": "v" for i in range(47)}}).tags) == 47


# --- bad settings ----------------------------------------------------------------------------------

# (raw settings, the key the message must name, a phrase of what is allowed)
BAD_SETTINGS: list[tuple[dict[str, Any], str, str]] = [
    ({"maxSessions": "0"}, "maxSessions", "from 1 to 600"),
    ({"maxSessions": "601"}, "maxSessions", "from 1 to 600"),
    ({"maxSessions": "five"}, "maxSessions", "whole number"),
    ({"maxSessions": "5.5"}, "maxSessions", "whole number"),
    ({"maxSessions": True}, "maxSessions", "whole number"),
    ({"readySessions": "0"}, "readySessions", "from 1 to maxSessions"),
    ({"maxSessions": "5", "readySessions": "6"}, "readySessions", "from 1 to maxSessions (5)"),
    ({"cooldownSeconds": "299"}, "cooldownSeconds", "from 300 to 3600"),
    ({"cooldownSeconds": "3601"}, "cooldownSeconds", "from 300 to 3600"),
    ({"cooldownSeconds": "-300"}, "cooldownSeconds", "from 300 to 3600"),
    ({"containerType": "Python"}, "containerType", "NodeLTS, PythonLTS, Shell"),
    ({"containerType": "nodelts"}, "containerType", "did you mean NodeLTS"),
    ({"containerType": "CustomContainer"}, "containerType", "NodeLTS, PythonLTS, Shell"),
    ({"networkStatus": "Enabled"}, "networkStatus", "EgressEnabled, EgressDisabled"),
    ({"location": "North Central US"}, "location", "did you mean northcentralus"),
    ({"location": ""}, "location", "lowercase letters and digits"),
    ({"poolName": "my-session-pool"}, "poolName", "^[a-z][a-z0-9]{2,62}$"),
    ({"poolName": "ab"}, "poolName", "3-63 characters"),
    ({"poolName": "1pool"}, "poolName", "a lowercase letter"),
    ({"poolName": "p" * 64}, "poolName", "3-63 characters"),
    ({"resourceGroupName": "rg/bad"}, "resourceGroupName", "1-90 characters"),
    ({"resourceGroupName": "rg-ends-with."}, "resourceGroupName", "not ending with a period"),
    ({"resourceGroupName": "r" * 91}, "resourceGroupName", "1-90 characters"),
    (
        {"executors": [{"principalId": "not-a-guid", "principalType": "User"}]},
        "executors[0].principalId",
        "GUID",
    ),
    (
        {"executors": [{"principalId": GUID, "principalType": "Robot"}]},
        "executors[0].principalType",
        "User, Group",
    ),
    (
        {"executors": [{"principalId": GUID, "principalType": "user"}]},
        "executors[0].principalType",
        "did you mean User",
    ),
    (
        {
            "executors": [
                {"principalId": GUID, "principalType": "User"},
                {"principalId": GUID.upper(), "principalType": "Group"},
            ]
        },
        "executors[1].principalId",
        "already executors[0]",
    ),
    ({"executors": [{"principalId": GUID}]}, "executors[0].principalType", "User, Group"),
    (
        {"executors": [{"principalId": GUID, "principalType": "User", "role": "Owner"}]},
        "executors[0]",
        "unknown: role",
    ),
    ({"executors": [GUID]}, "executors[0]", "principalId"),
    ({"executors": {"principalId": GUID}}, "executors", "a list of"),
    ({"executors": "[not json"}, "executors", "a list of"),
    ({"assignDeployer": "yes"}, "assignDeployer", "true or false"),
    ({"protect": "1"}, "protect", "true or false"),
    ({"deployerPrincipalType": "SP"}, "deployerPrincipalType", "ServicePrincipal"),
    ({"tags": ["owner"]}, "tags", "a map of strings"),
    ({"tags": {"owner": 42}}, "tags.owner", "a string"),
    ({"tags": {"a/b": "x"}}, "tags.a/b", "without any of"),
    ({"tags": {"k" * 513: "x"}}, "tags.", "1 to 512 characters"),
    ({"tags": {"owner": "v" * 257}}, "tags.owner", "at most 256 characters"),
    ({"tags": {"managed-by": "me"}}, "tags.managed-by", "sets this tag itself"),
    ({"tags": {f"t{i}": "v" for i in range(48)}}, "tags", "at most 47 tags"),
    ({"maxSession": "5"}, "maxSession", "did you mean maxSessions"),
    # A YAML block scalar ends in a newline; `$` alone would let it through.
    ({"location": "westus\n"}, "location", "did you mean westus"),
    ({"poolName": "mypool\n"}, "poolName", "3-63 characters"),
    ({"resourceGroupName": "rg-x\n"}, "resourceGroupName", "1-90 characters"),
    ({"executors": [{"principalId": GUID + "\n", "principalType": "User"}]}, "executors[0].principalId", "GUID"),
    # Empty is a mistake, not "derive the name for me" (that is what leaving it unset means).
    ({"poolName": ""}, "poolName", "3-63 characters"),
    ({"resourceGroupName": ""}, "resourceGroupName", "1-90 characters"),
    ({"maxSessions": "9" * 5000}, "maxSessions", "whole number"),
    ({"readySessions": "9" * 5000}, "readySessions", "from 1 to maxSessions"),
    ({"executors": "[" * 100_000 + "]" * 100_000}, "executors", "a list of"),
    ({"tags": {"Owner": "a", "owner": "b"}}, "tags.owner", "ignoring case"),
    ({"lock": "readonly"}, "lock", "did you mean ReadOnly"),
    ({"lock": "NotSpecified"}, "lock", "one of none, CanNotDelete, ReadOnly"),
    ({"lock": "CanNotDelete "}, "lock", "ReadOnly also refuses every later change"),
    ({"lock": True}, "lock", "one of none, CanNotDelete, ReadOnly"),
    ({"createResourceGroup": "no"}, "createResourceGroup", "resourceGroupName names a group that already exists"),
    ({"createResourceGroup": False}, "resourceGroupName", "the name of the existing resource group"),
    (
        {"createResourceGroup": False, "resourceGroupName": "rg-shared", "lock": "CanNotDelete"},
        "lock",
        "none when createResourceGroup is false",
    ),
]


@pytest.mark.parametrize(
    ("raw", "key", "allowed"), BAD_SETTINGS, ids=[f"{case[1]}-{i}" for i, case in enumerate(BAD_SETTINGS)]
)
def test_bad_setting_is_rejected_with_key_value_and_allowed(raw: dict[str, Any], key: str, allowed: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse(raw)
    message = str(caught.value)
    assert f"dynamic-sessions:{key}" in message
    assert allowed in message
    assert "Pulumi.dev.yaml" in message
    assert len(caught.value.problems) == 1, caught.value.problems


@pytest.mark.parametrize(
    ("raw", "key", "allowed"), BAD_SETTINGS, ids=[f"{case[1]}-{i}" for i, case in enumerate(BAD_SETTINGS)]
)
def test_bad_setting_stops_the_program_before_any_resource(raw: dict[str, Any], key: str, allowed: str) -> None:
    # The values go in as the Pulumi CLI passes them: strings, with lists and maps as JSON.
    run = run_program("dev", {name: as_cli_value(name, value) for name, value in raw.items()})
    assert run.resources == []
    assert run.outputs == {}
    assert run.error is not None and run.error.startswith("Invalid configuration of stack 'dev'")
    assert f"dynamic-sessions:{key}" in run.error and allowed in run.error


def test_values_only_python_callers_can_pass_are_reported_too() -> None:
    with pytest.raises(SettingsError) as caught:
        parse({"tags": {1: "a"}, "maxSessions": 10**5000})
    message = str(caught.value)
    assert "dynamic-sessions:tags.1 = 1: expected a tag name that is a string." in message
    assert "dynamic-sessions:maxSessions = <a int too large to show>" in message


def test_the_message_shows_the_value_given() -> None:
    with pytest.raises(SettingsError) as caught:
        parse({"maxSessions": "601", "containerType": "Ruby"})
    message = str(caught.value)
    assert "dynamic-sessions:maxSessions = '601'" in message
    assert "dynamic-sessions:containerType = 'Ruby'" in message


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        parse({"maxSessions": "0", "cooldownSeconds": "1", "networkStatus": "On", "poolName": "X"})
    assert len(caught.value.problems) == 4


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(SettingsError) as caught:
        parse({"poolName": "Z" * 500})
    assert "Z" * 100 not in str(caught.value)
    assert "..." in str(caught.value)


def test_every_setting_has_a_bad_value_case() -> None:
    assert {key.split("[")[0].split(".")[0] for _, key, _ in BAD_SETTINGS} >= {spec.key for spec in SETTINGS}
