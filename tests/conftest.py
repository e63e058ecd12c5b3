"""Shared fixtures. The project root goes on sys.path so tests import the program's modules."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(__file__).resolve().parent / "data"
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from offline.engine import ProgramRun, run_program  # noqa: E402
from offline.stack_file import list_stacks  # noqa: E402

if TYPE_CHECKING:
    from localpool import LocalPool
    from tests.support.localpool_helpers import PoolClient

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


@pytest.fixture(scope="module")
def pool() -> Iterator[LocalPool]:
    """One local pool per test module (requiring the test token); each test uses its own identifiers."""
    from localpool import LocalPool
    from tests.support.localpool_helpers import MODULE_POOL_MAX_SESSIONS, TOKEN

    with LocalPool(token=TOKEN, max_sessions=MODULE_POOL_MAX_SESSIONS) as local_pool:
        yield local_pool


@pytest.fixture
def client(pool: LocalPool) -> Iterator[PoolClient]:
    """An authorised client of the module's local pool."""
    from tests.support.localpool_helpers import PoolClient

    with PoolClient(pool.endpoint) as pool_client:
        yield pool_client


@pytest.fixture
def host_listener() -> Iterator[socket.socket]:
    """A TCP listener on the host's loopback that session code must not reach (see no_connection)."""
    from tests.support.localpool_helpers import NO_CONNECTION_SECONDS

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(NO_CONNECTION_SECONDS)
        yield listener
