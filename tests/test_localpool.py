"""The local pool's data-plane API: both generations, sessions, async polling, auth and validation."""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from localpool import API_2025_10, BASE_PATH, LocalPool
from localpool.node import FrameScanner, outcome_from_message
from localpool.wire import SESSION_IDENTIFIER_RULE
from smoke.protocol import (
    API_2024_02,
    API_2024_10,
    CODE_EXECUTE_PATH,
    EXECUTIONS_PATH,
    HELLO_WORLD_CODE,
    HELLO_WORLD_STDOUT,
    LEGACY_STATUS_SUCCESS,
    MAX_EXECUTION_SECONDS,
    PENDING_STATUSES,
    STATUS_FAILED,
    STATUS_SUCCEEDED,
)
from tests.support.localpool_helpers import (
    LEGACY_RESPONSE_FILE,
    REQUEST_TIMEOUT_SECONDS,
    SPEC_2024_10_SYNC_FILE,
    SPEC_2025_10_SYNC_FILE,
    TOKEN,
    PoolClient,
    host_facts,
    load_data,
    new_identifier,
    process_alive,
    wait_until,
)

JS_HELLO = HELLO_WORLD_CODE["NodeLTS"]


def test_endpoint_has_azure_shaped_base_path(pool: LocalPool) -> None:
    assert pool.endpoint == f"http://127.0.0.1:{pool.port}{BASE_PATH}"
    assert BASE_PATH == (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/localpool-rg/sessionPools/localpool"
    )


# -- both generations' hello-world ----------------------------------------------------------------


def test_code_execute_hello_world_has_the_tutorial_shape(client: PoolClient) -> None:
    recorded = load_data(LEGACY_RESPONSE_FILE)
    reply = client.legacy(new_identifier(), JS_HELLO)
    assert reply.status_code == requests.codes.ok
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert list(body) == list(recorded) == ["properties"]
    assert list(body["properties"]) == list(recorded["properties"])
    timing = body["properties"].pop("executionTimeInMilliseconds")
    assert isinstance(timing, int) and timing >= 0
    assert body["properties"] == {
        "status": LEGACY_STATUS_SUCCESS,
        "stdout": HELLO_WORLD_STDOUT,
        "stderr": "",
        "executionResult": "",
    }


def test_executions_hello_world_2024_10_answers_200_with_operation_headers(client: PoolClient) -> None:
    # An earlier revision of the document answered 202; the current one (and wire.py) answers 200.
    recorded = load_data(SPEC_2024_10_SYNC_FILE)["responses"]["202"]
    identifier = new_identifier()
    reply = client.execute(identifier, JS_HELLO, codeInputType="Inline", executionType="Synchronous")
    assert reply.status_code == requests.codes.ok
    body = reply.json()
    assert set(body) == set(recorded["body"])
    assert set(body["result"]) == set(recorded["body"]["result"])
    assert body["identifier"] == identifier
    assert body["executionType"] == "Synchronous"
    assert body["status"] == STATUS_SUCCEEDED
    assert body["result"]["stdout"] == HELLO_WORLD_STDOUT
    assert body["result"]["stderr"] == ""
    assert body["result"]["executionResult"] == ""
    assert isinstance(body["result"]["executionTimeInMilliseconds"], int)
    assert reply.headers["operation-id"] == body["id"]
    location = urlsplit(reply.headers["Operation-Location"])
    assert location.scheme == "" and location.netloc == ""
    assert location.path == f"{EXECUTIONS_PATH}/{body['id']}"
    assert parse_qs(location.query) == {"api-version": [API_2024_10], "identifier": [identifier]}


def test_executions_2025_10_answers_200(client: PoolClient) -> None:
    recorded = load_data(SPEC_2025_10_SYNC_FILE)["responses"]["200"]
    reply = client.execute(new_identifier(), JS_HELLO, api_version=API_2025_10, timeoutInSeconds=60)
    assert reply.status_code == requests.codes.ok
    body = reply.json()
    assert set(body) == set(recorded["body"])
    assert body["status"] == STATUS_SUCCEEDED
    assert body["result"]["stdout"] == HELLO_WORLD_STDOUT
    assert "api-version=2025-10-02-preview" in reply.headers["Operation-Location"]


