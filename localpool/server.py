"""The HTTP(S) front end of the local pool: auth, request bodies, and every data-plane operation of every
api-version, routed by localpool.wire (resolve -> handler) and answered with its builders."""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import re
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
    BASE_PATH,
    LISTEN_BACKLOG,
    LOCAL_POOL_NAME,
    MAX_REQUEST_BODY_BYTES,
    OPERATION_ID_PATTERN,
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
MAX_UPLOAD_BODY_BYTES = wire.MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES
# A chunk-size line of a chunked body longer than this is refused (hex size plus extensions).
MAX_CHUNK_LINE_BYTES = 4096

_OPERATION_ID = re.compile(OPERATION_ID_PATTERN)


class ApiError(WireError):
    """A WireError with extra response headers (WWW-Authenticate, Retry-After, Allow)."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        """Describe the HTTP status, the machine-readable code, a sentence for a person and extra headers."""
        super().__init__(int(status), code, message)
        self.extra_headers = dict(headers or {})


def _echo(value: str) -> str:
    """A client-supplied value, shortened, for quoting in an error message."""
    return repr(value if len(value) <= wire.MAX_ECHOED_CHARS else value[: wire.MAX_ECHOED_CHARS] + "...")


class PoolServer(ThreadingHTTPServer):
    """A threaded HTTP server (one thread per connection) bound to a SessionManager."""

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
    ) -> None:
        """Bind to address (IPv6 when the host contains ':').

        loopback_only: answer only requests whose Host header names a loopback address (against
        DNS rebinding: a web page's own host name that resolves to 127.0.0.1 is refused).
        ssl_context: serve HTTPS with it (the TLS handshake runs in the connection's own thread).
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
        super().__init__(address, PoolRequestHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Serve one connection; with TLS, shake hands first (a failed handshake just ends it)."""
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(REQUEST_READ_TIMEOUT_SECONDS)
        try:
            secure = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with secure:
            super().finish_request(secure, client_address)


class PoolRequestHandler(BaseHTTPRequestHandler):
    """Answers the data-plane operations below BASE_PATH."""

    server: PoolServer
    protocol_version = "HTTP/1.1"  # keep-alive: warm round trips skip the TCP handshake
    # Without TCP_NODELAY the header and body writes meet Nagle + delayed ACK: ~40 ms per request.
    disable_nagle_algorithm = True
    # A silent client (half-sent headers or body, or an idle keep-alive) loses its connection.
    timeout = REQUEST_READ_TIMEOUT_SECONDS

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
        self._send_json(
            status,
            {"error": {"code": status.phrase.replace(" ", ""), "message": message or status.description}},
            {"x-ms-error-code": status.phrase.replace(" ", "")},
        )

    def finish(self) -> None:
        """Flush the reply; after an early refusal, drain what the client still sends (see LINGER_SECONDS)."""
        super().finish()
        if getattr(self, "_linger", False):
            _linger_close(self.connection)

    def _dispatch(self, method: str) -> None:
        self._body_read = False
        try:
            self._handle(method)
        except WireError as error:
            headers = {**error.headers, **getattr(error, "extra_headers", {})}
            self._send_json(error.status, error.body, headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client left (e.g. during a download): nobody to answer
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            failure = WireError(
                500,
                "InternalServerError",
                f"The local pool failed to handle the request ({type(error).__name__}: {error}).",
            )
            self._send_json(failure.status, failure.body, failure.headers)

    def _start_response(self, status: int, content_type: str | None, length: int, headers: Mapping[str, str]) -> None:
        self._discard_unread_body()
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _send_json(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        payload = json.dumps(body).encode()
        self._start_response(status, "application/json; charset=utf-8", len(payload), headers)
        self.wfile.write(payload)

    def _send_text(self, status: int, text: str) -> None:
        payload = text.encode()
        self._start_response(status, "text/plain; charset=utf-8", len(payload), {})
        self.wfile.write(payload)

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
            raise ApiError(
                HTTPStatus.NOT_IMPLEMENTED,
                "UnsupportedTransferEncoding",
                f"Transfer-Encoding {_echo(encoding)} is not supported; send chunked or a Content-Length.",
            )
        if encoding:
            self._body_read = True
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
            raise ApiError(
                HTTPStatus.BAD_REQUEST, "InvalidContentLength", f"Content-Length {_echo(length)} is not a size."
            )
        if size > limit:
            # Refused unread; the connection is closed so the unread bytes are never parsed.
            self.close_connection = True
            self._linger = True
            raise too_large(size)
        self._body_read = True
        remaining = size
        while remaining:
            piece = self.rfile.read(min(remaining, IO_CHUNK_BYTES))
            if not piece:
                self.close_connection = True
                raise ApiError(
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
                raise ApiError(HTTPStatus.BAD_REQUEST, "InvalidChunkedBody", "The chunked request body is malformed.")
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
                    raise ApiError(HTTPStatus.BAD_REQUEST, "IncompleteRequestBody", "The chunked body ended early.")
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
            raise ApiError(HTTPStatus.BAD_REQUEST, "InvalidRequestBody", "This operation needs a JSON request body.")
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as error:  # deep nesting: RecursionError
            raise ApiError(
                HTTPStatus.BAD_REQUEST, "InvalidRequestBody", f"The request body is not valid JSON ({error})."
            ) from error

    # -- routing --------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        self._check_host()
        self._authenticate()
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        if not url.path.startswith(BASE_PATH + "/"):
            raise ApiError(
                HTTPStatus.NOT_FOUND,
                "NotFound",
                f"There is no operation at {_echo(url.path)}. The pool management endpoint is {BASE_PATH}; "
                "operation paths (and Operation-Location) are relative to it.",
            )
        below, api_version = url.path[len(BASE_PATH) :], _first(query, "api-version")
        try:
            operation, params = wire.resolve(method, below, api_version)
        except WireError as error:
            if error.status == HTTPStatus.METHOD_NOT_ALLOWED:
                path = below.rstrip("/") or "/"
                offered = wire.operations_for(api_version or "")
                allowed = sorted({op.method for op in offered if op.match(path) is not None})
                raise ApiError(error.status, error.code, error.message, {"Allow": ", ".join(allowed)}) from error
            raise
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
            raise ApiError(
                HTTPStatus.TOO_MANY_REQUESTS, "TooManyRequests", str(error), {"Retry-After": str(RETRY_AFTER_SECONDS)}
            ) from error
        except SessionLimitError as error:
            # Azure answers 404 when a pool has no room for another session.
            raise ApiError(HTTPStatus.NOT_FOUND, "SessionLimitReached", str(error)) from error

    # -- code execution -------------------------------------------------------------------------

    def _execute(self, request: _Request) -> None:
        """POST code/execute (2024-02-02-preview) or POST executions (later): run code in the session."""
        identifier = self._identifier(request)
        api_version = request.api_version
        operation_id = self.headers.get(wire.OPERATION_ID_HEADER)
        legacy = api_version == wire.API_2024_02
        if not legacy and operation_id is not None and not _OPERATION_ID.match(operation_id):
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "InvalidOperationId",
                "The operation-id header must be 1-128 letters, digits, '.', '_' or '-'.",
            )
        body = _canonical_fields(self._read_json())
        parsed = wire.parse_execution_request(api_version, body, self._container_type)
        if legacy and parsed.execution_type is not ExecutionType.SYNCHRONOUS:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "InvalidRequestBody",
                f"api-version {wire.API_2024_02} runs synchronous executions only; for asynchronous ones use "
                f"POST executions with api-version {wire.API_2024_10} or later.",
            )
        code = _code_of(parsed)
        manager = self.server.manager
        session = self._acquire(identifier)
        try:
            if not legacy and operation_id is not None and operation_id in session.executions:
                raise ApiError(
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
                args=(manager, session, execution, code, timeout),
                name=f"localpool-execution-{execution.id}",
                daemon=True,
            ).start()
        else:
            _run_and_release(manager, session, execution, code, timeout)
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
            raise ApiError(
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
        chunks = self._body_chunks(MAX_UPLOAD_BODY_BYTES, wire.upload_too_large)
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
        self._send_json(request.operation.success_status, wire.file_resource(request.api_version, info), {})

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
        self._send_empty(request.operation.success_status)

    # -- sessions and the pool ------------------------------------------------------------------

    def _list_sessions(self, request: _Request) -> None:
        """GET listSessions (``skip`` leaves out the first sessions)."""
        skip_text = _first(request.query, "skip") or "0"
        if not skip_text.isdigit():
            raise ApiError(
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
            raise ApiError(HTTPStatus.NOT_FOUND, "SessionNotFound", f"There is no live session {_echo(identifier)}.")
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
            raise ApiError(HTTPStatus.NOT_FOUND, "SessionNotFound", f"There is no live session {_echo(identifier)}.")
        self._send_text(request.operation.success_status, wire.stop_session_text(identifier, LOCAL_POOL_NAME))

    def _metadata(self, request: _Request) -> None:
        """GET metadata: the runtimes and packages that exist in this local pool."""
        runtimes, packages, kernel_version = self.server.manager.runtime.describe()
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
        if name not in _LOOPBACK_NAMES and not _is_loopback_address(name):
            raise ApiError(
                HTTPStatus.FORBIDDEN,
                "HostNotAllowed",
                f"The Host header {_echo(host)} is not a loopback address; this local pool answers only "
                "requests to 127.0.0.1, ::1 or localhost.",
            )

    def _authenticate(self) -> None:
        scheme, _, credentials = self.headers.get("Authorization", "").strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            raise ApiError(
                HTTPStatus.UNAUTHORIZED,
                "Unauthorized",
                "This request needs an 'Authorization: Bearer <token>' header (on Azure, a Microsoft Entra "
                "token for https://dynamicsessions.io).",
                {"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(credentials.encode(), self.server.token.encode()):
            raise ApiError(
                HTTPStatus.UNAUTHORIZED,
                "InvalidToken",
                "The bearer token is wrong: this local pool accepts only its own token (--token, "
                "LOCALPOOL_TOKEN, or the DYNAMIC_SESSIONS_TOKEN line it printed at start).",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )


_LOOPBACK_NAMES = frozenset({"localhost"})


def _is_loopback_address(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
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
        raise ApiError(
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
    manager: SessionManager, session: Session, execution: Execution, code: str, timeout: float
) -> None:
    try:
        manager.run(session, execution, code, timeout)
    finally:
        manager.release(session)


def _output(execution: Execution, max_length: int) -> ExecutionOutput:
    return ExecutionOutput(
        stdout=execution.stdout[:max_length],
        stderr=execution.stderr[:max_length],
        value=execution.result,
        duration_ms=execution.time_ms,
        exit_code=getattr(execution, "exit_code", None),
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
