"""The smoke check itself: run hello-world on each API generation, wait out propagation, give a verdict."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from azure.core.exceptions import AzureError
from azure.core.rest import HttpResponse

from components.azure import CONTAINER_TYPES, SESSION_EXECUTOR_ROLE_NAME
from smoke import protocol, settings, waiting
from smoke.auth import TokenProvider, token_provider_from_env
from smoke.client import SessionPoolClient
from smoke.endpoint import PoolEndpoint
from smoke.outcome import Outcome, worst_outcome
from smoke.settings import ConfigurationError
from smoke.waiting import Clock, Deadline, WaitingRetryPolicy, Watch, describe_answer, describe_body, excerpt

# What a result checked: hello-world (one per API version), or the file round trip (--files).
HELLO_WORLD_CHECK = "hello-world"
FILES_CHECK = "files"
# How often a Running/NotStarted execution is polled when the server sends no Retry-After.
POLL_INTERVAL_SECONDS = 0.5


def stdout_matches(stdout: object) -> bool:
    """True when ``stdout`` is exactly hello-world and a newline (a Windows line ending is the same line)."""
    return isinstance(stdout, str) and stdout.replace("\r\n", "\n") == protocol.HELLO_WORLD_STDOUT


def _text(value: object) -> str:
    """A JSON value for a message: strings as they are, anything else as its JSON text."""
    return value if isinstance(value, str) else json.dumps(value)


class SmokeResult(NamedTuple):
    """The verdict of one check: hello-world on one API version, or the file round trip."""

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
        """True when the check passed."""
        return self.outcome is Outcome.PASSED

    def to_json(self) -> dict[str, Any]:
        """The result as the ``--json`` output shows it."""
        data = {
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
        return data if self.error is None else {**data, "error": self.error}


class SmokeReport(NamedTuple):
    """The verdict of a whole smoke run: one SmokeResult per check; the worst one decides."""

    endpoint: str
    identifier: str
    container_type: str
    results: list[SmokeResult]

    @property
    def outcome(self) -> Outcome:
        """The worst outcome over all checks."""
        return worst_outcome(result.outcome for result in self.results)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
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
    """Ends one check early with a final outcome and reason."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome


def _outcome_of_status(status: int) -> Outcome:
    """What an unusable HTTP status means once waiting is over (see the exit-code table)."""
    if status in (401, 403):
        return Outcome.UNAUTHORIZED
    return Outcome.UNREACHABLE if status in waiting.WAITED_OUT_STATUSES else Outcome.FAILED