def test_request_fields_are_case_insensitive(client: PoolClient) -> None:
    reply = client.http.post(
        client.endpoint + EXECUTIONS_PATH,
        params={"api-version": API_2024_10, "identifier": new_identifier()},
        json={"CODE": "6 * 7", "codeinputtype": "INLINE", "ExecutionType": "synchronous", "TIMEOUTINSECONDS": 5},
    )
    assert reply.status_code == requests.codes.ok
    assert reply.json()["executionType"] == "Synchronous"
    assert reply.json()["result"]["executionResult"] == "42"


# -- results, errors and state --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("1 + 1", "2"),
        ("'text'", "text"),
        ("({a: [1, 2]})", "{ a: [ 1, 2 ] }"),
        ("undefined", ""),
        ("null", "null"),
        ("Promise.resolve(5)", "5"),
        ("new Promise((resolve) => setTimeout(() => resolve('later'), 20))", "later"),
    ],
)
def test_execution_result_is_the_last_expression(client: PoolClient, code: str, expected: str) -> None:
    body = client.run(new_identifier(), code)
    assert body["status"] == STATUS_SUCCEEDED
    assert body["result"]["executionResult"] == expected


def test_console_error_and_stdout_write_are_captured(client: PoolClient) -> None:
    body = client.run(new_identifier(), "process.stdout.write('a'); console.log('b'); console.error('c')")
    assert body["result"]["stdout"] == "ab\n"
    assert body["result"]["stderr"] == "c\n"


def test_a_thrown_error_fails_the_execution_in_both_generations(client: PoolClient) -> None:
    identifier = new_identifier()
    body = client.run(identifier, "console.log('before'); notDefined + 1")
    assert body["status"] == STATUS_FAILED
    # SessionCodeExecutionResource.error is an ErrorResponse: {"error": {"code", "message"}}.
    assert body["error"]["error"] == {"code": "ExecutionError", "message": "ReferenceError: notDefined is not defined"}
    assert body["result"]["stdout"] == "before\n"
    assert body["result"]["stderr"].startswith("Uncaught ReferenceError: notDefined is not defined")

    legacy = client.legacy(identifier, "JSON.parse('{')").json()["properties"]
    # 2024-02-02-preview documents only "Success": the code's error is in stderr.
    assert legacy["status"] == LEGACY_STATUS_SUCCESS
    assert legacy["stderr"].startswith("Uncaught SyntaxError:")
    assert legacy["stdout"] == ""


def test_state_is_kept_within_a_session(client: PoolClient) -> None:
    identifier = new_identifier()
    first = client.run(identifier, "var counter = 40; let step = 1; globalThis.extra = 1;")
    assert first["status"] == STATUS_SUCCEEDED
    second = client.run(identifier, "counter + step + extra")
    assert second["result"]["executionResult"] == "42"
    legacy = client.legacy(identifier, "console.log(counter)").json()["properties"]
    assert legacy["stdout"] == "40\n"


def test_sessions_are_isolated(client: PoolClient, pool: LocalPool) -> None:
    first, second = new_identifier(), new_identifier()
    client.run(first, "var secret = 'only-here'; require('fs').writeFileSync('note.txt', 'x')")
    other = client.run(second, "typeof secret")
    assert other["result"]["executionResult"] == "undefined"
    first_pid, first_dir = host_facts(pool, first)
    second_pid, second_dir = host_facts(pool, second)
    assert first_dir != second_dir and first_pid != second_pid
    assert (first_dir / "note.txt").is_file()
    # Each sandbox sees only its own directory at /mnt/data, and no host path of another.
    assert client.run(second, "require('fs').existsSync('/mnt/data/note.txt')")["result"]["executionResult"] == "false"
    reading = client.run(second, f"require('fs').readFileSync({str(first_dir / 'note.txt')!r}, 'utf8')")
    assert reading["status"] == STATUS_FAILED
    assert "ERR_ACCESS_DENIED" in reading["error"]["error"]["message"]


