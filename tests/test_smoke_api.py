"""run_smoke against real scripted HTTP servers on 127.0.0.1: shapes, paths, polling, verdicts."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import pytest
from azure.core.credentials import AccessToken

from smoke import (
    ConfigurationError,
    CredentialError,
    Outcome,
    PoolEndpoint,
    SmokeResult,
    StaticTokenProvider,
    run_smoke,
)
from smoke.auth import MIN_SUBSTRING_SECRET_CHARS, REDACTED, AzureCredentialTokenProvider
from smoke.protocol import API_2024_02, API_2024_10, HELLO_WORLD_CODE
from smoke.runner import _scrubbed
from smoke.waiting import BACKOFF_CAP_SECONDS, BACKOFF_JITTER_FRACTION
from tests.support.scripted_pool import (
    REGIONAL_BASE_PATH,
    SPEC_EXECUTE_SYNC_FILE,
    SPEC_RESULT_NONE_FILE,
    Reply,
    Request,
    ScriptedPool,
    execution_body,
    files_pool,
    hello_pool,
    legacy_success,
    load_recording,
    multipart_files,
    running_body,
    sequence,
)

TOKEN = "smk-FAKE-TOKEN-3f9c1e7a-never-print-me"
USER_AGENT = re.compile(r"^dynamic-sessions-smoke/\d+\.\d+\.\d+ python-requests/\d+\.\d+")


class FakeClock:
    """Instant sleeps on a counter; the HTTP requests themselves stay real."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now


def smoke(pool: ScriptedPool, **options: object):
    """run_smoke on ``pool`` with the fake token and short defaults; progress lines collected."""
    lines: list[str] = []
    options.setdefault("timeout", 5.0)
    options.setdefault("request_timeout", 2.0)
    report = run_smoke(pool.endpoint, token_provider=StaticTokenProvider(TOKEN), progress=lines.append, **options)
    assert not pool.failures, pool.failures
    return report, lines


def test_both_generations_pass_and_keep_the_base_path() -> None:
    with ScriptedPool(hello_pool(identifier="smoke-id-0001"), REGIONAL_BASE_PATH) as pool:
        report, lines = smoke(pool, identifier="smoke-id-0001")
    assert report.ok and report.exit_code == 0, report.summary()
    assert [result.api_version for result in report.results] == [API_2024_02, API_2024_10]
    legacy, executions = pool.requests
    assert legacy.path == REGIONAL_BASE_PATH + "/code/execute"
    assert legacy.query == {"api-version": API_2024_02, "identifier": "smoke-id-0001"}
    assert legacy.json() == {
        "properties": {"codeInputType": "inline", "executionType": "synchronous", "code": HELLO_WORLD_CODE["NodeLTS"]}
    }
    assert executions.path == REGIONAL_BASE_PATH + "/executions"
    assert executions.query == {"api-version": API_2024_10, "identifier": "smoke-id-0001"}
    assert executions.json() == {
        "code": HELLO_WORLD_CODE["NodeLTS"],
        "codeInputType": "Inline",
        "executionType": "Synchronous",
        "timeoutInSeconds": 60,
    }
    for request in pool.requests:
        assert request.authorization == f"Bearer {TOKEN}"
        assert USER_AGENT.match(request.headers["user-agent"]), request.headers["user-agent"]
    assert [result.attempts for result in report.results] == [1, 1]
    assert report.results[0].execution_time_ms == 5 and report.results[1].execution_time_ms == 9
    assert report.summary().startswith(f"PASS hello-world ran on {pool.endpoint} (2024-02-02-preview: ")
    assert lines == []


def test_trailing_slash_and_host_only_endpoint() -> None:
    with ScriptedPool(hello_pool()) as pool:
        report = run_smoke(pool.endpoint + "//", token_provider=StaticTokenProvider(TOKEN), timeout=5)
    assert report.ok, report.summary()
    assert [request.path for request in pool.requests] == ["/code/execute", "/executions"]
    assert pool.requests[0].query["identifier"] == report.identifier
    assert report.identifier.startswith("smoke-")


