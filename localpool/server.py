"""The HTTP(S) front end of the local pool: auth, request bodies, and every data-plane operation of every
api-version, routed by localpool.wire (resolve -> handler) and answered with its builders."""

from __future__ import annotations

import contextlib
import errno
import functools
import hmac
import io
import ipaddress
import json
import math
import os
import re
import resource
import select
import shlex
import socket
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from localpool import wire
from localpool.constants import (
    ACCEPT_RETRY_SECONDS,
    BASE_PATH,
    CONNECTION_EVICTABLE_AFTER_SECONDS,
    CONNECTION_PLACE_WAIT_SECONDS,
    LISTEN_BACKLOG,
    LOCAL_POOL_NAME,
    MAX_CONNECTIONS,
    MAX_REQUEST_BODY_BYTES,
    OPERATION_ID_PATTERN,
    REQUEST_BODY_DEADLINE_SECONDS,
    REQUEST_BODY_MIN_BYTES_PER_SECOND,
    REQUEST_HEAD_DEADLINE_SECONDS,
    REQUEST_READ_TIMEOUT_SECONDS,
    RETRY_AFTER_SECONDS,
)
from localpool.files import receive_upload
from localpool.sessions import Execution, QueueFullError, Session, SessionLimitError, SessionManager
from localpool.wire import ContainerType, ExecutionOutput, ExecutionStatus, ExecutionType, WireError

# After refusing an unread body (413), keep reading and discarding for a little while before
# closing: closing a socket with unread data sends a TCP reset, which can destroy the 413 reply
# before the client reads it. Bounded in time and bytes, and nothing is kept.
LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 64 * 1024 * 1024
LINGER_CHUNK_BYTES = 64 * 1024
# Bodies are read and file contents written in pieces of this size.
IO_CHUNK_BYTES = 1024 * 1024
# A multipart upload body may exceed its file's size by the part headers and boundaries.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# A chunk-size line of a chunked body longer than this is refused (hex size plus extensions).
MAX_CHUNK_LINE_BYTES = 4096

_OPERATION_ID = re.compile(OPERATION_ID_PATTERN)
# accept() failing with these means the process (or system) is out of descriptors or buffers: the
# pending connection stays queued, so retrying at once would only spin.
_ACCEPT_STARVED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# A client that went away (or a connection cut by the server): nothing to answer, nothing to report.
_CLIENT_GONE = (ConnectionError, TimeoutError, ssl.SSLError)


@dataclass(frozen=True)
class HttpLimits:
    """How long and how many connections the server serves (defaults and reasons in constants.py)."""

    max_connections: int = MAX_CONNECTIONS
    head_deadline_seconds: float = REQUEST_HEAD_DEADLINE_SECONDS
    body_deadline_seconds: float = REQUEST_BODY_DEADLINE_SECONDS
    body_min_bytes_per_second: float = REQUEST_BODY_MIN_BYTES_PER_SECOND
    read_timeout_seconds: float = REQUEST_READ_TIMEOUT_SECONDS
    evictable_after_seconds: float = CONNECTION_EVICTABLE_AFTER_SECONDS

    def body_seconds(self, size: int) -> float:
        """The total time allowed for a body of size bytes."""
        return self.body_deadline_seconds + size / self.body_min_bytes_per_second


def connection_capacity(max_connections: int) -> int:
    """max_connections, lowered to half the open-files limit so that sockets alone cannot exhaust it."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    return max(1, min(max_connections, soft // 2))


class _Place:
    """One admitted connection: the socket to cut, since when its current request head or body has
    been arriving, and whether its thread is blocked reading from the client right now."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.accepted_at = time.monotonic()
        # The TLS handshake and the first request head count from the accept; a slow client cannot
        # reset this by sending a byte now and then.
        self.phase_started = self.accepted_at
        self.waiting = True
        self.evicted = False


class _Places:
    """The connection cap: a bounded number of places; when full, the longest wait on a client gives way."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._free = threading.BoundedSemaphore(capacity)
        self._lock = threading.Lock()
        self._taken: dict[int, _Place] = {}  # by id() of the accepted socket

    def admit(self, sock: socket.socket, evictable_after: float) -> bool:
        """Take a place for sock, evicting a waiting connection if need be; False if none can be had."""
        if not self._free.acquire(blocking=False):
            # An evicted connection's thread wakes at once (its socket is shut down) and frees its
            # place; without one to evict, an answer being sent may free one soon.
            self._evict_longest_waiting(evictable_after)
            if not self._free.acquire(timeout=CONNECTION_PLACE_WAIT_SECONDS):
                return False
        with self._lock:
            self._taken[id(sock)] = _Place(sock)
        return True

    def __len__(self) -> int:
        """How many places are taken."""
        with self._lock:
            return len(self._taken)

    def find(self, sock: socket.socket) -> _Place | None:
        """The place of an admitted socket."""
        with self._lock:
            return self._taken.get(id(sock))

    def release(self, sock: socket.socket) -> None:
        """Give back the place of sock (nothing if it never had one)."""
        with self._lock:
            place = self._taken.pop(id(sock), None)
        if place is not None:
            self._free.release()

    def start_waiting(self, place: _Place) -> None:
        """The connection's thread now blocks on its client (and may be evicted for a newcomer)."""
        with self._lock:
            place.waiting = True

    def stop_waiting(self, place: _Place) -> bool:
        """The read returned; True if the connection was evicted meanwhile."""
        with self._lock:
            place.waiting = False
            return place.evicted

    def _evict_longest_waiting(self, evictable_after: float) -> bool:
        """Cut the connection blocked on a request head or body that began longest ago (and at least
        evictable_after ago); a connection that is being answered is never cut."""
        oldest = time.monotonic() - evictable_after
        with self._lock:
            waiting = [p for p in self._taken.values() if p.waiting and not p.evicted]
            victim = min(waiting, key=lambda place: place.phase_started, default=None)
            if victim is None or victim.phase_started > oldest:
                return False
            _cut(victim)
        return True

    def cut_all(self) -> None:
        """End every connection (at server close: nobody waits for a slow client)."""
        with self._lock:
            for place in self._taken.values():
                _cut(place)


