"""Shared fixtures. The project root goes on sys.path so tests import the program's modules."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(__file__).resolve().parent / "data"
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from offline.engine import ProgramRun, list_stacks, run_program  # noqa: E402

SHIPPED_STACKS = list_stacks(PROJECT_ROOT)


@pytest.fixture(scope="session")
def project_root() -> Path:
    """The repository root (where Pulumi.yaml is)."""
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Test data copied into the project, with SOURCES.md naming where each file comes from."""
    return DATA_DIR


@pytest.fixture(scope="session")
def stack_runs() -> dict[str, ProgramRun]:
    """One offline run of the program per shipped Pulumi.<stack>.yaml, shared by the tests."""
    return {stack: run_program(stack) for stack in SHIPPED_STACKS}