def test_async_execution_is_polled_to_succeeded(client: PoolClient) -> None:
    identifier = new_identifier()
    code = "console.log('started'); new Promise((resolve) => setTimeout(() => resolve('done'), 400))"
    reply = client.execute(identifier, code, executionType="Asynchronous")
    assert reply.status_code == requests.codes.ok
    body = reply.json()
    assert body["status"] in PENDING_STATUSES
    assert body["executionType"] == "Asynchronous"
    assert "result" not in body
    states = client.poll(reply.headers["Operation-Location"])
    assert states[0]["status"] in PENDING_STATUSES
    final = states[-1]
    assert final["id"] == body["id"] == reply.headers["operation-id"]
    assert final["status"] == STATUS_SUCCEEDED
    assert final["result"]["stdout"] == "started\n"
    assert final["result"]["executionResult"] == "done"
    assert final["result"]["executionTimeInMilliseconds"] >= 400


def test_client_chosen_operation_id_is_used_once(client: PoolClient) -> None:
    identifier = new_identifier()
    headers = {"operation-id": "my-execution-1"}
    params = {"api-version": API_2024_10, "identifier": identifier}
    url = client.endpoint + EXECUTIONS_PATH
    reply = client.http.post(url, params=params, json={"code": "1"}, headers=headers)
    assert reply.status_code == requests.codes.ok
    assert reply.json()["id"] == reply.headers["operation-id"] == "my-execution-1"
    again = client.http.post(url, params=params, json={"code": "1"}, headers=headers)
    assert again.status_code == requests.codes.conflict
    assert again.headers["x-ms-error-code"] == "Conflict"


def test_executions_of_one_session_run_in_order(client: PoolClient) -> None:
    identifier = new_identifier()
    slow = client.execute(
        identifier,
        "new Promise((resolve) => setTimeout(() => { globalThis.order = 'slow'; resolve(1) }, 300))",
        executionType="Asynchronous",
    )
    fast = client.run(identifier, "order")
    assert fast["result"]["executionResult"] == "slow"
    assert client.poll(slow.headers["Operation-Location"])[-1]["status"] == STATUS_SUCCEEDED


# -- auth -----------------------------------------------------------------------------------------


def test_missing_bearer_token_is_401(pool: LocalPool) -> None:
    anonymous = PoolClient(pool.endpoint, token=None)
    reply = anonymous.execute(new_identifier(), JS_HELLO)
    assert reply.status_code == requests.codes.unauthorized
    assert reply.headers["WWW-Authenticate"] == "Bearer"
    assert reply.headers["x-ms-error-code"] == "Unauthorized"
    assert reply.json()["error"]["code"] == "Unauthorized"
    basic = anonymous.http.post(
        pool.endpoint + EXECUTIONS_PATH,
        params={"api-version": API_2024_10, "identifier": new_identifier()},
        json={"code": "1"},
        headers={"Authorization": "Basic dXNlcjpwYXNz"},
    )
    assert basic.status_code == requests.codes.unauthorized


def test_wrong_token_is_401_and_never_echoed(pool: LocalPool) -> None:
    wrong = "wrong-token-value-123"
    reply = PoolClient(pool.endpoint, token=wrong).execute(new_identifier(), JS_HELLO)
    assert reply.status_code == requests.codes.unauthorized
    assert reply.headers["x-ms-error-code"] == "InvalidToken"
    assert "token is wrong" in reply.json()["error"]["message"]
    assert set(reply.json()["error"]) == {"code", "message"}
    assert wrong not in reply.text and TOKEN not in reply.text


