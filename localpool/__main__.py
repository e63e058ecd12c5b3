"""``python -m localpool``: run the local stand-in of a NodeLTS session pool until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from localpool.constants import (
    BASE_PATH,
    DEFAULT_COOLDOWN_SECONDS,
    DEFAULT_HOST,
    DEFAULT_MAX_SESSIONS,
    DEFAULT_PORT,
    ENDPOINT_LINE_PREFIX,
    MAX_REQUEST_BODY_BYTES,
    NODE_CONTAINER_TYPE,
    NODE_ENV_VAR,
    SESSION_HEAP_MB,
)
from localpool.node import NodeUnavailableError
from localpool.pool import LocalPool, UnsupportedContainerTypeError, check_container_type
from smoke.protocol import DEFAULT_EXECUTION_TIMEOUT_SECONDS, MAX_EXECUTION_SECONDS, OUTPUT_STREAM_MAX_CHARS

TOKEN_ENV_VAR = "LOCALPOOL_TOKEN"  # noqa: S105 - the name of a variable, not a secret
# Exit codes: 2 for a setup the pool cannot run with (as argparse uses for bad arguments).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_UNUSABLE_SETUP = 2
MAX_PORT = 65535
# Hosts that only this machine can reach; anything else exposes the pool to the network.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

DESCRIPTION = f"""\
Serve an offline stand-in for the data plane of an Azure Container Apps dynamic-sessions pool
(container type {NODE_CONTAINER_TYPE}) on this machine. Each session identifier gets its own
Node.js process with the permission model on (file access only inside the session's temporary
directory; no child processes or worker threads), a {SESSION_HEAP_MB} MB heap and a timeout per
execution (default {DEFAULT_EXECUTION_TIMEOUT_SECONDS} s, at most {MAX_EXECUTION_SECONDS} s).
Output streams are cut at {OUTPUT_STREAM_MAX_CHARS} characters; bodies above
{MAX_REQUEST_BODY_BYTES} bytes are refused.

When ready it prints one line on stdout:
  {ENDPOINT_LINE_PREFIX}http://<host>:<port>{BASE_PATH}
"""

EPILOG = f"""\
operations (below the endpoint, 'Authorization: Bearer <token>' required):
  POST /code/execute?api-version=2024-02-02-preview&identifier=<id>
  POST /executions?api-version=2024-10-02-preview|2025-10-02-preview&identifier=<id>
  GET  /executions/<id>?api-version=...&identifier=<id>

environment:
  {NODE_ENV_VAR}   the node binary to use (default: 'node' on PATH; Node.js 20 or newer)
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


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``python -m localpool``."""
    parser = argparse.ArgumentParser(
        prog="python -m localpool",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s, loopback only)")
    parser.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help="TCP port (default: %(default)s = any free port)"
    )
    parser.add_argument(
        "--token",
        default=None,
        help=f"the only bearer token to accept (default: ${TOKEN_ENV_VAR}, else any non-empty bearer token); "
        "a different token is answered 403",
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
        help=f"the pool's container type; only {NODE_CONTAINER_TYPE} is available locally (default: %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log request lines to stderr")
    parser.add_argument(
        "--no-prewarm", action="store_true", help="do not keep a spare Node.js process ready for new sessions"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the local pool until interrupted; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_container_type(args.container_type)
    except UnsupportedContainerTypeError as error:
        parser.error(str(error))  # exits with EXIT_UNUSABLE_SETUP, after the usage line
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV_VAR) or None
    try:
        pool = LocalPool(
            host=args.host,
            port=args.port,
            token=token,
            max_sessions=args.max_sessions,
            cooldown_seconds=args.cooldown,
            prewarm=not args.no_prewarm,
            quiet=args.quiet,
        )
    except NodeUnavailableError as error:
        print(f"localpool: {error}", file=sys.stderr)
        return EXIT_UNUSABLE_SETUP
    except OSError as error:
        print(f"localpool: cannot listen on {args.host}:{args.port}: {error.strerror or error}.", file=sys.stderr)
        return EXIT_FAILURE

    if args.host not in LOOPBACK_HOSTS and token is None:
        print(
            f"localpool: warning: listening on {args.host} without --token; anyone who can reach it can run code.",
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
        print(
            f"localpool: {NODE_CONTAINER_TYPE} sessions on Node.js {pool.runtime.version_text} "
            f"({pool.runtime.path}); Ctrl-C stops.",
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


if __name__ == "__main__":
    sys.exit(main())
