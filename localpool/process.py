"""Run `python -m localpool` as a child process: for scripts, benchmarks and tests that want the
pool in its own process (its own interpreter and GIL), exactly as a person starts it.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from localpool.constants import ENDPOINT_LINE_PREFIX, TOKEN_ENV_VAR, TOKEN_LINE_PREFIX
from localpool.tls import CERT_LINE_PREFIX

# The directory that holds the localpool package, from which `python -m localpool` imports this very copy:
# the checkout, or site-packages when the distribution is installed.
IMPORT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0


def _given_token(args: tuple[str, ...], env: Mapping[str, str]) -> str | None:
    """The token the command line or environment gives the pool, if any (as __main__ reads them)."""
    for index, arg in enumerate(args):
        if arg == "--token" and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--token="):
            return arg.removeprefix("--token=")
    return env.get(TOKEN_ENV_VAR) or None


class LocalPoolStartError(RuntimeError):
    """`python -m localpool` exited or printed something else instead of its endpoint line."""


@dataclass(frozen=True)
class RunningPool:
    """A `python -m localpool` child process, the endpoint it printed and the token it requires."""

    process: subprocess.Popen[str]
    endpoint: str
    first_line: str
    token: str
    # The certificate to trust, when the pool serves HTTPS (--tls: the SSL_CERT_FILE= line).
    cert_path: str | None = None


@contextmanager
def local_pool_process(
    *args: str,
    env: Mapping[str, str] | None = None,
    start_timeout: float = DEFAULT_START_TIMEOUT_SECONDS,
) -> Iterator[RunningPool]:
    """Start `python -m localpool ARGS`, wait for its `POOL_MANAGEMENT_ENDPOINT=` line, stop it afterwards.

    Without --token or LOCALPOOL_TOKEN the pool makes a token and prints it on a second line;
    RunningPool.token is then that one. Raises LocalPoolStartError with the child's own message
    (e.g. Node.js or bubblewrap missing) when it does not start. The child is terminated (killed
    if it lingers) when the block ends.
    """
    environment = dict(os.environ if env is None else env)
    given = _given_token(args, environment)
    process = subprocess.Popen(  # noqa: S603 - this interpreter and module, arguments from the caller
        [sys.executable, "-m", "localpool", *args],
        cwd=IMPORT_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        ready, _, _ = select.select([process.stdout], [], [], start_timeout)
        first_line = process.stdout.readline().rstrip("\n") if ready else ""
        if not first_line.startswith(ENDPOINT_LINE_PREFIX):
            if process.poll() is None:
                process.kill()
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
            problem = process.stderr.read().strip() or f"first line {first_line!r}"
            raise LocalPoolStartError(f"python -m localpool did not start: {problem}")
        token = given
        if token is None:
            token_line = process.stdout.readline().rstrip("\n")
            if not token_line.startswith(TOKEN_LINE_PREFIX):
                raise LocalPoolStartError(f"python -m localpool printed no {TOKEN_LINE_PREFIX} line.")
            token = token_line.removeprefix(TOKEN_LINE_PREFIX)
        cert_path = None
        if "--tls" in args:
            cert_line = process.stdout.readline().rstrip("\n")
            if not cert_line.startswith(CERT_LINE_PREFIX):
                raise LocalPoolStartError(f"python -m localpool --tls printed no {CERT_LINE_PREFIX} line.")
            cert_path = cert_line.removeprefix(CERT_LINE_PREFIX)
        yield RunningPool(process, first_line.removeprefix(ENDPOINT_LINE_PREFIX), first_line, token, cert_path)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
