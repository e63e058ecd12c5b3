"""The smoke check itself: run hello-world on each API generation, wait out propagation, give a verdict."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from smoke.auth import TokenProvider, token_provider_from_env
from smoke.client import (
    HttpReply,
    MalformedResponseError,
    SessionPoolClient,
    TransportError,
    describe_value,
    one_line,
)
from smoke.endpoint import PoolEndpoint
from smoke.errors import ConfigurationError
from smoke.outcome import Outcome, worst_outcome
from smoke.protocol import (
    API_2024_02,
    API_2024_10,
    API_VERSIONS,
    CONTAINER_TYPES,
    DEFAULT_TOKEN_SCOPE,
    HELLO_WORLD_CODE,
    HELLO_WORLD_STDOUT,
    LEGACY_STATUS_SUCCESS,
    OPERATION_ID_HEADER,
    OPERATION_LOCATION_HEADER,
    PENDING_STATUSES,
    STATUS_SUCCEEDED,
)
from smoke.settings import (
    DEFAULT_CONTAINER_TYPE,
    DEFAULT_REQUEST_TIMEOUT_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    MIN_ATTEMPT_SECONDS,
    new_identifier,
    validate_identifier,
    validate_timeouts,
)
from smoke.waiting import Backoff, Clock, Deadline, SystemClock, parse_retry_after

if TYPE_CHECKING:
    import requests

# A server's Retry-After of 0 must not turn the wait into a tight loop.
MIN_RETRY_DELAY_SECONDS = 0.5
# How often a Running/NotStarted execution is polled when the server sends no Retry-After.
POLL_INTERVAL_SECONDS = 0.5
OUTPUT_EXCERPT_CHARS = 200
# executionTimeInMilliseconds outside 0..this (about 30 years) is not a duration; it is reported as null.
MAX_EXECUTION_TIME_MS = 10**12
# An execution id longer than this is not one; polling falls back to Operation-Location or fails clearly.
MAX_EXECUTION_ID_CHARS = 1024
SESSION_EXECUTOR_ROLE = "Azure ContainerApps Session Executor"

HTTP_UNAUTHORIZED = 401
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERROR_MIN = 500
HTTP_SUCCESS_RANGE = range(200, 300)

# What a "not yet" status most likely means right after a deploy; shown in progress lines.
_STATUS_HINTS: dict[int, str] = {
    HTTP_UNAUTHORIZED: "token not accepted yet: role assignment not propagated, or wrong token audience?",
    HTTP_FORBIDDEN: "role assignment not propagated yet?",
    HTTP_NOT_FOUND: "pool not ready yet, or wrong endpoint?",
    HTTP_TOO_MANY_REQUESTS: "rate limited",
}

ProgressCallback = Callable[[str], None]


def stdout_matches(stdout: object) -> bool:
    """True when ``stdout`` is exactly hello-world and a newline.

    A Windows line ending ("hello-world\\r\\n") also passes: it is the same line, and kernels or
    proxies may translate line endings. Anything else fails: missing newline, extra output, spaces.
    """
    return isinstance(stdout, str) and stdout.replace("\r\n", "\n") == HELLO_WORLD_STDOUT


def _excerpt(text: str, limit: int = OUTPUT_EXCERPT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SmokeResult(NamedTuple):
    """The verdict for one API version."""

    api_version: str
    outcome: Outcome
    http_status: int | None = None
    status: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    attempts: int = 0
    latency_ms: int | None = None
    execution_time_ms: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when hello-world ran and printed exactly what it should."""
        return self.outcome is Outcome.PASSED

    def to_json(self) -> dict[str, Any]:
        """The result as the ``--json`` output shows it."""
        data: dict[str, Any] = {
            "apiVersion": self.api_version,
            "ok": self.ok,
            "outcome": self.outcome.value,
            "httpStatus": self.http_status,
            "status": self.status,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "attempts": self.attempts,
            "latencyMs": self.latency_ms,
            "executionTimeInMilliseconds": self.execution_time_ms,
        }
        if self.error is not None:
            data["error"] = self.error
        return data


