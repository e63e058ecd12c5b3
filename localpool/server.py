"""The HTTP front end of the local pool: Azure's data-plane paths, auth, validation and error shapes."""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from localpool.constants import (
    BASE_PATH,
    JAVASCRIPT_LANGUAGES,
    LISTEN_BACKLOG,
    MAX_REQUEST_BODY_BYTES,
    NODE_CONTAINER_TYPE,
    OPERATION_ID_PATTERN,
    REQUEST_READ_TIMEOUT_SECONDS,
    RETRY_AFTER_SECONDS,
)
from localpool.sessions import Execution, QueueFullError, Session, SessionLimitError, SessionManager
from smoke.protocol import (
    API_2024_02,
    API_2024_10,
    API_2025_10,
    CODE_EXECUTE_PATH,
    DEFAULT_EXECUTION_TIMEOUT_SECONDS,
    EXECUTIONS_PATH,
    IDENTIFIER_PATTERN,
    IDENTIFIER_RULE,
    LEGACY_STATUS_SUCCESS,
    MAX_EXECUTION_SECONDS,
    OPERATION_ID_HEADER,
    OPERATION_LOCATION_HEADER,
    PENDING_STATUSES,
    STATUS_SUCCEEDED,
)

# The status this pool reports for a failed 2024-02-02-preview execution (Azure documents only
# "Success"; clients should treat anything else as a failure and read stderr).
LEGACY_STATUS_FAILURE = "Failure"
EXECUTION_TYPE_SYNC = "Synchronous"
EXECUTION_TYPE_ASYNC = "Asynchronous"
CODE_INPUT_INLINE = "Inline"
# api-versions answered on each operation; /executions answers 202 before 2025-10-02-preview.
LEGACY_API_VERSIONS = (API_2024_02,)
EXECUTIONS_API_VERSIONS = (API_2024_10, API_2025_10)
ACCEPTED_ONLY_API_VERSIONS = frozenset({API_2024_10})
# Body fields (compared case-insensitively) that name the language a client expects.
LANGUAGE_FIELDS = ("language", "containertype")
# Client-supplied values quoted in error messages are cut to this length.
MAX_ECHO_CHARS = 80
# After refusing an unread body (413), keep reading and discarding for a little while before
# closing: closing a socket with unread data sends a TCP reset, which can destroy the 413 reply
# before the client reads it. Bounded in time and bytes, and nothing is kept.
LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 64 * 1024 * 1024
LINGER_CHUNK_BYTES = 64 * 1024

_EXECUTION_PATH = re.compile(rf"^{re.escape(EXECUTIONS_PATH)}/([^/]+)$")
_OPERATION_ID = re.compile(OPERATION_ID_PATTERN)