def test_identifier_with_special_characters_arrives_intact() -> None:
    identifier = "a&b#c%d;e|f{g}[h]<i>"
    with ScriptedPool(hello_pool(identifier=identifier)) as pool:
        report, _ = smoke(pool, identifier=identifier)
    assert report.ok, report.summary()


@pytest.mark.parametrize("container_type", ["PythonLTS", "Shell"])
def test_container_type_picks_the_hello_world_code(container_type: str) -> None:
    with ScriptedPool(hello_pool()) as pool:
        report, _ = smoke(pool, container_type=container_type)
    assert report.ok
    assert pool.requests[0].json()["properties"]["code"] == HELLO_WORLD_CODE[container_type]
    assert pool.requests[1].json()["code"] == HELLO_WORLD_CODE[container_type]


def test_legacy_answer_with_dollar_ids_and_result_key_passes() -> None:
    body = {
        "$id": "1",
        "properties": {"$id": "2", "status": "Success", "stdout": "hello-world\n", "stderr": "", "result": ""},
    }
    with ScriptedPool(sequence(Reply(200, body))) as pool:
        report, _ = smoke(pool, api_versions=[API_2024_02])
    assert report.ok, report.summary()


def test_spec_example_shape_with_200_passes() -> None:
    body = load_recording(SPEC_EXECUTE_SYNC_FILE)["responses"]["202"]["body"]
    body["result"]["stdout"] = "hello-world\n"
    with ScriptedPool(sequence(Reply(200, body))) as pool:
        report, _ = smoke(pool, api_versions=[API_2024_10])
    assert report.ok, report.summary()
    assert report.results[0].http_status == 200


def _polling_pool(operation_location: str | None, poll_path: str, execution_id: str = "exec-42"):
    """POST answers Running (with ``operation_location``); GETs on ``poll_path`` answer NotStarted, then Succeeded."""
    polls: list[Request] = []

    def handler(request: Request) -> Reply:
        if request.method == "POST":
            body = running_body()
            body["id"] = execution_id
            headers = {"operation-id": execution_id}
            if operation_location is not None:
                headers["Operation-Location"] = operation_location
            return Reply(202, body, headers)
        assert request.path == poll_path, f"polled {request.path}, expected {poll_path}"
        assert request.query.get("api-version") == API_2024_10, request.query
        assert request.query.get("identifier") == "poll-ident", request.query
        polls.append(request)
        if len(polls) == 1:
            return Reply(200, {**running_body(), "status": "NotStarted"})
        return Reply(200, execution_body())

    return handler, polls


@pytest.mark.parametrize(
    ("location", "poll_suffix"),
    [
        ("/executions/exec-42?api-version=2024-10-02-preview&identifier=poll-ident", "/executions/exec-42"),
        (REGIONAL_BASE_PATH + "/operations/exec-42?identifier=poll-ident", "/operations/exec-42"),
        (None, "/executions/exec-42"),
    ],
    ids=["relative", "relative-with-base-path", "no-header"],
)
def test_running_then_succeeded_is_polled(location: str | None, poll_suffix: str) -> None:
    handler, polls = _polling_pool(location, REGIONAL_BASE_PATH + poll_suffix)
    # Real sleeps for the first case; the others skip the poll interval on a fake clock.
    clock = None if poll_suffix == "/executions/exec-42" and location else FakeClock()
    with ScriptedPool(handler, REGIONAL_BASE_PATH) as pool:
        report, lines = smoke(pool, api_versions=[API_2024_10], identifier="poll-ident", clock=clock)
    assert report.ok, report.summary()
    assert len(polls) == 2
    assert report.results[0].attempts == 3  # the POST and two polls
    assert report.results[0].status == "Succeeded"
    assert all(poll.authorization == f"Bearer {TOKEN}" for poll in polls)
    assert len(lines) == 2 and "execution Running" in lines[0] and "execution NotStarted" in lines[1]


