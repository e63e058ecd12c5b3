"""Helpers for the local pool's tests: a small HTTP client, raw-socket requests and CLI runners.

Everything talks real HTTP to 127.0.0.1; nothing is patched.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from localpool import LocalPool
from localpool.constants import BASE_PATH, ENDPOINT_LINE_PREFIX
from localpool.process import RunningPool, local_pool_process
from smoke.protocol import (
    API_2024_02,
    API_2024_10,
    CODE_EXECUTE_PATH,
    EXECUTIONS_PATH,
    PENDING_STATUSES,
    STATUS_SUCCEEDED,
)
from tests.support import dataplane_schema

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = PROJECT_ROOT / "tests" / "data"
TOKEN = "local-test-token"  # a throwaway token for the local pool under test
# Recorded responses (tests/data, see SOURCES.md there).
LEGACY_RESPONSE_FILE = (
    "docs__MicrosoftDocs_azure-docs__sessions-tutorial-nodejs__code-execute_2024-02-02-preview_response.json"
)
SPEC_2024_10_SYNC_FILE = (
    "data-plane__Microsoft.App.DynamicSessions__2024-10-02-preview__examples__CodeExecution_Execute_Sync.json"
)
SPEC_2025_10_SYNC_FILE = (
    "data-plane__Microsoft.App.DynamicSessions__2025-10-02-preview__examples__CodeExecution_Execute_Sync.json"
)
ENDPOINT_LINE = re.compile(rf"^{re.escape(ENDPOINT_LINE_PREFIX)}(https?://127\.0\.0\.1:(\d+){re.escape(BASE_PATH)})$")
# Generous bounds for a loaded 2-core machine; the tests assert far tighter facts than these.
REQUEST_TIMEOUT_SECONDS = 30.0
CLI_START_TIMEOUT_SECONDS = 15.0
POLL_INTERVAL_SECONDS = 0.05
# A bystander session must answer well within this while a hostile one runs (a warm round trip is ~ms).
PROMPT_ANSWER_SECONDS = 0.5

# Room for every identifier one module's tests open, well above the CLI's default of 5.
MODULE_POOL_MAX_SESSIONS = 64


def load_data(name: str) -> dict[str, Any]:
    """A recorded response kept in tests/data."""
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


def new_identifier(prefix: str = "t") -> str:
    """A fresh, valid session identifier."""
    return f"{prefix}-{uuid.uuid4()}"


def check_answer(response: requests.Response, *_args: Any, **_kwargs: Any) -> requests.Response:
    """Assert that a local pool's answer is what Azure's document of its api-version allows.

    An operation the document has is validated with tests/support/dataplane_schema.py (body, status,
    headers); anything else (unknown path or api-version, protocol errors) must be an error in
    Azure.Core's shape with a matching x-ms-error-code. Used as a requests response hook, so every
    answer a test sees through checked_session() or PoolClient is checked.
    """
    url = urlsplit(response.request.url or "")
    method = response.request.method or "GET"
    api_version = (parse_qs(url.query).get("api-version") or [""])[0]
    below = url.path[len(BASE_PATH) :] if url.path.startswith(BASE_PATH + "/") else None
    documented = below is not None and api_version in dataplane_schema.supported_versions()
    if documented:
        try:
            dataplane_schema.find_operation(api_version, method, below)
        except AssertionError:
            documented = False
    if not documented:
        _check_error_shape(response)
        return response
    content_type = response.headers.get("Content-Type", "")
    if not response.content:
        body: Any = None
    elif content_type.startswith("application/json"):
        body = response.json()
    elif content_type.startswith("text/"):
        body = response.text
    else:
        body = response.content
    dataplane_schema.validate_response(api_version, method, below, response.status_code, dict(response.headers), body)
    return response


def _check_error_shape(response: requests.Response) -> None:
    assert response.status_code >= 400, f"an undocumented request was answered {response.status_code}"
    error = response.json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str), error
    assert response.headers.get("x-ms-error-code") == error["code"], response.headers


def checked_session() -> requests.Session:
    """A requests session whose every answer goes through check_answer."""
    http = requests.Session()
    http.hooks["response"].append(check_answer)
    return http


class PoolClient:
    """A minimal data-plane client for tests (keep-alive session, bearer token); every answer is
    checked against Azure's document of its api-version (check_answer)."""

    def __init__(self, endpoint: str, token: str | None = TOKEN) -> None:
        """Talk to the pool at endpoint, sending token as the bearer token (None: no header)."""
        self.endpoint = endpoint
        self.http = checked_session()
        if token is not None:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def legacy(self, identifier: str, code: str, **properties: Any) -> requests.Response:
        """POST /code/execute (2024-02-02-preview) with the tutorial's body."""
        body = {"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": code, **properties}}
        return self.http.post(
            self.endpoint + CODE_EXECUTE_PATH,
            params={"api-version": API_2024_02, "identifier": identifier},
            json=body,
            timeout=REQUEST_TIMEOUT_SECONDS,
        )

    def execute(
        self, identifier: str, code: str, *, api_version: str = API_2024_10, **fields: Any
    ) -> requests.Response:
        """POST /executions with {"code": code, **fields}."""
        return self.http.post(
            self.endpoint + EXECUTIONS_PATH,
            params={"api-version": api_version, "identifier": identifier},
            json={"code": code, **fields},
            timeout=REQUEST_TIMEOUT_SECONDS,
        )

    def run(self, identifier: str, code: str, **fields: Any) -> dict[str, Any]:
        """Execute synchronously and return the execution resource (asserting HTTP 200, as documented)."""
        reply = self.execute(identifier, code, **fields)
        assert reply.status_code == requests.codes.ok, reply.text
        return reply.json()

    def poll(self, location: str, *, timeout: float = REQUEST_TIMEOUT_SECONDS) -> list[dict[str, Any]]:
        """GET endpoint + Operation-Location until the status is final; returns every state seen."""
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self.http.get(self.endpoint + location, timeout=REQUEST_TIMEOUT_SECONDS)
            assert reply.status_code == requests.codes.ok, reply.text
            seen.append(reply.json())
            if seen[-1]["status"] not in PENDING_STATUSES:
                return seen
            time.sleep(POLL_INTERVAL_SECONDS)
        raise AssertionError(f"the execution was still pending after {timeout} s: {seen[-1]}")

    def close(self) -> None:
        """Close the keep-alive connections."""
        self.http.close()

    def __enter__(self) -> PoolClient:
        """Use as a context manager that closes the connections."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the connections."""
        self.close()