class ApiError(Exception):
    """An error answered in Azure.Core's shape: {"error": {"code", "message"}} plus x-ms-error-code."""

    def __init__(self, status: HTTPStatus, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        """Describe the HTTP status, the machine-readable code and a sentence for a person."""
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def _echo(value: str) -> str:
    """A client-supplied value, shortened, for quoting in an error message."""
    return repr(value if len(value) <= MAX_ECHO_CHARS else value[:MAX_ECHO_CHARS] + "...")


class PoolServer(ThreadingHTTPServer):
    """A threaded HTTP server (one thread per connection) bound to a SessionManager."""

    daemon_threads = True
    # Tests and benchmarks start and stop pools quickly.
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self, address: tuple[str, int], manager: SessionManager, *, token: str, quiet: bool, loopback_only: bool
    ) -> None:
        """Bind to address (IPv6 when the host contains ':').

        loopback_only: answer only requests whose Host header names a loopback address (against
        DNS rebinding: a web page's own host name that resolves to 127.0.0.1 is refused).
        """
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.manager = manager
        self.token = token
        self.quiet = quiet
        self.loopback_only = loopback_only
        super().__init__(address, PoolRequestHandler)


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
        """Dispatch a DELETE request (answered 404 or 405)."""
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
        except ApiError as error:
            headers = {"x-ms-error-code": error.code, **error.headers}
            self._send_json(error.status, {"error": {"code": error.code, "message": error.message}}, headers)
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            message = f"The local pool failed to handle the request ({type(error).__name__}: {error})."
            self._send_json(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                {"error": {"code": "InternalServerError", "message": message}},
                {"x-ms-error-code": "InternalServerError"},
            )

    def _send_json(self, status: HTTPStatus, body: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        self._discard_unread_body()
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

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

    # -- request handling -----------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        self._check_host()
        self._authenticate()
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        if not url.path.startswith(BASE_PATH + "/"):
            raise self._not_found(url.path)
        operation = url.path[len(BASE_PATH) :]
        if operation == CODE_EXECUTE_PATH:
            self._require_method(method, "POST")
            self._code_execute(query)
        elif operation == EXECUTIONS_PATH:
            self._require_method(method, "POST")
            self._executions_post(query)
        elif match := _EXECUTION_PATH.match(operation):
            self._require_method(method, "GET")
            self._executions_get(query, match.group(1))
        else:
            raise self._not_found(url.path)

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

    def _not_found(self, path: str) -> ApiError:
        message = (
            f"There is no operation at {_echo(path)}. The pool management endpoint's base path is "
            f"{BASE_PATH}; below it are POST {CODE_EXECUTE_PATH}, POST {EXECUTIONS_PATH} and "
            f"GET {EXECUTIONS_PATH}/<id>."
        )
        if path.startswith((EXECUTIONS_PATH, CODE_EXECUTE_PATH)):
            message += " Operation paths and Operation-Location are relative to the endpoint: append them to it."
        return ApiError(HTTPStatus.NOT_FOUND, "NotFound", message)

    @staticmethod
    def _require_method(method: str, allowed: str) -> None:
        if method != allowed:
            raise ApiError(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                f"This operation answers {allowed} only, not {method}.",
                {"Allow": allowed},
            )

    @staticmethod
    def _api_version(query: Mapping[str, list[str]], supported: tuple[str, ...]) -> str:
        values = query.get("api-version")
        listed = ", ".join(supported)
        if not values or not values[0]:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "MissingApiVersionParameter",
                f"The api-version query parameter is required; this operation supports {listed}.",
            )
        if values[0] not in supported:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "UnsupportedApiVersion",
                f"The api-version {_echo(values[0])} is not supported by this operation; use {listed}.",
            )
        return values[0]

    @staticmethod
    def _identifier(query: Mapping[str, list[str]]) -> str:
        values = query.get("identifier")
        if not values or not values[0]:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "MissingIdentifier",
                f"The identifier query parameter is required (the session's name: {IDENTIFIER_RULE}).",
            )
        if not IDENTIFIER_PATTERN.fullmatch(values[0]):
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "InvalidIdentifier",
                f"The identifier {_echo(values[0])} is not valid; it must be {IDENTIFIER_RULE}.",
            )
        return values[0]

    def _read_json_object(self) -> dict[str, Any]:
        """Read the body (Content-Length only, at most MAX_REQUEST_BODY_BYTES) and parse a JSON object."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ApiError(
                HTTPStatus.LENGTH_REQUIRED,
                "LengthRequired",
                "Send the request body with a Content-Length header; the local pool does not accept "
                "chunked transfer encoding.",
            )
        length = self.headers.get("Content-Length")
        if length is None:
            raise ApiError(
                HTTPStatus.LENGTH_REQUIRED,
                "LengthRequired",
                "This operation needs a JSON request body with a Content-Length header.",
            )
        try:
            size = int(length)
        except ValueError:
            size = -1
        if size < 0:
            self.close_connection = True
            raise ApiError(
                HTTPStatus.BAD_REQUEST, "InvalidContentLength", f"Content-Length {_echo(length)} is not a size."
            )
        if size > MAX_REQUEST_BODY_BYTES:
            # Refused unread; the connection is closed so the unread bytes are never parsed.
            self.close_connection = True
            self._linger = True
            raise ApiError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "RequestBodyTooLarge",
                f"The request body is {size} bytes; the local pool accepts at most {MAX_REQUEST_BODY_BYTES} bytes.",
            )
        self._body_read = True
        raw = self.rfile.read(size)
        if len(raw) < size:
            self.close_connection = True
            raise ApiError(
                HTTPStatus.BAD_REQUEST, "IncompleteRequestBody", f"The request body ended after {len(raw)} bytes."
            )
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as error:  # deep nesting: RecursionError
            raise ApiError(
                HTTPStatus.BAD_REQUEST, "InvalidRequestBody", f"The request body is not valid JSON ({error})."
            ) from error
        if not isinstance(body, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "InvalidRequestBody", "The request body must be a JSON object.")
        return body

    # -- execution requests ---------------------------------------------------------------------

    def _code_execute(self, query: Mapping[str, list[str]]) -> None:
        """POST /code/execute (2024-02-02-preview): synchronous, {"properties": {...}} in and out."""
        self._api_version(query, LEGACY_API_VERSIONS)
        identifier = self._identifier(query)
        body = _lower_keys(self._read_json_object())
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "InvalidRequestBody",
                'The request body must be {"properties": {"codeInputType": "inline", '
                '"executionType": "synchronous", "code": "..."}}.',
            )
        fields = _lower_keys(properties)
        request = _parse_execution_fields(fields)
        if request.execution_type != EXECUTION_TYPE_SYNC:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "InvalidRequestBody",
                f"api-version {API_2024_02} runs synchronous executions only; for asynchronous ones use "
                f"POST {EXECUTIONS_PATH} with api-version {API_2024_10}.",
            )
        session = self._acquire(identifier)
        try:
            execution = self.server.manager.new_execution(session, EXECUTION_TYPE_SYNC)
            self.server.manager.run(session, execution, request.code, request.timeout)
        finally:
            self.server.manager.release(session)
        properties_out = {
            "status": LEGACY_STATUS_SUCCESS if execution.status == STATUS_SUCCEEDED else LEGACY_STATUS_FAILURE,
            "stdout": execution.stdout,
            "stderr": execution.stderr,
            "executionResult": execution.result,
            "executionTimeInMilliseconds": execution.time_ms,
        }
        self._send_json(HTTPStatus.OK, {"properties": properties_out}, {})

    def _executions_post(self, query: Mapping[str, list[str]]) -> None:
        """POST /executions (2024-10-02-preview and later): sync or async, polled via Operation-Location."""
        api_version = self._api_version(query, EXECUTIONS_API_VERSIONS)
        identifier = self._identifier(query)
        # A client may choose the execution's id (the spec's optional operation-id request header).
        operation_id = self.headers.get(OPERATION_ID_HEADER)
        if operation_id is not None and not _OPERATION_ID.match(operation_id):
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "InvalidOperationId",
                "The operation-id header must be 1-128 letters, digits, '.', '_' or '-'.",
            )
        request = _parse_execution_fields(_lower_keys(self._read_json_object()))
        manager = self.server.manager
        session = self._acquire(identifier)
        try:
            if operation_id is not None and operation_id in session.executions:
                raise ApiError(
                    HTTPStatus.CONFLICT,
                    "Conflict",
                    f"Session {_echo(identifier)} already has an execution with operation-id {_echo(operation_id)}.",
                )
            execution = manager.new_execution(session, request.execution_type, operation_id)
        except BaseException:
            manager.release(session)
            raise
        if request.execution_type == EXECUTION_TYPE_ASYNC:
            threading.Thread(
                target=_run_and_release,
                args=(manager, session, execution, request.code, request.timeout),
                name=f"localpool-execution-{execution.id}",
                daemon=True,
            ).start()
        else:
            _run_and_release(manager, session, execution, request.code, request.timeout)
        status = HTTPStatus.ACCEPTED if api_version in ACCEPTED_ONLY_API_VERSIONS else HTTPStatus.OK
        location = f"{EXECUTIONS_PATH}/{execution.id}?" + urlencode(
            {"api-version": api_version, "identifier": identifier}
        )
        headers = {OPERATION_ID_HEADER: execution.id, OPERATION_LOCATION_HEADER: location}
        self._send_json(status, _execution_resource(execution), headers)

    def _executions_get(self, query: Mapping[str, list[str]], execution_id: str) -> None:
        """GET /executions/<id>: the current state of an execution of the identifier's session."""
        self._api_version(query, EXECUTIONS_API_VERSIONS)
        identifier = self._identifier(query)
        session = self.server.manager.find(identifier)
        execution = session.executions.get(execution_id) if session is not None else None
        if execution is None:
            raise ApiError(
                HTTPStatus.NOT_FOUND,
                "ExecutionNotFound",
                f"Session {_echo(identifier)} has no execution {_echo(execution_id)}; a session and its "
                f"executions end {self.server.manager.cooldown_seconds:g} s after its last execution.",
            )
        self._send_json(HTTPStatus.OK, _execution_resource(execution), {})

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