def test_absolute_operation_location_on_the_same_host_is_followed() -> None:
    holder: dict[str, str] = {}
    handler, polls = _polling_pool(None, REGIONAL_BASE_PATH + "/status/exec-42")

    def with_absolute_location(request: Request) -> Reply:
        reply = handler(request)
        if request.method == "POST":
            reply.headers["Operation-Location"] = holder["origin"] + REGIONAL_BASE_PATH + "/status/exec-42"
        return reply

    with ScriptedPool(with_absolute_location, REGIONAL_BASE_PATH) as pool:
        holder["origin"] = pool.origin
        report, _ = smoke(pool, api_versions=[API_2024_10], identifier="poll-ident", clock=FakeClock())
    assert report.ok, report.summary()
    assert len(polls) == 2


def test_operation_location_on_another_host_never_gets_the_token() -> None:
    with ScriptedPool(sequence(Reply(200, execution_body()))) as elsewhere:
        handler, polls = _polling_pool(elsewhere.origin + "/executions/exec-42", "/executions/exec-42")
        with ScriptedPool(handler) as pool:
            report, lines = smoke(pool, api_versions=[API_2024_10], identifier="poll-ident", clock=FakeClock())
    assert elsewhere.requests == []
    assert report.ok, report.summary()  # polled on the endpoint by execution id instead
    assert len(polls) == 2
    assert any("not following Operation-Location" in line for line in lines)


def test_running_until_the_deadline_is_unreachable() -> None:
    clock = FakeClock()
    with ScriptedPool(sequence(Reply(202, running_body(), {"Operation-Location": "/executions/x"}))) as pool:
        report, _ = smoke(pool, api_versions=[API_2024_10], timeout=10, clock=clock)
    result = report.results[0]
    assert result.outcome is Outcome.UNREACHABLE and report.exit_code == 4
    assert "still Running" in result.error and "deadline" in result.error
    assert clock.now <= 10


@pytest.mark.parametrize(
    ("reply", "expected_error"),
    [
        (Reply(202, execution_body("Failed", stdout="", stderr="ReferenceError: consol is not defined")), "stderr"),
        (
            Reply(200, {**execution_body("Failed"), "error": {"error": {"code": "Boom", "message": "kernel died"}}}),
            "Boom",
        ),
        (Reply(200, {**execution_body("Canceled"), "error": {"code": "Cancelled", "message": "by user"}}), "Canceled"),
        (Reply(200, execution_body("Exploded")), "execution Exploded"),
        (Reply(202, execution_body(stdout="inline-synchronous\n")), "printed 'inline-synchronous\\n'"),
        (Reply(200, load_recording(SPEC_RESULT_NONE_FILE)["responses"]["200"]["body"]), "printed ''"),
        (Reply(200, execution_body(stdout="hello-world")), "expected 'hello-world\\n'"),
        (Reply(200, "{not json"), "not valid JSON"),
        (Reply(200, "<html><head><title>Login</title></head></html>", content_type="text/html"), "HTML page 'Login'"),
        (Reply(200, [1, 2]), "not an object"),
        (Reply(200, {"id": "x"}), "no execution 'status'"),
        (
            Reply(400, {"error": {"code": "InvalidCode", "message": "bad request"}}),
            "HTTP 400 (InvalidCode: bad request)",
        ),
        (Reply(302, None, {"Location": "https://elsewhere.example/login"}), "not followed"),
    ],
)
def test_answers_that_fail_at_once(reply: Reply, expected_error: str) -> None:
    with ScriptedPool(sequence(reply)) as pool:
        report, lines = smoke(pool, api_versions=[API_2024_10])
    result = report.results[0]
    assert result.outcome is Outcome.FAILED and report.exit_code == 1, report.summary()
    assert expected_error in result.error
    assert result.attempts == 1 and len(pool.requests) == 1 and lines == []
    assert report.summary().startswith("FAIL ")


def test_failed_execution_shows_its_stderr() -> None:
    body = execution_body("Failed", stdout="", stderr="ReferenceError: consol is not defined")
    with ScriptedPool(sequence(Reply(202, body))) as pool:
        report, _ = smoke(pool, api_versions=[API_2024_10])
    assert report.results[0].stderr == "ReferenceError: consol is not defined"
    assert "ReferenceError: consol is not defined" in report.summary()