class SmokeReport(NamedTuple):
    """The verdict of a whole smoke run: one SmokeResult per API version; the worst one decides."""

    endpoint: str
    identifier: str
    container_type: str
    results: list[SmokeResult]

    @property
    def outcome(self) -> Outcome:
        """The worst outcome over all API versions."""
        return worst_outcome(result.outcome for result in self.results)

    @property
    def ok(self) -> bool:
        """True when every API version passed."""
        return self.outcome is Outcome.PASSED

    @property
    def exit_code(self) -> int:
        """The process exit code for this report."""
        return int(self.outcome.exit_code)

    def summary(self) -> str:
        """One line: ``PASS hello-world ran on <endpoint> (...)`` or ``FAIL ...`` with the reasons."""
        if self.ok:
            timings = ", ".join(f"{result.api_version}: {result.latency_ms} ms" for result in self.results)
            return f"PASS hello-world ran on {self.endpoint} ({timings})"
        parts = [
            f"{result.api_version}: passed in {result.latency_ms} ms"
            if result.ok
            else f"{result.api_version}: {result.error}"
            for result in self.results
        ]
        return (
            f"FAIL hello-world did not run cleanly on {self.endpoint} "
            f"({self.outcome.value}, exit {self.exit_code}): " + "; ".join(parts)
        )

    def to_json(self) -> dict[str, Any]:
        """The report as the ``--json`` output shows it."""
        return {
            "ok": self.ok,
            "endpoint": self.endpoint,
            "identifier": self.identifier,
            "containerType": self.container_type,
            "exitCode": self.exit_code,
            "results": [result.to_json() for result in self.results],
        }


class _Problem(NamedTuple):
    """Why an answer was not usable, and whether waiting could help."""

    outcome: Outcome
    reason: str
    retryable: bool
    retry_after: float | None = None