def test_without_a_token_option_the_pool_makes_one_and_requires_it() -> None:
    with LocalPool(prewarm=False) as own_pool:
        assert own_pool.token_generated and len(own_pool.token) >= 32
        refused = PoolClient(own_pool.endpoint, token="anything").legacy(new_identifier(), JS_HELLO)
        assert refused.status_code == requests.codes.unauthorized
        reply = PoolClient(own_pool.endpoint, token=own_pool.token).legacy(new_identifier(), JS_HELLO)
        assert reply.status_code == requests.codes.ok
        assert reply.json()["properties"]["stdout"] == HELLO_WORLD_STDOUT


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "query", "body", "error_code"),
    [
        (EXECUTIONS_PATH, {"identifier": "abcd"}, {"code": "1"}, "ApiVersionUnspecified"),
        (EXECUTIONS_PATH, {"api-version": "2020-01-01", "identifier": "abcd"}, {"code": "1"}, "UnsupportedApiVersion"),
        (EXECUTIONS_PATH, {"api-version": API_2024_02, "identifier": "abcd"}, {"code": "1"}, "UnsupportedApiVersion"),
        (
            CODE_EXECUTE_PATH,
            {"api-version": API_2024_10, "identifier": "abcd"},
            {"properties": {"code": "1"}},
            "UnsupportedApiVersion",
        ),
        (EXECUTIONS_PATH, {"api-version": API_2024_10}, {"code": "1"}, "InvalidIdentifier"),
        (EXECUTIONS_PATH, {"api-version": API_2024_10, "identifier": "abc"}, {"code": "1"}, "InvalidIdentifier"),
        (EXECUTIONS_PATH, {"api-version": API_2024_10, "identifier": "has space"}, {"code": "1"}, "InvalidIdentifier"),
        (EXECUTIONS_PATH, {"api-version": API_2024_10, "identifier": "x" * 129}, {"code": "1"}, "InvalidIdentifier"),
        (EXECUTIONS_PATH, {"api-version": API_2024_10, "identifier": "abcd"}, {"source": "1"}, "InvalidRequestBody"),
        (EXECUTIONS_PATH, {"api-version": API_2024_10, "identifier": "abcd"}, {"code": 5}, "InvalidRequestBody"),
        (EXECUTIONS_PATH, {"api-version": API_2024_10, "identifier": "abcd"}, ["code"], "InvalidRequestBody"),
        (
            EXECUTIONS_PATH,
            {"api-version": API_2024_10, "identifier": "abcd"},
            {"code": "1", "timeoutInSeconds": MAX_EXECUTION_SECONDS + 1},
            "InvalidRequestBody",
        ),
        (
            EXECUTIONS_PATH,
            {"api-version": API_2024_10, "identifier": "abcd"},
            {"code": "1", "executionType": "Later"},
            "InvalidRequestBody",
        ),
        (
            EXECUTIONS_PATH,
            {"api-version": API_2024_10, "identifier": "abcd"},
            {"code": "1", "codeInputType": "File"},
            "InvalidRequestBody",
        ),
        (CODE_EXECUTE_PATH, {"api-version": API_2024_02, "identifier": "abcd"}, {"code": "1"}, "InvalidRequestBody"),
        (
            CODE_EXECUTE_PATH,
            {"api-version": API_2024_02, "identifier": "abcd"},
            {"properties": {"code": "1", "executionType": "asynchronous"}},
            "InvalidRequestBody",
        ),
    ],
)
def test_invalid_requests_are_400_in_azure_error_shape(
    client: PoolClient, path: str, query: dict[str, str], body: object, error_code: str
) -> None:
    reply = client.http.post(client.endpoint + path, params=query, json=body)
    assert reply.status_code == requests.codes.bad_request
    assert reply.headers["x-ms-error-code"] == error_code
    error = reply.json()["error"]
    assert error["code"] == error_code
    assert error["message"].endswith(".")


def test_invalid_identifier_message_states_the_rule(client: PoolClient) -> None:
    reply = client.execute("no", "1")
    assert SESSION_IDENTIFIER_RULE in reply.json()["error"]["message"]


def test_identifier_ending_in_a_newline_is_400(client: PoolClient) -> None:
    # A "$" anchor would also match before a trailing newline.
    for identifier in ("abcd\n", new_identifier() + "\n"):
        reply = client.execute(identifier, "1")
        assert reply.status_code == requests.codes.bad_request
        assert reply.json()["error"]["code"] == "InvalidIdentifier"


def test_malformed_json_is_400(client: PoolClient) -> None:
    reply = client.http.post(
        client.endpoint + EXECUTIONS_PATH,
        params={"api-version": API_2024_10, "identifier": new_identifier()},
        data=b'{"code": "1"',
        headers={"Content-Type": "application/json"},
    )
    assert reply.status_code == requests.codes.bad_request
    assert reply.json()["error"]["code"] == "InvalidRequestBody"
    assert reply.json()["error"]["message"].startswith("The request body is not valid JSON")