@pytest.mark.parametrize(
    ("body", "expected_error"),
    [
        ({"properties": {"status": "Failure", "stdout": "", "stderr": "SyntaxError"}}, "status is 'Failure'"),
        (legacy_success(stdout="hello world\n"), "printed 'hello world\\n'"),
        ({"status": "Success"}, "no 'properties' object"),
    ],
)
def test_legacy_failures(body: dict, expected_error: str) -> None:
    with ScriptedPool(sequence(Reply(200, body))) as pool:
        report, _ = smoke(pool, api_versions=[API_2024_02])
    assert report.results[0].outcome is Outcome.FAILED
    assert expected_error in report.results[0].error


def test_worst_outcome_decides_over_both_generations() -> None:
    def handler(request: Request) -> Reply:
        if request.path.endswith("/code/execute"):
            return Reply(200, legacy_success())
        return Reply(200, execution_body(stdout="nope\n"))

    with ScriptedPool(handler) as pool:
        report, _ = smoke(pool)
    assert [result.ok for result in report.results] == [True, False]
    assert report.exit_code == 1
    assert "2024-02-02-preview: passed in" in report.summary()


def test_backoff_schedule_under_persistent_403_respects_the_deadline() -> None:
    clock = FakeClock()
    with ScriptedPool(sequence(Reply(403))) as pool:
        report, lines = smoke(pool, api_versions=[API_2024_10], timeout=120, clock=clock)
    result = report.results[0]
    assert result.outcome is Outcome.UNAUTHORIZED and report.exit_code == 3
    assert clock.now <= 120  # never slept past the deadline
    assert 0.9 <= clock.sleeps[0] <= 1.1  # starts near one second
    assert max(clock.sleeps) <= BACKOFF_CAP_SECONDS * (1 + BACKOFF_JITTER_FRACTION)
    assert sum(1 for delay in clock.sleeps if delay > 0.8 * BACKOFF_CAP_SECONDS) >= 3  # reached the cap
    assert result.attempts == len(pool.requests) == len(clock.sleeps) + 1
    assert len(lines) == len(clock.sleeps)  # one progress line per wait
    assert all("HTTP 403 (role assignment not propagated yet?)" in line and "next try in" in line for line in lines)
    assert "Azure ContainerApps Session Executor" in result.error


def test_a_version_skipped_by_the_deadline_does_not_hide_the_cause() -> None:
    clock = FakeClock()
    with ScriptedPool(sequence(Reply(403))) as pool:
        report, _ = smoke(pool, timeout=30, clock=clock)
    assert [result.outcome for result in report.results] == [Outcome.UNAUTHORIZED, Outcome.UNREACHABLE]
    assert "not tried" in report.results[1].error
    assert report.exit_code == 3
    assert {request.path for request in pool.requests} == {"/code/execute"}


def test_retry_after_longer_than_the_time_left_stops_at_once() -> None:
    with ScriptedPool(sequence(Reply(429, None, {"Retry-After": "30"}))) as pool:
        report, lines = smoke(pool, api_versions=[API_2024_10], timeout=3)
    result = report.results[0]
    assert result.outcome is Outcome.UNREACHABLE and report.exit_code == 4
    assert "asked to wait 30.0 s" in result.error
    assert len(pool.requests) == 1 and lines == []


def test_echoed_token_is_scrubbed_from_every_field() -> None:
    def echo(request: Request) -> Reply:
        secret = request.authorization or ""
        if request.path.endswith("/code/execute"):
            return Reply(200, legacy_success(stdout=f"you sent {secret}\n"))
        return Reply(400, {"error": {"code": "Echo", "message": f"header was {secret}"}})

    with ScriptedPool(echo) as pool:
        report, lines = smoke(pool)
    text = json.dumps(report.to_json()) + report.summary() + "".join(lines)
    assert TOKEN not in text
    assert "[REDACTED]" in report.results[0].stdout and "[REDACTED]" in report.results[1].error


