"""A real HTTP server on 127.0.0.1 whose answers each test scripts, for testing the smoke check.

``ScriptedPool(handler)`` runs ``http.server`` in a thread; ``handler(request)`` returns the Reply to
send. It records every request (method, path, query, headers, body, server-side arrival time) so a
test can assert what the client sent and when. Replies are built from the recorded Azure responses
kept in tests/data (see SOURCES.md there).
"""

from __future__ import annotations

import copy
import email.policy
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from smoke.protocol import HELLO_WORLD_STDOUT

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
LEGACY_RESPONSE_FILE = (
    "docs__MicrosoftDocs_azure-docs__sessions-tutorial-nodejs__code-execute_2024-02-02-preview_response.json"
)
EXECUTION_SYNC_FILE = (
    "Azure-Samples__container-apps-dynamic-sessions-samples__2024-10-02-preview_executions_sync_response.json"
)
EXECUTION_RUNNING_FILE = (
    "Azure-Samples__container-apps-dynamic-sessions-samples__2024-10-02-preview_executions_async_running_response.json"
)
SPEC_EXECUTE_SYNC_FILE = (
    "data-plane__Microsoft.App.DynamicSessions__2024-10-02-preview__examples__CodeExecution_Execute_Sync.json"
)
SPEC_RESULT_NONE_FILE = (
    "data-plane__Microsoft.App.DynamicSessions__2025-10-02-preview__examples__CodeExecution_Execute_Result_None.json"
)
SPEC_FILE_UPLOAD_FILE = (
    "data-plane__Microsoft.App.DynamicSessions__2024-10-02-preview__examples__SessionResourceFiles_Upload.json"
)
SPEC_FILE_LIST_FILE = (
    "data-plane__Microsoft.App.DynamicSessions__2024-10-02-preview__examples__SessionResourceFiles_List.json"
)
FILES_API_VERSION = "2024-10-02-preview"
LOOPBACK = "127.0.0.1"
SHUTDOWN_POLL_SECONDS = 0.02
# Base path of the regional endpoint shape, so every join test also proves the base path is kept.
REGIONAL_BASE_PATH = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/sessionPools/smokepool"


def load_recording(name: str) -> dict[str, Any]:
    """A recorded response from tests/data, as a fresh dict."""
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


def legacy_success(stdout: str = HELLO_WORLD_STDOUT) -> dict[str, Any]:
    """The tutorial's 2024-02-02-preview answer, printing ``stdout``."""
    body = load_recording(LEGACY_RESPONSE_FILE)
    body["properties"]["stdout"] = stdout
    return body


def execution_body(status: str = "Succeeded", stdout: str = HELLO_WORLD_STDOUT, stderr: str = "") -> dict[str, Any]:
    """The sample's 2024-10-02-preview answer with ``status``, ``stdout`` and ``stderr`` filled in."""
    body = load_recording(EXECUTION_SYNC_FILE)
    body["status"] = status
    body["result"]["stdout"] = body["rawResult"]["stdout"] = stdout
    body["result"]["stderr"] = body["rawResult"]["stderr"] = stderr
    return body


def running_body() -> dict[str, Any]:
    """The sample's 'Running' answer (no ``result`` yet)."""
    return load_recording(EXECUTION_RUNNING_FILE)


