"""The pytest plugin of the localpool distribution (registered under pytest11): a running local pool for tests.

Fixtures:

- ``local_pool`` (session scope): one pool shared by every test of the session (of each xdist worker),
  started when the first test asks for it and stopped at the end. Its settings come from
  ``local_pool_options``, which a conftest.py overrides to choose them.
- ``local_pool_options`` (session scope): the LocalPoolOptions of ``local_pool`` (default: NodeLTS,
  EgressDisabled, the pool's default limits, plain HTTP).
- ``local_pool_factory`` (session scope): a function that starts one more pool with the options given
  (``local_pool_factory(container_type="Shell", tls=True)``); each is stopped at the end of the session.

Each pool is the ``localpool`` command itself (``python -m localpool`` of the interpreter running pytest),
started in its own process and read through its start-up lines: the tests' monkeypatching, frozen clocks,
blocked sockets or signal handlers cannot reach it, and it is exactly what a person runs. When the sandbox
(or the runtime) cannot start, the test fails with the pool's own sentence, without a traceback.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from localpool.process import RunningPool

# How many of the pool's last stderr lines are kept (read continuously, so a pool that logs never blocks).
STDERR_LINES_KEPT = 50
# The pool's sentences begin with this; the failure message carries its sentence without it.
POOL_MESSAGE_PREFIX = "localpool: "


@dataclass(frozen=True)
class LocalPoolOptions:
    """Settings of a local pool, as the ``localpool`` flags of the same names (None: the pool's default)."""

    container_type: str = "NodeLTS"
    network_status: str = "EgressDisabled"
    memory_mb: int | None = None
    cpu_seconds: int | None = None
    max_processes: int | None = None
    max_open_files: int | None = None
    disk_mb: int | None = None
    max_sessions: int | None = None
    cooldown: float | None = None
    # HTTPS with a self-signed certificate for localhost; LocalPoolEndpoint.cert_path is the file to trust.
    tls: bool = False
    # The token to require; None lets the pool make one (LocalPoolEndpoint.token either way).
    token: str | None = None
    # Further `localpool` arguments, e.g. ("--no-prewarm",).
    extra_args: tuple[str, ...] = ()
    # Seconds to wait for the pool's endpoint line.
    start_timeout: float = 20.0

    def arguments(self) -> list[str]:
        """The `localpool` command line of these options (always --quiet: request lines are not wanted)."""
        flags = {
            "memory_mb": "--memory-mb",
            "cpu_seconds": "--cpu-seconds",
            "max_processes": "--max-processes",
            "max_open_files": "--max-open-files",
            "disk_mb": "--disk-mb",
            "max_sessions": "--max-sessions",
            "cooldown": "--cooldown",
        }
        args = ["--quiet", "--container-type", self.container_type, "--network-status", self.network_status]
        for name, flag in flags.items():
            value = getattr(self, name)
            if value is not None:
                args += [flag, str(value)]
        if self.tls:
            args.append("--tls")
        if self.token is not None:
            args += ["--token", self.token]
        return [*args, *self.extra_args]


@dataclass(frozen=True)
class LocalPoolEndpoint:
    """A running local pool: what a client needs to reach it."""

    # The pool management endpoint (POOL_MANAGEMENT_ENDPOINT), https:// with tls.
    endpoint: str
    # The bearer token the pool requires.
    token: str
    # With tls: the certificate a client must trust (e.g. as SSL_CERT_FILE or REQUESTS_CA_BUNDLE); else None.
    cert_path: Path | None
    options: LocalPoolOptions
    _stderr: collections.deque[str] = field(repr=False, compare=False, default_factory=collections.deque)

    def stderr_tail(self) -> str:
        """The pool's last lines on stderr (its start-up line, warnings), for a failing test to show."""
        return "\n".join(self._stderr)


def _drain(stream: IO[str], kept: collections.deque[str]) -> None:
    """Read the pool's stderr until it closes, keeping the last lines."""
    try:
        for line in stream:
            kept.append(line.rstrip("\n"))
    except (OSError, ValueError):
        pass  # the stream was closed when the pool stopped


def _start_failure(error: Exception) -> str:
    """One sentence for a pool that did not start: the pool's own, when it said one."""
    problem = str(error).partition(" did not start: ")[2] or str(error)
    return f"the local pool did not start: {problem.strip().removeprefix(POOL_MESSAGE_PREFIX)}"


class _Pools:
    """The pools a session started, all stopped at its end (ExitStack of local_pool_process blocks)."""

    def __init__(self) -> None:
        import contextlib

        self._stack = contextlib.ExitStack()

    def start(self, options: LocalPoolOptions) -> LocalPoolEndpoint:
        from localpool.process import LocalPoolStartError, local_pool_process

        if options.container_type not in ("NodeLTS", "PythonLTS", "Shell"):
            pytest.fail(
                f"local_pool_options: container_type {options.container_type!r} is not a local pool's container "
                "type: NodeLTS, PythonLTS or Shell.",
                pytrace=False,
            )
        failure = None
        try:
            running: RunningPool = self._stack.enter_context(
                local_pool_process(*options.arguments(), start_timeout=options.start_timeout)
            )
        except LocalPoolStartError as error:
            failure = _start_failure(error)
        if failure is not None:  # outside the except block: the one sentence, no chained traceback
            pytest.fail(failure, pytrace=False)
        kept: collections.deque[str] = collections.deque(maxlen=STDERR_LINES_KEPT)
        assert running.process.stderr is not None
        threading.Thread(target=_drain, args=(running.process.stderr, kept), daemon=True).start()
        cert = Path(running.cert_path) if running.cert_path is not None else None
        return LocalPoolEndpoint(running.endpoint, running.token, cert, options, kept)

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="session")
def local_pool_options() -> LocalPoolOptions:
    """The options of the session's ``local_pool``: override this fixture (in a conftest.py) to choose them."""
    return LocalPoolOptions()


@pytest.fixture(scope="session")
def local_pool_factory() -> Iterator[Callable[..., LocalPoolEndpoint]]:
    """Start a local pool: ``local_pool_factory(LocalPoolOptions(...))`` or ``local_pool_factory(tls=True)``.

    Every pool it started is stopped at the end of the session.
    """
    pools = _Pools()
    names = {option.name for option in fields(LocalPoolOptions)}

    def start(options: LocalPoolOptions | None = None, **changes: object) -> LocalPoolEndpoint:
        unknown = sorted(set(changes) - names)
        if unknown:
            pytest.fail(
                f"local_pool_factory: {', '.join(unknown)} is not an option; "
                f"the options are {', '.join(sorted(names))}.",
                pytrace=False,
            )
        return pools.start(replace(options or LocalPoolOptions(), **changes))  # type: ignore[arg-type]

    try:
        yield start
    finally:
        pools.close()


@pytest.fixture(scope="session")
def local_pool(
    local_pool_options: LocalPoolOptions, local_pool_factory: Callable[..., LocalPoolEndpoint]
) -> LocalPoolEndpoint:
    """One local pool for the whole session (per xdist worker), with ``local_pool_options``."""
    return local_pool_factory(local_pool_options)