class _Run:
    """One smoke run: the client, the deadline and the per-attempt watch shared by its checks in turn."""

    def __init__(self, client: SessionPoolClient, watch: Watch, retry: WaitingRetryPolicy, identifier: str) -> None:
        self.client, self.watch, self.retry, self.identifier = client, watch, retry, identifier
        self.deadline, self.redact = watch.deadline, retry.redact
        self.api_version = ""

    def request(self, send: Callable[[], HttpResponse]) -> HttpResponse:
        """Send (the retry policy waits out "not yet" answers) until a 2xx answer; _Stopped otherwise."""
        try:
            response = send()
        except AzureError as error:  # no answer by the deadline; ConfigurationError if unsendable
            reason = waiting.describe_error(error, self.watch)
            outcome = _outcome_of_status(self.watch.http_status or 500)
            raise _Stopped(outcome, self._by_the_deadline(outcome, reason)) from None
        status = response.status_code
        if 200 <= status < 300:
            return response
        outcome, reason = _outcome_of_status(status), describe_answer(response, self.redact)
        if self.watch.stopped_early:
            raise _Stopped(outcome, f"{reason}: {self.watch.stopped_early}")
        raise _Stopped(
            outcome, self._by_the_deadline(outcome, reason) if status in waiting.WAITED_OUT_STATUSES else reason
        )

    def _by_the_deadline(self, outcome: Outcome, reason: str) -> str:
        reason += f", still after {self.watch.attempts} attempt(s) when the {self.deadline.seconds:g} s deadline passed"
        if outcome is Outcome.UNAUTHORIZED:
            reason += (
                f"; check that the signed-in principal has the {SESSION_EXECUTOR_ROLE_NAME!r} role on the pool, "
                f"that the token is for {protocol.TOKEN_AUDIENCE} (and, for a local pool, is the one it printed), "
                "or allow more time with --timeout"
            )
        return reason

    def json_body(self, response: HttpResponse) -> dict[str, Any]:
        """The body as a JSON object, every token scrubbed from its strings; _Stopped when it is anything else."""
        text = response.text()
        problem = "the body is an HTML page, not JSON"
        if not waiting.looks_like_html(response, text):
            try:  # re-encoded unescaped, then scrubbed: a token the server echoed \u-escaped shows up here
                body = json.loads(self.redact(json.dumps(json.loads(text), ensure_ascii=False)))
                if isinstance(body, dict):
                    return body
                problem = "the body is JSON but not an object"
            except ValueError:
                problem = "the body is not valid JSON"
        raise _Stopped(
            Outcome.FAILED,
            f"the pool answered HTTP {response.status_code} but {problem}: {describe_body(response, self.redact)}; "
            "expected the API's JSON",
        )

    def result(self, response: HttpResponse, reason: str | None, **fields: Any) -> SmokeResult:
        """The result of a check the pool answered: passed unless there is a reason to fail."""
        started = self.watch.got_through_at
        return SmokeResult(
            api_version=self.api_version,
            outcome=Outcome.FAILED if reason else Outcome.PASSED,
            http_status=response.status_code,
            attempts=self.watch.attempts,
            latency_ms=None if started is None else round((self.deadline.clock.monotonic() - started) * 1000),
            error=reason,
            **fields,
        )

    def finished(
        self, response: HttpResponse, status: object, values: dict[str, Any], failure: list[str | None] | None
    ) -> SmokeResult:
        """The result of an execution that finished: ``failure`` lists why it did not succeed (None: it did)."""
        stdout, stderr, elapsed = values.get("stdout"), values.get("stderr"), values.get("executionTimeInMilliseconds")
        reason = "; ".join(part for part in failure if part) if failure else None
        if failure is None and not stdout_matches(stdout):
            shown = repr(excerpt(stdout)) if isinstance(stdout, str) else "no stdout"
            reason = f"hello-world printed {shown}, expected {protocol.HELLO_WORLD_STDOUT!r}"
        number = isinstance(elapsed, int | float) and not isinstance(elapsed, bool) and math.isfinite(elapsed)
        return self.result(
            response,
            reason,
            status=status if isinstance(status, str) else None,
            stdout=stdout if isinstance(stdout, str) else None,
            stderr=stderr if isinstance(stderr, str) else None,
            execution_time_ms=round(elapsed) if number else None,
        )

    def legacy(self, code: str) -> SmokeResult:
        """2024-02-02-preview: a synchronous ``/code/execute`` answered with ``properties.status``."""
        response = self.request(lambda: self.client.execute_code_legacy(code, self.identifier))
        properties = self.json_body(response).get("properties")
        if not isinstance(properties, dict):
            raise _Stopped(
                Outcome.FAILED, f"the answer has no 'properties' object: {describe_body(response, self.redact)}"
            )
        status = properties.get("status")
        value = properties.get("executionResult", properties.get("result"))  # recordings name it either way
        failure = [
            f"execution status is {status!r}, expected {protocol.LEGACY_STATUS_SUCCESS!r}",
            _stderr(properties),
            f"result: {excerpt(_text(value))!r}" if value else None,
        ]
        return self.finished(
            response, status, properties, None if status == protocol.LEGACY_STATUS_SUCCESS else failure
        )

    def executions(self, code: str) -> SmokeResult:
        """2024-10-02-preview: ``/executions`` answered 200/202; Running/NotStarted are polled until done."""
        version = self.api_version
        response = self.request(lambda: self.client.start_execution(code, self.identifier, api_version=version))
        poll: Callable[[], HttpResponse] | None = None
        while True:
            body = self.json_body(response)
            status = body.get("status")
            if not isinstance(status, str):
                raise _Stopped(
                    Outcome.FAILED, f"the answer has no execution 'status': {describe_body(response, self.redact)}"
                )
            if status not in protocol.PENDING_STATUSES:
                break
            # A newer answer's Operation-Location wins; otherwise keep polling where we polled before.
            if poll is None or response.headers.get(protocol.OPERATION_LOCATION_HEADER):
                poll = self.poller(response, body)
            self.wait(self.retry.wanted_delay(self.retry.retry_after(response), POLL_INTERVAL_SECONDS), status)
            response = self.request(poll)
        values = body.get("result") if isinstance(body.get("result"), dict) else {}
        failure = [f"execution {status}", _execution_error(body.get("error")), _stderr(values)]
        return self.finished(response, status, values, None if status in protocol.SUCCEEDED_STATUSES else failure)

    def poller(self, response: HttpResponse, body: dict[str, Any]) -> Callable[[], HttpResponse]:
        """How to ask for a pending execution's state: its Operation-Location, else GET /executions/<id>."""
        location, version = response.headers.get(protocol.OPERATION_LOCATION_HEADER), self.api_version
        if location:
            url = self.client.endpoint.resolve_location(
                location, {"api-version": version, "identifier": self.identifier}
            )
            if url is not None:
                return lambda: self.client.send("GET", url)
            self.retry.progress(
                f"{version}: not following Operation-Location {excerpt(self.redact(location))!r}: it is not a "
                f"URL on {self.client.endpoint.origin}, and the token is only sent there; polling the execution by id "
                "instead"
            )
        execution_id = body.get("id") or response.headers.get(protocol.OPERATION_ID_HEADER)
        if not isinstance(execution_id, str):
            raise _Stopped(
                Outcome.FAILED,
                f"the execution is {body.get('status')!r} but the answer gives no usable Operation-Location "
                "and no execution id to poll",
            )
        return lambda: self.client.get_execution(execution_id, self.identifier, api_version=version)

    def wait(self, delay: float, status: str) -> None:
        """Sleep ``delay`` before polling again (cut so an attempt still fits), after one progress line."""
        if self.deadline.remaining() <= settings.MIN_ATTEMPT_SECONDS:
            raise _Stopped(Outcome.UNREACHABLE, self._by_the_deadline(Outcome.UNREACHABLE, f"execution still {status}"))
        self.retry.pause(delay, f"{self.api_version} execution {status}")

    def files(self, code: str) -> SmokeResult:
        """Upload a small file, find it in the list, download and compare it, delete it (``--files``)."""
        client, identifier, unique = self.client, self.identifier, uuid.uuid4().hex[:12]
        name, content = f"smoke-{unique}.txt", f"smoke check file round trip {unique}\n".encode()
        uploaded = self.json_body(self.request(lambda: client.upload_file(name, content, identifier)))
        reason = None
        if uploaded.get("sizeInBytes", len(content)) != len(content):
            reason = f"the upload answered sizeInBytes {uploaded.get('sizeInBytes')!r}, expected {len(content)}"
        if reason is None:
            entries = self.json_body(self.request(lambda: client.list_files(identifier))).get("value")
            names = (
                [entry.get("name") for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []
            )
            if name not in names:
                reason = f"the uploaded file {name!r} is not in the list of files: {excerpt(_text(names))}"
        if reason is None:
            downloaded = self.request(lambda: client.get_file_content(name, identifier)).read()
            if downloaded != content:
                reason = f"the downloaded file holds {excerpt(repr(downloaded))}, expected {content!r}"
        # Deleted whatever happened above, so no file of the check is left in the session.
        return self.result(self.request(lambda: client.delete_file(name, identifier)), reason, check=FILES_CHECK)


def _stderr(values: dict[str, Any]) -> str | None:
    stderr = values.get("stderr")
    return f"stderr: {excerpt(stderr)!r}" if isinstance(stderr, str) and stderr else None


def _execution_error(error: object) -> str | None:
    """The message of an execution's ``error``: ``{"code", "message"}`` or ``{"error": {...}}``, on one line."""
    if isinstance(error, dict):
        inner = error.get("error") if isinstance(error.get("error"), dict) else error
        parts = (inner.get("code"), inner.get("message"))
        return waiting.one_line(": ".join(_text(part) for part in parts if part)) or None
    return waiting.one_line(_text(error)) if error else None


def _scrubbed(result: SmokeResult, redact: Callable[[str], str]) -> SmokeResult:
    """The result with every text field passed through ``redact`` (a last pass: server text is scrubbed on arrival)."""
    return result._replace(
        **{name: redact(value) for name, value in result._asdict().items() if isinstance(value, str)}
    )


def run_smoke(
    endpoint: str | PoolEndpoint,
    *,
    token_provider: TokenProvider | None = None,
    api_versions: Sequence[str] = protocol.API_VERSIONS,
    container_type: str = settings.DEFAULT_CONTAINER_TYPE,
    identifier: str | None = None,
    timeout: float = settings.DEFAULT_TIMEOUT_SECONDS,
    request_timeout: float = settings.DEFAULT_REQUEST_TIMEOUT_SECONDS,
    scope: str = protocol.DEFAULT_TOKEN_SCOPE,
    progress: Callable[[str], None] | None = None,
    clock: Clock | None = None,
    files: bool = False,
    ca_file: str | None = None,
) -> SmokeReport:
    """Run hello-world on the pool once per API version, in order, within one overall ``timeout``.

    Raises ConfigurationError (or its subclass CredentialError) before sending anything when the
    endpoint, identifier, container type, API versions or credential are unusable; everything that
    happens on the wire ends up in the report. ``token_provider`` defaults to DYNAMIC_SESSIONS_TOKEN,
    else DefaultAzureCredential for ``scope``. ``progress`` receives one line per wait; ``clock`` lets
    tests control time. ``files`` adds the file round trip in the same session, after hello-world.
    ``ca_file`` names the certificates to trust instead of the default ones (see settings.ca_file_from_env).
    """
    deadline = Deadline(timeout, clock or time)
    pool = endpoint if isinstance(endpoint, PoolEndpoint) else PoolEndpoint.parse(endpoint)
    if not api_versions or any(version not in protocol.API_VERSIONS for version in api_versions):
        raise ConfigurationError(
            f"Unsupported API version(s) {list(api_versions)!r}; supported: {', '.join(protocol.API_VERSIONS)}."
        )
    if container_type not in protocol.HELLO_WORLD_CODE:
        raise ConfigurationError(f"Unknown container type {container_type!r}; supported: {', '.join(CONTAINER_TYPES)}.")
    settings.validate_timeouts(timeout, request_timeout)
    session = settings.validate_identifier(identifier) if identifier is not None else settings.new_identifier()
    provider = token_provider or token_provider_from_env(scope)
    provider.get_token(scope)  # fail before any request when there is no credential at all
    report_progress = progress or (lambda line: None)
    watch = Watch(deadline, request_timeout, pool.origin)
    retry = WaitingRetryPolicy(watch, provider.redact, lambda line: report_progress(provider.redact_line(line)))
    steps = [
        (HELLO_WORLD_CHECK, version, _Run.legacy if version == protocol.API_2024_02 else _Run.executions)
        for version in api_versions
    ]
    if files:
        steps.append((FILES_CHECK, protocol.FILES_API_VERSION, _Run.files))
    results: list[SmokeResult] = []
    client = SessionPoolClient(
        pool, provider, scope=scope, retry_policy=retry, per_attempt_policies=[watch], ca_file=ca_file
    )
    with client:
        run = _Run(client, watch, retry, session)
        for kind, api_version, check in steps:
            watch.start(api_version if kind == HELLO_WORLD_CHECK else f"{api_version} {kind}")
            run.api_version = api_version
            try:
                if results and deadline.remaining() <= settings.MIN_ATTEMPT_SECONDS:
                    # An earlier check used up the time (the first is always tried): say so, never pass silently.
                    raise _Stopped(
                        Outcome.UNREACHABLE,
                        f"not tried: only {deadline.remaining():.1f} s of the {timeout:g} s deadline were left after "
                        f"{', '.join(done.label for done in results)}, less than the "
                        f"{settings.MIN_ATTEMPT_SECONDS:g} s one request needs",
                    )
                result = check(run, protocol.HELLO_WORLD_CODE[container_type])
            except (_Stopped, ConfigurationError) as stop:
                # A ConfigurationError here: a token refresh failed mid-run, or the request cannot even be built.
                outcome = stop.outcome if isinstance(stop, _Stopped) else Outcome.CONFIGURATION
                result = SmokeResult(
                    api_version, outcome, watch.http_status, attempts=watch.attempts, error=str(stop), check=kind
                )
            results.append(_scrubbed(result, provider.redact_line))
    return SmokeReport(endpoint=pool.url, identifier=session, container_type=container_type, results=results)
