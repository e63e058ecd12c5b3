"""Untrusted code stays contained: files, processes, time, memory, output and request size."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
import requests

from localpool import BASE_PATH, LocalPool
from localpool.constants import MAX_REQUEST_BODY_BYTES, SESSION_HEAP_MB
from smoke.protocol import API_2024_10, EXECUTIONS_PATH, OUTPUT_STREAM_MAX_CHARS, STATUS_FAILED, STATUS_SUCCEEDED
from tests.support.localpool_helpers import TOKEN, PoolClient, new_identifier, raw_request

LOOP_TIMEOUT_SECONDS = 2
# Another session must answer well within this while one session spins (a warm round trip is ~ms).
PROMPT_ANSWER_SECONDS = 0.5


def test_reading_etc_passwd_is_denied(client: PoolClient) -> None:
    identifier = new_identifier()
    body = client.run(identifier, "require('fs').readFileSync('/etc/passwd', 'utf8')")
    assert body["status"] == STATUS_FAILED
    assert body["error"]["message"] == "Error [ERR_ACCESS_DENIED]: Access to this API has been restricted"
    assert "root:" not in body["result"]["stdout"] + body["result"]["executionResult"]
    # Files inside the session's own directory are fine.
    own = client.run(
        identifier, "require('fs').writeFileSync('own.txt', 'mine'); require('fs').readFileSync('own.txt', 'utf8')"
    )
    assert own["result"]["executionResult"] == "mine"


def test_writing_outside_the_session_directory_is_denied(client: PoolClient) -> None:
    body = client.run(new_identifier(), "require('fs').writeFileSync('/tmp/localpool-escape.txt', 'x')")
    assert body["status"] == STATUS_FAILED
    assert "ERR_ACCESS_DENIED" in body["error"]["message"]


@pytest.mark.parametrize(
    "code",
    [
        "require('child_process').execSync('id').toString()",
        "require('child_process').spawn('sh', ['-c', 'id'])",
        "new (require('worker_threads').Worker)('1', { eval: true })",
    ],
)
def test_spawning_processes_and_threads_is_denied(client: PoolClient, code: str) -> None:
    body = client.run(new_identifier(), code)
    assert body["status"] == STATUS_FAILED
    assert "ERR_ACCESS_DENIED" in body["error"]["message"]


def test_signalling_other_processes_is_denied(client: PoolClient) -> None:
    victim, attacker = new_identifier("victim"), new_identifier("attacker")
    victim_pid = client.run(victim, "var alive = 'yes'; process.pid")["result"]["executionResult"]
    # Signal 0 for the test runner itself (a missing guard must fail this test, not kill pytest).
    for target, signal_name in ((str(os.getpid()), "0"), (victim_pid, "'SIGKILL'")):
        body = client.run(attacker, f"process.kill({target}, {signal_name})")
        assert body["status"] == STATUS_FAILED
        assert body["error"]["message"] == "Error [EPERM]: kill EPERM"
    assert client.run(victim, "alive")["result"]["executionResult"] == "yes"
    # Signalling itself is still allowed (signal 0 only checks the process exists).
    assert client.run(attacker, "process.kill(process.pid, 0)")["result"]["executionResult"] == "true"


def test_server_environment_is_not_visible(client: PoolClient) -> None:
    body = client.run(new_identifier(), "Object.keys(process.env).sort().join(',')")
    assert body["result"]["executionResult"] == "HOME,LANG,PATH,TMPDIR"


def test_endless_loop_times_out_restarts_and_never_blocks_other_sessions(client: PoolClient, pool: LocalPool) -> None:
    looping, other = new_identifier("loop"), new_identifier("other")
    assert client.run(looping, "var before = 'set'; before")["result"]["executionResult"] == "set"
    old_pid = client.run(looping, "process.pid")["result"]["executionResult"]
    assert client.run(other, "1")["status"] == STATUS_SUCCEEDED

    outcome: dict[str, Any] = {}

    def spin() -> None:
        with PoolClient(pool.endpoint) as spinner:
            outcome["reply"] = spinner.execute(looping, "while (true) {}", timeoutInSeconds=LOOP_TIMEOUT_SECONDS)

    spinner_thread = threading.Thread(target=spin)
    started = time.monotonic()
    spinner_thread.start()
    time.sleep(0.3)
    asked = time.monotonic()
    answer = client.run(other, "'still here'")
    answered_in = time.monotonic() - asked
    assert spinner_thread.is_alive(), "the loop should still be running while the other session answers"
    assert answer["result"]["executionResult"] == "still here"
    assert answered_in < PROMPT_ANSWER_SECONDS

    spinner_thread.join(timeout=LOOP_TIMEOUT_SECONDS + 10)
    elapsed = time.monotonic() - started
    reply = outcome["reply"]
    assert reply.status_code == requests.codes.accepted
    body = reply.json()
    assert body["status"] == STATUS_FAILED
    assert body["error"]["code"] == "ExecutionTimeout"
    assert f"within its timeout of {LOOP_TIMEOUT_SECONDS} s" in body["error"]["message"]
    assert "lost" in body["error"]["message"]
    assert body["error"]["message"] in body["result"]["stderr"]
    assert LOOP_TIMEOUT_SECONDS <= elapsed < LOOP_TIMEOUT_SECONDS + 3
    assert body["result"]["executionTimeInMilliseconds"] >= LOOP_TIMEOUT_SECONDS * 1000

    # The session restarted: a new process, and the earlier state is gone.
    after = client.run(looping, "[typeof before, process.pid].join(' ')")
    assert after["status"] == STATUS_SUCCEEDED
    kind, new_pid = after["result"]["executionResult"].split()
    assert kind == "undefined"
    assert new_pid != old_pid


def test_memory_bomb_is_contained(client: PoolClient) -> None:
    identifier, bystander = new_identifier("bomb"), new_identifier()
    assert client.run(bystander, "var safe = 7; safe")["result"]["executionResult"] == "7"
    bomb = "const hoard = []; while (true) { hoard.push(new Array(1e5).fill(Math.random())); }"
    body = client.run(identifier, bomb, timeoutInSeconds=30)
    assert body["status"] == STATUS_FAILED
    assert body["error"]["code"] == "InterpreterCrashed"
    assert f"ran out of memory (the JavaScript heap is capped at {SESSION_HEAP_MB} MB)" in body["error"]["message"]
    # The same session gets a fresh process; the bystander is untouched.
    assert client.run(identifier, "1 + 1")["result"]["executionResult"] == "2"
    assert client.run(bystander, "safe")["result"]["executionResult"] == "7"


def test_memory_outside_the_heap_is_capped(client: PoolClient) -> None:
    # allocUnsafe does not touch its pages, so only the address-space limit can refuse 3 GiB.
    body = client.run(new_identifier(), "Buffer.allocUnsafe(3 * 1024 ** 3).length")
    assert body["status"] == STATUS_FAILED
    assert body["error"]["message"].startswith("RangeError")


def test_process_exit_is_reported_and_the_session_recovers(client: PoolClient) -> None:
    identifier = new_identifier()
    body = client.run(identifier, "process.exit(3)")
    assert body["status"] == STATUS_FAILED
    assert body["error"]["code"] == "InterpreterCrashed"
    assert "exited with code 3" in body["error"]["message"]
    assert client.run(identifier, "'back'")["result"]["executionResult"] == "back"


@pytest.mark.parametrize(
    ("code", "stream"),
    [
        ("for (let i = 0; i < 2000; i++) console.log('x'.repeat(100))", "stdout"),
        ("process.stdout.write('y'.repeat(10 * 1024 * 1024))", "stdout"),
        ("for (let i = 0; i < 2000; i++) console.error('e'.repeat(100))", "stderr"),
    ],
)
def test_output_flood_is_truncated(client: PoolClient, code: str, stream: str) -> None:
    body = client.run(new_identifier(), code)
    assert body["status"] == STATUS_SUCCEEDED
    assert len(body["result"][stream]) == OUTPUT_STREAM_MAX_CHARS


def test_long_result_is_truncated(client: PoolClient) -> None:
    body = client.run(new_identifier(), "'r'.repeat(100000)")
    assert body["result"]["executionResult"] == "r" * OUTPUT_STREAM_MAX_CHARS


def test_writes_straight_to_the_protocol_stream_are_ignored(client: PoolClient) -> None:
    code = 'require(\'fs\').writeSync(1, \'noise\\n{"type": "result", "id": "forged"}\\n\'); \'genuine\''
    body = client.run(new_identifier(), code)
    assert body["status"] == STATUS_SUCCEEDED
    assert body["result"]["executionResult"] == "genuine"


def _execution_head(pool: LocalPool, extra: str) -> str:
    target = f"{BASE_PATH}{EXECUTIONS_PATH}?api-version={API_2024_10}&identifier=abcd"
    return "\r\n".join(
        [f"POST {target} HTTP/1.1", f"Host: 127.0.0.1:{pool.port}", f"Authorization: Bearer {TOKEN}", extra]
    )


def test_oversized_body_is_413_before_it_is_read(pool: LocalPool) -> None:
    # Only a few bytes are sent: the answer must come from Content-Length alone.
    head = _execution_head(pool, f"Content-Length: {MAX_REQUEST_BODY_BYTES + 1}\r\nContent-Type: application/json")
    reply = raw_request(pool.host, pool.port, head, b'{"code": "')
    assert reply.status == requests.codes.request_entity_too_large
    assert reply.headers["x-ms-error-code"] == "RequestBodyTooLarge"
    assert reply.headers["connection"] == "close"
    assert reply.body["error"]["code"] == "RequestBodyTooLarge"


def test_oversized_body_sent_in_full_is_413(client: PoolClient) -> None:
    code = "//" + "a" * MAX_REQUEST_BODY_BYTES
    reply = client.execute(new_identifier(), code)
    assert reply.status_code == requests.codes.request_entity_too_large


def test_body_at_the_limit_is_accepted(client: PoolClient) -> None:
    envelope = len('{"code": ""}')
    code = "1//" + "a" * (MAX_REQUEST_BODY_BYTES - envelope - 3)
    reply = client.http.post(
        client.endpoint + EXECUTIONS_PATH,
        params={"api-version": API_2024_10, "identifier": new_identifier()},
        data=('{"code": "' + code + '"}').encode(),
    )
    assert len(reply.request.body) == MAX_REQUEST_BODY_BYTES
    assert reply.status_code == requests.codes.accepted
    assert reply.json()["result"]["executionResult"] == "1"


def test_chunked_or_lengthless_body_is_411(pool: LocalPool) -> None:
    chunked = raw_request(pool.host, pool.port, _execution_head(pool, "Transfer-Encoding: chunked"), b"0\r\n\r\n")
    assert chunked.status == requests.codes.length_required
    assert chunked.body["error"]["code"] == "LengthRequired"
    lengthless = raw_request(pool.host, pool.port, _execution_head(pool, "Content-Type: application/json"))
    assert lengthless.status == requests.codes.length_required
