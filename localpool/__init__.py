"""An offline stand-in for the data plane of an Azure Container Apps dynamic-sessions pool (NodeLTS, PythonLTS, Shell).

Start it with ``python -m localpool`` or, from Python, ``with LocalPool() as pool: ... pool.endpoint, pool.token``.
Every session runs in its own bubblewrap sandbox (localpool/sandbox.py).
"""

from __future__ import annotations

from localpool.constants import BASE_PATH, ENDPOINT_LINE_PREFIX
from localpool.interpreter import RuntimeUnavailableError
from localpool.node import NodeRuntime, NodeUnavailableError, find_node
from localpool.pool import LocalPool, TokenRequiredError, UnsupportedContainerTypeError, check_container_type
from localpool.sandbox import Sandbox, SandboxLimits, SandboxUnavailableError
from localpool.server import LEGACY_STATUS_FAILURE
from smoke.protocol import API_2025_10

__all__ = [
    "API_2025_10",
    "BASE_PATH",
    "ENDPOINT_LINE_PREFIX",
    "LEGACY_STATUS_FAILURE",
    "LocalPool",
    "NodeRuntime",
    "NodeUnavailableError",
    "RuntimeUnavailableError",
    "Sandbox",
    "SandboxLimits",
    "SandboxUnavailableError",
    "TokenRequiredError",
    "UnsupportedContainerTypeError",
    "check_container_type",
    "find_node",
]
