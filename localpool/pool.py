"""LocalPool: the whole local stand-in (sessions + HTTP server) as one object for the CLI, tests and benchmarks."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from localpool.constants import (
    BASE_PATH,
    DEFAULT_COOLDOWN_SECONDS,
    DEFAULT_HOST,
    DEFAULT_MAX_SESSIONS,
    DEFAULT_NETWORK_STATUS,
    DEFAULT_PORT,
    EGRESS_ENABLED,
    GENERATED_TOKEN_BYTES,
    NETWORK_STATUSES,
    NODE_CONTAINER_TYPE,
)
from localpool.interpreter import Runtime
from localpool.runtimes import find_runtime
from localpool.sandbox import Sandbox, SandboxLimits
from localpool.server import PoolServer, is_loopback
from localpool.sessions import SessionManager
from localpool.tls import make_self_signed, server_context
from localpool.wire import ContainerType


class TokenRequiredError(ValueError):
    """A pool bound to a non-loopback address was started without an explicit token."""


class UnsupportedContainerTypeError(ValueError):
    """The local pool was asked for a container type it does not run (e.g. CustomContainer)."""


def check_container_type(container_type: str) -> ContainerType:
    """The built-in container type named (compared case-insensitively); UnsupportedContainerTypeError otherwise."""
    for member in ContainerType:
        if container_type.lower() == member.value.lower():
            return member
    raise UnsupportedContainerTypeError(
        f"The container type {container_type!r} is not available: the local pool runs "
        f"{', '.join(member.value for member in ContainerType)} (custom containers are not emulated)."
    )


class LocalPool:
    """An offline stand-in for the data plane of an Azure Container Apps session pool (NodeLTS, PythonLTS or Shell).

    Usage::

        with LocalPool(token="secret") as pool:
            requests.post(pool.endpoint + "/executions", params=..., headers=..., json=...)

    Construction finds the container type's runtime (RuntimeUnavailableError, e.g.
    NodeUnavailableError, if missing or too old), checks the
    sandbox (SandboxUnavailableError without a working bubblewrap) and binds the socket; start()
    (or entering the context) serves in a background thread; close() stops the server, kills
    every session's sandbox and removes the pool's temporary directory.
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
        network_status: str = DEFAULT_NETWORK_STATUS,
        limits: SandboxLimits | None = None,
        sandbox: bool = True,
        tls: bool = False,
        cert: Path | None = None,
        key: Path | None = None,
    ) -> None:
        """Check the settings, find the runtime, check the sandbox and bind the server (port 0 picks a free port).

        token: the only bearer token accepted; None makes a random one (see .token and
            .token_generated). A host other than loopback needs an explicit token.
        prewarm: keep one spare sandboxed interpreter started so new sessions answer faster.
        quiet: do not log request lines to stderr.
        container_type: NodeLTS (default), PythonLTS or Shell (localpool/runtimes.py).
        environ: where to look for LOCALPOOL_NODE, LOCALPOOL_PYTHON and PATH (default: os.environ).
        network_status: EgressDisabled (each session has an empty network namespace) or
            EgressEnabled (each session has its own outbound-only network through slirp4netns), as the
            Azure pool's setting.
        limits: resource limits of each session's sandbox (defaults in constants.py).
        sandbox: False runs session code without bubblewrap: for trusted code only.
        tls: serve HTTPS; with cert and key given they are used (TlsSetupError if unusable), else a
            self-signed certificate for localhost is made (its path is .cert_path).
        """
        if (cert is None) != (key is None):
            raise ValueError("Give --cert and --key together (a PEM certificate and its private key), or neither.")
        tls = tls or cert is not None
        self.container_type = check_container_type(container_type)
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, not {max_sessions}.")
        if cooldown_seconds <= 0:
            raise ValueError(f"cooldown_seconds must be above 0, not {cooldown_seconds}.")
        if network_status not in NETWORK_STATUSES:
            raise ValueError(f"network_status must be one of {', '.join(NETWORK_STATUSES)}, not {network_status!r}.")
        if token is None and not is_loopback(host):
            raise TokenRequiredError(
                f"Listening on {host} (not loopback) needs an explicit token (--token or LOCALPOOL_TOKEN)."
            )
        self.token_generated = token is None
        self.token: str = token if token is not None else secrets.token_urlsafe(GENERATED_TOKEN_BYTES)
        self.network_status = network_status
        self.sandbox = Sandbox(
            limits=limits or SandboxLimits(), egress=network_status == EGRESS_ENABLED, enabled=sandbox
        )
        self.runtime: Runtime = find_runtime(self.container_type, environ, nobody_reads=self.sandbox.drops_root)
        self.sandbox.check()
        self.cert_path: Path | None = None
        self._tls_dir: Path | None = None
        ssl_context = None
        if tls:
            if cert is None or key is None:
                self._tls_dir = Path(tempfile.mkdtemp(prefix="localpool-tls-"))
                cert, key = make_self_signed(self._tls_dir)
            self.cert_path = cert
            try:
                ssl_context = server_context(cert, key)
            except BaseException:
                self._remove_tls_dir()
                raise
        self.manager = SessionManager(
            self.runtime,
            max_sessions=max_sessions,
            cooldown_seconds=cooldown_seconds,
            sandbox=self.sandbox,
            prewarm=prewarm,
        )
        try:
            self._server = PoolServer(
                (host, port),
                self.manager,
                token=self.token,
                quiet=quiet,
                loopback_only=is_loopback(host),
                ssl_context=ssl_context,
            )
        except BaseException:
            self.manager.close()
            self._remove_tls_dir()
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
        scheme = "https" if self.cert_path is not None else "http"
        return f"{scheme}://{host}:{self.port}"

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
        self._remove_tls_dir()

    def _remove_tls_dir(self) -> None:
        if self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)
            self._tls_dir = None

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
