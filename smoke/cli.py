"""``python -m smoke``: a thin command line over run_smoke — parse flags, find the endpoint (``--stack``:
from ``pulumi stack output``), print the verdict."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn, TextIO

from components.azure import CONTAINER_TYPES
from smoke import __version__, settings
from smoke.auth import TOKEN_ENV_VAR, Redactor, normalize_raw_token, token_provider_from_env
from smoke.endpoint import PoolEndpoint
from smoke.outcome import EXIT_CODE_MEANINGS, WORST_FIRST, ExitCode
from smoke.protocol import API_VERSIONS, DEFAULT_TOKEN_SCOPE
from smoke.settings import ConfigurationError, validate_identifier

PROG = "python -m smoke"
ENDPOINT_ENV_VAR = "POOL_MANAGEMENT_ENDPOINT"
INTERRUPTED_MESSAGE = "interrupted (Ctrl-C) before a verdict"
EPILOG = (
    f"endpoint: --endpoint, else --stack (pulumi stack output), else ${ENDPOINT_ENV_VAR}.\n"
    f"token: ${TOKEN_ENV_VAR} when set, else DefaultAzureCredential (az login, managed identity, ...).\n"
    f"HTTPS: ${settings.CA_FILE_ENV_VAR} names the certificates to trust (e.g. the local pool's --tls).\n\n"
    "exit codes:\n"
    + "".join(f"  {int(code)}  {meaning}\n" for code, meaning in EXIT_CODE_MEANINGS.items())
    + f"  with several API versions the worst decides, in the order {WORST_FIRST}.\n"
)


# Reading outputs needs the state backend; two minutes is generous even for a remote backend.
STACK_OUTPUT_TIMEOUT_SECONDS = 120.0


def read_stack_outputs(stack: str, *, timeout: float = STACK_OUTPUT_TIMEOUT_SECONDS) -> dict[str, object]:
    """``pulumi stack output --json --stack <stack>``; ConfigurationError saying what to fix on any problem."""
    # Loaded only for --stack: start-up time counts (bench/bench_smoke.py).
    import shutil
    import subprocess

    executable = shutil.which("pulumi")
    if executable is None:
        raise ConfigurationError(
            f"--stack {stack} needs the Pulumi CLI, but `pulumi` is not on PATH. Install it "
            "(https://www.pulumi.com/docs/install/), or pass --endpoint URL, or set POOL_MANAGEMENT_ENDPOINT."
        )
    command = f"`pulumi stack output --json --stack {stack}`"
    argv = [executable, "stack", "output", "--json", "--stack", stack]
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603
    except subprocess.TimeoutExpired:
        raise ConfigurationError(
            f"{command} did not finish within {timeout:g} s; check the Pulumi backend login (`pulumi whoami`), "
            "or pass --endpoint URL."
        ) from None
    except OSError as error:
        raise ConfigurationError(f"Could not run {executable!r} ({error.strerror}); pass --endpoint URL.") from None
    if completed.returncode != 0:
        stderr_tail = " ".join(completed.stderr.strip().splitlines()[-5:])
        raise ConfigurationError(
            f"{command} failed with exit code {completed.returncode}: {stderr_tail or 'no error message'}. "
            "Check the stack name (`pulumi stack ls`) and backend login."
        )
    try:
        outputs = json.loads(completed.stdout)
    except ValueError:
        outputs = None
    if not isinstance(outputs, dict):
        raise ConfigurationError(f"{command} did not print a JSON object (got {completed.stdout.strip()[:100]!r}).")
    return outputs


class _UsageError(Exception):
    """argparse found a bad flag; raised instead of letting argparse exit, so --json can still answer."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see `{PROG} --help`)")


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}") from None


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
        choices=[*API_VERSIONS, "all"],
        default="all",
        help="data-plane API generation to check (default: all, in order)",
    )
    parser.add_argument(
        "--container-type",
        choices=CONTAINER_TYPES,
        help="language of the hello-world (default: the stack's containerType, else "
        f"{settings.DEFAULT_CONTAINER_TYPE})",
    )
    parser.add_argument("--identifier", metavar="ID", help="session identifier (default: a fresh smoke-<uuid>)")
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=settings.DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=(
            f"overall deadline for the whole check, waits included (default: {settings.DEFAULT_TIMEOUT_SECONDS:g}, "
            f"at least {settings.MIN_ATTEMPT_SECONDS:g})"
        ),
    )
    parser.add_argument(
        "--request-timeout",
        type=_seconds,
        default=settings.DEFAULT_REQUEST_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="longest wait for one HTTP answer before retrying "
        f"(default: {settings.DEFAULT_REQUEST_TIMEOUT_SECONDS:g})",
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


class _Console:
    """Every line the CLI prints loses the unambiguous tokens and is made printable.

    Control characters from the server (newline, ESC) and characters the stream cannot encode become
    backslash escapes, so text from the server can neither break the verdict line nor drive the terminal.
    """

    def __init__(self, stdout: TextIO, stderr: TextIO, redact: Redactor) -> None:
        self.stdout, self.stderr, self.redact = stdout, stderr, redact

    def result(self, text: str) -> None:
        self._write(self.stdout, text)

    def progress(self, line: str) -> None:
        self._write(self.stderr, "smoke: " + line)

    def _write(self, stream: TextIO, text: str) -> None:
        encoding = getattr(stream, "encoding", None) or "utf-8"
        for line in self.redact.unambiguous(text).splitlines() or [""]:
            shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in line)
            stream.write(shown.encode(encoding, errors="backslashreplace").decode(encoding, errors="replace") + "\n")
        stream.flush()


