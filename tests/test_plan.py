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


def copy_project(project_root: Path, target: Path) -> Path:
    """A copy of the program (no stack files) in `target`, for stack files written by a test."""
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(project_root / name, target / name)
    shutil.copytree(project_root / "components", target / "components")
    return target


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
        "ManagementLockAtResourceGroupLevel",
    ]
    pool = document["resources"][2]
    assert pool["protect"] is True
    assert pool["inputs"]["scaleConfiguration"] == {"maxConcurrentSessions": 50, "readySessionInstances": 2}
    assert document["outputs"]["networkStatus"] == "EgressDisabled"
    assert document["resources"][5]["inputs"]["level"] == "CanNotDelete"
    assert document["outputs"]["lock"] == "CanNotDelete"


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
        # YAML 1.2, as the Pulumi CLI reads it: `yes` is a string, which protect does not accept.
        ("dynamic-sessions:protect: yes", "dynamic-sessions:protect = 'yes': expected true or false"),
    ],
)
def test_bad_stack_file_exits_2_with_the_message_and_no_traceback(
    project_root: Path, tmp_path: Path, line: str, expected: str
) -> None:
    copy_project(project_root, tmp_path)
    (tmp_path / "Pulumi.broken.yaml").write_text(f"config:\n  {line}\n")
    result = plan(project_root, "--stack", "broken", "--project-dir", str(tmp_path))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# Each mistake in a stack file the Pulumi CLI would refuse, or that would leave the program on its
# defaults: (file content, the sentence's start naming the file and line, a phrase of the fix).
STACK_FILE_MISTAKES = [
    pytest.param(
        "config:\n  maxSessions: 0\n",
        "Pulumi.broken.yaml line 2: the Pulumi CLI refuses the key 'maxSessions'",
        "write it as dynamic-sessions:maxSessions.",
        id="no-namespace",
    ),
    pytest.param(
        "config:\n  dynamic-sessions:location: westus\n  dynamic-session:maxSessions: 0\n",
        "Pulumi.broken.yaml line 3: nothing reads the key 'dynamic-session:maxSessions'",
        "did you mean dynamic-sessions:maxSessions?",
        id="misspelled-namespace",
    ),
    pytest.param(
        "- dynamic-sessions:maxSessions: 5\n",
        "Pulumi.broken.yaml line 1: the file must be a mapping of keys to values, not a list",
        "write it as `config:` followed by indented lines",
        id="file-not-a-mapping",
    ),
    pytest.param(
        "config:\n  - dynamic-sessions:maxSessions\n",
        "Pulumi.broken.yaml line 2: config must be a mapping of keys to values, not a list",
        "  dynamic-sessions:maxSessions: 5",
        id="config-not-a-mapping",
    ),
    pytest.param(
        "config:\n  dynamic-sessions:maxSessions: 5\n  dynamic-sessions:location: westus\n"
        "  dynamic-sessions:maxSessions: 0\n",
        "Pulumi.broken.yaml line 4: dynamic-sessions:maxSessions is already set on line 2",
        "keep one of the two lines.",
        id="duplicated-key",
    ),
    pytest.param(
        "encryptionsalt: v1:abc\nconfg:\n  dynamic-sessions:maxSessions: 0\n",
        "Pulumi.broken.yaml line 2: the Pulumi CLI skips the key 'confg'",
        "did you mean config:?",
        id="misspelled-config",
    ),
    pytest.param(
        "environment:\n  - team/dev\nconfig:\n  dynamic-sessions:maxSessions: 5\n",
        "Pulumi.broken.yaml line 1: the stack imports a Pulumi ESC environment",
        "run `pulumi preview` instead",
        id="esc-environment",
    ),
    pytest.param(
        "config:\n  dynamic-sessions:maxSessions: 5\n   dynamic-sessions:location: [westus\n",
        "Pulumi.broken.yaml line 3: this is not valid YAML",
        "check the indentation, quotes and brackets there.",
        id="syntax-error",
    ),
    pytest.param(
        "config:\n  dynamic-sessions:tags: [5\n",
        "Pulumi.broken.yaml line 3: this is not valid YAML",
        "in the list (`[`) that begins on line 2",
        id="unclosed-list",
    ),
    pytest.param(
        "config:\n  dynamic-sessions:location:\n    secure: v1:abc\n",
        "Pulumi.broken.yaml line 2: dynamic-sessions:location is an encrypted secret (`secure:`)",
        "run `pulumi preview` for this stack instead",
        id="encrypted-secret",
    ),
    pytest.param(
        "config:\n  dynamic-sessions:maxSessions:\n",
        "Pulumi.broken.yaml line 2: dynamic-sessions:maxSessions has no value",
        "or delete the line.",
        id="no-value",
    ),
]


@pytest.mark.parametrize(("content", "where", "fix"), STACK_FILE_MISTAKES)
def test_a_stack_file_mistake_is_one_sentence_with_file_line_and_fix(
    project_root: Path, tmp_path: Path, content: str, where: str, fix: str
) -> None:
    (tmp_path / "Pulumi.broken.yaml").write_text(content)
    result = plan(project_root, "--stack", "broken", "--project-dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"offline plan: {where}"), line
    assert fix in line and line.endswith((".", "?"))


def test_the_old_config_module_spelling_is_the_projects_key(project_root: Path, tmp_path: Path) -> None:
    # ParseKey reads <namespace>:config:<name> as <namespace>:<name>; so must the plan.
    copy_project(project_root, tmp_path)
    (tmp_path / "Pulumi.old.yaml").write_text("config:\n  dynamic-sessions:config:maxSessions: 0\n")
    result = plan(project_root, "--stack", "old", "--project-dir", str(tmp_path))
    assert result.returncode == 2
    assert "dynamic-sessions:maxSessions = '0': expected a whole number from 1 to 600" in result.stderr


def test_provider_settings_are_accepted_and_left_to_the_provider(project_root: Path, tmp_path: Path) -> None:
    copy_project(project_root, tmp_path)
    (tmp_path / "Pulumi.qa.yaml").write_text(
        "config:\n  azure-native:location: westeurope\n  dynamic-sessions:maxSessions: 7\n"
    )
    result = plan(project_root, "--stack", "qa", "--project-dir", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    pool = json.loads(result.stdout)["resources"][2]
    assert pool["inputs"]["scaleConfiguration"] == {"maxConcurrentSessions": 7}


@pytest.mark.parametrize("stack", ["../etc", "a/b", "dev prod", "", "x" * 101])
def test_a_stack_name_pulumi_refuses_is_refused(project_root: Path, stack: str) -> None:
    result = plan(project_root, "--stack", stack)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"offline plan: {stack!r} is not a stack name: Pulumi allows 1 to 100 letters")
