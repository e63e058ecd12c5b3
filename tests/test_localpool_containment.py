"""Untrusted code stays contained: files, processes, time, memory, output and request size."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from localpool import BASE_PATH, LocalPool
from localpool.constants import MAX_REQUEST_BODY_BYTES, SESSION_HEAP_MB
from localpool.interpreter import Interpreter
from localpool.sandbox import SandboxLimits
from smoke.protocol import API_2024_10, EXECUTIONS_PATH, OUTPUT_STREAM_MAX_CHARS, STATUS_FAILED, STATUS_SUCCEEDED
from tests.support.localpool_helpers import (
    REQUEST_TIMEOUT_SECONDS,
    TOKEN,
    Bystander,
    PoolClient,
    host_facts,
    new_identifier,
    process_alive,
    raw_request,
    wait_until,
)

LOOP_TIMEOUT_SECONDS = 4
# A hostile execution that the server failed to answer would hang until this; the tests expect far less.
HOSTILE_TIMEOUT_SECONDS = 5
# How long a session floods its output after its execution returned, and how much the server's
# memory may grow meanwhile (unbounded queueing grew it by ~50-140 MB per second).
FLOOD_SECONDS = 0.5
FLOOD_MAX_GROWTH_BYTES = 16 * 1024 * 1024
VICTIM_LIFETIME_SECONDS = 60
# A signalled process dies within this (longer on a busy machine: the window only makes the check stricter)
KILLED_WITHIN_SECONDS = 0.5
EPERM_MESSAGE = "Error [EPERM]: kill EPERM"


@pytest.fixture
def victim() -> Iterator[int]:
    """The pid of a throwaway process the same user owns, for tests that try to signal others.

    A failing guard then hurts this process, not pytest (which also runs the module's pool).
    """
    process = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({VICTIM_LIFETIME_SECONDS})"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


def _resident_bytes() -> int:
    """This process's resident memory (the module's pool, and so its readers, live in it)."""
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_reading_etc_passwd_is_denied(client: PoolClient) -> None:
    identifier = new_identifier()
    with Bystander(client.endpoint):
        body = client.run(identifier, "require('fs').readFileSync('/etc/passwd', 'utf8')")
    assert body["status"] == STATUS_FAILED
    assert body["error"]["error"]["message"] == "Error [ERR_ACCESS_DENIED]: Access to this API has been restricted"
    assert "root:" not in body["result"]["stdout"] + body["result"]["executionResult"]
    # Files inside the session's own directory are fine.
    own = client.run(
        identifier, "require('fs').writeFileSync('own.txt', 'mine'); require('fs').readFileSync('own.txt', 'utf8')"
    )
    assert own["result"]["executionResult"] == "mine"


def test_writing_outside_the_session_directory_is_denied(client: PoolClient) -> None:
    body = client.run(new_identifier(), "require('fs').writeFileSync('/tmp/localpool-escape.txt', 'x')")
    assert body["status"] == STATUS_FAILED
    assert "ERR_ACCESS_DENIED" in body["error"]["error"]["message"]


@pytest.mark.parametrize(
    "code",
    [
        "require('child_process').execSync('id').toString()",
        "require('child_process').spawn('sh', ['-c', 'id'])",
        "new (require('worker_threads').Worker)('1', { eval: true })",
    ],
)
def test_spawning_processes_and_threads_is_denied(client: PoolClient, code: str) -> None:
    with Bystander(client.endpoint):
        body = client.run(new_identifier(), code)
    assert body["status"] == STATUS_FAILED
    assert "ERR_ACCESS_DENIED" in body["error"]["error"]["message"]


def test_signalling_other_processes_is_denied(client: PoolClient, pool: LocalPool) -> None:
    victim, attacker = new_identifier("victim"), new_identifier("attacker")
    assert client.run(victim, "var alive = 'yes'")["status"] == STATUS_SUCCEEDED
    victim_pid = str(host_facts(pool, victim)[0])
    # Signal 0 for the test runner itself (a missing guard must fail this test, not kill pytest).
    for target, signal_name in ((str(os.getpid()), "0"), (victim_pid, "'SIGKILL'")):
        body = client.run(attacker, f"process.kill({target}, {signal_name})")
        assert body["status"] == STATUS_FAILED
        assert body["error"]["error"]["message"] == "Error [EPERM]: kill EPERM"
    assert client.run(victim, "alive")["result"]["executionResult"] == "yes"
    # Signalling itself is still allowed (signal 0 only checks the process exists).
    assert client.run(attacker, "process.kill(process.pid, 0)")["result"]["executionResult"] == "true"


@pytest.mark.parametrize(
    ("call", "signal"),
    [("process.kill", "'SIGUSR2'"), ("process._kill", "require('os').constants.signals.SIGUSR2")],
)
def test_kill_guard_acts_on_the_value_it_checked(client: PoolClient, victim: int, call: str, signal: str) -> None:
    # The pid answers the session's own pid to the first `honest` conversions and the victim's to
    # later ones: a guard that checks one conversion and lets the binding make another is fooled
    # for some `honest`. SIGUSR2 is harmless to the session itself (it listens) and kills the victim.
    code = f"""
        process.on('SIGUSR2', () => {{}});
        const outcomes = [];
        for (let honest = 0; honest <= 4; honest++) {{
          let conversions = 0;
          const pid = {{ valueOf() {{ return conversions++ < honest ? process.pid : {victim}; }} }};
          try {{ outcomes.push(String({call}(pid, {signal}))); }} catch (error) {{ outcomes.push(error.code); }}
        }}
        outcomes.join(' ')
    """
    body = client.run(new_identifier(), code)
    assert body["status"] == STATUS_SUCCEEDED, body
    assert not wait_until(lambda: not process_alive(victim), KILLED_WITHIN_SECONDS), "the victim was signalled"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        # SIGUSR1 makes a Python process exit, and makes Node start its inspector.
        ("process._debugProcess(VICTIM)", "Error [EPERM]: _debugProcess EPERM"),
        ("process.kill(process.pid, 'SIGUSR1')", EPERM_MESSAGE),
        ("require('os').setPriority(VICTIM, 19)", "Error [EPERM]: setpriority EPERM"),
        # Raising its own priority (possible as root) would let a session starve the server.
        ("const os = require('os'); os.setPriority(os.getPriority() - 1)", "Error [EPERM]: setpriority EPERM"),
        # Natives syntax reaches V8 internals, and through them past every guard.
        ("require('v8').setFlagsFromString('--allow-natives-syntax')", "Error [EPERM]: setFlagsFromString EPERM"),
    ],
)
def test_apis_that_reach_other_processes_are_refused(client: PoolClient, victim: int, code: str, message: str) -> None:
    priority = os.getpriority(os.PRIO_PROCESS, victim)
    body = client.run(new_identifier(), code.replace("VICTIM", str(victim)))
    assert body["status"] == STATUS_FAILED
    assert body["error"]["error"]["message"] == message
    assert not wait_until(lambda: not process_alive(victim), KILLED_WITHIN_SECONDS), "the victim was signalled"
    assert os.getpriority(os.PRIO_PROCESS, victim) == priority


def test_a_session_may_lower_its_own_priority(client: PoolClient) -> None:
    code = "const os = require('os'), lower = os.getPriority() + 1; os.setPriority(lower); os.getPriority() === lower"
    assert client.run(new_identifier(), code)["result"]["executionResult"] == "true"


def test_server_environment_is_not_visible(client: PoolClient) -> None:
    body = client.run(new_identifier(), "Object.keys(process.env).sort().join(',')")
    # PWD is bubblewrap's (/mnt/data); nothing of the server's environment.
    assert body["result"]["executionResult"] == "HOME,LANG,PATH,PWD,TMPDIR"


def test_endless_loop_times_out_restarts_and_never_blocks_other_sessions(client: PoolClient, pool: LocalPool) -> None:
    looping = new_identifier("loop")
    assert client.run(looping, "var before = 'set'; before")["result"]["executionResult"] == "set"
    old_pid, _ = host_facts(pool, looping)

    outcome: dict[str, Any] = {}

    def spin() -> None:
        with PoolClient(pool.endpoint) as spinner:
            outcome["reply"] = spinner.execute(looping, "while (true) {}", timeoutInSeconds=LOOP_TIMEOUT_SECONDS)

    spinner_thread = threading.Thread(target=spin)
    with Bystander(pool.endpoint) as bystander:
        started = time.monotonic()
        spinner_thread.start()
        assert wait_until(lambda: bystander.answers >= 3, LOOP_TIMEOUT_SECONDS / 2)
        assert spinner_thread.is_alive(), "the loop should still be running while the bystander answers"
        spinner_thread.join(timeout=LOOP_TIMEOUT_SECONDS + 10)
        elapsed = time.monotonic() - started
    reply = outcome["reply"]
    assert reply.status_code == requests.codes.ok
    body = reply.json()
    assert body["status"] == STATUS_FAILED
    assert body["error"]["error"]["code"] == "ExecutionTimeout"
    assert f"within its timeout of {LOOP_TIMEOUT_SECONDS} s" in body["error"]["error"]["message"]
    assert "lost" in body["error"]["error"]["message"]
    assert body["error"]["error"]["message"] in body["result"]["stderr"]
    assert LOOP_TIMEOUT_SECONDS <= elapsed < LOOP_TIMEOUT_SECONDS + 3
    assert body["result"]["executionTimeInMilliseconds"] >= LOOP_TIMEOUT_SECONDS * 1000

    # The session restarted: a new process, and the earlier state is gone.
    after = client.run(looping, "typeof before")
    assert after["status"] == STATUS_SUCCEEDED
    assert after["result"]["executionResult"] == "undefined"
    assert host_facts(pool, looping)[0] != old_pid
    assert not process_alive(old_pid)


def test_memory_bomb_is_contained(client: PoolClient) -> None:
    identifier = new_identifier("bomb")
    bomb = "const hoard = []; while (true) { hoard.push(new Array(1e5).fill(Math.random())); }"
    with Bystander(client.endpoint) as bystander:
        body = client.run(identifier, bomb, timeoutInSeconds=30)
        assert bystander.answers > 0, "the bystander should have answered while the bomb went off"
    assert body["status"] == STATUS_FAILED
    assert body["error"]["error"]["code"] == "InterpreterCrashed"
    message = body["error"]["error"]["message"]
    assert f"ran out of memory (the JavaScript heap is capped at {SESSION_HEAP_MB} MB" in message
    # The same session gets a fresh process.
    assert client.run(identifier, "1 + 1")["result"]["executionResult"] == "2"


def test_memory_outside_the_heap_is_capped(client: PoolClient) -> None:
    # allocUnsafe does not touch its pages, so only the address-space limit can refuse 3 GiB.
    body = client.run(new_identifier(), "Buffer.allocUnsafe(3 * 1024 ** 3).length")
    assert body["status"] == STATUS_FAILED
    assert body["error"]["error"]["message"].startswith("RangeError")


def test_process_exit_is_reported_and_the_session_recovers(client: PoolClient) -> None:
    identifier = new_identifier()
    body = client.run(identifier, "process.exit(3)")
    assert body["status"] == STATUS_FAILED
    assert body["error"]["error"]["code"] == "InterpreterCrashed"
    assert "exited with code 3" in body["error"]["error"]["message"]
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
    with Bystander(client.endpoint):
        body = client.run(new_identifier(), code)
    assert body["status"] == STATUS_SUCCEEDED
    assert len(body["result"][stream]) == OUTPUT_STREAM_MAX_CHARS


@pytest.mark.parametrize("fd", [1, 2])
def test_a_session_flooding_its_output_after_returning_is_bounded(client: PoolClient, pool: LocalPool, fd: int) -> None:
    identifier = new_identifier("flood")
    write = f"require('fs').writeSync({fd}, JSON.stringify({{ x: 'a'.repeat(4000) }}) + '\\n')"
    flood = f"setInterval(() => {{ for (let i = 0; i < 100; i++) try {{ {write}; }} catch {{}} }}, 0); 'flooding'"
    try:
        with Bystander(client.endpoint) as bystander:
            before = _resident_bytes()
            assert client.run(identifier, flood)["result"]["executionResult"] == "flooding"
            answered = bystander.answers
            time.sleep(FLOOD_SECONDS)
            grown = _resident_bytes() - before
            assert wait_until(lambda: bystander.answers > answered, REQUEST_TIMEOUT_SECONDS), (
                "the bystander should have answered during the flood"
            )
            # The flooding session itself still gets its answers.
            assert client.run(identifier, "'answered'")["result"]["executionResult"] == "answered"
        assert grown < FLOOD_MAX_GROWTH_BYTES
    finally:
        # Left alone, the flood keeps both cores busy until the cooldown, under every later test.
        pool.manager.delete(identifier)


def test_a_session_writing_past_a_pipes_worth_between_executions_still_answers(client: PoolClient) -> None:
    # Nobody reads a session's stdout between its executions: a timer writing 1 MiB to fd 1 fills the pipe
    # (Node.js keeps fd 1 non-blocking, so its later writes fail with EAGAIN) and the next execution drains it.
    identifier = new_identifier("between")
    write = "try { require('fs').writeSync(1, 'x'.repeat(16384)); done += 1 } catch { failed += 1 }"
    later = (
        "setTimeout(() => { let done = 0, failed = 0; "
        f"for (let i = 0; i < 64; i++) {{ {write} }} globalThis.wrote = done + failed; }}, 0); 'scheduled'"
    )
    assert client.run(identifier, later)["result"]["executionResult"] == "scheduled"
    time.sleep(0.3)
    body = client.run(identifier, "globalThis.wrote", timeoutInSeconds=HOSTILE_TIMEOUT_SECONDS)
    assert body["status"] == "Succeeded", body
    assert body["result"]["executionResult"] == "64"
    assert client.run(identifier, "'still answering'")["result"]["executionResult"] == "still answering"


def test_output_without_a_newline_does_not_hide_the_reply(client: PoolClient) -> None:
    code = "require('fs').writeSync(1, 'no newline, then the reply'); 'genuine'"
    body = client.run(new_identifier(), code, timeoutInSeconds=HOSTILE_TIMEOUT_SECONDS)
    assert body["status"] == STATUS_SUCCEEDED
    assert body["result"]["executionResult"] == "genuine"


@pytest.mark.parametrize(
    "code",
    [
        "throw { get stack() { throw new Error('x'); } }",
        "throw new Proxy({}, { has() { throw 1; } })",
        "Promise.reject({ name: 'E', get stack() { throw new Error('x'); } })",
    ],
)
def test_an_error_that_cannot_be_described_is_answered_at_once(client: PoolClient, code: str) -> None:
    body = client.run(new_identifier(), code, timeoutInSeconds=HOSTILE_TIMEOUT_SECONDS)
    assert body["status"] == STATUS_FAILED
    assert body["error"]["error"] == {
        "code": "ExecutionError",
        "message": "Error: a thrown value that could not be described",
    }


REALM = "process.constructor.constructor('return this')()"


@pytest.mark.parametrize(
    "tamper",
    [
        # The runner's realm is reachable from the session; its JSON writes the protocol messages.
        f"const realJson = {REALM}.JSON; const stringify = realJson.stringify;"
        ' realJson.stringify = (value) => stringify(value).replace(/"durationMs":[^,}}]+/, \'"durationMs":1e400\');',
        f"{REALM}.Object.prototype.toJSON = () => ({{ type: 'result', durationMs: 1e400 }});",
        "require('fs').writeSync = () => 0; process.stdout.write = () => true;",
    ],
)
def test_tampering_with_the_runner_does_not_break_its_replies(client: PoolClient, tamper: str) -> None:
    identifier = new_identifier()
    first = client.execute(identifier, tamper + " 'tampered'", timeoutInSeconds=HOSTILE_TIMEOUT_SECONDS)
    assert first.status_code == requests.codes.ok, first.text
    assert first.json()["result"]["executionResult"] == "tampered"
    second = client.execute(identifier, "'still answering'", timeoutInSeconds=HOSTILE_TIMEOUT_SECONDS)
    assert second.status_code == requests.codes.ok, second.text
    assert second.json()["result"]["executionResult"] == "still answering"


# Forges a reply with an unusable duration: the frame marker and the pending request's id are
# both in the runner's heap, so a determined session can find them (each is 32 hex digits).
FORGE_A_REPLY = """
const chunks = [];
const snapshot = require('v8').getHeapSnapshot();
snapshot.on('data', (chunk) => chunks.push(chunk));
new Promise((resolve) => snapshot.on('end', resolve)).then(() => {
  const hex = [...new Set(Buffer.concat(chunks).toString().match(/"[0-9a-f]{32}"/g))].map((s) => s.slice(1, -1));
  for (const marker of hex) {
    for (const id of hex) {
      const forged = { type: 'result', id, stdout: '', stderr: '', result: '', error: null, durationMs: 'DURATION' };
      require('fs').writeSync(1, marker + JSON.stringify(forged).replace('"DURATION"', '1e400') + '\\n');
    }
  }
});
"""


def test_a_malformed_reply_restarts_the_session_instead_of_failing_the_request(client: PoolClient) -> None:
    identifier = new_identifier()
    client.run(identifier, "var before = 'set'")
    reply = client.execute(identifier, FORGE_A_REPLY, timeoutInSeconds=HOSTILE_TIMEOUT_SECONDS)
    assert reply.status_code == requests.codes.ok, reply.text
    body = reply.json()
    assert body["status"] == STATUS_FAILED
    assert body["error"]["error"]["code"] == "InterpreterCrashed"
    assert "answered with a reply with missing, mistyped or out-of-range fields" in body["error"]["error"]["message"]
    assert client.run(identifier, "typeof before")["result"]["executionResult"] == "undefined"


def test_file_size_is_capped(client: PoolClient) -> None:
    """One file stops one byte past the session's whole disk limit (RLIMIT_FSIZE), and that ends the session."""
    identifier = new_identifier()
    code = f"""
        const fs = require('fs');
        try {{ fs.writeFileSync('big.bin', Buffer.alloc({SESSION_FILE_SIZE_BYTES} + 2)); 'written' }}
        catch (e) {{ e.code + ' ' + fs.statSync('big.bin').size }}
    """
    body = client.run(identifier, code)
    assert body["status"] == STATUS_FAILED
    assert body["error"]["error"]["code"] == "SessionDiskLimitExceeded", body
    assert body["result"]["executionResult"] == f"EFBIG {SESSION_FILE_SIZE_BYTES + 1}", body
    assert client.run(identifier, "require('fs').existsSync('big.bin')")["result"]["executionResult"] == "false"