def _endpoint_and_container_type(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, str]:
    """The endpoint text (--endpoint, --stack or the environment) and the hello-world's container type."""
    container_type = args.container_type or settings.DEFAULT_CONTAINER_TYPE
    if args.endpoint is not None:
        return args.endpoint, container_type
    if args.stack is None:
        if not env.get(ENDPOINT_ENV_VAR, "").strip():
            raise ConfigurationError(
                "No pool endpoint given: pass --endpoint URL, or --stack NAME to read the stack output "
                f"poolManagementEndpoint, or set {ENDPOINT_ENV_VAR}."
            )
        return env[ENDPOINT_ENV_VAR].strip(), container_type
    outputs = read_stack_outputs(args.stack)
    endpoint, declared = outputs.get("poolManagementEndpoint"), outputs.get("containerType")
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise ConfigurationError(
            f"Stack {args.stack!r} has no usable output 'poolManagementEndpoint' (outputs present: "
            f"{', '.join(sorted(outputs)) or 'none'}). Deploy the stack first (`pulumi up`), or pass --endpoint URL."
        )
    if args.container_type is None and isinstance(declared, str):
        if declared not in CONTAINER_TYPES:
            raise ConfigurationError(
                f"Stack {args.stack!r} exports containerType {declared!r}, which has no built-in hello-world "
                f"(supported: {', '.join(CONTAINER_TYPES)}); pass --container-type to choose one."
            )
        container_type = declared
    return endpoint.strip(), container_type


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line; return the exit code (see the epilog)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    redactor = Redactor()
    raw_token = env.get(TOKEN_ENV_VAR)
    if raw_token:  # known before anything can fail, so even the earliest error message is scrubbed
        redactor.add(raw_token.strip())
        redactor.add(normalize_raw_token(raw_token))
    console = _Console(stdout or sys.stdout, stderr or sys.stderr, redactor)
    json_mode = "--json" in argv
    endpoint_text: str | None = None  # set once valid: a rejected one may hold a password or a key

    def no_verdict(message: str, code: ExitCode) -> int:
        if json_mode:
            verdict = {"ok": False, "endpoint": endpoint_text, "exitCode": int(code), "results": [], "error": message}
            console.result(json.dumps(verdict))
        return int(code)

    try:
        args = build_parser().parse_args(argv)
        json_mode = args.json
        settings.validate_timeouts(args.timeout, args.request_timeout)
        given_endpoint, container_type = _endpoint_and_container_type(args, env)
        endpoint = PoolEndpoint.parse(given_endpoint)
        endpoint_text = endpoint.url
        identifier = validate_identifier(args.identifier) if args.identifier is not None else None
        provider = token_provider_from_env(args.scope, env, redactor)
        from smoke.runner import run_smoke  # azure-core and requests are most of the start-up time

        report = run_smoke(
            endpoint,
            token_provider=provider,
            api_versions=API_VERSIONS if args.api_version == "all" else (args.api_version,),
            container_type=container_type,
            identifier=identifier,
            timeout=args.timeout,
            request_timeout=args.request_timeout,
            progress=console.progress,
            files=args.files,
            ca_file=settings.ca_file_from_env(env),
        )
    except (_UsageError, ConfigurationError) as error:
        message = redactor(str(error))  # may quote a library's or the user's text: every secret goes
        console.progress(f"error: {message}")
        return no_verdict(message, ExitCode.USAGE)
    except KeyboardInterrupt:
        if not json_mode:
            where = f" on {endpoint_text}" if endpoint_text else ""
            console.result(f"FAIL hello-world check {INTERRUPTED_MESSAGE}{where} (exit {int(ExitCode.INTERRUPTED)})")
        return no_verdict(INTERRUPTED_MESSAGE, ExitCode.INTERRUPTED)
    except Exception as error:
        import traceback  # a bug in the smoke check, not a verdict on the pool: show where, never the token

        console.progress("internal error (a bug in the smoke check): " + redactor(traceback.format_exc().rstrip()))
        return no_verdict(redactor(f"internal error: {error!r}"), ExitCode.EXECUTION_FAILED)
    console.result(json.dumps(report.to_json()) if json_mode else report.summary())
    return report.exit_code
