"""Record the HTTP that real dynamic-sessions clients send, as test data for the local pool.

The clients are heavy and stay out of the project's requirements. Run this script with a separate
virtualenv that has them (and aiohttp, which autogen-ext brings along):

    python3 -m venv /tmp/clients-venv
    /tmp/clients-venv/bin/pip install langchain-azure-dynamic-sessions llama-index-tools-azure-code-interpreter \\
        semantic-kernel "autogen-ext[azure]" azure-dynamic-sessions-code-interpreter
    /tmp/clients-venv/bin/python scripts/record_clients.py

A recording server on 127.0.0.1 (HTTP, and HTTPS with a throw-away self-signed certificate made by
``openssl`` for semantic-kernel, trusted through ``SSL_CERT_FILE``) answers like Azure, using
``localpool/wire.py`` (loaded on its own, without the rest of the package). Nothing is executed:
every execution gets the same canned answer. Each client is driven through every public method
with a static token; each request is written to ``tests/data/clients/<package>-<version>.json``
with the Authorization value, random session ids, multipart boundaries and ports replaced by
stable placeholders.

``--try-pool ENDPOINT`` records nothing: it drives the same methods against a running pool (the local
pool started with ``--tls --token recorder-static-token``, its certificate in ``SSL_CERT_FILE``) and
prints, per client and method, what worked.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib.metadata
import importlib.util
import io
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "data" / "clients"
# Azure's endpoint shape: https://<region>.dynamicsessions.io/subscriptions/<sub>/resourceGroups/<rg>/sessionPools/<pool>
POOL_PATH = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/recorder-rg/sessionPools/recorder"
POOL_NAME = "recorder"
STATIC_TOKEN = "recorder-static-token"  # noqa: S105 - a placeholder the server accepts, not a secret
REDACTED = "<redacted>"
UPLOAD_NAME = "hello.txt"
UPLOAD_BYTES = b"Hello from the recorder!\n"
# Clients may wait for a background DELETE session (langchain sends it from a thread).
BACKGROUND_WAIT_SECONDS = 5.0
# Bodies of other content types longer than this are summarised, not kept.
MAX_KEPT_BODY_BYTES = 4096
# --try-pool shows the start of what each method returned, to judge it by eye.
SHOWN_ANSWER_CHARS = 240


def load_wire() -> ModuleType:
    """localpool/wire.py on its own: it is pure Python, the rest of the package is not needed."""
    spec = importlib.util.spec_from_file_location("localpool_wire", ROOT / "localpool" / "wire.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


wire = load_wire()


class Recorder:
    """Answers like Azure and keeps every request of the client being recorded."""

    def __init__(self) -> None:
        self.container_type = wire.ContainerType.PYTHON_LTS
        self.step = ""
        self.calls: list[dict[str, Any]] = []
        self.files: dict[tuple[str, str], bytes] = {}
        self.lock = threading.Lock()

    def reset(self, container_type: Any) -> None:
        with self.lock:
            self.container_type = container_type
            self.calls = []
            self.files = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        raw = await request.read()  # aiohttp decodes chunked bodies
        call = {
            "step": self.step,
            "method": request.method,
            "path": request.path,
            "query": {key: request.query.getall(key) for key in request.query},
            "headers": {
                key: (REDACTED if key.lower() == "authorization" else value) for key, value in request.headers.items()
            },
            "chunked": chunked,
            "body": describe_body(request.headers.get("Content-Type", ""), raw),
        }
        response = self.answer(request, raw)
        call["answer"] = {"status": response.status, "operation": response.headers.get("X-Recorder-Operation", "")}
        with self.lock:
            self.calls.append(call)
        return response

    def answer(self, request: web.Request, raw: bytes) -> web.Response:
        if not request.path.startswith(POOL_PATH):
            return error_response(wire.WireError(404, "NotFound", f"No session pool at {request.path}."), "")
        path = request.path[len(POOL_PATH) :] or "/"
        if request.headers.get("Authorization") != f"Bearer {STATIC_TOKEN}":
            return error_response(wire.WireError(401, "Unauthorized", "The bearer token is missing or wrong."), "")
        version = request.query.get("api-version")
        try:
            op, params = wire.resolve(request.method, path, version)
        except wire.WireError as error:
            return error_response(error, "")
        identifier = request.query.get("identifier", "")
        try:
            response = self.operate(op, params, version, identifier, request, raw)
        except wire.WireError as error:
            return error_response(error, op.operation_id)
        response.headers["X-Recorder-Operation"] = op.operation_id
        return response

    def operate(self, op: Any, params: dict[str, str], version: str, identifier: str, request: Any, raw: bytes):
        now = datetime.now(UTC)
        kind = op.operation_id
        if kind == "CodeExecution_Execute":
            wire.parse_execution_request(version, json.loads(raw or b"null"), self.container_type)
            output = canned_output(self.container_type)
            if version == wire.API_2024_02:
                return web.json_response(wire.legacy_execute_answer(self.container_type, output))
            body = wire.execution_resource(
                self.container_type,
                execution_id="execution-1",
                identifier=identifier,
                execution_type=wire.ExecutionType.SYNCHRONOUS,
                status=wire.ExecutionStatus.SUCCEEDED,
                output=output,
            )
            headers = wire.execution_headers(version, "execution-1", identifier, str(request.url.origin()) + POOL_PATH)
            return web.json_response(body, status=op.success_status, headers=headers)
        if kind == "SessionResourceFiles_Upload":
            declared = request.headers.get("Content-Type", "")
            if not declared.startswith("multipart/form-data"):
                # Recorded, not answered as Azure might: Azure's reaction to this mismatch is unknown.
                declared = sniff_multipart(raw) or declared
            name, content = first_file_part(declared, raw)
            name = name.removeprefix(wire.FILES_ROOT + "/")
            self.files[(identifier, name)] = content
            return web.json_response(wire.upload_answer(version, [file_info(name, content, now)]))
        if kind == "SessionResourceFiles_List":
            infos = [file_info(n, c, now) for (who, n), c in sorted(self.files.items()) if who == identifier]
            return web.json_response(wire.file_list(version, infos))
        if kind in {"SessionResourceFiles_Get", "SessionResourceFiles_GetContent", "SessionResourceFiles_Delete"}:
            name = params["name"].removeprefix(wire.FILES_ROOT + "/").lstrip("/")
            if (identifier, name) not in self.files:
                raise wire.WireError(404, "FileNotFound", f"No file {name!r} in session {identifier!r}.")
            if kind == "SessionResourceFiles_GetContent":
                return web.Response(body=self.files[(identifier, name)], content_type=wire.OCTET_STREAM)
            if kind == "SessionResourceFiles_Delete":
                del self.files[(identifier, name)]
                return web.Response(status=204)
            return web.json_response(wire.file_resource(version, file_info(name, self.files[(identifier, name)], now)))
        if kind == "SessionManagement_Delete":
            self.files = {key: value for key, value in self.files.items() if key[0] != identifier}
            return web.Response(status=204)
        if kind == "SessionManagement_Get":
            return web.json_response(wire.session_resource(wire.SessionInfo(identifier, now, now, now, "etag-1")))
        if kind == "ListSessions_Get":
            return web.json_response(wire.session_list([]))
        if kind == "SessionPoolManagement_StopSession":
            return web.Response(text=wire.stop_session_text(identifier, POOL_NAME))
        return web.json_response(
            wire.pool_metadata(self.container_type, runtimes={}, packages={}, created_at=now, last_updated_at=now)
        )


def canned_output(container_type: Any) -> Any:
    if container_type is wire.ContainerType.SHELL:
        return wire.ExecutionOutput("recorded\n", "", "", 1, exit_code=0)
    return wire.ExecutionOutput("recorded\n", "", "", 1)


def file_info(name: str, content: bytes, now: datetime) -> Any:
    directory, _, base = name.rpartition("/")
    return wire.FileInfo(base, len(content), now, wire.OCTET_STREAM, directory=directory)


def error_response(error: Any, operation: str) -> web.Response:
    headers = {**error.headers, "X-Recorder-Operation": operation or error.code}
    return web.json_response(error.body, status=error.status, headers=headers)


def _multipart_parts(content_type: str, raw: bytes) -> Iterator[tuple[dict[str, str], bytes]]:
    # The stdlib email parser reads multipart/form-data as a MIME message; no hand-made splitting.
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    for part in message.iter_parts():
        yield dict(part.items()), part.get_payload(decode=True) or b""


def first_file_part(content_type: str, raw: bytes) -> tuple[str, bytes]:
    from email.message import Message

    for headers, payload in _multipart_parts(content_type, raw):
        disposition = Message()
        disposition["Content-Disposition"] = headers.get("Content-Disposition", "")
        filename = disposition.get_param("filename", header="Content-Disposition")
        if filename:
            return str(filename), payload
    raise wire.WireError(400, "InvalidRequestBody", "The upload has no part with a filename.")


def sniff_multipart(raw: bytes) -> str | None:
    """The multipart Content-Type a body was built with, read from its first boundary line."""
    first_line = raw.split(b"\r\n", 1)[0]
    if first_line.startswith(b"--") and len(first_line) > 2:
        return "multipart/form-data; boundary=" + first_line[2:].decode("ascii", "replace")
    return None


def describe_body(content_type: str, raw: bytes) -> Any:
    """The body as JSON, as multipart structure, as text, or as a size and base64 when binary."""
    if not raw:
        return None
    if content_type.startswith("application/json"):
        with contextlib.suppress(ValueError):
            return {"json": json.loads(raw)}
        # semantic-kernel keeps "Content-Type: application/json" on its client for later multipart uploads.
        content_type = sniff_multipart(raw) or content_type
    if content_type.startswith("multipart/form-data"):
        parts = []
        for headers, payload in _multipart_parts(content_type, raw):
            part: dict[str, Any] = {"headers": headers, "size": len(payload)}
            try:
                part["text"] = payload.decode("utf-8")
            except UnicodeDecodeError:
                part["base64"] = base64.b64encode(payload).decode()
            parts.append(part)
        return {"multipart": parts, "size": len(raw)}
    kept = raw[:MAX_KEPT_BODY_BYTES]
    return {"size": len(raw), "base64": base64.b64encode(kept).decode(), "truncated": len(raw) > len(kept)}


class Server:
    """The recorder on HTTP and HTTPS ports of 127.0.0.1, run in a thread with its own event loop."""

    def __init__(self, recorder: Recorder, cert: Path, key: Path) -> None:
        self.recorder = recorder
        self.loop = asyncio.new_event_loop()
        self.cert, self.key = cert, key
        self.ports: dict[str, int] = {}
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        app = web.Application(client_max_size=max(wire.MAX_UPLOAD_BYTES.values()))
        app.router.add_route("*", "/{tail:.*}", self.recorder.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        for scheme, ssl_context in (("http", None), ("https", context)):
            site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ssl_context)
            await site.start()
            self.ports[scheme] = site._server.sockets[0].getsockname()[1]  # aiohttp has no public getter for the port

    def __enter__(self) -> Server:
        self.thread.start()
        self.ready.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()

    def endpoint(self, scheme: str) -> str:
        return f"{scheme}://127.0.0.1:{self.ports[scheme]}{POOL_PATH}"


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, valid one day, made by openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl = shutil.which("openssl")
    if openssl is None:
        raise SystemExit("openssl is not on PATH; install it (e.g. 'apt-get install openssl') to serve HTTPS.")
    subprocess.run(  # noqa: S603 - fixed argv, no shell
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


# --- Drivers: every public method of each client ---------------------------------------------

Step = Callable[[str], contextlib.AbstractContextManager[list[Any]]]


def _drive_file_methods(tool: Any, step: Step, work: Path) -> None:
    """upload_file, list_files and download_file, as the langchain tools and CodeInterpreterTool name them."""
    with step("upload_file") as seen:
        seen.append(tool.upload_file(data=io.BytesIO(UPLOAD_BYTES), remote_file_path=UPLOAD_NAME))
    with step("list_files") as seen:
        seen.append(tool.list_files())
    with step("download_file") as seen:
        seen.append(tool.download_file(remote_file_path=UPLOAD_NAME, local_file_path=str(work / "down.txt")))


def _drive_langchain_tool(tool: Any, execute_code: str, invoke_code: str, step: Step, work: Path) -> None:
    """Every public method of a langchain-azure-dynamic-sessions tool (both tools share them)."""
    with step("execute") as seen:
        seen.append(tool.execute(execute_code))
    with step("invoke") as seen:
        seen.append(tool.invoke(invoke_code))
    _drive_file_methods(tool, step, work)
    with step("delete_session") as seen:
        seen.append(tool.delete_session())
        time.sleep(0.5)  # langchain deletes from a background thread
    with step("close") as seen:
        seen.append(tool.close())
        time.sleep(0.5)


def drive_langchain_python(endpoint: str, step: Step, work: Path) -> None:
    from langchain_azure_dynamic_sessions import SessionsPythonREPLTool

    tool = SessionsPythonREPLTool(pool_management_endpoint=endpoint, access_token_provider=lambda: STATIC_TOKEN)
    _drive_langchain_tool(tool, "print('hello-world')", "6 * 7", step, work)


def drive_langchain_bash(endpoint: str, step: Step, work: Path) -> None:
    from langchain_azure_dynamic_sessions import SessionsBashTool

    tool = SessionsBashTool(pool_management_endpoint=endpoint, access_token_provider=lambda: STATIC_TOKEN)
    _drive_langchain_tool(tool, "echo hello-world", "ls /mnt/data", step, work)


def drive_llama_index(endpoint: str, step: Step, work: Path) -> None:
    from llama_index.tools.azure_code_interpreter import AzureCodeInterpreterToolSpec

    spec = AzureCodeInterpreterToolSpec(pool_management_endpoint=endpoint)
    spec.access_token_provider = lambda: STATIC_TOKEN
    with step("code_interpreter") as seen:
        seen.append(spec.code_interpreter("print('hello-world')"))
    local = work / UPLOAD_NAME
    local.write_bytes(UPLOAD_BYTES)
    with step("upload_file") as seen:
        seen.append(spec.upload_file(local_file_path=str(local)))
    with step("list_files") as seen:
        seen.append(spec.list_files())
    with step("download_file_to_local") as seen:
        seen.append(spec.download_file_to_local(remote_file_path=UPLOAD_NAME, local_file_path=str(work / "down.txt")))


def drive_semantic_kernel(endpoint: str, step: Step, work: Path) -> None:
    from semantic_kernel.core_plugins.sessions_python_tool import SessionsPythonTool

    local = work / UPLOAD_NAME
    local.write_bytes(UPLOAD_BYTES)

    def make_tool() -> Any:
        return SessionsPythonTool(
            auth_callback=lambda: STATIC_TOKEN,
            pool_management_endpoint=endpoint,
            enable_dangerous_file_uploads=True,
            allowed_upload_directories={str(work)},
            allowed_download_directories={str(work)},
        )

    async def run() -> None:
        # A fresh tool uploads with a multipart Content-Type; after execute_code, the tool's client
        # keeps "Content-Type: application/json" for every later request, uploads included.
        with step("upload_file_before_execute") as seen:
            seen.append(await make_tool().upload_file(local_file_path=str(local), remote_file_path=UPLOAD_NAME))
        tool = make_tool()
        with step("execute_code") as seen:
            seen.append(await tool.execute_code("print('hello-world')"))
        with step("upload_file") as seen:
            seen.append(await tool.upload_file(local_file_path=str(local), remote_file_path=UPLOAD_NAME))
        with step("list_files") as seen:
            seen.append(await tool.list_files())
        with step("download_file") as seen:
            seen.append(await tool.download_file(remote_file_name=UPLOAD_NAME, local_file_path=str(work / "down.txt")))

    asyncio.run(run())


def drive_autogen(endpoint: str, step: Step, work: Path) -> None:
    from autogen_core import CancellationToken
    from autogen_core.code_executor import CodeBlock
    from autogen_ext.code_executors.azure import ACADynamicSessionsCodeExecutor

    class StaticCredential:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            from azure.core.credentials import AccessToken

            return AccessToken(STATIC_TOKEN, int(time.time()) + 3600)

    (work / UPLOAD_NAME).write_bytes(UPLOAD_BYTES)
    executor = ACADynamicSessionsCodeExecutor(
        pool_management_endpoint=endpoint, credential=StaticCredential(), work_dir=work
    )

    async def run() -> None:
        token = CancellationToken()
        with step("start") as seen:
            seen.append(await executor.start())
        with step("upload_files") as seen:
            seen.append(await executor.upload_files([UPLOAD_NAME], token))
        with step("get_file_list") as seen:
            seen.append(await executor.get_file_list(token))
        with step("download_files") as seen:
            seen.append(await executor.download_files([UPLOAD_NAME], token))
        with step("execute_code_blocks") as seen:
            seen.append(
                await executor.execute_code_blocks([CodeBlock(code="print('hello-world')", language="python")], token)
            )
        with step("get_available_packages") as seen:
            seen.append(await executor.get_available_packages(token))
        with step("restart") as seen:
            seen.append(await executor.restart())
        with step("stop") as seen:
            seen.append(await executor.stop())

    asyncio.run(run())


def drive_code_interpreter(endpoint: str, step: Step, work: Path) -> None:
    from azure_dynamic_sessions_code_interpreter import CodeInterpreterTool

    tool = CodeInterpreterTool(pool_management_endpoint=endpoint)
    tool.access_token_provider = lambda: STATIC_TOKEN
    with step("execute") as seen:
        seen.append(tool.execute("print('hello-world')"))
    _drive_file_methods(tool, step, work)
    # An Azure OpenAI Chat Completions tool call, as the client reads it (attributes, not keys).
    function = SimpleNamespace(name="execute_python_code", arguments='{"python_code": "1+1"}')
    call = SimpleNamespace(id="call-1", type="function", function=function)
    with step("execute_tool_call") as seen:
        seen.append(tool.execute_tool_call(call, tool.get_tool_call_arguments(call)))


# (package, container type, scheme, driver)
CLIENTS: list[tuple[str, str, str, Callable[[str, Step, Path], None]]] = [
    ("langchain-azure-dynamic-sessions", "PythonLTS", "http", drive_langchain_python),
    ("langchain-azure-dynamic-sessions", "Shell", "http", drive_langchain_bash),
    ("llama-index-tools-azure-code-interpreter", "PythonLTS", "http", drive_llama_index),
    ("semantic-kernel", "PythonLTS", "https", drive_semantic_kernel),
    ("autogen-ext", "PythonLTS", "http", drive_autogen),
    ("azure-dynamic-sessions-code-interpreter", "PythonLTS", "http", drive_code_interpreter),
]
# Clients with more than one tool get the tool's name in the file name.
TOOL_SUFFIX = {drive_langchain_python: "-python", drive_langchain_bash: "-bash"}


def stable(calls: list[dict[str, Any]], port_pattern: str) -> list[dict[str, Any]]:
    """Replace what changes between runs (session ids, boundaries, ports) with placeholders."""
    text = json.dumps(calls)
    uuids: dict[str, str] = {}
    for found in re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text):
        if not found.startswith("00000000"):
            uuids.setdefault(found, f"<session-{len(uuids) + 1}>")
    for value, placeholder in uuids.items():
        text = text.replace(value, placeholder)
    for boundary in set(re.findall(r"boundary=\\?\"?([^\";\\]+)", text)):
        text = text.replace(boundary, "<boundary>")
    text = re.sub(port_pattern, "127.0.0.1:<port>", text)
    return json.loads(text)


def record(out: Path, only: set[str] | None) -> list[str]:
    recorder = Recorder()
    summary = []
    with tempfile.TemporaryDirectory() as scratch:
        cert, key = make_certificate(Path(scratch))
        # httpx (semantic-kernel) and requests trust the certificate named here.
        os.environ["SSL_CERT_FILE"] = str(cert)
        os.environ["REQUESTS_CA_BUNDLE"] = str(cert)
        with Server(recorder, cert, key) as server:
            port_pattern = rf"127\.0\.0\.1:({server.ports['http']}|{server.ports['https']})"
            for package, container_type, scheme, driver in CLIENTS:
                if only and package not in only:
                    continue
                version = importlib.metadata.version(package)
                recorder.reset(wire.ContainerType(container_type))
                failures: list[str] = []

                @contextlib.contextmanager
                def step(name: str, failures: list[str] = failures) -> Iterator[list[Any]]:
                    recorder.step = name
                    try:
                        yield []
                    except Exception as error:  # a failing method is a finding, not a stop
                        failures.append(f"{name}: {type(error).__name__}: {str(error)[:300]}")

                work = Path(tempfile.mkdtemp(dir=scratch))
                driver(server.endpoint(scheme), step, work)
                deadline = time.monotonic() + BACKGROUND_WAIT_SECONDS
                while driver in TOOL_SUFFIX and time.monotonic() < deadline:
                    if any(call["method"] == "DELETE" and call["path"].endswith("/session") for call in recorder.calls):
                        break
                    time.sleep(0.05)
                with recorder.lock:
                    calls = stable(list(recorder.calls), port_pattern)
                name = f"{package}{TOOL_SUFFIX.get(driver, '')}-{version}.json"
                document = {
                    "package": package,
                    "version": version,
                    "driver": driver.__name__,
                    "container_type": container_type,
                    "scheme": scheme,
                    "endpoint": f"{scheme}://127.0.0.1:<port>{POOL_PATH}",
                    "python": sys.version.split()[0],
                    "failures": failures,
                    "calls": calls,
                }
                (out / name).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
                summary.append(f"{name}: {len(calls)} calls, {len(failures)} failed steps {failures}")
    return summary


def try_pool(endpoint: str, only: set[str] | None) -> list[str]:
    """Drive each client against a running pool (e.g. ``python -m localpool --tls --token recorder-static-token``)
    and say, per client and method, whether it worked. HTTPS clients need the pool's certificate in
    SSL_CERT_FILE; the pool's token must be STATIC_TOKEN."""
    summary = []
    for package, container_type, _scheme, driver in CLIENTS:
        if only and package not in only:
            continue
        outcomes: list[str] = []

        @contextlib.contextmanager
        def step(name: str, outcomes: list[str] = outcomes) -> Iterator[list[Any]]:
            seen: list[Any] = []
            try:
                yield seen
                answer = f" -> {str(seen[0])[:SHOWN_ANSWER_CHARS]!r}" if seen and seen[0] is not None else ""
                outcomes.append(f"{name}: ok{answer}")
            except Exception as error:  # a failing method is a finding, not a stop
                outcomes.append(f"{name}: FAILED {type(error).__name__}: {str(error)[:200]}")

        with tempfile.TemporaryDirectory() as work:
            driver(endpoint, step, Path(work))
            downloaded = Path(work, "down.txt")
            same = downloaded.exists() and downloaded.read_bytes() == UPLOAD_BYTES
        version = importlib.metadata.version(package)
        tool = TOOL_SUFFIX.get(driver, "")
        summary.append(f"{package}{tool} {version} (made for {container_type}; download identical: {same})")
        summary += [f"  {outcome}" for outcome in outcomes]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the recordings")
    parser.add_argument("--only", action="append", help="record only this package (repeatable)")
    parser.add_argument(
        "--try-pool",
        metavar="ENDPOINT",
        help=f"record nothing: drive every client against this running pool (its token must be {STATIC_TOKEN!r}) "
        "and print what worked per method",
    )
    args = parser.parse_args()
    only = set(args.only) if args.only else None
    if args.try_pool:
        for line in try_pool(args.try_pool, only):
            print(line)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for line in record(args.out, only):
        print(line)


if __name__ == "__main__":
    main()