@pytest.mark.parametrize(
    "path",
    [
        BASE_PATH + "/nothing",
        BASE_PATH,
        "/",
        "/subscriptions/other/sessionPools/x/executions",
        BASE_PATH + "/files/a/b/c",
    ],
)
def test_unknown_paths_are_404(pool: LocalPool, client: PoolClient, path: str) -> None:
    reply = client.http.post(pool.origin + path, params={"api-version": API_2024_10, "identifier": "abcd"}, json={})
    assert reply.status_code == requests.codes.not_found
    assert reply.headers["x-ms-error-code"] == "NotFound"
    assert reply.json()["error"]["code"] == "NotFound"


def test_operation_location_joined_at_the_server_root_gets_a_hint(pool: LocalPool, client: PoolClient) -> None:
    reply = client.run(new_identifier(), "1")
    wrongly_joined = pool.origin + f"{EXECUTIONS_PATH}/{reply['id']}"
    answer = client.http.get(wrongly_joined, params={"api-version": API_2024_10, "identifier": reply["identifier"]})
    assert answer.status_code == requests.codes.not_found
    assert "relative to it" in answer.json()["error"]["message"]


def test_unknown_execution_is_404(client: PoolClient) -> None:
    identifier = new_identifier()
    client.run(identifier, "1")
    for session in (identifier, new_identifier()):
        reply = client.http.get(
            f"{client.endpoint}{EXECUTIONS_PATH}/no-such-execution",
            params={"api-version": API_2024_10, "identifier": session},
        )
        assert reply.status_code == requests.codes.not_found
        assert reply.json()["error"]["code"] == "ExecutionNotFound"


def test_wrong_method_is_405(client: PoolClient) -> None:
    reply = client.http.get(
        client.endpoint + EXECUTIONS_PATH, params={"api-version": API_2024_10, "identifier": "abcd"}
    )
    assert reply.status_code == requests.codes.method_not_allowed
    assert reply.headers["Allow"] == "POST"


def test_connection_stays_usable_after_an_error(client: PoolClient) -> None:
    bad = client.execute("no", "1")
    assert bad.status_code == requests.codes.bad_request
    good = client.execute(new_identifier(), JS_HELLO)
    assert good.status_code == requests.codes.ok
    assert good.json()["result"]["stdout"] == HELLO_WORLD_STDOUT


# -- session limits and cooldown ------------------------------------------------------------------


def test_more_sessions_than_the_maximum_is_404() -> None:
    with LocalPool(token=TOKEN, max_sessions=2, prewarm=False) as small_pool:
        client = PoolClient(small_pool.endpoint)
        first, second = new_identifier(), new_identifier()
        assert client.run(first, "1")["status"] == STATUS_SUCCEEDED
        assert client.run(second, "1")["status"] == STATUS_SUCCEEDED
        third = client.execute(new_identifier(), "1")
        assert third.status_code == requests.codes.not_found
        assert third.headers["x-ms-error-code"] == "SessionLimitReached"
        assert "maximum of 2 live sessions" in third.json()["error"]["message"]
        # Existing sessions keep working.
        assert client.run(first, "2")["result"]["executionResult"] == "2"


def test_sessions_end_after_the_cooldown() -> None:
    # Long enough for the test to look at the live session before the reaper may end it.
    cooldown = 1.5
    with LocalPool(token=TOKEN, cooldown_seconds=cooldown, max_sessions=1, prewarm=False) as short_pool:
        client = PoolClient(short_pool.endpoint)
        identifier = new_identifier()
        assert client.run(identifier, "var kept = 1")["status"] == STATUS_SUCCEEDED
        pid, workdir = host_facts(short_pool, identifier)
        assert process_alive(pid) and workdir.is_dir()
        started = time.monotonic()
        assert wait_until(lambda: not short_pool.manager.live_sessions(), timeout=10 * cooldown + 5)
        assert time.monotonic() - started >= cooldown * 0.5
        assert wait_until(lambda: not process_alive(pid), timeout=5)
        assert wait_until(lambda: not workdir.exists(), timeout=5)
        # The identifier now starts a new, empty session (and the slot was freed).
        fresh = client.run(identifier, "typeof kept")
        assert fresh["result"]["executionResult"] == "undefined"
    assert not short_pool.manager.root.exists()