SESSION_FILE_SIZE_BYTES = SandboxLimits().disk_bytes


def test_a_breach_found_by_the_periodic_check_after_the_answer_still_fails_the_execution(
    pool: LocalPool, client: PoolClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The periodic disk check can end a session after the interpreter answered and before the server
    checks the disk itself (a race seen in CI, 1 in 45 under load); here it is made to happen every time."""
    identifier = new_identifier()
    answered = Interpreter.execute
    checked: list[bool] = []

    def answer_then_periodic_check(self: Interpreter, *args: Any, **kwargs: Any) -> Any:
        # Found before the code runs: the pool's own periodic check may end the session first (then
        # this one finds it ended, and the order under test is the same).
        session = pool.manager.find(identifier)
        assert session is not None
        outcome = answered(self, *args, **kwargs)
        pool.manager.end_if_over_disk_limit(session)
        checked.append(session.ended)
        return outcome

    monkeypatch.setattr(Interpreter, "execute", answer_then_periodic_check)
    body = client.run(
        identifier, f"require('fs').writeFileSync('big.bin', Buffer.alloc({SESSION_FILE_SIZE_BYTES} + 1))"
    )
    assert checked == [True], "the periodic check did not run, or did not end the session, before the answer"
    assert body["status"] == STATUS_FAILED, body
    assert body["error"]["error"]["code"] == "SessionDiskLimitExceeded", body


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
    assert reply.status_code == requests.codes.ok
    assert reply.json()["result"]["executionResult"] == "1"


def test_chunked_body_is_read_and_bounded_and_a_missing_body_is_400(pool: LocalPool) -> None:
    body = b'{"code": "6 * 7"}'
    framed = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    chunked = raw_request(pool.host, pool.port, _execution_head(pool, "Transfer-Encoding: chunked"), framed)
    assert chunked.status == requests.codes.ok
    assert chunked.body["result"]["executionResult"] == "42"
    size = MAX_REQUEST_BODY_BYTES + 1
    huge = f"{size:x}\r\n".encode() + b" " * size + b"\r\n0\r\n\r\n"
    refused = raw_request(pool.host, pool.port, _execution_head(pool, "Transfer-Encoding: chunked"), huge)
    assert refused.status == requests.codes.request_entity_too_large
    lengthless = raw_request(pool.host, pool.port, _execution_head(pool, "Content-Type: application/json"))
    assert lengthless.status == requests.codes.bad_request
    assert lengthless.body["error"]["code"] == "InvalidRequestBody"
