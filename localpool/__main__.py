"""``localpool`` (or ``python -m localpool``): run the local stand-in of a session pool until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from localpool import __version__, seccomp
from localpool.constants import (
    BASE_PATH,
    DEFAULT_COOLDOWN_SECONDS,
    DEFAULT_HOST,
    DEFAULT_MAX_SESSIONS,
    DEFAULT_NETWORK_STATUS,
    DEFAULT_PORT,
    DEFAULT_SESSION_CPU_SECONDS,
    DEFAULT_SESSION_DISK_MB,
    DEFAULT_SESSION_MEMORY_MB,
    DEFAULT_SESSION_OPEN_FILES,
    DEFAULT_SESSION_PROCESSES,
    ENDPOINT_LINE_PREFIX,
    MAX_REQUEST_BODY_BYTES,
    NETWORK_STATUSES,
    NODE_CONTAINER_TYPE,
    NODE_ENV_VAR,
    PYTHON_ENV_VAR,
    SESSION_HEAP_MB,
    SESSION_MOUNT_POINT,
    TOKEN_ENV_VAR,
    TOKEN_LINE_PREFIX,
)
from localpool.interpreter import RuntimeUnavailableError
from localpool.pool import (
    LocalPool,
    TokenRequiredError,
    UnsupportedContainerTypeError,
    check_container_type,
)
from localpool.sandbox import SandboxLimits, SandboxUnavailableError
from localpool.server import is_loopback
from localpool.tls import CERT_LINE_PREFIX, TlsSetupError
from localpool.wire import DEFAULT_OUTPUT_STREAMS_MAX_LENGTH as OUTPUT_STREAM_MAX_CHARS
from localpool.wire import (
    MAX_EXECUTION_SECONDS,
    MAX_UPLOAD_BYTES,
    SHELL_DEFAULT_EXECUTION_SECONDS,
    SHELL_MAX_EXECUTION_SECONDS,
    ContainerType,
)

# Exit codes: 2 for a setup the pool cannot run with (as argparse uses for bad arguments).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_UNUSABLE_SETUP = 2
MAX_PORT = 65535


def no_sandbox_warning(container_type: ContainerType) -> str:
    """The warning --no-sandbox prints at every start: what session code can reach without bubblewrap."""
    who = f"as this pool's own user (uid {os.geteuid()}) with its network and its files"
    if container_type == ContainerType.NODE_LTS:
        # Node's permission model limits files, child processes and workers, not the network.
        kept = "only Node.js's permission model stands in the way, and it does not hold against malicious code"
    else:
        kept = "there is no isolation at all"
    return (
        f"localpool: WARNING: --no-sandbox: {container_type} session code runs WITHOUT the bubblewrap sandbox, "
        f"{who}: {kept}; --network-status does not apply. Use it for trusted code only."
    )


_UPLOAD_LIMITS = ", ".join(f"{limit} bytes for {kind}" for kind, limit in MAX_UPLOAD_BYTES.items())
DESCRIPTION = f"""\
Serve an offline stand-in for the data plane of an Azure Container Apps dynamic-sessions pool
(container type NodeLTS, PythonLTS or Shell) on this machine. Each session identifier gets its own
bubblewrap sandbox (user, PID, IPC, UTS, mount and network namespaces; the system read-only, its
own directory at {SESSION_MOUNT_POINT} and a private /tmp writable, nothing else; a seccomp filter
refusing the kernel interfaces a session never needs), running as nobody
with the limits below and a timeout per execution (timeoutInSeconds, at most and by default
{MAX_EXECUTION_SECONDS} s; Shell: {SHELL_DEFAULT_EXECUTION_SECONDS} s, at most {SHELL_MAX_EXECUTION_SECONDS} s): NodeLTS
runs Node.js with the permission model on and a {SESSION_HEAP_MB} MB heap, PythonLTS one persistent
Python namespace per session, Shell each command by bash.
Output streams are cut at {OUTPUT_STREAM_MAX_CHARS} characters; bodies above
{MAX_REQUEST_BODY_BYTES} bytes (uploads: files above {_UPLOAD_LIMITS}) are refused. Without a
working bubblewrap (or libseccomp, which builds the filter) it exits with code 2.

