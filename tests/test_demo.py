"""The README's first command, `make demo`, as a person runs it, and its Python entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def demo(project_root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "offline.demo", *args],
        cwd=project_root,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


def make_demo(project_root: Path, *variables: str) -> subprocess.CompletedProcess[str]:
    """make demo [VARIABLE=value ...] in project_root."""
    return subprocess.run(
        ["make", "--no-print-directory", "demo", *variables],
        cwd=project_root,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_make_demo_renders_the_stack_runs_hello_world_both_ways_and_passes(project_root: Path) -> None:
    result = make_demo(project_root)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "azure-native:app:ContainerAppsSessionPool" in out and "pool-pool" in out
    # The dev stack sets networkStatus: EgressEnabled; the demo mirrors it.
    assert "Start the local pool (NodeLTS, 5 sessions, cooldown 300 s, EgressEnabled)" in out
    assert out.count('"stdout": "hello-world\\n"') == 2
    assert '"status": "Success"' in out and '"status": "Succeeded"' in out
    assert "PASS hello-world ran on http://127.0.0.1:" in out
    assert "demo: PASS (smoke check exit code 0)" in out
    assert "Bearer" not in out + result.stderr


def test_demo_says_clearly_when_node_is_missing(project_root: Path, tmp_path: Path) -> None:
    result = demo(project_root, LOCALPOOL_NODE=str(tmp_path / "no-node-here"))
    assert result.returncode == 2
    assert "Node.js was not found" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("container_type", "code"), [("PythonLTS", 'print("hello-world")'), ("Shell", "echo hello-world")]
)
def test_demo_runs_each_container_type(project_root: Path, container_type: str, code: str) -> None:
    result = demo(project_root, "--container-type", container_type)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"Start the local pool ({container_type}, 5 sessions, cooldown 300 s, EgressEnabled)" in out
    assert out.count(f"code: {code}") == 2
    assert out.count('"stdout": "hello-world\\n"') == 2
    assert f"--container-type {container_type}" in out
    assert "demo: PASS (smoke check exit code 0)" in out


def test_make_demo_takes_the_container_type(project_root: Path) -> None:
    result = make_demo(project_root, "CONTAINER_TYPE=PythonLTS")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Start the local pool (PythonLTS," in result.stdout
    assert "demo: PASS (smoke check exit code 0)" in result.stdout


def test_demo_refuses_an_unknown_container_type(project_root: Path) -> None:
    result = demo(project_root, "--container-type", "CustomContainer")
    assert result.returncode == 2
    assert "NodeLTS, PythonLTS, Shell" in result.stderr
    assert "Traceback" not in result.stderr