class _Stopped(Exception):
    """Ends one API version's check early with a final outcome and reason."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


def classify_reply(reply: HttpReply, now_wall: float) -> _Problem | None:
    """None for a 2xx answer; otherwise what went wrong and whether to retry (see the README's table)."""
    code = reply.status_code
    if code in HTTP_SUCCESS_RANGE:
        return None
    hint = _STATUS_HINTS.get(code)
    if code in (HTTP_UNAUTHORIZED, HTTP_FORBIDDEN):
        return _Problem(Outcome.UNAUTHORIZED, f"HTTP {code} ({hint})", retryable=True)
    if code == HTTP_NOT_FOUND:
        return _Problem(Outcome.UNREACHABLE, f"HTTP {code} ({hint})", retryable=True)
    if code == HTTP_TOO_MANY_REQUESTS:
        retry_after = parse_retry_after(reply.headers.get("Retry-After"), now_wall)
        asked = f"; Retry-After {retry_after:.1f} s" if retry_after is not None else ""
        return _Problem(Outcome.UNREACHABLE, f"HTTP {code} ({hint}{asked})", True, retry_after)
    if code >= HTTP_SERVER_ERROR_MIN:
        return _Problem(Outcome.UNREACHABLE, f"HTTP {code} (server error: {reply.describe_body()})", retryable=True)
    location = reply.headers.get("Location")
    detail = f"redirect to {location!r}, not followed" if location else reply.describe_body()
    return _Problem(Outcome.FAILED, f"HTTP {code} ({detail})", retryable=False)


class _VersionCheck:
    """Runs one API version's hello-world, retrying and polling within the shared deadline."""

    def __init__(
        self,
        api_version: str,
        client: SessionPoolClient,
        deadline: Deadline,
        request_timeout: float,
        progress: ProgressCallback,
        backoff_factory: Callable[[], Backoff],
    ) -> None:
        self.api_version = api_version
        self.client = client
        self.deadline = deadline
        self.clock = deadline.clock
        self.request_timeout = request_timeout
        self.progress = progress
        self.backoff_factory = backoff_factory
        self.attempts = 0
        self.http_status: int | None = None
        # When the first request that got a 2xx answer was sent: latency is measured from there,
        # so waits for propagation are not counted, but polls of a running execution are.
        self.got_through_at: float | None = None

    def stopped(self, outcome: Outcome, reason: str) -> SmokeResult:
        """The result of a check that ended without a verdict from the pool, with what it saw so far."""
        return SmokeResult(
            self.api_version, outcome, http_status=self.http_status, attempts=self.attempts, error=reason
        )

    def request(self, send: Callable[[float], HttpReply]) -> HttpReply:
        """Send until a 2xx answer arrives; raise _Stopped for a final failure or at the deadline."""
        backoff = self.backoff_factory()
        while True:
            self.attempts += 1
            started = self.clock.monotonic()
            # Cut to the time left, but never to nothing: the first request is sent even when getting
            # the token used up the deadline (overshooting it by at most MIN_ATTEMPT_SECONDS).
            timeout = min(self.request_timeout, max(self.deadline.remaining(), MIN_ATTEMPT_SECONDS))
            try:
                reply = send(timeout)
            except MalformedResponseError as error:  # an Operation-Location that cannot be requested
                raise _Stopped(Outcome.FAILED, f"the pool answered, but {error}") from None
            except TransportError as error:
                problem = _Problem(Outcome.UNREACHABLE, str(error), retryable=True)
            else:
                self.http_status = reply.status_code
                problem = classify_reply(reply, self.clock.wall())
                if problem is None:
                    if self.got_through_at is None:
                        self.got_through_at = started
                    return reply
            if not problem.retryable:
                raise _Stopped(problem.outcome, problem.reason)
            self.wait(self._delay_for(problem, backoff), f"attempt {self.attempts}: {problem.reason}", problem)

    def _delay_for(self, problem: _Problem, backoff: Backoff) -> float:
        if problem.retry_after is None:
            return backoff.next_delay()
        if problem.retry_after > self.deadline.remaining() - MIN_ATTEMPT_SECONDS:
            raise _Stopped(
                problem.outcome,
                f"{problem.reason}: the server asked to wait {problem.retry_after:.1f} s but only "
                f"{self.deadline.remaining():.1f} s were left before the {self.deadline.seconds:g} s deadline",
            )
        return max(problem.retry_after, MIN_RETRY_DELAY_SECONDS)

    def wait(self, delay: float, what: str, problem: _Problem) -> None:
        """Sleep ``delay`` (cut short so an attempt still fits before the deadline), printing one progress line."""
        usable = self.deadline.remaining() - MIN_ATTEMPT_SECONDS
        if usable <= 0:
            raise _Stopped(problem.outcome, self._deadline_reason(problem))
        delay = min(delay, usable)
        self.progress(
            f"{self.api_version} {what}; next try in {delay:.1f} s "
            f"({self.deadline.remaining():.1f} s left before the deadline)"
        )
        self.clock.sleep(delay)

    def _deadline_reason(self, problem: _Problem) -> str:
        reason = (
            f"{problem.reason}, still after {self.attempts} attempt(s) when the "
            f"{self.deadline.seconds:g} s deadline passed"
        )
        if problem.outcome is Outcome.UNAUTHORIZED:
            reason += (
                f"; check that the signed-in principal has the {SESSION_EXECUTOR_ROLE!r} role on the pool "
                "and that the token is for https://dynamicsessions.io, or allow more time with --timeout"
            )
        return reason

    def latency_ms(self) -> int | None:
        """Milliseconds from the start of the first request that got through until now."""
        if self.got_through_at is None:
            return None
        return round((self.clock.monotonic() - self.got_through_at) * 1000)


def _json_body(reply: HttpReply) -> dict[str, Any]:
    try:
        return reply.json_object()
    except MalformedResponseError as error:
        raise _Stopped(
            Outcome.FAILED, f"the pool answered HTTP {reply.status_code} but {error}; expected the API's JSON"
        ) from None


def _duration_ms(value: object) -> int | None:
    """A duration in milliseconds: a finite number in 0..MAX_EXECUTION_TIME_MS, else None (1e400, NaN, "5", -1)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return round(value) if 0 <= value <= MAX_EXECUTION_TIME_MS else None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _wrong_output_reason(stdout: object) -> str:
    shown = repr(_excerpt(stdout)) if isinstance(stdout, str) else "no stdout"
    return f"hello-world printed {shown}, expected {HELLO_WORLD_STDOUT!r}"


def _error_message(error: object) -> str | None:
    """The message of an execution's ``error``: ``{"code", "message"}`` or ``{"error": {...}}``, on one line."""
    if isinstance(error, dict):
        inner = error.get("error") if isinstance(error.get("error"), dict) else error
        code, message = inner.get("code"), inner.get("message")
        text = ": ".join(describe_value(part) for part in (code, message) if part)
        return one_line(text, OUTPUT_EXCERPT_CHARS) or None
    if not error:
        return None
    return one_line(describe_value(error), OUTPUT_EXCERPT_CHARS) or None


def _finished(
    check: _VersionCheck,
    reply: HttpReply,
    status: str | None,
    stdout: object,
    stderr: str | None,
    result: dict[str, Any],
    reason: str | None,
) -> SmokeResult:
    """The result of an execution that finished: passed unless a reason to fail was found."""
    return SmokeResult(
        api_version=check.api_version,
        outcome=Outcome.FAILED if reason else Outcome.PASSED,
        http_status=reply.status_code,
        status=status,
        stdout=_str_or_none(stdout),
        stderr=stderr,
        attempts=check.attempts,
        latency_ms=check.latency_ms(),
        execution_time_ms=_duration_ms(result.get("executionTimeInMilliseconds")),
        error=reason,
    )


def _check_legacy(check: _VersionCheck, code: str, identifier: str) -> SmokeResult:
    """2024-02-02-preview: a synchronous ``/code/execute`` answered with ``properties.status``."""
    reply = check.request(lambda timeout: check.client.execute_code_legacy(code, identifier, timeout=timeout))
    body = _json_body(reply)
    properties = body.get("properties")
    if not isinstance(properties, dict):
        raise _Stopped(Outcome.FAILED, f"the answer has no 'properties' object: {reply.describe_body()}")
    status = _str_or_none(properties.get("status"))
    stdout, stderr = properties.get("stdout"), _str_or_none(properties.get("stderr"))
    # Recordings name the value either way.
    value = properties.get("executionResult", properties.get("result"))
    reason: str | None = None
    if status != LEGACY_STATUS_SUCCESS:
        details = [
            f"stderr: {_excerpt(stderr)!r}" if stderr else "",
            f"result: {_excerpt(describe_value(value))!r}" if value else "",
        ]
        reason = f"execution status is {status!r}, expected {LEGACY_STATUS_SUCCESS!r}"
        reason += "".join(f"; {detail}" for detail in details if detail)
    elif not stdout_matches(stdout):
        reason = _wrong_output_reason(stdout)
    return _finished(check, reply, status, stdout, stderr, properties, reason)


def _poll_sender(
    check: _VersionCheck, reply: HttpReply, body: dict[str, Any], identifier: str
) -> Callable[[float], HttpReply]:
    """How to ask for a pending execution's state: its Operation-Location, else GET /executions/<id>."""
    client = check.client
    location = reply.headers.get(OPERATION_LOCATION_HEADER)
    required = {"api-version": check.api_version, "identifier": identifier}
    if location:
        url = client.endpoint.resolve_location(location, required)
        if url is not None:
            return lambda timeout: client.get_operation(url, timeout=timeout)
        check.progress(
            f"{check.api_version}: not following Operation-Location {_excerpt(location)!r}: it is not a URL on "
            f"{client.endpoint.origin}, and the token is only sent there; polling the execution by id instead"
        )
    execution_id = next(
        (candidate for candidate in (body.get("id"), reply.headers.get(OPERATION_ID_HEADER)) if _usable_id(candidate)),
        None,
    )
    if execution_id is None:
        raise _Stopped(
            Outcome.FAILED,
            f"the execution is {body.get('status')!r} but the answer gives no usable Operation-Location "
            "and no execution id to poll",
        )
    return lambda timeout: client.get_execution(
        execution_id, identifier, timeout=timeout, api_version=check.api_version
    )


def _usable_id(candidate: object) -> bool:
    """True for an execution id that can go into a URL path: printable text of sensible length."""
    return (
        isinstance(candidate, str)
        and 0 < len(candidate) <= MAX_EXECUTION_ID_CHARS
        and candidate.isprintable()  # False for control characters and lone surrogates alike
    )


def _check_executions(check: _VersionCheck, code: str, identifier: str) -> SmokeResult:
    """2024-10-02-preview: ``/executions`` answered 200/202; Running/NotStarted are polled until done."""
    client = check.client
    reply = check.request(
        lambda timeout: client.start_execution(code, identifier, timeout=timeout, api_version=check.api_version)
    )
    poll: Callable[[float], HttpReply] | None = None
    while True:
        body = _json_body(reply)
        status = body.get("status")
        if not isinstance(status, str):
            raise _Stopped(Outcome.FAILED, f"the answer has no execution 'status': {reply.describe_body()}")
        if status not in PENDING_STATUSES:
            break
        # A newer reply's Operation-Location wins; otherwise keep polling where we polled before.
        if poll is None or reply.headers.get(OPERATION_LOCATION_HEADER):
            poll = _poll_sender(check, reply, body, identifier)
        retry_after = parse_retry_after(reply.headers.get("Retry-After"), check.clock.wall())
        pending = _Problem(Outcome.UNREACHABLE, f"execution still {status}", retryable=True)
        delay = POLL_INTERVAL_SECONDS if retry_after is None else max(retry_after, MIN_RETRY_DELAY_SECONDS)
        check.wait(delay, f"execution {status}", pending)
        reply = check.request(poll)
    result = body.get("result") if isinstance(body.get("result"), dict) else {}
    stdout, stderr = result.get("stdout"), _str_or_none(result.get("stderr"))
    reason: str | None = None
    if status != STATUS_SUCCEEDED:
        details = [_error_message(body.get("error")), f"stderr: {_excerpt(stderr)!r}" if stderr else None]
        reason = f"execution {status}" + "".join(f"; {detail}" for detail in details if detail)
    elif not stdout_matches(stdout):
        reason = _wrong_output_reason(stdout)
    return _finished(check, reply, status, stdout, stderr, result, reason)


_CHECKS: dict[str, Callable[[_VersionCheck, str, str], SmokeResult]] = {
    API_2024_02: _check_legacy,
    API_2024_10: _check_executions,
}


def _scrubbed(result: SmokeResult, redact: Callable[[str], str]) -> SmokeResult:
    """The result with every text field (status, stdout, stderr, error, any added later) passed through the redactor."""
    return result._replace(
        **{name: redact(value) for name, value in result._asdict().items() if isinstance(value, str)}
    )


def run_smoke(
    endpoint: str | PoolEndpoint,
    *,
    token_provider: TokenProvider | None = None,
    api_versions: Sequence[str] = API_VERSIONS,
    container_type: str = DEFAULT_CONTAINER_TYPE,
    identifier: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
    scope: str = DEFAULT_TOKEN_SCOPE,
    progress: ProgressCallback | None = None,
    clock: Clock | None = None,
    backoff_factory: Callable[[], Backoff] = Backoff,
    session: requests.Session | None = None,
) -> SmokeReport:
    """Run hello-world on the pool once per API version, in order, within one overall ``timeout``.

    Raises ConfigurationError (or its subclass CredentialError) before sending anything when the
    endpoint, identifier, container type, API versions or credential are unusable. Everything that
    happens on the wire ends up in the returned report instead. ``token_provider`` defaults to
    DYNAMIC_SESSIONS_TOKEN, else DefaultAzureCredential for ``scope``. ``progress`` receives one line
    per wait (default: discarded); ``clock`` and ``backoff_factory`` let tests control time.
    """
    clock = clock or SystemClock()
    deadline = Deadline(timeout, clock)
    pool = endpoint if isinstance(endpoint, PoolEndpoint) else PoolEndpoint.parse(endpoint)
    if not api_versions or any(version not in API_VERSIONS for version in api_versions):
        raise ConfigurationError(
            f"Unsupported API version(s) {list(api_versions)!r}; supported: {', '.join(API_VERSIONS)}."
        )
    if container_type not in HELLO_WORLD_CODE:
        raise ConfigurationError(f"Unknown container type {container_type!r}; supported: {', '.join(CONTAINER_TYPES)}.")
    validate_timeouts(timeout, request_timeout)
    session_identifier = validate_identifier(identifier) if identifier is not None else new_identifier()
    provider = token_provider or token_provider_from_env(scope)
    provider.get_token()  # fail before any request when there is no credential at all
    report_progress = progress or (lambda line: None)
    code = HELLO_WORLD_CODE[container_type]

    results: list[SmokeResult] = []
    with SessionPoolClient(pool, provider, session=session) as client:
        for api_version in api_versions:
            check = _VersionCheck(
                api_version,
                client,
                deadline,
                request_timeout,
                lambda line: report_progress(provider.redact(line)),
                backoff_factory,
            )
            if results and deadline.remaining() <= MIN_ATTEMPT_SECONDS:
                # An earlier version used up the time; this one says so rather than passing silently.
                # (The first version is always tried: the timeout is at least MIN_ATTEMPT_SECONDS.)
                earlier = ", ".join(done.api_version for done in results)
                result = SmokeResult(
                    api_version,
                    Outcome.UNREACHABLE,
                    error=(
                        f"not tried: only {deadline.remaining():.1f} s of the {timeout:g} s deadline were left "
                        f"after {earlier}, less than the {MIN_ATTEMPT_SECONDS:g} s one request needs"
                    ),
                )
            else:
                try:
                    result = _CHECKS[api_version](check, code, session_identifier)
                except _Stopped as stop:
                    result = check.stopped(stop.outcome, stop.reason)
                except ConfigurationError as error:
                    # The token could not be refreshed mid-run (CredentialError), or the request could not
                    # even be built from the endpoint (an unusable URL or header).
                    result = check.stopped(Outcome.CONFIGURATION, str(error))
            results.append(_scrubbed(result, provider.redact))
    return SmokeReport(endpoint=pool.url, identifier=session_identifier, container_type=container_type, results=results)
