"""LocalPool: the whole local stand-in (sessions + HTTP server) as one object for the CLI, tests and benchmarks."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import TracebackType

from localpool.constants import (
    BASE_PATH,
    DEFAULT_COOLDOWN_SECONDS,
    DEFAULT_HOST,
    DEFAULT_MAX_SESSIONS,
    DEFAULT_PORT,
    NODE_CONTAINER_TYPE,
)
from localpool.node import NodeRuntime, find_node
from localpool.server import PoolServer
from localpool.sessions import SessionManager


class UnsupportedContainerTypeError(ValueError):
    """The local pool was asked for a container type other than NodeLTS."""


def check_container_type(container_type: str) -> None:
    """Raise UnsupportedContainerTypeError unless container_type is NodeLTS (compared case-insensitively)."""
    if container_type.lower() != NODE_CONTAINER_TYPE.lower():
        raise UnsupportedContainerTypeError(
            f"The container type {container_type!r} is not available: the local pool runs "
            f"{NODE_CONTAINER_TYPE} only (JavaScript on the machine's Node.js)."
        )


class LocalPool:
    """An offline stand-in for an Azure Container Apps NodeLTS session pool's data plane.

    Usage::

        with LocalPool(token="secret") as pool:
            requests.post(pool.endpoint + "/executions", params=..., headers=..., json=...)

    Construction finds Node.js (NodeUnavailableError if missing or older than 20) and binds the
    socket; start() (or entering the context) serves in a background thread; close() stops the
    server, kills every session's Node.js process and removes the pool's temporary directory.
    """

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        token: str | None = None,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        cooldown_seconds: float = DEFAULT_COOLDOWN_SECONDS,
        container_type: str = NODE_CONTAINER_TYPE,
        prewarm: bool = True,
        quiet: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Check the settings, find Node.js and bind the server (port 0 picks a free port).

        token: the only bearer token accepted (None accepts any bearer token).
        prewarm: keep one spare Node.js process started so new sessions answer faster.
        quiet: do not log request lines to stderr.
        environ: where to look for LOCALPOOL_NODE and PATH (default: os.environ).
        """
        check_container_type(container_type)
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, not {max_sessions}.")
        if cooldown_seconds <= 0:
            raise ValueError(f"cooldown_seconds must be above 0, not {cooldown_seconds}.")
        self.runtime: NodeRuntime = find_node(environ)
        self.manager = SessionManager(
            self.runtime, max_sessions=max_sessions, cooldown_seconds=cooldown_seconds, prewarm=prewarm
        )
        try:
            self._server = PoolServer((host, port), self.manager, token=token, quiet=quiet)
        except BaseException:
            self.manager.close()
            raise
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def host(self) -> str:
        """The host the server is bound to."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The TCP port the server is bound to."""
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        """scheme://host:port of the server, without the pool's base path."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def endpoint(self) -> str:
        """The pool management endpoint, shaped like Azure's (origin + BASE_PATH)."""
        return self.origin + BASE_PATH

    def start(self) -> LocalPool:
        """Serve requests in a background thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, name="localpool-http", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, end every session (killing its Node.js process) and remove temporary files."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self.manager.close()
        self._server.server_close()

    def __enter__(self) -> LocalPool:
        """Start serving."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the pool."""
        self.close()