def test_no_credential_fails_before_any_request() -> None:
    class NoCredential:
        def get_token(self, scope: str) -> None:
            raise RuntimeError("no credential here")

    with ScriptedPool(hello_pool()) as pool, pytest.raises(CredentialError, match="az login"):
        run_smoke(pool.endpoint, token_provider=AzureCredentialTokenProvider(credential=NoCredential()))
    assert pool.requests == []


# --- the token never reaches a report, whatever field the server echoes it in ----------------------


def _escaped(text: str) -> str:
    """``text`` as a JSON string literal with every character \\u-escaped: the raw token never appears on the wire."""
    return '"' + "".join(f"\\u{ord(character):04x}" for character in text) + '"'


# A long prefix, so that any message that cuts text to an excerpt would cut through the token.
PADDING = "p" * 170
PLACEHOLDER = "__echo__"


def _echo_in(api_version: str, path: tuple[str, ...], status: int = 200) -> Callable[[Request], Reply]:
    """A pool that puts PADDING + the request's token, \\u-escaped, at ``path`` of its (otherwise valid) answer."""

    def handler(request: Request) -> Reply:
        if api_version == API_2024_02:
            body = legacy_success()
            body["properties"]["status"] = "Failure"  # so that every field is shown somewhere
        else:
            body = execution_body("Failed", stdout="")
        node = body
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = PLACEHOLDER
        token = (request.authorization or "").removeprefix("Bearer ")
        text = json.dumps(body).replace(json.dumps(PLACEHOLDER), _escaped(PADDING + token))
        assert token not in text
        return Reply(status, text, content_type="application/json")

    return handler


@pytest.mark.parametrize(
    ("api_version", "path", "status"),
    [
        (API_2024_02, ("properties", "status"), 200),
        (API_2024_02, ("properties", "stdout"), 200),
        (API_2024_02, ("properties", "stderr"), 200),
        (API_2024_02, ("properties", "executionResult"), 200),
        (API_2024_10, ("status",), 200),
        (API_2024_10, ("result", "stdout"), 200),
        (API_2024_10, ("result", "stderr"), 200),
        (API_2024_10, ("error", "code"), 200),
        (API_2024_10, ("error", "message"), 200),
        (API_2024_10, ("error", "error", "message"), 200),
        (API_2024_10, ("error", "message"), 400),
        (API_2024_10, ("error", "message"), 503),
    ],
    ids=lambda value: "-".join(value) if isinstance(value, tuple) else str(value),
)
def test_token_echoed_escaped_in_any_field_never_reaches_the_report(
    api_version: str, path: tuple[str, ...], status: int
) -> None:
    with ScriptedPool(_echo_in(api_version, path, status)) as pool:
        report, lines = smoke(pool, api_versions=[api_version], timeout=1.0, clock=FakeClock())
    everything = json.dumps(report.to_json()) + report.summary() + "".join(lines) + repr(report)
    assert TOKEN[: MIN_SUBSTRING_SECRET_CHARS + 4] not in everything  # not even the start of it
    assert REDACTED in everything, everything


def test_every_text_field_of_a_result_is_scrubbed() -> None:
    result = SmokeResult(API_2024_10, Outcome.FAILED, status=TOKEN, stdout=TOKEN, stderr=TOKEN, error=TOKEN)
    scrubbed = _scrubbed(result, StaticTokenProvider(TOKEN).redact)
    assert TOKEN not in repr(scrubbed)
    server_text = [value for name, value in scrubbed._asdict().items() if name not in ("api_version", "check")]
    assert all(value in (REDACTED, None) or not isinstance(value, str) for value in server_text)