@dataclass(frozen=True)
class Reply:
    """What the server sends back: status, JSON (dict/list) or raw text body, headers, and an optional delay.

    ``drip`` sends the body one byte at a time with that many seconds between bytes; ``chunked`` sends
    it with ``Transfer-Encoding: chunked`` (one chunk per byte when dripping) instead of Content-Length.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_type: str | None = None
    drip: float = 0.0
    chunked: bool = False

    def encoded(self) -> tuple[bytes, str]:
        """The body bytes and their content type."""
        if self.body is None:
            return b"", self.content_type or "application/json"
        if isinstance(self.body, bytes | str):
            data = self.body if isinstance(self.body, bytes) else self.body.encode("utf-8")
            return data, self.content_type or "text/plain; charset=utf-8"
        return json.dumps(self.body).encode("utf-8"), self.content_type or "application/json"


@dataclass(frozen=True)
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    arrived: float  # time.monotonic() on arrival

    def json(self) -> Any:
        """The request body parsed as JSON."""
        return json.loads(self.body)

    @property
    def authorization(self) -> str | None:
        """The Authorization header, if any."""
        return self.headers.get("authorization")


Handler = Callable[[Request], Reply]


class ScriptedPool:
    """A threaded HTTP server on 127.0.0.1 answering with ``handler``; use it as a context manager."""

    def __init__(self, handler: Handler, base_path: str = "") -> None:
        self.handler = handler
        self.base_path = base_path
        self.requests: list[Request] = []
        self.failures: list[str] = []  # assertion messages from handlers, re-checked by the test
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._request_handler_class())
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval, and every test stops a server.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS}, daemon=True
        )

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self._server.server_address[1]

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def endpoint(self) -> str:
        """The pool management endpoint to give the smoke check (origin + base path)."""
        return self.origin + self.base_path

    def __enter__(self) -> ScriptedPool:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _record(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
        try:
            return self.handler(request)
        except AssertionError as error:
            with self._lock:
                self.failures.append(str(error))
            return Reply(599, {"error": {"code": "TestAssertion", "message": str(error)}})

    def _request_handler_class(self) -> type[BaseHTTPRequestHandler]:
        pool = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; without this, Nagle plus the client's delayed
            # ACK adds ~40 ms to every keep-alive answer.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                arrived = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                query = {name: values[-1] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
                headers = {name.lower(): value for name, value in self.headers.items()}
                reply = pool._record(Request(self.command, parts.path, query, headers, body, arrived))
                if reply.delay:
                    time.sleep(reply.delay)
                data, content_type = reply.encoded()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", content_type)
                    if reply.chunked:
                        self.send_header("Transfer-Encoding", "chunked")
                    else:
                        self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self._write_body(data, reply)
                except OSError:
                    pass  # the client gave up (read timeout); that is what some tests provoke

            def _write_body(self, data: bytes, reply: Reply) -> None:
                pieces = [data[index : index + 1] for index in range(len(data))] if reply.drip else [data]
                for piece in pieces:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if reply.chunked else piece)
                    self.wfile.flush()
                    if reply.drip:
                        time.sleep(reply.drip)
                if reply.chunked:
                    self.wfile.write(b"0\r\n\r\n")

            do_GET = _serve
            do_POST = _serve
            do_DELETE = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        return _Handler


def sequence(*replies: Reply) -> Handler:
    """Answer with ``replies`` in order; the last one repeats forever."""
    iterator: Iterator[Reply] = iter(replies)
    last = replies[-1]
    lock = threading.Lock()

    def handler(request: Request) -> Reply:
        with lock:
            return copy.deepcopy(next(iterator, last))

    return handler


def for_window(seconds: float, during: Reply, after: Handler) -> Handler:
    """Answer ``during`` until ``seconds`` after the first request arrived, then delegate to ``after``."""
    started: list[float] = []

    def handler(request: Request) -> Reply:
        if not started:
            started.append(request.arrived)
        if request.arrived - started[0] < seconds:
            return during
        return after(request)

    return handler


def hello_pool(identifier: str | None = None) -> Handler:
    """A well-behaved pool: both API generations answer hello-world in the recorded shapes.

    It asserts that the path and the query (api-version, identifier) are exactly what the API expects.
    """

    def handler(request: Request) -> Reply:
        if identifier is not None:
            assert request.query.get("identifier") == identifier, f"identifier {request.query!r}"
        assert request.method == "POST", f"unexpected {request.method} {request.path}"
        if request.path.endswith("/code/execute"):
            assert request.query.get("api-version") == "2024-02-02-preview", request.query
            return Reply(200, legacy_success())
        if request.path.endswith("/executions"):
            assert request.query.get("api-version") == "2024-10-02-preview", request.query
            return Reply(202, execution_body())
        raise AssertionError(f"unexpected path {request.path}")

    return handler


def multipart_files(request: Request) -> dict[str, tuple[str | None, bytes]]:
    """The parts of a multipart/form-data body: form field name -> (filename, bytes)."""
    head = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
    message = BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    assert message.is_multipart(), f"not multipart: {request.headers.get('content-type')!r}"
    return {
        part.get_param("name", header="content-disposition"): (part.get_filename(), part.get_payload(decode=True))
        for part in message.iter_parts()
    }


def files_pool(store: dict[str, bytes], download: Callable[[bytes], bytes] = lambda data: data) -> Handler:
    """hello_pool() plus the 2024-10-02-preview files API as its spec and examples describe it.

    ``POST files`` (multipart, one part named ``file``) -> 200 with the uploaded file's description;
    ``GET files`` -> ``{"value": [...], "nextLink": null}``; ``GET files/{name}/content`` -> the bytes
    (passed through ``download``, so a test can corrupt them); ``DELETE files/{name}`` -> 204; an unknown
    name -> 404. Files live in ``store`` (name -> bytes), so a test sees what is left behind.
    """
    hello = hello_pool()

    def handler(request: Request) -> Reply:
        _base_path, found, suffix = request.path.partition("/files")
        if not found:
            return hello(request)
        assert request.query.get("api-version") == FILES_API_VERSION, request.query
        assert request.query.get("identifier"), request.query
        if suffix == "" and request.method == "POST":
            [(field_name, (filename, data))] = multipart_files(request).items()
            assert field_name == "file" and filename, (field_name, filename)
            store[filename] = data
            body = load_recording(SPEC_FILE_UPLOAD_FILE)["responses"]["200"]["body"]
            body.update(name=filename, sizeInBytes=len(data), contentType="application/octet-stream")
            return Reply(200, body)
        if suffix == "" and request.method == "GET":
            listing = load_recording(SPEC_FILE_LIST_FILE)["responses"]["200"]["body"]
            template = listing["value"][0]
            listing["value"] = [{**template, "name": name, "sizeInBytes": len(data)} for name, data in store.items()]
            return Reply(200, listing)
        name = unquote(suffix.removeprefix("/").removesuffix("/content"))
        if name not in store:
            return Reply(404, {"error": {"code": "FileNotFound", "message": f"File {name} was not found."}})
        if suffix.endswith("/content") and request.method == "GET":
            return Reply(200, download(store[name]), content_type="application/octet-stream")
        if request.method == "DELETE":
            del store[name]
            return Reply(204)
        raise AssertionError(f"unexpected {request.method} {request.path}")

    return handler


def free_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]