class _ExecutionRequest:
    """The validated fields of an execution request."""

    def __init__(self, code: str, execution_type: str, timeout: float) -> None:
        self.code = code
        self.execution_type = execution_type
        self.timeout = timeout


def _lower_keys(body: Mapping[str, Any]) -> dict[str, Any]:
    """Field names are matched case-insensitively, as Azure's front end does."""
    return {str(key).lower(): value for key, value in body.items()}


def _bad_body(message: str) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, "InvalidRequestBody", message)


def _parse_execution_fields(fields: Mapping[str, Any]) -> _ExecutionRequest:
    """Validate code, codeInputType, executionType, timeoutInSeconds and any language hint."""
    for name in LANGUAGE_FIELDS:
        language = fields.get(name)
        if language is not None and str(language).lower() not in JAVASCRIPT_LANGUAGES:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "UnsupportedLanguage",
                f"The request asks for {_echo(str(language))}, but the local pool runs {NODE_CONTAINER_TYPE} "
                "only (JavaScript on the machine's Node.js).",
            )
    code = fields.get("code")
    if not isinstance(code, str):
        raise _bad_body('The request body needs a "code" string holding the JavaScript to run.')
    input_type = fields.get("codeinputtype", CODE_INPUT_INLINE)
    if not isinstance(input_type, str) or input_type.lower() != CODE_INPUT_INLINE.lower():
        raise _bad_body(f'codeInputType must be "{CODE_INPUT_INLINE}": the local pool runs inline code only.')
    execution_type = fields.get("executiontype", EXECUTION_TYPE_SYNC)
    known_types = {kind.lower(): kind for kind in (EXECUTION_TYPE_SYNC, EXECUTION_TYPE_ASYNC)}
    if not isinstance(execution_type, str) or execution_type.lower() not in known_types:
        raise _bad_body(f'executionType must be "{EXECUTION_TYPE_SYNC}" or "{EXECUTION_TYPE_ASYNC}".')
    timeout = fields.get("timeoutinseconds", DEFAULT_EXECUTION_TIMEOUT_SECONDS)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_EXECUTION_SECONDS:
        raise _bad_body(f"timeoutInSeconds must be a number of seconds above 0 and at most {MAX_EXECUTION_SECONDS}.")
    return _ExecutionRequest(code, known_types[execution_type.lower()], float(timeout))


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


def _run_and_release(
    manager: SessionManager, session: Session, execution: Execution, code: str, timeout: float
) -> None:
    try:
        manager.run(session, execution, code, timeout)
    finally:
        manager.release(session)


def _execution_resource(execution: Execution) -> dict[str, Any]:
    """The 2024-10-02-preview SessionCodeExecutionResource; "result" only once the execution finished."""
    status = execution.status  # read first: the other fields are complete once it is final
    resource: dict[str, Any] = {
        "id": execution.id,
        "identifier": execution.identifier,
        "executionType": execution.execution_type,
        "status": status,
    }
    if status not in PENDING_STATUSES:
        resource["result"] = {
            "stdout": execution.stdout,
            "stderr": execution.stderr,
            "executionResult": execution.result,
            "executionTimeInMilliseconds": execution.time_ms,
        }
        if execution.error_code:
            resource["error"] = {"code": execution.error_code, "message": execution.error_message}
    return resource