def test_operation_location_echoing_the_token_is_never_shown_even_in_part() -> None:
    def handler(request: Request) -> Reply:
        token = (request.authorization or "").removeprefix("Bearer ")
        location = f"https://elsewhere.example/{'p' * 150}{token}"  # a 200-character excerpt would cut the token
        return Reply(202, {**running_body(), "id": "exec-1"}, {"Operation-Location": location})

    with ScriptedPool(handler) as pool:
        report, lines = smoke(pool, api_versions=[API_2024_10], timeout=1.0, clock=FakeClock())
    assert any("not following Operation-Location" in line for line in lines)
    assert TOKEN[: MIN_SUBSTRING_SECRET_CHARS + 4] not in "".join(lines) + json.dumps(report.to_json())


# --- timeouts and requests that cannot be sent ------------------------------------------------------


@pytest.mark.parametrize(("timeout", "request_timeout"), [(0.4, 2.0), (0.0, 2.0), (float("inf"), 2.0), (5.0, 0.0)])
def test_unusable_timeouts_are_configuration_errors(timeout: float, request_timeout: float) -> None:
    with ScriptedPool(hello_pool()) as pool, pytest.raises(ConfigurationError, match="timeout must be") as caught:
        smoke(pool, timeout=timeout, request_timeout=request_timeout)
    assert pool.requests == []
    if timeout == 0.4:
        assert "at least 0.5 seconds" in str(caught.value)


def test_first_version_is_tried_even_when_getting_the_token_used_up_the_deadline() -> None:
    clock = FakeClock()

    class SlowToken(StaticTokenProvider):
        """A credential whose first token takes the whole deadline to arrive."""

        def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
            if clock.now == 0:
                clock.sleep(1.0)
            return super().get_token(*scopes)

    with ScriptedPool(sequence(Reply(403))) as pool:
        report = run_smoke(pool.endpoint, token_provider=SlowToken(TOKEN), timeout=1.0, clock=clock)
    first, second = report.results
    assert first.attempts == 1 and first.outcome is Outcome.UNAUTHORIZED, first
    assert "not tried" in second.error and f"after {API_2024_02}" in second.error
    assert "less than the 0.5 s one request needs" in second.error
    assert [request.path for request in pool.requests] == ["/code/execute"]


def test_an_endpoint_requests_cannot_use_is_a_configuration_error_at_once() -> None:
    # PoolEndpoint built directly skips parse(); requests then refuses the host (InvalidURL).
    endpoint = PoolEndpoint(scheme="https", netloc="exa mple.com", base_path="")
    report = run_smoke(endpoint, token_provider=StaticTokenProvider(TOKEN), timeout=30)
    assert report.exit_code == 2 and report.outcome is Outcome.CONFIGURATION
    assert all(result.attempts == 1 for result in report.results)
    assert "could not be sent (InvalidURL" in report.results[0].error


# --- a wrong token looks like propagation: the pool's own words are shown ------------------------


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (401, "InvalidAuthenticationToken", "The bearer token is not the one this pool was started with."),
        (403, "PermissionDenied", "Principal lacks Microsoft.App/sessionPools/interpreters/execute/action."),
    ],
)
def test_401_and_403_show_the_pools_error_on_every_waiting_line_and_in_the_verdict(
    status: int, code: str, message: str
) -> None:
    def handler(request: Request) -> Reply:
        # The message also echoes the token it was sent: it must be scrubbed wherever the message shows.
        return Reply(status, {"error": {"code": code, "message": f"{message} Got {request.authorization}."}})

    with ScriptedPool(handler) as pool:
        report, lines = smoke(pool, api_versions=[API_2024_10], timeout=10, clock=FakeClock())
    result = report.results[0]
    assert result.outcome is Outcome.UNAUTHORIZED and report.exit_code == 3
    assert len(lines) >= 3
    for text in [*lines, result.error, report.summary()]:
        assert f"HTTP {status} (" in text
        assert f'the pool says "{code}: {message} Got Bearer {REDACTED}."' in text, text
        assert "A wrong token or identity is answered the same way" in text
    assert TOKEN not in json.dumps(report.to_json()) + report.summary() + "".join(lines)