class Bystander:
    """An innocent session that keeps answering while a hostile one runs in the same pool.

    Usage::

        with Bystander(pool.endpoint) as bystander:
            ...  # run the hostile code
            assert bystander.answers > 0  # optional: it answered while the hostile code ran

    On entering, the bystander sets some state in its own session and then asks for it again and
    again from a background thread (its own connection). On leaving without an exception it asks
    once more and asserts that every answer came within PROMPT_ANSWER_SECONDS and showed the state
    intact: the hostile session neither blocked, slowed nor touched it, during or after.
    """

    _STATE_CODE = "var bystanderState = 'intact'; bystanderState"
    _PROBE_CODE = "bystanderState"
    _EXPECTED = "intact"

    def __init__(self, endpoint: str) -> None:
        """Use the pool at endpoint with a session of its own."""
        self.identifier = new_identifier("bystander")
        self._client = PoolClient(endpoint)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._probe_until_stopped, name="bystander", daemon=True)
        # (seconds taken, execution result or a description of what went wrong) per probe.
        self._probes: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    @property
    def answers(self) -> int:
        """How many probes have been answered so far."""
        with self._lock:
            return len(self._probes)

    def _probe(self) -> None:
        asked = time.monotonic()
        try:
            body = self._client.run(self.identifier, self._PROBE_CODE)
            answer = body["result"]["executionResult"] if body["status"] == STATUS_SUCCEEDED else repr(body)
        except Exception as error:  # recorded, and reported by the assertion in __exit__
            answer = f"{type(error).__name__}: {error}"
        with self._lock:
            self._probes.append((time.monotonic() - asked, answer))

    def _probe_until_stopped(self) -> None:
        while not self._stop.is_set():
            self._probe()
            self._stop.wait(POLL_INTERVAL_SECONDS)

    def __enter__(self) -> Bystander:
        """Set the bystander's state and start probing it."""
        body = self._client.run(self.identifier, self._STATE_CODE)
        assert body["result"]["executionResult"] == self._EXPECTED, body
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Stop probing, probe once more afterwards and check every answer (unless the block failed)."""
        self._stop.set()
        self._thread.join(timeout=REQUEST_TIMEOUT_SECONDS)
        try:
            if exc_type is None:
                assert not self._thread.is_alive(), "the bystander's probe never returned"
                self._probe()
                with self._lock:
                    probes = list(self._probes)
                assert len(probes) >= 2, probes
                slow = [(round(seconds, 3), answer) for seconds, answer in probes if seconds >= PROMPT_ANSWER_SECONDS]
                wrong = [answer for _, answer in probes if answer != self._EXPECTED]
                assert not wrong, f"the bystander session was disturbed: {wrong[:3]}"
                assert not slow, f"the bystander session answered slowly: {slow[:3]}"
        finally:
            self._client.close()


@dataclass
class RawReply:
    """An HTTP response read straight off a socket."""

    status: int
    headers: dict[str, str]
    body: dict[str, Any]


def raw_request(host: str, port: int, head: str, body: bytes = b"") -> RawReply:
    """Send a hand-written request head (CRLF lines, no blank line) plus body; read the response."""
    with socket.create_connection((host, port), timeout=REQUEST_TIMEOUT_SECONDS) as connection:
        connection.sendall(head.encode() + b"\r\n\r\n" + body)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
        header_block, _, rest = received.partition(b"\r\n\r\n")
        lines = header_block.decode().split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = connection.recv(65536)
            if not chunk:
                break
            rest += chunk
    return RawReply(status=int(lines[0].split()[1]), headers=headers, body=json.loads(rest[:length]))


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll predicate until it is true or timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(POLL_INTERVAL_SECONDS)
    return predicate()


def host_facts(pool: LocalPool, identifier: str) -> tuple[int, Path]:
    """The host pid of the identifier's sandbox and its session directory on the host.

    Inside the sandbox, process.pid and process.cwd() are the namespace's own (e.g. 2, /mnt/data).
    """
    session = pool.manager.find(identifier)
    assert session is not None and session.interpreter is not None, f"no live sandbox for {identifier}"
    return session.interpreter.pid, session.workdir


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (and is not a zombie)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return False
    return "\nState:\tZ" not in status


def cli_command(*args: str) -> list[str]:
    """The argv of ``python -m localpool`` with args."""
    return [sys.executable, "-m", "localpool", *args]


def cli_env(**overrides: str) -> dict[str, str]:
    """The current environment plus overrides."""
    return {**os.environ, **overrides}


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m localpool`` to completion (for start-up failures)."""
    return subprocess.run(
        cli_command(*args),
        cwd=PROJECT_ROOT,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=CLI_START_TIMEOUT_SECONDS,
        check=False,
    )