def _cut(place: _Place) -> None:
    """Shut a connection's socket down: its thread's blocked read returns and the thread ends."""
    place.evicted = True
    with contextlib.suppress(OSError):
        # socket.socket's own shutdown also for TLS: SSLSocket.shutdown would drop its SSL object
        # under the thread that is using it.
        socket.socket.shutdown(place.sock, socket.SHUT_RDWR)


class _ReadTimedOut(TimeoutError):
    """The request head or body did not arrive in time (a write that times out is a client gone instead)."""

    def __init__(self) -> None:
        super().__init__("The request did not arrive in time.")


class _DeadlineReader(io.RawIOBase):
    """The connection's bytes for the request parser, every read bounded by the current deadline.

    A socket timeout alone bounds each read; a client sending one byte just before it expires would
    keep its request open for ever. ``deadline`` (time.monotonic()) bounds the whole request head or
    body instead; past it a read raises _ReadTimedOut.
    """

    def __init__(self, sock: socket.socket, place: _Place, places: _Places, idle_seconds: float) -> None:
        super().__init__()
        self._sock = sock
        self._place = place
        self._places = places
        self._idle_seconds = idle_seconds
        self.deadline = place.accepted_at
        # A plain socket is waited on here and read from its descriptor: the socket's own timeout (kept for
        # writes) would cost two mode changes and a second poll per read. TLS reads go through the SSL object.
        self._poll: select.poll | None = None
        if not isinstance(sock, ssl.SSLSocket):
            self._poll = select.poll()
            self._poll.register(sock.fileno(), select.POLLIN)

    def readable(self) -> bool:
        return True

    def _wait(self) -> float:
        """Seconds the next read may wait: to the deadline, at most the per-read timeout."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _ReadTimedOut()
        return min(remaining, self._idle_seconds)

    def readinto(self, buffer: Any) -> int:
        wait = self._wait()
        self._places.start_waiting(self._place)
        try:
            if self._poll is not None:
                while True:
                    if not self._poll.poll(math.ceil(wait * 1000)):
                        raise _ReadTimedOut()
                    try:
                        received = os.readv(self._sock.fileno(), [buffer])
                        break
                    except BlockingIOError:  # readable, then nothing to read after all: wait again
                        wait = self._wait()
            else:
                self._sock.settimeout(wait)
                try:
                    received = self._sock.recv_into(buffer)
                except TimeoutError as error:
                    raise _ReadTimedOut() from error
                finally:
                    # Writes keep the per-operation timeout (a client that reads nothing of the answer).
                    self._sock.settimeout(self._idle_seconds)
        finally:
            evicted = self._places.stop_waiting(self._place)
        if evicted:
            raise ConnectionAbortedError("The connection was closed to make room for another.")
        return received


# The last Date header made, with its second (a tuple replaced whole: a reader sees a matching pair).
_date_of_second: tuple[int, str] = (-1, "")


def _echo(value: str) -> str:
    """A client-supplied value, shortened, for quoting in an error message."""
    return repr(value if len(value) <= wire.MAX_ECHOED_CHARS else value[: wire.MAX_ECHOED_CHARS] + "...")


class PoolServer(ThreadingHTTPServer):
    """A threaded HTTP server (one thread per connection, at most HttpLimits.max_connections) bound to a
    SessionManager."""

    daemon_threads = True
    # Tests and benchmarks start and stop pools quickly.
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        manager: SessionManager,
        *,
        token: str,
        quiet: bool,
        loopback_only: bool,
        ssl_context: ssl.SSLContext | None = None,
        limits: HttpLimits | None = None,
    ) -> None:
        """Bind to address (IPv6 when the host contains ':').

        loopback_only: answer only requests whose Host header names a loopback address (against
        DNS rebinding: a web page's own host name that resolves to 127.0.0.1 is refused).
        ssl_context: serve HTTPS with it (the TLS handshake runs in the connection's own thread, within
        the head deadline).
        limits: connection cap and deadlines (default: HttpLimits(), from constants.py).
        """
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.manager = manager
        self.token = token
        self.quiet = quiet
        self.loopback_only = loopback_only
        self.ssl_context = ssl_context
        self.container_type: ContainerType = manager.runtime.container_type
        self.started_at = datetime.now(UTC)
        self.limits = limits or HttpLimits()
        self.places = _Places(connection_capacity(self.limits.max_connections))
        self._serving = threading.local()  # the _Place of the connection a thread serves
        self._accept_starved = False
        super().__init__(address, PoolRequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept a connection; out of descriptors, wait a little first (the connection stays queued)."""
        try:
            accepted = super().get_request()
        except OSError as error:
            if error.errno in _ACCEPT_STARVED:
                if not self._accept_starved:
                    self._accept_starved = True
                    print(
                        f"localpool: cannot accept connections ({error.strerror}); retrying every "
                        f"{ACCEPT_RETRY_SECONDS:g} s until connections end.",
                        file=sys.stderr,
                        flush=True,
                    )
                time.sleep(ACCEPT_RETRY_SECONDS)
            raise
        if self._accept_starved:
            self._accept_starved = False
            print("localpool: accepting connections again.", file=sys.stderr, flush=True)
        return accepted

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a thread of its own if it gets a place under the cap; else refuse it."""
        if not self.places.admit(request, self.limits.evictable_after_seconds):
            self._refuse(request)
            return
        super().process_request(request, client_address)

    def _refuse(self, request: socket.socket) -> None:
        """Over the cap with nobody to evict: 503 with Retry-After (plain HTTP), and close; no thread."""
        if self.ssl_context is None:
            code = "ServiceUnavailable"
            message = (
                f"The local pool is serving its limit of {self.places.capacity} connections; "
                f"retry after {RETRY_AFTER_SECONDS} s."
            )
            payload = json.dumps(wire.error_body(code, message)).encode()
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS), **wire.error_headers(code), "Connection": "close"}
            head = (
                "HTTP/1.1 503 Service Unavailable\r\n"
                "Content-Type: application/json; charset=utf-8\r\n"
                f"Content-Length: {len(payload)}\r\n"
                + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
                + "\r\n"
            )
            with contextlib.suppress(OSError):
                # A fresh socket's send buffer takes these few hundred bytes whole: this never blocks.
                request.setblocking(False)
                request.send(head.encode() + payload)
                request.shutdown(socket.SHUT_WR)
                # Read what the client already sent, so closing does not reset the answer away.
                request.recv(LINGER_CHUNK_BYTES)
        self.shutdown_request(request)

    def shutdown_request(self, request: Any) -> None:
        """Close the connection and give back its place."""
        try:
            super().shutdown_request(request)
        finally:
            self.places.release(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Report a failure while serving a connection, unless the client simply went away."""
        if isinstance(sys.exc_info()[1], _CLIENT_GONE):
            return
        super().handle_error(request, client_address)

    def server_close(self) -> None:
        """Stop listening, cut every open connection and wait for their threads."""
        self.places.cut_all()
        super().server_close()

    def serving_place(self) -> _Place:
        """The place of the connection the calling thread serves."""
        return self._serving.place

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Serve one connection; with TLS, shake hands first (a failed or late handshake just ends it)."""
        place = self.places.find(request) or _Place(request)
        self._serving.place = place
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        remaining = place.accepted_at + self.limits.head_deadline_seconds - time.monotonic()
        try:
            if remaining <= 0:
                return
            # The handshake as a whole must end by the head deadline (CPython's timeout spans it).
            request.settimeout(remaining)
            secure = self.ssl_context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
            place.sock = secure
            secure.do_handshake()
        except (ssl.SSLError, OSError):
            return
        with secure:
            if self.places.stop_waiting(place):
                return
            super().finish_request(secure, client_address)


class PoolRequestHandler(BaseHTTPRequestHandler):
    """Answers the data-plane operations below BASE_PATH."""

    server: PoolServer
    protocol_version = "HTTP/1.1"  # keep-alive: warm round trips skip the TCP handshake
    # Without TCP_NODELAY the header and body writes meet Nagle + delayed ACK: ~40 ms per request.
    disable_nagle_algorithm = True
    # A silent client (half-sent headers or body, or an idle keep-alive) loses its connection; the
    # deadlines of _DeadlineReader bound a whole request head or body.
    timeout = REQUEST_READ_TIMEOUT_SECONDS

    def setup(self) -> None:
        """Read requests through a _DeadlineReader (head deadline counted from the accept)."""
        limits = self.server.limits
        self.timeout = limits.read_timeout_seconds
        super().setup()
        self.rfile.close()  # the plain reader made by setup(); the socket stays open
        place = self._place = self.server.serving_place()
        self._reader = _DeadlineReader(self.connection, place, self.server.places, limits.read_timeout_seconds)
        self._reader.deadline = place.accepted_at + limits.head_deadline_seconds
        self._requests_started = 0
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        """Read and answer one request; the next request's head has its own deadline from now."""
        if self._requests_started:
            self._place.phase_started = time.monotonic()
            self._reader.deadline = self._place.phase_started + self.server.limits.head_deadline_seconds
        self._requests_started += 1
        super().handle_one_request()

    def _start_body(self, size: int) -> None:
        """The body (size bytes, or at most size when chunked) must arrive within its own deadline."""
        self._place.phase_started = time.monotonic()
        self._reader.deadline = self._place.phase_started + self.server.limits.body_seconds(size)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header: formatted once per second (formatting it was a few per cent of an execution)."""
        if timestamp is not None:
            return super().date_time_string(timestamp)
        global _date_of_second
        second = int(time.time())
        cached = _date_of_second
        if cached[0] != second:
            cached = _date_of_second = (second, super().date_time_string(second))
        return cached[1]

    def version_string(self) -> str:
        """The Server header."""
        return "localpool"

    # -- plumbing -------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        """Log the request line and status only (never headers, so never a token)."""
        if not self.server.quiet:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        """Dispatch a GET request."""
        self._dispatch("GET")

    def do_POST(self) -> None:
        """Dispatch a POST request."""
        self._dispatch("POST")

    def do_PUT(self) -> None:
        """Dispatch a PUT request (answered 404 or 405)."""
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        """Dispatch a PATCH request (answered 404 or 405)."""
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        """Dispatch a DELETE request (files/{name}, session)."""
        self._dispatch("DELETE")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer protocol-level errors of http.server (bad request line, ...) in Azure's shape too."""
        status = HTTPStatus(code)
        self.close_connection = True
        error_code = status.phrase.replace(" ", "")
        self._send_json(
            status, wire.error_body(error_code, message or status.description), wire.error_headers(error_code)
        )

    def finish(self) -> None:
        """Flush the reply; after an early refusal, drain what the client still sends (see LINGER_SECONDS)."""
        super().finish()
        if getattr(self, "_linger", False):
            _linger_close(self.connection)

    def _dispatch(self, method: str) -> None:
        self._body_read = False
        try:
            try:
                self._handle(method)
            except WireError as error:
                self._send_json(error.status, error.body, error.headers)
            except _ReadTimedOut:
                self._body_timed_out()
            except _CLIENT_GONE:
                raise  # e.g. a write timed out: the client reads nothing, so nothing more is written
            except Exception as error:
                traceback.print_exc(file=sys.stderr)
                failure = WireError(
                    500,
                    "InternalServerError",
                    f"The local pool failed to handle the request ({type(error).__name__}: {error}).",
                )
                self._send_json(failure.status, failure.body, failure.headers)
        except _CLIENT_GONE:
            # The client left (e.g. during a download or before its error answer): nobody to answer.
            self.close_connection = True

    def _body_timed_out(self) -> None:
        """The body was not sent within its deadline: 408, and the rest of it is never read."""
        self.close_connection = True
        self._body_read = True
        limits = self.server.limits
        failure = WireError(
            HTTPStatus.REQUEST_TIMEOUT,
            "RequestTimeout",
            f"The request body did not arrive in time: the local pool allows {limits.body_deadline_seconds:g} s "
            f"plus 1 s per {limits.body_min_bytes_per_second:g} bytes for a body.",
        )
        self._send_json(failure.status, failure.body, failure.headers)

    def _start_response(
        self, status: int, content_type: str | None, length: int, headers: Mapping[str, str], body: bytes = b""
    ) -> None:
        """Send the status line and headers; body (a whole small answer) goes with them, in one write."""
        self._discard_unread_body()
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        if self.request_version == "HTTP/0.9":  # http.server sends such a request no head at all
            self.wfile.write(body)
            return
        # Taken before the write: after a failed one, nothing of this answer may be sent again.
        head, self._headers_buffer = self._headers_buffer, []
        self.wfile.write(b"".join(head) + b"\r\n" + body)

    def _send_json(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        payload = json.dumps(body).encode()
        self._start_response(status, "application/json; charset=utf-8", len(payload), headers, payload)

    def _send_text(self, status: int, text: str) -> None:
        payload = text.encode()
        self._start_response(status, "text/plain; charset=utf-8", len(payload), {}, payload)

    def _send_empty(self, status: int) -> None:
        self._start_response(status, None, 0, {})

    def _discard_unread_body(self) -> None:
        """Keep the connection usable after an early error, or close it if the body is unknown/huge."""
        if getattr(self, "_body_read", True):
            return
        self._body_read = True
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return
        length = self.headers.get("Content-Length")
        if length is None:
            return
        try:
            size = int(length)
        except ValueError:
            self.close_connection = True
            return
        if 0 < size <= MAX_REQUEST_BODY_BYTES:
            self._start_body(size)
            self.rfile.read(size)
        elif size != 0:
            self.close_connection = True

    # -- request bodies ---------------------------------------------------------------------------

    def _body_chunks(self, limit: int, too_large: Callable[[int], WireError]) -> Iterator[bytes]:
        """The request body in pieces, from Content-Length or chunked transfer encoding (autogen).

        A body announced above ``limit`` is refused unread; one that grows past it while streaming
        is refused when it does, and the connection is closed.
        """
        encoding = self.headers.get("Transfer-Encoding", "").strip().lower()
        if encoding and encoding != "chunked":
            self.close_connection = True
            raise WireError(
                HTTPStatus.NOT_IMPLEMENTED,
                "UnsupportedTransferEncoding",
                f"Transfer-Encoding {_echo(encoding)} is not supported; send chunked or a Content-Length.",
            )
        if encoding:
            self._body_read = True
            self._start_body(limit)
            yield from self._chunked_body(limit, too_large)
            return
        length = self.headers.get("Content-Length")
        if length is None:
            self._body_read = True
            return
        try:
            size = int(length)
        except ValueError:
            size = -1
        if size < 0:
            self.close_connection = True
            raise WireError(
                HTTPStatus.BAD_REQUEST, "InvalidContentLength", f"Content-Length {_echo(length)} is not a size."
            )
        if size > limit:
            # Refused unread; the connection is closed so the unread bytes are never parsed.
            self.close_connection = True
            self._linger = True
            raise too_large(size)
        self._body_read = True
        self._start_body(size)
        remaining = size
        while remaining:
            piece = self.rfile.read(min(remaining, IO_CHUNK_BYTES))
            if not piece:
                self.close_connection = True
                raise WireError(
                    HTTPStatus.BAD_REQUEST,
                    "IncompleteRequestBody",
                    f"The request body ended after {size - remaining} of {size} bytes.",
                )
            remaining -= len(piece)
            yield piece

    def _chunked_body(self, limit: int, too_large: Callable[[int], WireError]) -> Iterator[bytes]:
        # RFC 9112 section 7.1: "<hex size>[;extensions]CRLF<data>CRLF" ... "0CRLF[trailers]CRLF".
        # http.server does not decode it; a few lines do, so no second HTTP stack is needed.
        total = 0
        while True:
            line = self.rfile.readline(MAX_CHUNK_LINE_BYTES + 1)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                size = -1
            if size < 0 or not line.endswith(b"\n"):
                self.close_connection = True
                raise WireError(HTTPStatus.BAD_REQUEST, "InvalidChunkedBody", "The chunked request body is malformed.")
            if size == 0:
                while self.rfile.readline(MAX_CHUNK_LINE_BYTES + 1) not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields are not used
                return
            total += size
            if total > limit:
                self.close_connection = True
                raise too_large(total)
            remaining = size
            while remaining:
                piece = self.rfile.read(min(remaining, IO_CHUNK_BYTES))
                if not piece:
                    self.close_connection = True
                    raise WireError(HTTPStatus.BAD_REQUEST, "IncompleteRequestBody", "The chunked body ended early.")
                remaining -= len(piece)
                yield piece
            self.rfile.readline(MAX_CHUNK_LINE_BYTES + 1)

    def _read_json(self) -> Any:
        """Read a JSON body of at most MAX_REQUEST_BODY_BYTES."""

        def too_large(size: int) -> WireError:
            return WireError(
                413,
                "RequestBodyTooLarge",
                f"The request body is {size} bytes; the local pool accepts at most {MAX_REQUEST_BODY_BYTES} bytes.",
            )

        raw = b"".join(self._body_chunks(MAX_REQUEST_BODY_BYTES, too_large))
        if not raw:
            raise WireError(HTTPStatus.BAD_REQUEST, "InvalidRequestBody", "This operation needs a JSON request body.")
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as error:  # deep nesting: RecursionError
            raise WireError(
                HTTPStatus.BAD_REQUEST, "InvalidRequestBody", f"The request body is not valid JSON ({error})."
            ) from error

    # -- routing --------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        self._check_host()
        self._authenticate()
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        if not url.path.startswith(BASE_PATH + "/"):
            raise WireError(
                HTTPStatus.NOT_FOUND,
                "NotFound",
                f"There is no operation at {_echo(url.path)}. The pool management endpoint is {BASE_PATH}; "
                "operation paths (and Operation-Location) are relative to it.",
            )
        below, api_version = url.path[len(BASE_PATH) :], _first(query, "api-version")
        operation, params = wire.resolve(method, below, api_version)
        request = _Request(operation, {key: unquote(value) for key, value in params.items()}, query)
        _HANDLERS[operation.operation_id](self, request)

    @property
    def _container_type(self) -> ContainerType:
        return self.server.container_type

    @staticmethod
    def _identifier(request: _Request) -> str:
        identifier = _first(request.query, "identifier")
        problem = wire.invalid_identifier(identifier)
        if problem is not None:
            raise problem
        return identifier or ""

    @contextlib.contextmanager
    def _session(self, identifier: str) -> Iterator[Session]:
        """The identifier's session (made if new), kept from the cooldown while the block runs."""
        session = self._acquire(identifier)
        try:
            yield session
        finally:
            self.server.manager.release(session)

    def _acquire(self, identifier: str) -> Session:
        try:
            return self.server.manager.acquire(identifier)
        except QueueFullError as error:
            raise WireError(
                HTTPStatus.TOO_MANY_REQUESTS, "TooManyRequests", str(error), {"Retry-After": str(RETRY_AFTER_SECONDS)}
            ) from error
        except SessionLimitError as error:
            # Azure answers 404 when a pool has no room for another session.
            raise WireError(HTTPStatus.NOT_FOUND, "SessionLimitReached", str(error)) from error

    # -- code execution -------------------------------------------------------------------------

    def _execute(self, request: _Request) -> None:
        """POST code/execute (2024-02-02-preview) or POST executions (later): run code in the session."""
        identifier = self._identifier(request)
        api_version = request.api_version
        operation_id = self.headers.get(wire.OPERATION_ID_HEADER)
        legacy = api_version == wire.API_2024_02
        if not legacy and operation_id is not None and not _OPERATION_ID.match(operation_id):
            raise WireError(
                HTTPStatus.BAD_REQUEST,
                "InvalidOperationId",
                "The operation-id header must be 1-128 letters, digits, '.', '_' or '-'.",
            )
        body = _canonical_fields(self._read_json())
        parsed = wire.parse_execution_request(api_version, body, self._container_type)
        if legacy and parsed.execution_type is not ExecutionType.SYNCHRONOUS:
            raise WireError(
                HTTPStatus.BAD_REQUEST,
                "InvalidRequestBody",
                f"api-version {wire.API_2024_02} runs synchronous executions only; for asynchronous ones use "
                f"POST executions with api-version {wire.API_2024_10} or later.",
            )
        code, fields = _code_of(parsed), _runner_fields(parsed)
        manager = self.server.manager
        session = self._acquire(identifier)
        try:
            if not legacy and operation_id is not None and operation_id in session.executions:
                raise WireError(
                    HTTPStatus.CONFLICT,
                    "Conflict",
                    f"Session {_echo(identifier)} already has an execution with operation-id {_echo(operation_id)}.",
                )
            execution = manager.new_execution(session, str(parsed.execution_type), None if legacy else operation_id)
        except BaseException:
            manager.release(session)
            raise
        timeout = float(parsed.timeout_seconds)
        if parsed.execution_type is ExecutionType.ASYNCHRONOUS:
            threading.Thread(
                target=_run_and_release,
                args=(manager, session, execution, code, timeout, fields),
                name=f"localpool-execution-{execution.id}",
                daemon=True,
            ).start()
        else:
            _run_and_release(manager, session, execution, code, timeout, fields)
        if legacy:
            answer = wire.legacy_execute_answer(self._container_type, _output(execution, parsed.output_max_length))
            self._send_json(request.operation.success_status, answer, {})
            return
        headers = wire.execution_headers(api_version, execution.id, identifier)
        resource = _execution_resource(self._container_type, execution, parsed.output_max_length)
        self._send_json(request.operation.success_status, resource, headers)

    def _execution_get(self, request: _Request) -> None:
        """GET executions/{id}: the current state of an execution of the identifier's session."""
        identifier = self._identifier(request)
        execution_id = request.params["executionId"]
        session = self.server.manager.find(identifier)
        execution = session.executions.get(execution_id) if session is not None else None
        if execution is None:
            raise WireError(
                HTTPStatus.NOT_FOUND,
                "ExecutionNotFound",
                f"Session {_echo(identifier)} has no execution {_echo(execution_id)}; a session and its "
                f"executions end {self.server.manager.cooldown_seconds:g} s after its last use.",
            )
        resource = _execution_resource(self._container_type, execution, wire.DEFAULT_OUTPUT_STREAMS_MAX_LENGTH)
        self._send_json(request.operation.success_status, resource, {})

    # -- files ----------------------------------------------------------------------------------

    def _upload(self, request: _Request) -> None:
        """POST files (files/upload in 2024-02-02-preview): multipart, streamed into /mnt/data."""
        identifier = self._identifier(request)
        container_type = self._container_type
        chunks = self._body_chunks(
            wire.MAX_UPLOAD_BYTES[container_type] + MULTIPART_OVERHEAD_BYTES,
            lambda size: wire.upload_too_large(size, container_type),
        )
        # 2024-02-02-preview answers a list; later versions answer one file, so take one.
        max_files = None if request.api_version == wire.API_2024_02 else 1
        with self._session(identifier) as session:
            try:
                stored = receive_upload(
                    self.server.manager.files(session),
                    chunks,
                    self.headers.get("Content-Type"),
                    _first(request.query, "path"),
                    max_files,
                )
            except WireError:
                # Refused part-way: the rest of the body is never parsed as a request; drain, then close.
                self.close_connection = True
                self._linger = True
                raise
        self._send_json(request.operation.success_status, wire.upload_answer(request.api_version, stored), {})

    def _list_files(self, request: _Request) -> None:
        """GET files: the files of /mnt/data (or of ``path``; all levels with ``recursive=true``)."""
        identifier = self._identifier(request)
        recursive = _flag(request.query, "recursive") if request.api_version == wire.API_2025_10 else False
        with self._session(identifier) as session:
            found = self.server.manager.files(session).list(_first(request.query, "path"), recursive=recursive)
        self._send_json(request.operation.success_status, wire.file_list(request.api_version, found), {})

    def _file_metadata(self, request: _Request) -> None:
        """GET files/{name}: one file's description."""
        identifier = self._identifier(request)
        with self._session(identifier) as session:
            info = self.server.manager.files(session).describe(request.params["name"], _first(request.query, "path"))
        self._send_json(request.operation.success_status, wire.file_metadata(request.api_version, info), {})

    def _file_content(self, request: _Request) -> None:
        """GET files/{name}/content (files/content/{name} in 2024-02-02-preview): the bytes, streamed."""
        identifier = self._identifier(request)
        with self._session(identifier) as session:
            fd, info = self.server.manager.files(session).open_for_reading(
                request.params["name"], _first(request.query, "path")
            )
        with open(fd, "rb", buffering=0) as source:
            self._start_response(request.operation.success_status, wire.OCTET_STREAM, info.size, {})
            sent = 0
            while sent < info.size and (piece := source.read(min(IO_CHUNK_BYTES, info.size - sent))):
                self.wfile.write(piece)
                sent += len(piece)
            if sent < info.size:
                # The session shrank the file while it was sent: the length promised cannot be kept.
                self.close_connection = True

    def _delete_file(self, request: _Request) -> None:
        """DELETE files/{name}."""
        identifier = self._identifier(request)
        with self._session(identifier) as session:
            self.server.manager.files(session).delete(request.params["name"], _first(request.query, "path"))
        answer = wire.delete_file_answer(request.api_version)
        if answer is None:
            self._send_empty(request.operation.success_status)
        else:
            self._send_json(request.operation.success_status, answer, {})

    # -- sessions and the pool ------------------------------------------------------------------

    def _list_sessions(self, request: _Request) -> None:
        """GET listSessions (``skip`` leaves out the first sessions)."""
        skip_text = _first(request.query, "skip") or "0"
        if not skip_text.isdigit():
            raise WireError(
                HTTPStatus.BAD_REQUEST, "InvalidSkip", f"skip must be a whole number, not {_echo(skip_text)}."
            )
        manager = self.server.manager
        sessions = [manager.describe(session) for session in manager.sessions()[int(skip_text) :]]
        self._send_json(request.operation.success_status, wire.session_list(sessions), {})

    def _get_session(self, request: _Request) -> None:
        """GET session: one live session (404 if the identifier has none)."""
        identifier = self._identifier(request)
        session = self.server.manager.find(identifier)
        if session is None:
            raise WireError(HTTPStatus.NOT_FOUND, "SessionNotFound", f"There is no live session {_echo(identifier)}.")
        answer = wire.session_resource(self.server.manager.describe(session))
        self._send_json(request.operation.success_status, answer, {})

    def _delete_session(self, request: _Request) -> None:
        """DELETE session: end it now (process and files); the next use starts a fresh one. Idempotent."""
        self.server.manager.delete(self._identifier(request))
        self._send_empty(request.operation.success_status)

    def _stop_session(self, request: _Request) -> None:
        """POST .management/stopSession (2025-10-02-preview): as DELETE session, answered in plain text."""
        identifier = self._identifier(request)
        if not self.server.manager.delete(identifier):
            raise WireError(HTTPStatus.NOT_FOUND, "SessionNotFound", f"There is no live session {_echo(identifier)}.")
        self._send_text(request.operation.success_status, wire.stop_session_text(identifier, LOCAL_POOL_NAME))

    def _metadata(self, request: _Request) -> None:
        """GET metadata: the runtimes and packages that exist in this local pool."""
        runtimes, packages, kernel_version = self.server.manager.runtime.describe()
        runtimes = {**runtimes, **self.server.manager.sandbox.describe()}
        body = wire.pool_metadata(
            self._container_type,
            runtimes=runtimes,
            packages=packages,
            created_at=self.server.started_at,
            last_updated_at=self.server.started_at,
            kernel_version=kernel_version,
        )
        self._send_json(request.operation.success_status, body, {})

    def _check_host(self) -> None:
        if not self.server.loopback_only:
            return
        host = self.headers.get("Host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name.startswith("[") and "]" in name:
            name = name[1 : name.index("]")]
        if not is_loopback(name):
            raise WireError(
                HTTPStatus.FORBIDDEN,
                "HostNotAllowed",
                f"The Host header {_echo(host)} is not a loopback address; this local pool answers only "
                "requests to 127.0.0.1, ::1 or localhost.",
            )

    def _authenticate(self) -> None:
        scheme, _, credentials = self.headers.get("Authorization", "").strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            raise WireError(
                HTTPStatus.UNAUTHORIZED,
                "Unauthorized",
                "This request needs an 'Authorization: Bearer <token>' header (on Azure, a Microsoft Entra "
                "token for https://dynamicsessions.io).",
                {"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(credentials.encode(), self.server.token.encode()):
            raise WireError(
                HTTPStatus.UNAUTHORIZED,
                "InvalidToken",
                "The bearer token is wrong: this local pool accepts only its own token (--token, "
                "LOCALPOOL_TOKEN, or the DYNAMIC_SESSIONS_TOKEN line it printed at start).",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )


@functools.lru_cache(maxsize=256)  # clients send the same few Host values again and again
def is_loopback(host: str) -> bool:
    """Whether host names an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _linger_close(connection: socket.socket) -> None:
    """Half-close, then discard incoming bytes until the client closes or a bound is reached."""
    deadline = time.monotonic() + LINGER_SECONDS
    drained = 0
    try:
        connection.shutdown(socket.SHUT_WR)
        while drained < LINGER_MAX_BYTES and (remaining := deadline - time.monotonic()) > 0:
            connection.settimeout(remaining)
            chunk = connection.recv(LINGER_CHUNK_BYTES)
            if not chunk:
                break
            drained += len(chunk)
    except OSError:
        pass  # the client went away first: nothing left to protect


@dataclass(frozen=True)
class _Request:
    """A resolved request: its operation, path parameters (decoded) and query."""

    operation: wire.Operation
    params: dict[str, str]
    query: dict[str, list[str]]

    @property
    def api_version(self) -> str:
        return _first(self.query, "api-version") or ""


def _first(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _flag(query: Mapping[str, list[str]], name: str) -> bool:
    value = (_first(query, name) or "false").lower()
    if value not in ("true", "false"):
        raise WireError(
            HTTPStatus.BAD_REQUEST, "InvalidQueryParameter", f"{name} must be true or false, not {_echo(value)}."
        )
    return value == "true"


# Request field names as Azure's documents spell them. ASP.NET's JSON binding, which Azure's front end
# uses, matches property names case-insensitively; so does the local pool (clients send "CODE" too).
_FIELD_NAMES = {
    name.lower(): name
    for name in (
        "properties",
        "code",
        "codeInputType",
        "executionType",
        "timeoutInSeconds",
        "outputStreamsMaxLength",
        "shellCommand",
        "execCommandAndArgs",
        "stdin",
    )
}


def _canonical_fields(body: Any) -> Any:
    """The body with known field names (also inside ``properties``) spelled as the documents do."""
    if not isinstance(body, dict):
        return body
    fields = {_FIELD_NAMES.get(str(key).lower(), key): value for key, value in body.items()}
    if isinstance(fields.get("properties"), dict):
        fields["properties"] = _canonical_fields(fields["properties"])
    return fields


def _code_of(request: wire.ExecutionRequest) -> str:
    """What the session's interpreter runs: code, or a Shell pool's command line."""
    if request.code is not None:
        return request.code
    if request.shell_command is not None:
        return request.shell_command
    return shlex.join(request.exec_command_and_args or ())


def _runner_fields(request: wire.ExecutionRequest) -> dict[str, Any]:
    """What the runner reads beside the code (see SessionManager.run): Shell's argument list and
    standard input, PythonLTS's returnJupyterFormatExecutionResult."""
    fields: dict[str, Any] = {}
    if request.exec_command_and_args is not None:
        fields["argv"] = list(request.exec_command_and_args)
    if request.stdin is not None:
        fields["stdin"] = request.stdin
    if request.jupyter_format:
        fields["jupyter"] = True
    return fields


_HANDLERS: dict[str, Callable[[PoolRequestHandler, _Request], None]] = {
    "CodeExecution_Execute": PoolRequestHandler._execute,
    "CodeExecution_Get": PoolRequestHandler._execution_get,
    "SessionResourceFiles_Upload": PoolRequestHandler._upload,
    "SessionResourceFiles_List": PoolRequestHandler._list_files,
    "SessionResourceFiles_Get": PoolRequestHandler._file_metadata,
    "SessionResourceFiles_GetContent": PoolRequestHandler._file_content,
    "SessionResourceFiles_Delete": PoolRequestHandler._delete_file,
    "ListSessions_Get": PoolRequestHandler._list_sessions,
    "SessionManagement_Get": PoolRequestHandler._get_session,
    "SessionManagement_Delete": PoolRequestHandler._delete_session,
    "SessionPoolMetadata_Get": PoolRequestHandler._metadata,
    "SessionPoolManagement_StopSession": PoolRequestHandler._stop_session,
}


def _run_and_release(
    manager: SessionManager,
    session: Session,
    execution: Execution,
    code: str,
    timeout: float,
    fields: dict[str, Any] | None = None,
) -> None:
    try:
        manager.run(session, execution, code, timeout, fields)
    finally:
        manager.release(session)


def _output(execution: Execution, max_length: int) -> ExecutionOutput:
    return ExecutionOutput(
        stdout=execution.stdout[:max_length],
        stderr=execution.stderr[:max_length],
        value=execution.result,
        duration_ms=execution.time_ms,
        exit_code=execution.exit_code,
    )


def _execution_resource(container_type: ContainerType, execution: Execution, max_length: int) -> dict[str, Any]:
    """SessionCodeExecutionResource; ``result`` only once the execution finished."""
    status = ExecutionStatus(execution.status)  # read first: the other fields are complete once it is final
    finished = status not in wire.UNFINISHED_STATUSES
    error = WireError(500, execution.error_code, execution.error_message) if execution.error_code else None
    return wire.execution_resource(
        container_type,
        execution_id=execution.id,
        identifier=execution.identifier,
        execution_type=ExecutionType(execution.execution_type),
        status=status,
        output=_output(execution, max_length) if finished else None,
        error=error if finished else None,
    )
