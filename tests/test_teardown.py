"""scripts/destroy.sh and the management lock: a locked stack is refused until a reviewed change
lifts the lock, whichever way the stack file spells the key, and production is decided by
components/stacks.py, its one definition.

Runs the real script in a copy of the project's files it runs, with a fake `pulumi` on PATH.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.destroy_sandbox import PROJECT_ROOT, DestroySandbox


@pytest.fixture
def project(tmp_path: Path) -> DestroySandbox:
    return DestroySandbox(tmp_path)


def destroy(project: DestroySandbox, stack: str, text: str) -> subprocess.CompletedProcess[str]:
    project.write_stack(stack, text)
    return project.run(STACK=stack, CONFIRM=stack)


def ran(project: DestroySandbox) -> bool:
    return project.pulumi_args() is not None


# Every spelling of the lock key the Pulumi CLI reads (sdk/go/common/resource/config/key.go).
@pytest.mark.parametrize(
    "text",
    [
        "config:\n  dynamic-sessions:lock: CanNotDelete  # guarded\n",
        "config:\n  dynamic-sessions:lock: 'ReadOnly'\n",
        'config:\n  "dynamic-sessions:lock": CanNotDelete\n',
        "config:\n  dynamic-sessions:config:lock: CanNotDelete\n",
        "config: {dynamic-sessions:lock: CanNotDelete}\n",
        "config:\n  dynamic-sessions:lock:\n    CanNotDelete\n",
    ],
    ids=["plain", "quoted-value", "quoted-key", "old-config-module", "flow-mapping", "value-on-next-line"],
)
def test_a_locked_stack_is_refused_and_pointed_to_the_docs(project: Path, text: str) -> None:
    result = destroy(project, "qa", text)
    assert result.returncode == 1, result.stderr
    assert "stack 'qa' is locked: Pulumi.qa.yaml sets dynamic-sessions:lock:" in result.stderr
    assert "docs/teardown.md" in result.stderr
    assert "nothing was destroyed" in result.stderr
    assert not ran(project)


@pytest.mark.parametrize(
    "text",
    ['config:\n  "dynamic-sessions:protect": true\n', "config: {dynamic-sessions:config:protect: true}\n"],
)
def test_protect_is_read_however_the_key_is_spelled(project: Path, text: str) -> None:
    result = destroy(project, "qa", text)
    assert result.returncode == 1
    assert "stack 'qa' is protected: Pulumi.qa.yaml sets dynamic-sessions:protect: true." in result.stderr
    assert not ran(project)


def test_an_unreadable_lock_value_is_refused_with_what_is_allowed(project: DestroySandbox) -> None:
    result = destroy(project, "qa", "config:\n  dynamic-sessions:lock: maybe\n")
    assert result.returncode == 1
    assert "dynamic-sessions:lock = 'maybe': expected one of none, CanNotDelete, ReadOnly" in result.stderr
    assert not ran(project)


def test_a_stack_file_the_cli_would_refuse_is_refused(project: DestroySandbox) -> None:
    result = destroy(project, "qa", "config:\n  dynamic-sessions:lock: none\n  dynamic-sessions:lock: none\n")
    assert result.returncode == 1
    assert "Pulumi.qa.yaml line 3: dynamic-sessions:lock is already set on line 2" in result.stderr
    assert not ran(project)


def test_lock_none_lets_the_destroy_run(project: DestroySandbox) -> None:
    result = destroy(project, "qa", "config:\n  dynamic-sessions:lock: none\n")
    assert result.returncode == 0, result.stderr
    calls = project.pulumi_args()
    assert calls == ["destroy", "--stack", "qa", "--yes", "--non-interactive"]


def test_production_is_the_one_definition_in_components_stacks(project: DestroySandbox) -> None:
    stacks = project.root / "components" / "stacks.py"
    stacks.write_text(
        stacks.read_text().replace('PRODUCTION_STACK_PREFIX = "prod"', 'PRODUCTION_STACK_PREFIX = "live"')
    )
    refused = destroy(project, "live-eu", "config:\n  dynamic-sessions:location: westeurope\n")
    assert refused.returncode == 1
    assert "is a production stack (its name starts with 'live')" in refused.stderr
    allowed = destroy(project, "prod", "config:\n  dynamic-sessions:location: westeurope\n")
    assert allowed.returncode == 0, allowed.stderr


def test_the_stack_name_rule_is_the_one_the_offline_plan_uses() -> None:
    from components.stacks import short_stack_name
    from offline.stack_file import StackFileError, check_stack_name

    for name in ("dev", "prod-eu_1.a", "x" * 100):
        check_stack_name(name)
        assert short_stack_name(f"acme/project/{name}") == name
    for name in ("", "../etc", "dev stack", "x" * 101):
        with pytest.raises(StackFileError):
            check_stack_name(name)
        with pytest.raises(ValueError, match="is not a stack name"):
            short_stack_name(f"acme/{name}")
    with pytest.raises(ValueError, match="is not a stack name"):
        short_stack_name("../etc")


def test_the_refusal_points_to_a_section_the_docs_have() -> None:
    from offline.destroy_check import TEARDOWN_DOC, TEARDOWN_SECTION

    headings = [line for line in (PROJECT_ROOT / TEARDOWN_DOC).read_text().splitlines() if line.startswith("## ")]
    assert any(heading.removeprefix("## ").startswith(TEARDOWN_SECTION) for heading in headings), headings