def test_busy_session_is_not_ended_by_the_cooldown() -> None:
    # The execution lasts three cooldowns; the next request must come within one cooldown of its answer.
    with LocalPool(token=TOKEN, cooldown_seconds=1.0, prewarm=False) as short_pool:
        client = PoolClient(short_pool.endpoint)
        identifier = new_identifier()
        code = "globalThis.mark = 'alive'; new Promise((resolve) => setTimeout(resolve, 3000))"
        assert client.run(identifier, code)["status"] == STATUS_SUCCEEDED
        # Ended only after the execution: the next one (straight away) still sees the state.
        assert client.run(identifier, "mark")["result"]["executionResult"] == "alive"


def test_close_ends_sessions_and_removes_files() -> None:
    local_pool = LocalPool(token=TOKEN).start()
    client = PoolClient(local_pool.endpoint)
    identifier = new_identifier()
    assert client.run(identifier, "1")["status"] == STATUS_SUCCEEDED
    pid, _ = host_facts(local_pool, identifier)
    root = local_pool.manager.root
    closer = threading.Thread(target=local_pool.close)
    closer.start()
    closer.join(timeout=REQUEST_TIMEOUT_SECONDS)
    assert not closer.is_alive()
    assert wait_until(lambda: not process_alive(pid), timeout=5)
    assert not root.exists()


# -- the runner's protocol, as the server reads it ---------------------------------------------------

MARKER = b"0123456789abcdef"
MAX_FRAME = 64
GOOD_REPLY = {"type": "result", "id": "x", "stdout": "o", "stderr": "", "result": "r", "error": None, "durationMs": 1.5}
MAX_CHARS = 8
ELAPSED_MS = 100.0


def scan(*chunks: bytes) -> list[bytes | None]:
    scanner = FrameScanner(MARKER, MAX_FRAME)
    return [frame for chunk in chunks for frame in scanner.feed(chunk)]


def test_frame_scanner_keeps_only_marked_messages() -> None:
    noise = b'{"type": "result"}\nnoise without a newline'
    assert scan(noise + MARKER + b'{"a": 1}\n' + b"more noise\n" + MARKER + b"{}\n") == [b'{"a": 1}', b"{}"]


def test_frame_scanner_joins_markers_and_messages_split_across_chunks() -> None:
    stream = b"xx" + MARKER + b'{"a": 1}\n' + b"yy" + MARKER + b'{"b": 2}\n'
    for size in (1, 3, 7, len(MARKER) + 1):
        chunks = [stream[start : start + size] for start in range(0, len(stream), size)]
        assert scan(*chunks) == [b'{"a": 1}', b'{"b": 2}']


def test_frame_scanner_refuses_an_over_long_message_and_carries_on() -> None:
    too_long = MARKER + b"x" * (MAX_FRAME + 1)
    assert scan(too_long[:40], too_long[40:] + b"\n", MARKER + b"{}\n") == [None, b"{}"]


def test_a_well_formed_reply_becomes_an_outcome() -> None:
    outcome = outcome_from_message(GOOD_REPLY, MAX_CHARS, ELAPSED_MS)
    assert outcome is not None
    assert (outcome.kind, outcome.stdout, outcome.result, outcome.duration_ms) == ("ok", "o", "r", 2)
    error = {"name": "RangeErr", "message": "m", "code": "", "stack": "s"}
    failed = outcome_from_message({**GOOD_REPLY, "error": error}, MAX_CHARS, ELAPSED_MS)
    assert failed is not None
    assert (failed.kind, failed.error_name, failed.error_message) == ("error", "RangeErr", "m")


@pytest.mark.parametrize(
    "changes",
    [
        {"durationMs": float("inf")},
        {"durationMs": float("nan")},
        {"durationMs": -1},
        {"durationMs": ELAPSED_MS + 1000},
        {"durationMs": True},
        {"durationMs": "1"},
        {"stdout": None},
        {"stderr": 1},
        {"result": "r" * (MAX_CHARS + 1)},
        {"error": "Error"},
        {"error": {"name": "E", "message": ["m"], "code": ""}},
        {"error": {"name": "E", "message": "m"}},
    ],
)
def test_a_malformed_reply_is_refused(changes: dict[str, object]) -> None:
    assert outcome_from_message({**GOOD_REPLY, **changes}, MAX_CHARS, ELAPSED_MS) is None
