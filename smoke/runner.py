"""The smoke check itself: run hello-world on each API generation, wait out propagation, give a verdict."""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline import PipelineResponse
from azure.core.rest import HttpResponse

from components.azure import CONTAINER_TYPES, SESSION_EXECUTOR_ROLE_NAME
from smoke.auth import TokenProvider, token_provider_from_env
from smoke.client import SessionPoolClient
from smoke.endpoint import PoolEndpoint
from smoke.errors import ConfigurationError
from smoke.outcome import Outcome, worst_outcome
from smoke.protocol import (
    API_2024_02,
    API_2024_10,
    API_VERSIONS,
    DEFAULT_TOKEN_SCOPE,
    FILES_API_VERSION,
    HELLO_WORLD_CODE,
    HELLO_WORLD_STDOUT,
    LEGACY_STATUS_SUCCESS,
    OPERATION_ID_HEADER,
    OPERATION_LOCATION_HEADER,
    PENDING_STATUSES,
    STATUS_SUCCEEDED,
    TOKEN_AUDIENCE,
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
from smoke.waiting import (
    MIN_RETRY_DELAY_SECONDS,
    AttemptPolicy,
    Clock,
    Deadline,
    StopWaiting,
    SystemClock,
    WaitingRetryPolicy,
    Watch,
)

# What a result checked: hello-world (one per API version), or the file round trip (--files).
HELLO_WORLD_CHECK = "hello-world"
FILES_CHECK = "files"
# How often a Running/NotStarted execution is polled when the server sends no Retry-After.
POLL_INTERVAL_SECONDS = 0.5
# How much of a body, an output or a header a message quotes.
EXCERPT_CHARS = 200

HTTP_UNAUTHORIZED = 401
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_REQUEST_TIMEOUT = 408
HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERROR_MIN = 500

# What a "not yet" status most likely means right after a deploy; shown on progress lines and verdicts.
_STATUS_HINTS: dict[int, str] = {
    HTTP_UNAUTHORIZED: "token not accepted yet: role assignment not propagated, or wrong token audience?",
    HTTP_FORBIDDEN: "role assignment not propagated yet?",
    HTTP_NOT_FOUND: "pool not ready yet, or wrong endpoint?",
    HTTP_TOO_MANY_REQUESTS: "rate limited",
}
# A 401/403 that never ends is as often a wrong token or identity as a slow role assignment.
WRONG_IDENTITY_NOTE = "A wrong token or identity is answered the same way"
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_ERRNO_REASON = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")
# requests' errors that mean the request could not even be built (an unusable URL, header or proxy
# setting): retrying cannot help, so they are configuration errors (exit 2).
_UNSENDABLE_ERRORS = ("InvalidURL", "InvalidHeader", "InvalidProxyURL", "MissingSchema", "InvalidSchema")

ProgressCallback = Callable[[str], None]


def stdout_matches(stdout: object) -> bool:
    """True when ``stdout`` is exactly hello-world and a newline.

    A Windows line ending ("hello-world\\r\\n") also passes: it is the same line, and kernels or
    proxies may translate line endings. Anything else fails: missing newline, extra output, spaces.
    """
    return isinstance(stdout, str) and stdout.replace("\r\n", "\n") == HELLO_WORLD_STDOUT


def one_line(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` with every run of whitespace (newlines included) as one space, cut to ``limit`` characters."""
    collapsed = " ".join(text.split())
    return collapsed if len(collapsed) <= limit else collapsed[: limit - 1] + "…"


def _excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shown(value: object) -> str:
    """A JSON value for a message: strings as they are, anything else as its JSON text."""
    return value if isinstance(value, str) else json.dumps(value)


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
    check: str = HELLO_WORLD_CHECK

    @property
    def label(self) -> str:
        """How the verdict line names this result: the API version, or the file round trip on it."""
        return self.api_version if self.check == HELLO_WORLD_CHECK else f"{self.check} on {self.api_version}"

    @property
    def ok(self) -> bool:
        """True when hello-world ran and printed exactly what it should."""
        return self.outcome is Outcome.PASSED

    def to_json(self) -> dict[str, Any]:
        """The result as the ``--json`` output shows it."""
        data: dict[str, Any] = {
            "check": self.check,
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
            timings = ", ".join(f"{result.label}: {result.latency_ms} ms" for result in self.results)
            return f"PASS hello-world ran on {self.endpoint} ({timings})"
        parts = [
            f"{result.label}: passed in {result.latency_ms} ms" if result.ok else f"{result.label}: {result.error}"
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


class _Stopped(Exception):
    """Ends one API version's check early with a final outcome and reason."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


def _outcome_of_status(status: int) -> Outcome:
    """What an unusable HTTP status means once waiting is over (see the exit-code table)."""
    if status in (HTTP_UNAUTHORIZED, HTTP_FORBIDDEN):
        return Outcome.UNAUTHORIZED
    if status in (HTTP_NOT_FOUND, HTTP_REQUEST_TIMEOUT, HTTP_TOO_MANY_REQUESTS) or status >= HTTP_SERVER_ERROR_MIN:
        return Outcome.UNREACHABLE
    return Outcome.FAILED


def _looks_like_html(response: HttpResponse, text: str) -> bool:
    return "html" in response.headers.get("Content-Type", "").lower() or text.lstrip()[:1] == "<"


def describe_body(response: HttpResponse, redact: Callable[[str], str]) -> str:
    """One line about a body: the service's error code and message, an HTML page's title, or an excerpt.

    Every token the check sent is scrubbed before anything is cut short, so not even part of one shows.
    """
    text = redact(response.text())
    if not text.strip():
        error_code = response.headers.get("x-ms-error-code")
        return f"empty body (x-ms-error-code: {error_code})" if error_code else "empty body"
    if _looks_like_html(response, text):
        title = _HTML_TITLE.search(text)
        return f"HTML page {one_line(title.group(1) if title and title.group(1).strip() else text)!r}"
    error = HttpResponseError(response=response).error  # the service's {"error": {"code", "message"}}
    if error is not None and (error.code or error.message):
        return one_line(redact(f"{error.code}: {error.message}".strip().rstrip(":")))
    return one_line(text)


def describe_answer(response: HttpResponse, redact: Callable[[str], str], retry_after: float | None = None) -> str:
    """Why an answer with a status outside 2xx is not (yet) usable, for a progress line or a verdict."""
    status = response.status_code
    hint = _STATUS_HINTS.get(status)
    if status in (HTTP_UNAUTHORIZED, HTTP_FORBIDDEN):
        return f'HTTP {status} ({hint}): the pool says "{describe_body(response, redact)}". {WRONG_IDENTITY_NOTE}'
    if status == HTTP_NOT_FOUND:
        return f'HTTP {status} ({hint}): the pool says "{describe_body(response, redact)}"'
    if status == HTTP_TOO_MANY_REQUESTS:
        asked = f"; Retry-After {retry_after:.1f} s" if retry_after is not None else ""
        return f"HTTP {status} ({hint}{asked})"
    if status >= HTTP_SERVER_ERROR_MIN:
        return f"HTTP {status} (server error: {describe_body(response, redact)})"
    location = response.headers.get("Location")
    detail = (
        f"redirect to {_excerpt(redact(location))!r}, not followed" if location else describe_body(response, redact)
    )
    return f"HTTP {status} ({detail})"


def describe_error(error: BaseException, watch: Watch, origin: str) -> str:
    """Why a request got no answer; ConfigurationError when it could not even be built (retrying cannot help)."""
    inner = getattr(error, "inner_exception", None) or error
    if type(inner).__name__ in _UNSENDABLE_ERRORS:
        raise ConfigurationError(
            f"The request to {origin} could not be sent ({type(inner).__name__}: {one_line(str(inner))}); "
            "check the endpoint URL and any proxy settings (HTTPS_PROXY, HTTP_PROXY, NO_PROXY)."
        )
    if isinstance(error, ServiceResponseTimeoutError | ServiceRequestTimeoutError):
        phase = "connecting" if isinstance(error, ServiceRequestTimeoutError) else "reading the answer"
        return f"no answer within {watch.read_timeout:.1f} s ({phase} timed out)"
    found = _ERRNO_REASON.search(str(error))
    reason = found.group(1).strip() if found else type(inner).__name__
    if isinstance(error, ServiceRequestError):
        return f"could not connect to {origin} ({reason})"
    return f"request failed ({reason})"


class _VersionCheck:
    """Runs one API version's hello-world through the client, within the shared deadline."""

    def __init__(
        self,
        kind: str,
        api_version: str,
        client: SessionPoolClient,
        watch: Watch,
        retry: WaitingRetryPolicy,
        redact: Callable[[str], str],
    ) -> None:
        self.kind = kind
        self.api_version = api_version
        self.client = client
        self.watch = watch
        self.retry = retry
        self.redact = redact
        self.deadline = watch.deadline

    def stopped(self, outcome: Outcome, reason: str) -> SmokeResult:
        """The result of a check that ended without a verdict from the pool, with what it saw so far."""
        return SmokeResult(
            self.api_version,
            outcome,
            http_status=self.watch.http_status,
            attempts=self.watch.attempts,
            error=reason,
            check=self.kind,
        )

    def request(self, send: Callable[..., HttpResponse]) -> HttpResponse:
        """Send (the retry policy waits out "not yet" answers) until a 2xx answer; _Stopped otherwise."""
        try:
            response = send(timeout=max(self.deadline.remaining(), MIN_ATTEMPT_SECONDS))
        except StopWaiting as stop:
            status = stop.response.http_response.status_code if stop.response is not None else None
            outcome = Outcome.UNREACHABLE if status is None else _outcome_of_status(status)
            reason = stop.reason if stop.asked_too_long else self._deadline_reason(outcome, stop.reason)
            raise _Stopped(outcome, reason) from None
        except AzureError as error:
            # Out of time inside the pipeline (its overall timeout), or an error it does not retry.
            outcome = _outcome_of_status(self.watch.http_status or HTTP_SERVER_ERROR_MIN)
            reason = describe_error(error, self.watch, self.client.endpoint.origin)
            raise _Stopped(outcome, self._deadline_reason(outcome, reason)) from None
        if not 200 <= response.status_code < 300:
            raise _Stopped(_outcome_of_status(response.status_code), describe_answer(response, self.redact))
        return response

    def describe(self, response: PipelineResponse | None, error: BaseException | None) -> str:
        """The reason shown on a progress line (the retry policy calls this before each wait)."""
        if response is None:
            return describe_error(error, self.watch, self.client.endpoint.origin) if error else "no answer"
        return describe_answer(response.http_response, self.redact, self.retry.retry_after(response))

    def wait_for_execution(self, delay: float, status: str) -> None:
        """Sleep ``delay`` before polling again (cut so an attempt still fits), printing one progress line."""
        usable = self.deadline.remaining() - MIN_ATTEMPT_SECONDS
        if usable <= 0:
            raise _Stopped(Outcome.UNREACHABLE, self._deadline_reason(Outcome.UNREACHABLE, f"execution still {status}"))
        delay = min(delay, usable)
        self.retry.progress(
            f"{self.api_version} execution {status}; next try in {delay:.1f} s "
            f"({self.deadline.remaining():.1f} s left before the deadline)"
        )
        self.deadline.clock.sleep(delay)

    def _deadline_reason(self, outcome: Outcome, reason: str) -> str:
        reason = (
            f"{reason}, still after {self.watch.attempts} attempt(s) when the "
            f"{self.deadline.seconds:g} s deadline passed"
        )
        if outcome is Outcome.UNAUTHORIZED:
            reason += (
                f"; check that the signed-in principal has the {SESSION_EXECUTOR_ROLE_NAME!r} role on the pool, "
                f"that the token is for {TOKEN_AUDIENCE} (and, for a local pool, is the one it printed), "
                "or allow more time with --timeout"
            )
        return reason

    def latency_ms(self) -> int | None:
        """Milliseconds from the start of the first request that got through until now."""
        if self.watch.got_through_at is None:
            return None
        return round((self.deadline.clock.monotonic() - self.watch.got_through_at) * 1000)

    def json_body(self, response: HttpResponse) -> dict[str, Any]:
        """The body as a JSON object, every token scrubbed from its strings; _Stopped when it is anything else."""
        text = response.text()
        problem = None
        if _looks_like_html(response, text):
            problem = "the body is an HTML page, not JSON"
        else:
            try:
                # Re-encoded without escapes and scrubbed: a token the server echoed \\u-escaped shows up here.
                body = json.loads(self.redact(json.dumps(json.loads(text), ensure_ascii=False)))
            except ValueError:
                problem = "the body is not valid JSON"
            else:
                if isinstance(body, dict):
                    return body
                problem = "the body is JSON but not an object"
        raise _Stopped(
            Outcome.FAILED,
            f"the pool answered HTTP {response.status_code} but {problem}: {describe_body(response, self.redact)}; "
            "expected the API's JSON",
        )


def _duration_ms(value: object) -> int | None:
    """A duration in milliseconds when ``value`` is a finite number, else None."""
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))):
        return None
    return round(value)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _wrong_output_reason(stdout: object) -> str:
    shown = repr(_excerpt(stdout)) if isinstance(stdout, str) else "no stdout"
    return f"hello-world printed {shown}, expected {HELLO_WORLD_STDOUT!r}"


def _error_message(error: object) -> str | None:
    """The message of an execution's ``error``: ``{"code", "message"}`` or ``{"error": {...}}``, on one line."""
    if isinstance(error, dict):
        inner = error.get("error") if isinstance(error.get("error"), dict) else error
        text = ": ".join(_shown(part) for part in (inner.get("code"), inner.get("message")) if part)
        return one_line(text) or None
    return one_line(_shown(error)) if error else None


def _finished(
    check: _VersionCheck,
    response: HttpResponse,
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
        http_status=response.status_code,
        status=status,
        stdout=_str_or_none(stdout),
        stderr=stderr,
        attempts=check.watch.attempts,
        latency_ms=check.latency_ms(),
        execution_time_ms=_duration_ms(result.get("executionTimeInMilliseconds")),
        error=reason,
    )


def _check_legacy(check: _VersionCheck, code: str, identifier: str) -> SmokeResult:
    """2024-02-02-preview: a synchronous ``/code/execute`` answered with ``properties.status``."""
    response = check.request(lambda **options: check.client.execute_code_legacy(code, identifier, **options))
    properties = check.json_body(response).get("properties")
    if not isinstance(properties, dict):
        raise _Stopped(
            Outcome.FAILED, f"the answer has no 'properties' object: {describe_body(response, check.redact)}"
        )
    status = _str_or_none(properties.get("status"))
    stdout, stderr = properties.get("stdout"), _str_or_none(properties.get("stderr"))
    # Recordings name the value either way.
    value = properties.get("executionResult", properties.get("result"))
    reason: str | None = None
    if status != LEGACY_STATUS_SUCCESS:
        details = [
            f"stderr: {_excerpt(stderr)!r}" if stderr else "",
            f"result: {_excerpt(_shown(value))!r}" if value else "",
        ]
        reason = f"execution status is {status!r}, expected {LEGACY_STATUS_SUCCESS!r}"
        reason += "".join(f"; {detail}" for detail in details if detail)
    elif not stdout_matches(stdout):
        reason = _wrong_output_reason(stdout)
    return _finished(check, response, status, stdout, stderr, properties, reason)


def _poll_sender(
    check: _VersionCheck, response: HttpResponse, body: dict[str, Any], identifier: str
) -> Callable[..., HttpResponse]:
    """How to ask for a pending execution's state: its Operation-Location, else GET /executions/<id>."""
    client = check.client
    location = response.headers.get(OPERATION_LOCATION_HEADER)
    required = {"api-version": check.api_version, "identifier": identifier}
    if location:
        url = client.endpoint.resolve_location(location, required)
        if url is not None:
            return lambda **options: client.send("GET", url, **options)
        check.retry.progress(
            f"{check.api_version}: not following Operation-Location {_excerpt(check.redact(location))!r}: it is not "
            f"a URL on {client.endpoint.origin}, and the token is only sent there; polling the execution by id instead"
        )
    execution_id = next(
        (candidate for candidate in (body.get("id"), response.headers.get(OPERATION_ID_HEADER)) if candidate), None
    )
    if not isinstance(execution_id, str):
        raise _Stopped(
            Outcome.FAILED,
            f"the execution is {body.get('status')!r} but the answer gives no usable Operation-Location "
            "and no execution id to poll",
        )
    return lambda **options: client.get_execution(execution_id, identifier, api_version=check.api_version, **options)


def _check_executions(check: _VersionCheck, code: str, identifier: str) -> SmokeResult:
    """2024-10-02-preview: ``/executions`` answered 200/202; Running/NotStarted are polled until done."""
    client = check.client
    response = check.request(
        lambda **options: client.start_execution(code, identifier, api_version=check.api_version, **options)
    )
    poll: Callable[..., HttpResponse] | None = None
    while True:
        body = check.json_body(response)
        status = body.get("status")
        if not isinstance(status, str):
            raise _Stopped(
                Outcome.FAILED, f"the answer has no execution 'status': {describe_body(response, check.redact)}"
            )
        if status not in PENDING_STATUSES:
            break
        # A newer answer's Operation-Location wins; otherwise keep polling where we polled before.
        if poll is None or response.headers.get(OPERATION_LOCATION_HEADER):
            poll = _poll_sender(check, response, body, identifier)
        retry_after = check.retry.parse_header(response.headers.get("Retry-After"))
        check.wait_for_execution(
            POLL_INTERVAL_SECONDS if retry_after is None else max(retry_after, MIN_RETRY_DELAY_SECONDS), status
        )
        response = check.request(poll)
    result = body.get("result") if isinstance(body.get("result"), dict) else {}
    stdout, stderr = result.get("stdout"), _str_or_none(result.get("stderr"))
    reason: str | None = None
    if status != STATUS_SUCCEEDED:
        details = [_error_message(body.get("error")), f"stderr: {_excerpt(stderr)!r}" if stderr else None]
        reason = f"execution {status}" + "".join(f"; {detail}" for detail in details if detail)
    elif not stdout_matches(stdout):
        reason = _wrong_output_reason(stdout)
    return _finished(check, response, status, stdout, stderr, result, reason)


def _check_files(check: _VersionCheck, code: str, identifier: str) -> SmokeResult:
    """Upload a small file, find it in the list, download and compare it, delete it (``--files``)."""
    client = check.client
    unique = uuid.uuid4().hex[:12]
    name, content = f"smoke-{unique}.txt", f"smoke check file round trip {unique}\n".encode()
    uploaded = check.json_body(
        check.request(lambda **options: client.upload_file(name, content, identifier, **options))
    )
    reason: str | None = None
    if uploaded.get("sizeInBytes", len(content)) != len(content):
        reason = f"the upload answered sizeInBytes {uploaded.get('sizeInBytes')!r}, expected {len(content)}"
    if reason is None:
        listed = check.json_body(check.request(lambda **options: client.list_files(identifier, **options)))
        entries = listed.get("value") if isinstance(listed.get("value"), list) else []
        names = [entry.get("name") for entry in entries if isinstance(entry, dict)]
        if name not in names:
            reason = f"the uploaded file {name!r} is not in the list of files: {_excerpt(_shown(names))}"
    if reason is None:
        downloaded = check.request(lambda **options: client.get_file_content(name, identifier, **options)).read()
        if downloaded != content:
            reason = f"the downloaded file holds {_excerpt(repr(downloaded))}, expected {content!r}"
    # Deleted whatever happened above, so no file of the check is left in the session.
    response = check.request(lambda **options: client.delete_file(name, identifier, **options))
    return SmokeResult(
        api_version=check.api_version,
        outcome=Outcome.FAILED if reason else Outcome.PASSED,
        http_status=response.status_code,
        attempts=check.watch.attempts,
        latency_ms=check.latency_ms(),
        error=reason,
        check=FILES_CHECK,
    )


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
    files: bool = False,
) -> SmokeReport:
    """Run hello-world on the pool once per API version, in order, within one overall ``timeout``.

    Raises ConfigurationError (or its subclass CredentialError) before sending anything when the
    endpoint, identifier, container type, API versions or credential are unusable. Everything that
    happens on the wire ends up in the returned report instead. ``token_provider`` defaults to
    DYNAMIC_SESSIONS_TOKEN, else DefaultAzureCredential for ``scope``. ``progress`` receives one line
    per wait (default: discarded); ``clock`` lets tests control time. ``files`` adds the file round
    trip (upload, list, download, compare, delete) in the same session, after hello-world.
    """
    deadline = Deadline(timeout, clock or SystemClock())
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
    provider.get_token(scope)  # fail before any request when there is no credential at all
    report_progress = progress or (lambda line: None)
    code = HELLO_WORLD_CODE[container_type]

    checks: list[_VersionCheck] = []
    retry = WaitingRetryPolicy(
        watch=lambda: checks[-1].watch,
        describe=lambda response, error: checks[-1].describe(response, error),
        progress=lambda line: report_progress(provider.redact(line)),
    )
    attempts = AttemptPolicy(lambda: checks[-1].watch)
    results: list[SmokeResult] = []
    steps = [(HELLO_WORLD_CHECK, version, _CHECKS[version]) for version in api_versions]
    if files:
        steps.append((FILES_CHECK, FILES_API_VERSION, _check_files))
    with SessionPoolClient(pool, provider, scope=scope, retry_policy=retry, per_attempt_policies=[attempts]) as client:
        for kind, api_version, run in steps:
            label = api_version if kind == HELLO_WORLD_CHECK else f"{api_version} {kind}"
            watch = Watch(label, deadline, request_timeout)
            check = _VersionCheck(kind, api_version, client, watch, retry, provider.redact)
            checks.append(check)
            if results and deadline.remaining() <= MIN_ATTEMPT_SECONDS:
                # An earlier check used up the time; this one says so rather than passing silently.
                # (The first check is always tried: the timeout is at least MIN_ATTEMPT_SECONDS.)
                earlier = ", ".join(done.label for done in results)
                result = check.stopped(
                    Outcome.UNREACHABLE,
                    f"not tried: only {deadline.remaining():.1f} s of the {timeout:g} s deadline were left "
                    f"after {earlier}, less than the {MIN_ATTEMPT_SECONDS:g} s one request needs",
                )
            else:
                try:
                    result = run(check, code, session_identifier)
                except _Stopped as stop:
                    result = check.stopped(stop.outcome, stop.reason)
                except ConfigurationError as error:
                    # The token could not be refreshed mid-run (CredentialError), or the request could not
                    # even be built (an unusable URL, header or proxy setting).
                    result = check.stopped(Outcome.CONFIGURATION, str(error))
            results.append(_scrubbed(result, provider.redact))
    return SmokeReport(endpoint=pool.url, identifier=session_identifier, container_type=container_type, results=results)
