"""The local pool's HTTP server under hostile clients: slow requests (slowloris), too many connections,
clients that leave mid-answer, and a process out of file descriptors.

Everything is real sockets on 127.0.0.1. Limits are set small per test (HttpLimits) so that each bound is
reached in about a second; every loop is bounded and every socket and pool is closed by the test.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from localpool.constants import BASE_PATH
from localpool.node import find_node
from localpool.sandbox import Sandbox, SandboxLimits
from localpool.server import HttpLimits, PoolServer
from localpool.sessions import SessionManager
from localpool.tls import make_self_signed, server_context
from tests.support.localpool_helpers import (
    TOKEN,
    PoolClient,
    cli_pool,
    new_identifier,
    raw_request,
    stop_and_read_stderr,
    wait_until,
)

HOST = "127.0.0.1"
# Small limits so each test reaches them quickly; the per-read timeout stays long, so only the
# deadline under test can end a connection.
HEAD_DEADLINE = 1.0
BODY_DEADLINE = 1.0
LONG_READ_TIMEOUT = 60.0
# A slow client sends one header line (or body byte) this often: far below the per-read timeout.
DRIP_SECONDS = 0.2
# How many drips a test sends at most before concluding the connection is kept open for ever.
MAX_DRIPS = 25
# How late after its deadline a connection may be cut (thread wake-up on a loaded 2-core machine).
CUT_SLACK_SECONDS = 1.5
# How long to wait for the rest of an answer once its first bytes arrived.
ANSWER_READ_SECONDS = 5.0
SMALL_CAP = 8
# How long the thread of a connection that gave back its place may take to end.
THREADS_END_SECONDS = 2.0
HELLO = "'hello, ' + 'world'"
HELLO_RESULT = "hello, world"


@contextlib.contextmanager
def http_pool(limits: HttpLimits, *, tls_dir: Path | None = None) -> Iterator[PoolServer]:
    """A PoolServer with the given limits and real sandboxed sessions, served in a thread; closed afterwards."""
    sandbox = Sandbox(limits=SandboxLimits(), egress=False, enabled=True)
    runtime = find_node(None)
    sandbox.check()
    manager = SessionManager(runtime, max_sessions=4, cooldown_seconds=60.0, sandbox=sandbox, prewarm=False)
    context = None
    if tls_dir is not None:
        context = server_context(*make_self_signed(tls_dir))
    server = PoolServer(
        (HOST, 0), manager, token=TOKEN, quiet=True, loopback_only=True, ssl_context=context, limits=limits
    )
    thread = threading.Thread(target=server.serve_forever, name="test-http-pool", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        manager.close()
        server.server_close()


def endpoint(server: PoolServer) -> str:
    """The pool management endpoint of an http_pool."""
    return f"http://{HOST}:{server.server_address[1]}{BASE_PATH}"


def request_head(port: int) -> list[bytes]:
    """A valid request head for the metadata operation, one line per item (without the blank line)."""
    return [
        f"GET {BASE_PATH}/metadata?api-version=2025-02-02-preview HTTP/1.1\r\n".encode(),
        f"Host: {HOST}:{port}\r\n".encode(),
        f"Authorization: Bearer {TOKEN}\r\n".encode(),
    ]


def closed_by_server(connection: socket.socket) -> bytes | None:
    """What the server sent before closing, or None while nothing has arrived (no wait).

    Once anything has arrived, read on until the server closes (an answer and its FIN may arrive apart).
    """
    if not select.select([connection], [], [], 0)[0]:
        return None
    connection.settimeout(ANSWER_READ_SECONDS)
    received = b""
    while True:
        try:
            chunk = connection.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return received
        if not chunk:
            return received
        received += chunk


def drip_until_closed(connection: socket.socket, drip: Callable[[int], bytes] | None) -> tuple[bytes | None, float]:
    """Send drip(n) every DRIP_SECONDS (nothing when drip is None) until the server closes the connection,
    at most MAX_DRIPS times: (what the server sent, or None if it never closed; seconds from the call)."""
    started = time.monotonic()
    outcome = None
    for number in range(MAX_DRIPS):
        time.sleep(DRIP_SECONDS)
        outcome = closed_by_server(connection)
        if outcome is not None:
            break
        if drip is not None:
            with contextlib.suppress(OSError):
                connection.sendall(drip(number))
    return outcome, time.monotonic() - started


def hello_world(server_endpoint: str, token: str = TOKEN) -> tuple[float, dict[str, object]]:
    """Run hello-world in a new session on a new connection; (seconds taken, execution resource)."""
    started = time.monotonic()
    with PoolClient(server_endpoint, token) as client:
        body = client.run(new_identifier("hello"), HELLO)
    return time.monotonic() - started, body


def handler_threads() -> int:
    """Threads of this process that serve a connection (socketserver names them after their target)."""
    return sum(1 for thread in threading.enumerate() if thread.name.endswith("(process_request_thread)"))


# -- deadlines ---------------------------------------------------------------------------------------


def test_a_slowly_dripped_request_head_is_cut_at_the_head_deadline() -> None:
    limits = HttpLimits(head_deadline_seconds=HEAD_DEADLINE, read_timeout_seconds=LONG_READ_TIMEOUT)
    with http_pool(limits) as server, socket.create_connection((HOST, server.server_address[1])) as slow:
        port = server.server_address[1]
        slow.sendall(request_head(port)[0])
        outcome, elapsed = drip_until_closed(slow, lambda number: f"X-Drip-{number}: 1\r\n".encode())
        assert outcome is not None, f"the slow request head was still open after {elapsed:.1f} s"
        assert outcome == b"", f"a cut request head gets no answer, got {outcome[:200]!r}"
        assert HEAD_DEADLINE - DRIP_SECONDS <= elapsed <= HEAD_DEADLINE + CUT_SLACK_SECONDS, elapsed
        # The server still answers a client that sends its request at once.
        assert raw_request(HOST, port, "".join(line.decode() for line in request_head(port)).rstrip()).status == 200


def test_a_slowly_dripped_body_is_answered_408_at_the_body_deadline() -> None:
    limits = HttpLimits(
        body_deadline_seconds=BODY_DEADLINE, body_min_bytes_per_second=1e9, read_timeout_seconds=LONG_READ_TIMEOUT
    )
    with http_pool(limits) as server, socket.create_connection((HOST, server.server_address[1])) as slow:
        port = server.server_address[1]
        head = (
            f"POST {BASE_PATH}/executions?api-version=2024-10-02-preview&identifier={new_identifier()} HTTP/1.1\r\n"
            f"Host: {HOST}:{port}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n"
        )
        slow.sendall(head.encode() + b'{"code": "')
        outcome, elapsed = drip_until_closed(slow, lambda _: b" ")
        assert outcome is not None, f"the slow body was still being read after {elapsed:.1f} s"
        assert outcome.startswith(b"HTTP/1.1 408 "), outcome[:200]
        assert b"x-ms-error-code: RequestTimeout" in outcome and b'"code": "RequestTimeout"' in outcome, outcome
        assert BODY_DEADLINE - DRIP_SECONDS <= elapsed <= BODY_DEADLINE + CUT_SLACK_SECONDS, elapsed


def test_a_tls_handshake_that_never_comes_is_cut_at_the_head_deadline(tmp_path: Path) -> None:
    limits = HttpLimits(head_deadline_seconds=HEAD_DEADLINE, read_timeout_seconds=LONG_READ_TIMEOUT)
    with (
        http_pool(limits, tls_dir=tmp_path) as server,
        socket.create_connection((HOST, server.server_address[1])) as mute,
    ):
        outcome, elapsed = drip_until_closed(mute, None)
        assert outcome is not None, f"a connection without a TLS handshake was still open after {elapsed:.1f} s"
        assert elapsed <= HEAD_DEADLINE + CUT_SLACK_SECONDS, elapsed
        # A real TLS client is still served.
        context = ssl.create_default_context(cafile=str(tmp_path / "localpool-cert.pem"))
        with (
            socket.create_connection((HOST, server.server_address[1])) as plain,
            context.wrap_socket(plain, server_hostname="localhost") as secure,
        ):
            secure.sendall(b"".join(request_head(server.server_address[1])) + b"\r\n")
            assert secure.recv(65536).startswith(b"HTTP/1.1 200 ")


# -- the connection cap ------------------------------------------------------------------------------


def open_slow_connections(port: int, count: int) -> list[socket.socket]:
    """count connections that each sent the first line of a request and nothing more."""
    connections = []
    try:
        for _ in range(count):
            connection = socket.create_connection((HOST, port), timeout=LONG_READ_TIMEOUT)
            connections.append(connection)
            connection.sendall(request_head(port)[0])
    except BaseException:
        for connection in connections:
            connection.close()
        raise
    return connections


def assert_within_the_cap(server: PoolServer, threads_before: int) -> None:
    """At most SMALL_CAP connections hold a place now, and the threads of the others have ended (a
    thread that has just given back its place may still be on its way out: given a moment)."""
    assert len(server.places) <= SMALL_CAP, f"{len(server.places)} connections hold a place"
    assert wait_until(lambda: handler_threads() - threads_before <= SMALL_CAP, THREADS_END_SECONDS), (
        f"{handler_threads() - threads_before} connections served"
    )


def test_the_connection_cap_holds_and_hello_world_still_gets_through() -> None:
    limits = HttpLimits(max_connections=SMALL_CAP, evictable_after_seconds=0.5, read_timeout_seconds=LONG_READ_TIMEOUT)
    with http_pool(limits) as server:
        port = server.server_address[1]
        before = handler_threads()
        slow = open_slow_connections(port, SMALL_CAP * 5)
        try:
            time.sleep(limits.evictable_after_seconds + 0.5)  # every slow connection is now evictable
            assert_within_the_cap(server, before)
            seconds, body = hello_world(endpoint(server))
            assert body["status"] == "Succeeded" and body["result"]["executionResult"] == HELLO_RESULT, body
            assert_within_the_cap(server, before)
            # Far below the deadlines and the per-read timeout: no waiting for a slow client's place.
            assert seconds < limits.head_deadline_seconds, seconds
        finally:
            for connection in slow:
                connection.close()


def test_over_the_cap_with_nobody_to_evict_the_answer_is_503_with_retry_after() -> None:
    limits = HttpLimits(
        max_connections=SMALL_CAP, evictable_after_seconds=LONG_READ_TIMEOUT, read_timeout_seconds=LONG_READ_TIMEOUT
    )
    with http_pool(limits) as server:
        port = server.server_address[1]
        slow = open_slow_connections(port, SMALL_CAP)
        try:
            refused = raw_request(HOST, port, "".join(line.decode() for line in request_head(port)).rstrip())
        finally:
            for connection in slow:
                connection.close()
        assert refused.status == 503, refused
        assert refused.headers.get("retry-after") == "1", refused.headers
        assert refused.body["error"]["code"] == refused.headers.get("x-ms-error-code") == "ServiceUnavailable"
        # The places come back once the slow clients leave.
        _, body = hello_world(endpoint(server))
        assert body["result"]["executionResult"] == HELLO_RESULT, body


# -- clients that leave, and a process out of descriptors (a real `python -m localpool`) ----------------


def send_and_leave(port: int, request: bytes) -> None:
    """Send a whole request and close at once, before the answer comes."""
    with socket.create_connection((HOST, port)) as connection:
        connection.sendall(request)


def test_an_answer_the_client_stops_reading_is_abandoned_with_nothing_after_it(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # A download the client stops reading: once a write times out the answer is given up and the connection
    # closed; nothing (no 408, no repeated head) follows the part already sent, and nothing is printed.
    write_timeout = 1.0
    with http_pool(HttpLimits(read_timeout_seconds=write_timeout)) as server:
        identifier = new_identifier("unread")
        with PoolClient(endpoint(server)) as client:
            client.run(identifier, "require('fs').writeFileSync('big', Buffer.alloc(64 << 20, 120)); 'written'")
        port = server.server_address[1]
        target = f"{BASE_PATH}/files/big/content?api-version=2024-10-02-preview&identifier={identifier}"
        with socket.socket() as connection:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            connection.connect((HOST, port))
            connection.sendall(
                f"GET {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
            )
            # Past the first write's timeout, while the server would write whatever comes next: then read it all.
            time.sleep(write_timeout * 1.5)
            connection.settimeout(ANSWER_READ_SECONDS)
            received = bytearray()
            with contextlib.suppress(ConnectionResetError, TimeoutError):
                while chunk := connection.recv(1 << 20):
                    received += chunk
        head, _, body = bytes(received).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK"), head[:200]
        assert 0 < len(body) < 64 << 20
        assert body == b"x" * len(body)  # the file's bytes and nothing else: no 408, no head sent again
        assert_still_answering = hello_world(endpoint(server))[1]
        assert assert_still_answering["result"]["executionResult"] == HELLO_RESULT
    assert "Traceback" not in capfd.readouterr().err


def test_a_client_that_leaves_mid_answer_leaves_no_traceback() -> None:
    with cli_pool("--token", TOKEN, "--no-prewarm") as running:
        port = int(running.endpoint.split(":")[2].split("/")[0])
        host = f"Host: {HOST}:{port}\r\n"
        requests_that_leave = [
            # an error answer (401) written to a client that is gone
            f"GET {BASE_PATH}/metadata?api-version=2025-02-02-preview HTTP/1.1\r\n{host}\r\n".encode(),
            # a protocol error answered by http.server itself (400)
            b"NONSENSE\r\n\r\n",
            # a whole answer (200) to a client that is gone
            b"".join(request_head(port)) + b"\r\n",
        ]
        for _ in range(10):
            for request in requests_that_leave:
                send_and_leave(port, request)
        # Still serving, and the pool's stderr is clean.
        _, body = hello_world(running.endpoint)
        assert body["result"]["executionResult"] == HELLO_RESULT, body
        stderr = stop_and_read_stderr(running)
    assert "Traceback" not in stderr, stderr[-3000:]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Descriptors left to the pool above those it has open when the limit is lowered.
SPARE_DESCRIPTORS = 30
ATTACKING_CONNECTIONS = 100
STARVED_WINDOW_SECONDS = 2.0
# Out of descriptors, the pool may use at most this share of a core (a busy accept loop uses all of one).
MAX_STARVED_CPU_SHARE = 0.25


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs Linux prlimit")
def test_out_of_descriptors_the_pool_backs_off_and_recovers_when_connections_close() -> None:
    with cli_pool("--token", TOKEN, "--no-prewarm") as running:
        pid = running.process.pid
        port = int(running.endpoint.split(":")[2].split("/")[0])
        open_now = len(os.listdir(f"/proc/{pid}/fd"))
        _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        # As `prlimit --pid $POOL --nofile=...` does to a running pool: far fewer than its connection cap.
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (open_now + SPARE_DESCRIPTORS, hard))
        attackers = []
        try:
            for _ in range(ATTACKING_CONNECTIONS):
                attackers.append(socket.create_connection((HOST, port), timeout=5))
            time.sleep(0.5)  # the pool has used its descriptors up; the rest wait in the listen queue
            used_before = cpu_seconds(pid)
            time.sleep(STARVED_WINDOW_SECONDS)
            share = (cpu_seconds(pid) - used_before) / STARVED_WINDOW_SECONDS
            assert share <= MAX_STARVED_CPU_SHARE, f"out of descriptors the pool used {share:.0%} of a core"
        finally:
            for connection in attackers:
                connection.close()
        _, body = hello_world(running.endpoint)
        assert body["result"]["executionResult"] == HELLO_RESULT, body
        stderr = stop_and_read_stderr(running)
    assert "cannot accept connections" in stderr, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
