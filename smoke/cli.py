"""``python -m smoke``: a thin command line over run_smoke — parse flags, find the endpoint, print the verdict."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, TextIO

from components.azure import CONTAINER_TYPES
from smoke._version import __version__
from smoke.auth import TOKEN_ENV_VAR, Redactor, normalize_raw_token, token_provider_from_env
from smoke.endpoint import PoolEndpoint
from smoke.errors import ConfigurationError
from smoke.outcome import EXIT_CODE_MEANINGS, WORST_FIRST, ExitCode
from smoke.protocol import API_VERSIONS, DEFAULT_TOKEN_SCOPE
from smoke.settings import (
    DEFAULT_CONTAINER_TYPE,
    DEFAULT_REQUEST_TIMEOUT_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    MIN_ATTEMPT_SECONDS,
    validate_identifier,
)

PROG = "python -m smoke"
ENDPOINT_ENV_VAR = "POOL_MANAGEMENT_ENDPOINT"
ALL_API_VERSIONS = "all"
PROGRESS_PREFIX = "smoke: "
INTERRUPTED_MESSAGE = "interrupted (Ctrl-C) before a verdict"

EPILOG = (
    f"endpoint: --endpoint, else --stack (pulumi stack output), else ${ENDPOINT_ENV_VAR}.\n"
    f"token: ${TOKEN_ENV_VAR} when set, else DefaultAzureCredential (az login, managed identity, ...).\n\n"
    "exit codes:\n"
    + "".join(f"  {int(code)}  {meaning}\n" for code, meaning in EXIT_CODE_MEANINGS.items())
    + f"  with several API versions the worst decides, in the order {WORST_FIRST}.\n"
)


class _UsageError(Exception):
    """argparse found a bad flag; raised instead of letting argparse exit, so --json can still answer."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see `{PROG} --help`)")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _overall_seconds(text: str) -> float:
    value = _seconds(text)
    if value < MIN_ATTEMPT_SECONDS:
        raise argparse.ArgumentTypeError(
            f"must be at least {MIN_ATTEMPT_SECONDS:g} seconds, the shortest time one request needs, got {text!r}"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m smoke``."""
    parser = _Parser(
        prog=PROG,
        description="Post-deploy smoke check: run hello-world in a dynamic-sessions code-interpreter pool.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--endpoint", metavar="URL", help="the pool management endpoint")
    source.add_argument("--stack", metavar="NAME", help="read poolManagementEndpoint and containerType from a stack")
    parser.add_argument(
        "--api-version",
        choices=[*API_VERSIONS, ALL_API_VERSIONS],
        default=ALL_API_VERSIONS,
        help="data-plane API generation to check (default: all, in order)",
    )
    parser.add_argument(
        "--container-type",
        choices=CONTAINER_TYPES,
        help=f"language of the hello-world (default: the stack's containerType, else {DEFAULT_CONTAINER_TYPE})",
    )
    parser.add_argument("--identifier", metavar="ID", help="session identifier (default: a fresh smoke-<uuid>)")
    parser.add_argument(
        "--timeout",
        type=_overall_seconds,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=(
            f"overall deadline for the whole check, waits included (default: {DEFAULT_TIMEOUT_SECONDS:g}, "
            f"at least {MIN_ATTEMPT_SECONDS:g})"
        ),
    )
    parser.add_argument(
        "--request-timeout",
        type=_seconds,
        default=DEFAULT_REQUEST_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"longest wait for one HTTP answer before retrying (default: {DEFAULT_REQUEST_TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--scope", default=DEFAULT_TOKEN_SCOPE, help=f"token scope for Azure sign-in (default: {DEFAULT_TOKEN_SCOPE})"
    )
    parser.add_argument(
        "--files",
        action="store_true",
        help="also upload a small file, list, download and compare it, then delete it (files API 2024-10-02-preview)",
    )
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object instead of a line")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _printable(text: str, encoding: str | None) -> str:
    """``text`` with every character that is not printable, or not encodable on the stream, as an escape.

    Control characters (newline, ESC), lone surrogates from a server's JSON and characters the
    stream's encoding lacks become backslash escapes, so text from the server can neither break
    the one verdict line, nor drive the terminal, nor make the write itself fail.
    """
    shown = "".join(
        character if character.isprintable() else character.encode("unicode_escape").decode("ascii")
        for character in text
    )
    if encoding:
        shown = shown.encode(encoding, errors="backslashreplace").decode(encoding, errors="replace")
    return shown


class _Console:
    """Every line the CLI prints goes through here, through the token redactor, and is made printable."""

    def __init__(self, stdout: TextIO, stderr: TextIO, redactor: Redactor) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.redact = redactor

    def result(self, text: str) -> None:
        self._write(self.stdout, text)

    def progress(self, line: str) -> None:
        self._write(self.stderr, PROGRESS_PREFIX + line)

    def _write(self, stream: TextIO, text: str) -> None:
        encoding = getattr(stream, "encoding", None)
        lines = self.redact(text).splitlines() or [""]
        stream.write("".join(_printable(line, encoding) + "\n" for line in lines))
        stream.flush()


def _resolve_endpoint(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, str | None]:
    """The endpoint text and the container type the stack declares (None without --stack)."""
    if args.endpoint is not None:
        return args.endpoint, None
    if args.stack is not None:
        from smoke.stack import read_stack_outputs  # subprocess and shutil only load when needed

        outputs = read_stack_outputs(args.stack)
        return outputs.pool_management_endpoint, outputs.container_type
    from_env = env.get(ENDPOINT_ENV_VAR, "").strip()
    if from_env:
        return from_env, None
    raise ConfigurationError(
        "No pool endpoint given: pass --endpoint URL, or --stack NAME to read the stack output "
        f"poolManagementEndpoint, or set {ENDPOINT_ENV_VAR}."
    )


def _container_type(args: argparse.Namespace, from_stack: str | None) -> str:
    if args.container_type is not None:
        return args.container_type
    if from_stack is None:
        return DEFAULT_CONTAINER_TYPE
    if from_stack not in CONTAINER_TYPES:
        raise ConfigurationError(
            f"Stack {args.stack!r} exports containerType {from_stack!r}, which has no built-in hello-world "
            f"(supported: {', '.join(CONTAINER_TYPES)}); pass --container-type to choose one."
        )
    return from_stack


def _no_verdict_json(message: str, endpoint: str | None, exit_code: ExitCode) -> dict[str, Any]:
    """The one JSON object printed when no report exists: usage error, interruption, internal error."""
    return {"ok": False, "endpoint": endpoint, "exitCode": int(exit_code), "results": [], "error": message}


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line; return the exit code (see the module epilog)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    redactor = Redactor()
    raw_token = env.get(TOKEN_ENV_VAR)
    if raw_token:
        # Known before anything can fail, so even the earliest error message is scrubbed.
        redactor.add(raw_token.strip())
        redactor.add(normalize_raw_token(raw_token))
    console = _Console(stdout or sys.stdout, stderr or sys.stderr, redactor)
    json_mode = "--json" in argv
    # Set only once the endpoint is valid: a rejected one may hold a password or a key in its query.
    endpoint_text: str | None = None
    try:
        args = build_parser().parse_args(argv)
        json_mode = args.json
        given_endpoint, stack_container_type = _resolve_endpoint(args, env)
        endpoint = PoolEndpoint.parse(given_endpoint)
        endpoint_text = endpoint.url
        container_type = _container_type(args, stack_container_type)
        identifier = validate_identifier(args.identifier) if args.identifier is not None else None
        provider = token_provider_from_env(args.scope, env, redactor)
        # Imported only now: azure-core and requests are most of the start-up time; usage errors need neither.
        from smoke.runner import run_smoke

        report = run_smoke(
            endpoint,
            token_provider=provider,
            api_versions=API_VERSIONS if args.api_version == ALL_API_VERSIONS else (args.api_version,),
            container_type=container_type,
            identifier=identifier,
            timeout=args.timeout,
            request_timeout=args.request_timeout,
            progress=console.progress,
            files=args.files,
        )
    except (_UsageError, ConfigurationError) as error:
        message = str(error)
        console.progress(f"error: {message}")
        if json_mode:
            console.result(json.dumps(_no_verdict_json(message, endpoint_text, ExitCode.USAGE)))
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:
        if json_mode:
            console.result(json.dumps(_no_verdict_json(INTERRUPTED_MESSAGE, endpoint_text, ExitCode.INTERRUPTED)))
        else:
            where = f" on {endpoint_text}" if endpoint_text else ""
            console.result(f"FAIL hello-world check {INTERRUPTED_MESSAGE}{where} (exit {int(ExitCode.INTERRUPTED)})")
        return int(ExitCode.INTERRUPTED)
    except Exception as error:
        # A bug in the smoke check, not a verdict on the pool: show where, never the token.
        import traceback

        console.progress("internal error (a bug in the smoke check): " + traceback.format_exc().rstrip())
        if json_mode:
            message = f"internal error: {error!r}"
            console.result(json.dumps(_no_verdict_json(message, endpoint_text, ExitCode.EXECUTION_FAILED)))
        return int(ExitCode.EXECUTION_FAILED)
    if json_mode:
        console.result(json.dumps(report.to_json()))
    else:
        console.result(report.summary())
    return report.exit_code
