"""scripts/destroy.sh and the management lock: a locked stack is refused until a reviewed change
lifts the lock, and the production prefix comes from components/stacks.py, its one definition.

Runs the real script in a copy of the project's files it reads, with a fake `pulumi` on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "components").mkdir()
    shutil.copy2(PROJECT_ROOT / "scripts" / "destroy.sh", tmp_path / "scripts" / "destroy.sh")
    shutil.copy2(PROJECT_ROOT / "components" / "stacks.py", tmp_path / "components" / "stacks.py")
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "pulumi"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/pulumi-ran\n')
    fake.chmod(0o755)
    return tmp_path


def destroy(project: Path, stack: str, config: str) -> subprocess.CompletedProcess[str]:
    (project / f"Pulumi.{stack}.yaml").write_text(f"config:\n{config}")
    return subprocess.run(
        ["bash", str(project / "scripts" / "destroy.sh")],
        env={"PATH": f"{project / 'bin'}{os.pathsep}{os.environ['PATH']}", "STACK": stack, "CONFIRM": stack},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("level", ["CanNotDelete", "ReadOnly", "'ReadOnly'"])
def test_a_locked_stack_is_refused_with_the_way_to_lift_it(project: Path, level: str) -> None:
    result = destroy(project, "qa", f"  dynamic-sessions:lock: {level}  # guarded\n")
    assert result.returncode == 1
    assert f"stack 'qa' is locked: Pulumi.qa.yaml sets dynamic-sessions:lock: {level.strip(chr(39))}." in result.stderr
    assert "'dynamic-sessions:lock: none'" in result.stderr
    assert "'pulumi destroy' deletes it before what it guards" in result.stderr
    assert not (project / "pulumi-ran").exists()


def test_an_unreadable_lock_value_is_refused(project: Path) -> None:
    result = destroy(project, "qa", "  dynamic-sessions:lock: maybe\n")
    assert result.returncode == 1
    assert "sets dynamic-sessions:lock to 'maybe', which is not none, CanNotDelete or ReadOnly" in result.stderr
    assert not (project / "pulumi-ran").exists()


def test_lock_none_lets_the_destroy_run(project: Path) -> None:
    result = destroy(project, "qa", "  dynamic-sessions:lock: none\n")
    assert result.returncode == 0, result.stderr
    assert (project / "pulumi-ran").read_text().split() == ["destroy", "--stack", "qa", "--yes", "--non-interactive"]


def test_the_production_prefix_is_the_one_components_stacks_defines(project: Path) -> None:
    stacks = project / "components" / "stacks.py"
    stacks.write_text(
        stacks.read_text().replace('PRODUCTION_STACK_PREFIX = "prod"', 'PRODUCTION_STACK_PREFIX = "live"')
    )
    refused = destroy(project, "live-eu", "  dynamic-sessions:location: westeurope\n")
    assert refused.returncode == 1
    assert "is a production stack (its name starts with 'live')" in refused.stderr
    allowed = destroy(project, "prod", "  dynamic-sessions:location: westeurope\n")
    assert allowed.returncode == 0, allowed.stderr


def test_without_the_definition_nothing_is_destroyed(project: Path) -> None:
    (project / "components" / "stacks.py").unlink()
    result = destroy(project, "qa", "  dynamic-sessions:location: westeurope\n")
    assert result.returncode == 1
    assert "cannot tell whether 'qa' is a production stack" in result.stderr
    assert not (project / "pulumi-ran").exists()
