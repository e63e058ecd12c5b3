"""An offline stand-in (emulator) for the data plane of an Azure Container Apps dynamic-sessions pool
(NodeLTS, PythonLTS, Shell).

Start it with ``python -m localpool`` or, from Python, ``with LocalPool() as pool: ... pool.endpoint, pool.token``.
Every session runs in its own bubblewrap sandbox (localpool/sandbox.py).
"""

from __future__ import annotations

from localpool.constants import BASE_PATH, ENDPOINT_LINE_PREFIX
from localpool.interpreter import RuntimeUnavailableError
from localpool.node import NodeRuntime, NodeUnavailableError, find_node
from localpool.pool import LocalPool, TokenRequiredError, UnsupportedContainerTypeError, check_container_type
from localpool.sandbox import Sandbox, SandboxLimits, SandboxUnavailableError
from localpool.tls import CERT_LINE_PREFIX, TlsSetupError
from localpool.wire import API_2025_10, SUPPORTED_API_VERSIONS, ContainerType

# The one version number of the distribution (pyproject.toml reads it from here; `localpool --version` shows it).
__version__ = "0.1.0"

__all__ = [
    "API_2025_10",
    "BASE_PATH",
    "CERT_LINE_PREFIX",
    "ENDPOINT_LINE_PREFIX",
    "SUPPORTED_API_VERSIONS",
    "ContainerType",
    "LocalPool",
    "NodeRuntime",
    "NodeUnavailableError",
    "RuntimeUnavailableError",
    "Sandbox",
    "SandboxLimits",
    "SandboxUnavailableError",
    "TlsSetupError",
    "TokenRequiredError",
    "UnsupportedContainerTypeError",
    "__version__",
    "check_container_type",
    "find_node",
]