When ready it prints on stdout:
  {ENDPOINT_LINE_PREFIX}http(s)://<host>:<port>{BASE_PATH}
  {TOKEN_LINE_PREFIX}<token>      (only when it made the token itself)
  {CERT_LINE_PREFIX}<path>        (only with --tls: the certificate a client must trust)
"""

EPILOG = f"""\
operations (below the endpoint, 'Authorization: Bearer <token>' required): every data-plane
operation of api-versions 2024-02-02-preview, 2024-10-02-preview, 2025-02-02-preview and
2025-10-02-preview (code execution, files in /mnt/data, sessions, metadata); see docs/local-pool.md.

environment:
  {NODE_ENV_VAR}   the node binary to use (default: 'node' on PATH; Node.js 20 or newer)
  {PYTHON_ENV_VAR} the python binary of PythonLTS and Shell sessions (default: /usr/bin/python3, else
                   'python3' on PATH; 3.10 or newer; a venv's python brings its packages)
  {TOKEN_ENV_VAR}  the bearer token to require, instead of --token (keeps it out of 'ps')
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_PORT}, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def build_parser(prog: str = "python -m localpool") -> argparse.ArgumentParser:
    """The command-line interface of ``python -m localpool`` (prog "localpool" for the installed command)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s, loopback only)")
    parser.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help="TCP port (default: %(default)s = any free port)"
    )
    parser.add_argument(
        "--token",
        default=None,
        help=f"the only bearer token to accept (default: ${TOKEN_ENV_VAR}, else a random one printed once "
        f"as {TOKEN_LINE_PREFIX}...); a different token is answered 401",
    )
    parser.add_argument(
        "--network-status",
        choices=NETWORK_STATUSES,
        default=DEFAULT_NETWORK_STATUS,
        help="as the Azure pool's setting: EgressDisabled gives each session a network namespace of its own "
        "with only its own loopback (no route anywhere, not even to the host), EgressEnabled its own "
        "outbound-only network through slirp4netns (no host loopback, no inbound ports) (default: %(default)s)",
    )
    parser.add_argument(
        "--memory-mb",
        type=_positive_int,
        default=DEFAULT_SESSION_MEMORY_MB,
        help="private memory per session sandbox, MiB (default: %(default)s)",
    )
    parser.add_argument(
        "--cpu-seconds",
        type=_positive_int,
        default=DEFAULT_SESSION_CPU_SECONDS,
        help="CPU time per session sandbox over its life, seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--max-processes",
        type=_positive_int,
        default=DEFAULT_SESSION_PROCESSES,
        help="processes and threads per session sandbox (default: %(default)s)",
    )
    parser.add_argument(
        "--max-open-files",
        type=_positive_int,
        default=DEFAULT_SESSION_OPEN_FILES,
        help="open files per process in a session sandbox (default: %(default)s)",
    )
    parser.add_argument(
        "--disk-mb",
        type=_positive_int,
        default=DEFAULT_SESSION_DISK_MB,
        help=f"total size of a session's {SESSION_MOUNT_POINT}, MiB; beyond it the session ends (default: %(default)s)",
    )
    parser.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run session code without bubblewrap, as this pool's own user with its network and files, for TRUSTED "
        "code only (warns at every start)",
    )
    parser.add_argument(
        "--max-sessions",
        type=_positive_int,
        default=DEFAULT_MAX_SESSIONS,
        help="live sessions at most; a new identifier beyond that is answered 404 (default: %(default)s)",
    )
    parser.add_argument(
        "--cooldown",
        type=_positive_float,
        default=DEFAULT_COOLDOWN_SECONDS,
        help="seconds a session may stay idle before its process and files are removed (default: %(default)g)",
    )
    parser.add_argument(
        "--container-type",
        default=NODE_CONTAINER_TYPE,
        help=f"the pool's container type: {', '.join(ContainerType)} (default: %(default)s)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help=f"serve HTTPS with a self-signed certificate for localhost made at start (its path is printed as "
        f"{CERT_LINE_PREFIX}<path>: trust it through that variable)",
    )
    parser.add_argument("--cert", type=Path, default=None, help="serve HTTPS with this PEM certificate (with --key)")
    parser.add_argument("--key", type=Path, default=None, help="the PEM private key of --cert")
    parser.add_argument("--quiet", action="store_true", help="do not log request lines to stderr")
    parser.add_argument(
        "--no-prewarm", action="store_true", help="do not keep a spare interpreter ready for new sessions"
    )
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m localpool") -> int:
    """Run the local pool until interrupted; returns the process exit code."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        container_type = check_container_type(args.container_type)
    except UnsupportedContainerTypeError as error:
        parser.error(str(error))  # exits with EXIT_UNUSABLE_SETUP, after the usage line
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV_VAR) or None
    if args.no_sandbox:
        print(no_sandbox_warning(container_type), file=sys.stderr, flush=True)
    limits = SandboxLimits(
        memory_mb=args.memory_mb,
        cpu_seconds=args.cpu_seconds,
        processes=args.max_processes,
        open_files=args.max_open_files,
        disk_mb=args.disk_mb,
    )
    try:
        pool = LocalPool(
            host=args.host,
            port=args.port,
            token=token,
            max_sessions=args.max_sessions,
            cooldown_seconds=args.cooldown,
            prewarm=not args.no_prewarm,
            quiet=args.quiet,
            network_status=args.network_status,
            limits=limits,
            sandbox=not args.no_sandbox,
            container_type=container_type,
            tls=args.tls,
            cert=args.cert,
            key=args.key,
        )
    except (RuntimeUnavailableError, SandboxUnavailableError, TokenRequiredError, TlsSetupError) as error:
        print(f"localpool: {error}", file=sys.stderr)
        return EXIT_UNUSABLE_SETUP
    except OSError as error:
        print(f"localpool: cannot listen on {args.host}:{args.port}: {error.strerror or error}.", file=sys.stderr)
        return EXIT_FAILURE

    if not is_loopback(args.host):
        print(
            f"localpool: warning: listening on {args.host}, not loopback: anyone who can reach it and has the "
            "token can run code here.",
            file=sys.stderr,
        )
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        pool.start()
        print(f"{ENDPOINT_LINE_PREFIX}{pool.endpoint}", flush=True)
        if pool.token_generated:
            # The one place a secret is shown: the development token the pool made for itself.
            print(f"{TOKEN_LINE_PREFIX}{pool.token}", flush=True)
        if pool.cert_path is not None:
            print(f"{CERT_LINE_PREFIX}{pool.cert_path}", flush=True)
        if args.no_sandbox:
            contained = f"WITHOUT a sandbox, as uid {os.geteuid()} with the pool's own network and files,"
        else:
            filtered = f"seccomp filter on (libseccomp {seccomp.libseccomp_version()})"
            contained = f"in bubblewrap sandboxes, {filtered}, with network {args.network_status},"
        print(
            f"localpool: {pool.container_type} sessions {contained} on {pool.runtime.display_name} "
            f"{pool.runtime.version_text} ({pool.runtime.path}); Ctrl-C stops.",
            file=sys.stderr,
            flush=True,
        )
        # A timeout keeps the main thread responsive to signals on every platform.
        while not stop.wait(timeout=1.0):
            pass
    finally:
        pool.close()
    print("localpool: stopped; all sessions ended.", file=sys.stderr, flush=True)
    return EXIT_OK


def console() -> int:
    """The installed ``localpool`` command (pyproject.toml's [project.scripts])."""
    return main(prog="localpool")


if __name__ == "__main__":
    sys.exit(main())
