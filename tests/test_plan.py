"""The offline plan command, run as a person runs it: a real subprocess, no Pulumi CLI, no Azure."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from offline.engine import OFFLINE_SUBSCRIPTION_ID


def plan(project_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "offline.plan", *args],
        cwd=project_root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_text_plan_of_dev_shows_resources_settings_and_outputs(project_root: Path) -> None:
    result = plan(project_root, "--stack", "dev")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in (
        "+ azure-native:resources:ResourceGroup  pool-rg",
        "+ azure-native:app:ContainerAppsSessionPool  pool-pool",
        "+ azure-native:authorization:RoleAssignment  pool-executor-deployer",
        "containerType                                                            NodeLTS",
        "dynamicPoolConfiguration.lifecycleConfiguration.cooldownPeriodInSeconds  300",
        "scaleConfiguration.maxConcurrentSessions                                 5",
        "sessionNetworkConfiguration.status                                       EgressEnabled",
        "(Azure ContainerApps Session Executor)",
        "4 resources to create.",
        f"poolManagementEndpoint  https://northcentralus.dynamicsessions.io/subscriptions/{OFFLINE_SUBSCRIPTION_ID}/"
        "resourceGroups/rg-dynamic-sessions-dev/sessionPools/dynamicsessionsdev",
    ):
        assert expected in out, expected


def test_json_plan_is_stable_and_complete(project_root: Path) -> None:
    first = plan(project_root, "--stack", "prod", "--json")
    second = plan(project_root, "--stack", "prod", "--json")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    document = json.loads(first.stdout)
    assert [r["type"].split(":")[-1] for r in document["resources"]] == [
        "CodeInterpreterPool",
        "ResourceGroup",
        "ContainerAppsSessionPool",
        "RoleAssignment",
        "RoleAssignment",
    ]
    pool = document["resources"][2]
    assert pool["protect"] is True
    assert pool["inputs"]["scaleConfiguration"] == {"maxConcurrentSessions": 50, "readySessionInstances": 2}
    assert document["outputs"]["networkStatus"] == "EgressDisabled"


def test_unknown_stack_is_a_clear_error(project_root: Path) -> None:
    result = plan(project_root, "--stack", "staging")
    assert result.returncode == 2
    assert "Pulumi.staging.yaml" in result.stderr and "dev, prod" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "dynamic-sessions:maxSessions: 900",
            "dynamic-sessions:maxSessions = '900': expected a whole number from 1 to 600",
        ),
        ("dynamic-sessions:poolName: my-pool", "dynamic-sessions:poolName = 'my-pool'"),
        ("dynamic-sessions:secret:\n    secure: v1:abc", "encrypted secret"),
        # YAML 1.2, as the Pulumi CLI reads it: `yes` is a string, which protect does not accept.
        ("dynamic-sessions:protect: yes", "dynamic-sessions:protect = 'yes': expected true or false"),
    ],
)
def test_bad_stack_file_exits_2_with_the_message_and_no_traceback(
    project_root: Path, tmp_path: Path, line: str, expected: str
) -> None:
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(project_root / name, tmp_path / name)
    shutil.copytree(project_root / "components", tmp_path / "components")
    (tmp_path / "Pulumi.broken.yaml").write_text(f"config:\n  {line}\n")
    result = plan(project_root, "--stack", "broken", "--project-dir", str(tmp_path))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("config: [unclosed\n", "Pulumi.broken.yaml is not valid YAML"),
        ("config:\n  - dynamic-sessions:maxSessions\n", "'config' must be a map of keys to values, not list"),
    ],
)
def test_malformed_stack_file_exits_2_with_a_message(
    project_root: Path, tmp_path: Path, content: str, expected: str
) -> None:
    (tmp_path / "Pulumi.broken.yaml").write_text(content)
    result = plan(project_root, "--stack", "broken", "--project-dir", str(tmp_path))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