@contextmanager
def cli_pool(*args: str) -> Iterator[RunningPool]:
    """Start ``python -m localpool --quiet ARGS`` and check the endpoint line it printed."""
    with local_pool_process("--quiet", *args, start_timeout=CLI_START_TIMEOUT_SECONDS) as running:
        assert ENDPOINT_LINE.match(running.first_line), f"unexpected first line: {running.first_line!r}"
        yield running


def stop_and_read_stderr(running: RunningPool) -> str:
    """Stop a pool started by cli_pool or local_pool_process (SIGTERM) and return all it wrote on stderr."""
    running.process.terminate()
    running.process.wait(timeout=REQUEST_TIMEOUT_SECONDS)
    assert running.process.stderr is not None
    return running.process.stderr.read()


# LOCALPOOL_ATTACKS_NO_SANDBOX=1 runs the attack tests' pools without bubblewrap, to see them fail
# without the sandbox.
SANDBOXED = os.environ.get("LOCALPOOL_ATTACKS_NO_SANDBOX") != "1"
# The disk limit of the attack tests' pools: small, so that filling it is quick.
SMALL_DISK_MB = 8
# How long a host listener waits for a connection the sandbox must not make.
NO_CONNECTION_SECONDS = 0.5


def no_connection(listener: socket.socket) -> bool:
    """Whether nothing connected to listener within its timeout (NO_CONNECTION_SECONDS for host_listener)."""
    try:
        connection, _ = listener.accept()
    except TimeoutError:
        return True
    connection.close()
    return False