@pytest.mark.parametrize(
    ("lifetime", "sent", "issued"),
    [
        (3600, ["azure-token-1", "azure-token-1"], ["azure-token-1"]),
        (60, ["azure-token-2", "azure-token-3"], ["azure-token-1", "azure-token-2", "azure-token-3"]),
    ],
)
def test_azure_tokens_are_cached_until_near_expiry(lifetime: float, sent: list[str], issued: list[str]) -> None:
    """The sign-in is asked once, and again only for a token that expires within five minutes."""

    class Credential:
        def __init__(self) -> None:
            self.issued: list[str] = []

        def get_token(self, *scopes: str) -> AccessToken:
            assert scopes == ("https://dynamicsessions.io/.default",)
            self.issued.append(f"azure-token-{len(self.issued) + 1}")
            return AccessToken(self.issued[-1], int(time.time() + lifetime))

    credential = Credential()
    with ScriptedPool(hello_pool()) as pool:
        provider = AzureCredentialTokenProvider(credential=credential)
        report = run_smoke(pool.endpoint, token_provider=provider, timeout=5)
    assert report.ok, report.summary()
    # azure-token-1 is the check's own before any request; it serves the requests too while it is
    # good for more than five minutes, else each request gets a new one.
    assert [request.authorization for request in pool.requests] == [f"Bearer {token}" for token in sent]
    assert credential.issued == issued
    assert provider.redact(" ".join(credential.issued)) == " ".join([REDACTED] * len(credential.issued))


# --- --files: upload, list, download, compare, delete ---------------------------------------------


def test_file_round_trip_passes_and_leaves_nothing_behind() -> None:
    store: dict[str, bytes] = {}
    with ScriptedPool(files_pool(store), REGIONAL_BASE_PATH) as pool:
        report, lines = smoke(pool, files=True, identifier="files-ident")
    assert report.ok and report.exit_code == 0, report.summary()
    files = report.results[-1]
    assert (files.check, files.api_version, files.http_status, files.attempts) == ("files", API_2024_10, 204, 4)
    assert "files on 2024-10-02-preview: " in report.summary()
    upload, listing, download, delete = pool.requests[2:]
    name = multipart_files(upload)["file"][0]
    assert name.startswith("smoke-") and name.endswith(".txt")
    assert [(request.method, request.path) for request in (upload, listing, download, delete)] == [
        ("POST", REGIONAL_BASE_PATH + "/files"),
        ("GET", REGIONAL_BASE_PATH + "/files"),
        ("GET", f"{REGIONAL_BASE_PATH}/files/{name}/content"),
        ("DELETE", f"{REGIONAL_BASE_PATH}/files/{name}"),
    ]
    for request in pool.requests[2:]:
        assert request.query == {"api-version": API_2024_10, "identifier": "files-ident"}
        assert request.authorization == f"Bearer {TOKEN}"
    assert store == {} and lines == []


def test_a_file_that_comes_back_different_fails_and_is_still_deleted() -> None:
    store: dict[str, bytes] = {}
    with ScriptedPool(files_pool(store, download=lambda data: data[:-1] + b"?")) as pool:
        report, _ = smoke(pool, files=True)
    files = report.results[-1]
    assert files.outcome is Outcome.FAILED and report.exit_code == 1
    assert "the downloaded file holds b'smoke check file round trip " in files.error
    assert pool.requests[-1].method == "DELETE" and store == {}


def test_files_forbidden_is_waited_out_and_quoted() -> None:
    """Files are where users of real pools get 403s: the wait and the verdict say what the pool said."""
    forbidden = Reply(403, {"error": {"code": "PermissionDenied", "message": "No file access for this principal."}})

    def handler(request: Request) -> Reply:
        return forbidden if "/files" in request.path else hello_pool()(request)

    with ScriptedPool(handler) as pool:
        report, lines = smoke(pool, files=True, timeout=30, clock=FakeClock())
    assert [result.outcome for result in report.results] == [Outcome.PASSED, Outcome.PASSED, Outcome.UNAUTHORIZED]
    assert report.exit_code == 3
    assert 'the pool says "PermissionDenied: No file access for this principal."' in report.results[-1].error
    assert lines and all(line.startswith("2024-10-02-preview files attempt ") for line in lines)
