"""The local pool's wire: Azure's dynamic-sessions data plane as data and answer builders.

This is the one place the local pool takes its answers from. It restates Azure's data-plane
documents (copies in ``tests/data/dataplane/``, sources in ``tests/data/SOURCES.md``):

- ``2024-02-02-preview``: no OpenAPI file exists; facts from Microsoft's docs, the NodeLTS tutorial
  and a recording against a real PythonLTS pool (``facts__data-plane-2024-02-02-preview-files.md``).
- ``2024-10-02-preview``, ``2025-02-02-preview``, ``2025-10-02-preview``: Azure's ``DynamicSessions.json``.

Every builder's output is checked against those documents by ``tests/test_wire.py``. Pure Python:
no I/O, no clock, no import from ``smoke`` (the smoke client is tested against the same documents,
not against this module).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urlencode

# --- API versions ---------------------------------------------------------------------------

API_2024_02 = "2024-02-02-preview"
API_2024_10 = "2024-10-02-preview"
API_2025_02 = "2025-02-02-preview"
API_2025_10 = "2025-10-02-preview"
SUPPORTED_API_VERSIONS: tuple[str, ...] = (API_2024_02, API_2024_10, API_2025_02, API_2025_10)


class ContainerType(StrEnum):
    """The built-in container types of a session pool (``containerType`` of the session pool)."""

    NODE_LTS = "NodeLTS"
    PYTHON_LTS = "PythonLTS"
    SHELL = "Shell"


# --- Limits (Azure's docs; see FACTS.md "Data plane") ---------------------------------------

# sessions-code-interpreter.md: one execution runs at most 220 s.
MAX_EXECUTION_SECONDS = 220
# Shell pools (Azure-Samples container-apps-dynamic-sessions-samples, code-interpreter/shell/api-spec-shell.md):
# timeoutInSeconds defaults to 180 s. No maximum is documented; Azure's example
# CodeExecution_Execute_ShellExecCommandAndArgs (2025-10-02-preview) asks for 600 s and is answered 200.
SHELL_DEFAULT_EXECUTION_SECONDS = 180
SHELL_MAX_EXECUTION_SECONDS = 600
# SessionCodeExecutionRequest.outputStreamsMaxLength: "Default value is 4096."
DEFAULT_OUTPUT_STREAMS_MAX_LENGTH = 4096
# The largest file one upload may carry, per container type; a larger one is refused with 413. No document
# says whether MB means 10^6 or 2^20 bytes; the larger reading is taken.
# - NodeLTS, PythonLTS: sessions-code-interpreter.md, "The file upload limit is 128 MB" (413 above it). The
#   Python image's own api-spec-python.md (Azure-Samples) says "max 250 MB by default"; the service's doc wins.
# - Shell: code-interpreter/shell/api-spec-shell.md (Azure-Samples), Upload File and Notes: "Max file upload
#   size is 250 MB by default" (no doc of the service names a Shell limit).
MAX_UPLOAD_BYTES: dict[ContainerType, int] = {
    ContainerType.NODE_LTS: 128 * 1024 * 1024,
    ContainerType.PYTHON_LTS: 128 * 1024 * 1024,
    ContainerType.SHELL: 250 * 1024 * 1024,
}
# parameters.SessionIdentifier.pattern of the 2025-10-02-preview document (4-128 characters).
SESSION_IDENTIFIER_PATTERN = re.compile(r"^[a-zA-Z0-9_|}{\[\]\:\"\";'<>?\/.,@#$%\^&*()_\-+=!~`]{4,128}$")
SESSION_IDENTIFIER_RULE = "4-128 characters: letters, digits and the punctuation _|{}[]:\";'<>?/.,@#$%^&*()-+=!~`"

# Where a session's files live (sessions-code-interpreter.md: "Files live in /mnt/data").
FILES_ROOT = "/mnt/data"

# --- Header names ---------------------------------------------------------------------------

ERROR_CODE_HEADER = "x-ms-error-code"
OPERATION_ID_HEADER = "operation-id"
OPERATION_LOCATION_HEADER = "Operation-Location"

# --- Operations -----------------------------------------------------------------------------

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
TEXT = "text/plain"
EXECUTIONS_VERSIONS = (API_2024_10, API_2025_02, API_2025_10)
SESSION_VERSIONS = (API_2025_02, API_2025_10)


@dataclass(frozen=True)
class Operation:
    """One data-plane operation: its name in Azure's document, method, path template and success status."""

    operation_id: str
    method: str
    template: str
    success_status: int
    api_versions: tuple[str, ...]
    content_type: str | None = JSON
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = re.split(r"\{([^}]+)\}", self.template)
        regex = "".join(re.escape(part) if index % 2 == 0 else f"(?P<{part}>[^/]+)" for index, part in enumerate(parts))
        object.__setattr__(self, "pattern", re.compile(regex + "$"))

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters if ``path`` (without query) fits this template, else ``None``."""
        found = self.pattern.match(path)
        return None if found is None else found.groupdict()


# Success statuses are those of the current revision of each document. Earlier revisions of the
# 2024-10-02-preview and 2025-02-02-preview documents gave 202 for POST /executions (and the
# locally run interpreter container of Azure-Samples still does); both now declare 200.
OPERATIONS: tuple[Operation, ...] = (
    # 2024-02-02-preview (sessions-code-interpreter.md endpoint table); one file's metadata and its
    # DELETE from Azure-Samples' code-interpreter/2024-08-02-preview-and-before.md ("and before").
    Operation("CodeExecution_Execute", "POST", "/code/execute", 200, (API_2024_02,)),
    Operation("SessionResourceFiles_Upload", "POST", "/files/upload", 200, (API_2024_02,)),
    Operation("SessionResourceFiles_List", "GET", "/files", 200, (API_2024_02,)),
    Operation("SessionResourceFiles_GetContent", "GET", "/files/content/{name}", 200, (API_2024_02,), OCTET_STREAM),
    Operation("SessionResourceFiles_Get", "GET", "/files/{name}", 200, (API_2024_02,)),
    Operation("SessionResourceFiles_Delete", "DELETE", "/files/{name}", 200, (API_2024_02,)),
    # 2024-10-02-preview on (DynamicSessions.json).
    Operation("CodeExecution_Execute", "POST", "/executions", 200, EXECUTIONS_VERSIONS),
    Operation("CodeExecution_Get", "GET", "/executions/{executionId}", 200, EXECUTIONS_VERSIONS),
    Operation("SessionResourceFiles_List", "GET", "/files", 200, EXECUTIONS_VERSIONS),
    Operation("SessionResourceFiles_Upload", "POST", "/files", 200, EXECUTIONS_VERSIONS),
    Operation("SessionResourceFiles_Get", "GET", "/files/{name}", 200, EXECUTIONS_VERSIONS),
    Operation("SessionResourceFiles_Delete", "DELETE", "/files/{name}", 204, EXECUTIONS_VERSIONS, None),
    Operation("SessionResourceFiles_GetContent", "GET", "/files/{name}/content", 200, EXECUTIONS_VERSIONS,
              OCTET_STREAM),
    # 2025-02-02-preview on.
    Operation("ListSessions_Get", "GET", "/listSessions", 200, SESSION_VERSIONS),
    Operation("SessionManagement_Get", "GET", "/session", 200, SESSION_VERSIONS),
    Operation("SessionManagement_Delete", "DELETE", "/session", 204, SESSION_VERSIONS, None),
    Operation("SessionPoolMetadata_Get", "GET", "/metadata", 200, SESSION_VERSIONS),
    # 2025-10-02-preview (later revision): stop a session, answered in plain text.
    Operation("SessionPoolManagement_StopSession", "POST", "/.management/stopSession", 200, (API_2025_10,), TEXT),
)  # fmt: skip


def operations_for(api_version: str) -> tuple[Operation, ...]:
    """The operations ``api_version`` offers (empty for a version Azure does not have)."""
    return tuple(op for op in OPERATIONS if api_version in op.api_versions)


# --- Errors ---------------------------------------------------------------------------------


class WireError(Exception):
    """An answer in Azure.Core's error shape: a status, an error code, a sentence for a person, and
    the headers it needs beyond x-ms-error-code (WWW-Authenticate, Retry-After, Allow)."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = int(status)
        self.code = code
        self.message = message
        self.extra_headers = dict(headers or {})

    @property
    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message)

    @property
    def headers(self) -> dict[str, str]:
        return {**error_headers(self.code), **self.extra_headers}


def error_body(code: str, message: str, target: str | None = None) -> dict[str, Any]:
    """Azure.Core.Foundations.ErrorResponse: ``{"error": {"code", "message"[, "target"]}}``."""
    error: dict[str, Any] = {"code": code, "message": message}
    if target is not None:
        error["target"] = target
    return {"error": error}


def error_headers(code: str) -> dict[str, str]:
    """Azure REST API guidelines: every error answer names its code in ``x-ms-error-code`` too."""
    return {ERROR_CODE_HEADER: code}


def _listed(values: Iterable[str]) -> str:
    return ", ".join(values)


# Values from the request are echoed in messages, cut to this length.
MAX_ECHOED_CHARS = 100


def shown(value: str) -> str:
    """A value from the request, cut to MAX_ECHOED_CHARS, for quoting in a message."""
    return value if len(value) <= MAX_ECHOED_CHARS else value[:MAX_ECHOED_CHARS] + "…"


# The data plane's answer to an unknown or missing api-version is not documented. Azure services on
# ASP.NET API Versioning answer 400 with code UnsupportedApiVersion ("The HTTP resource that matches
# the request URI '...' does not support the API version '...'.") or ApiVersionUnspecified
# (dotnet/aspnet-api-versioning wiki "Error Responses"; the App Configuration REST docs
# "rest-api-versioning" show the same sentences); Azure Resource Manager lists the alternatives as
# "The supported api-versions are '...'." Both are followed here, in Azure.Core's error shape.
def _versions_having(path: str) -> list[str]:
    """The api-versions with an operation at ``path``, or all of them when none has it (an unknown path)."""
    having = [
        version
        for version in SUPPORTED_API_VERSIONS
        if any(op.match(path) is not None for op in operations_for(version))
    ]
    return having or list(SUPPORTED_API_VERSIONS)


def missing_api_version(path: str) -> WireError:
    """400 for a request without ``api-version``, naming the versions that have this path."""
    return WireError(
        400,
        "ApiVersionUnspecified",
        f"An API version is required, but was not specified for '{shown(path)}'. "
        f"The supported api-versions are '{_listed(_versions_having(path))}'.",
    )


def unsupported_api_version(path: str, api_version: str) -> WireError:
    """400 for an ``api-version`` this path does not have, naming the ones it has."""
    return WireError(
        400,
        "UnsupportedApiVersion",
        f"The HTTP resource that matches the request URI '{shown(path)}' does not support the API version "
        f"'{shown(api_version)}'. The supported api-versions are '{_listed(_versions_having(path))}'.",
    )


def resolve(method: str, path: str, api_version: str | None) -> tuple[Operation, dict[str, str]]:
    """The operation that answers ``method path`` in ``api_version`` and its path parameters.

    ``path`` is the part below the pool management endpoint, without the query string. Raises
    WireError (400 for the api-version, 404 for an unknown path, 405 for a known path with
    another method) with a message naming what is supported.
    """
    # semantic-kernel, which works against Azure, posts to "code/execute/": a trailing slash is ignored.
    path = path.rstrip("/") or "/"
    if not api_version:
        raise missing_api_version(path)
    offered = operations_for(api_version)
    if not offered:
        raise unsupported_api_version(path, api_version)
    for op in sorted(offered, key=lambda op: op.template.count("{")):
        params = op.match(path)
        if params is not None and op.method == method.upper():
            return op, params
    same_path = [op.method for op in offered if op.match(path) is not None]
    if same_path:
        raise WireError(
            405,
            "MethodNotAllowed",
            f"'{shown(path)}' does not accept {shown(method.upper())} in api-version {api_version}; "
            f"it accepts {_listed(same_path)}.",
            {"Allow": ", ".join(sorted(set(same_path)))},
        )
    if any(op.match(path) is not None for version in SUPPORTED_API_VERSIONS for op in operations_for(version)):
        raise unsupported_api_version(path, api_version)
    raise WireError(
        404,
        "NotFound",
        f"No operation at '{shown(path)}' in api-version {api_version}; it has "
        f"{_listed(f'{op.method} {op.template}' for op in offered)}.",
    )


def invalid_identifier(identifier: str | None) -> WireError | None:
    """400 if the session ``identifier`` query parameter is missing or breaks Azure's pattern."""
    if not identifier:
        return WireError(400, "InvalidIdentifier", "The identifier query parameter is required (the session's id).")
    # fullmatch: the pattern's "$" would also match before a trailing newline.
    if SESSION_IDENTIFIER_PATTERN.fullmatch(identifier) is None:
        return WireError(
            400,
            "InvalidIdentifier",
            f"The identifier {shown(identifier)!r} is not valid; use {SESSION_IDENTIFIER_RULE}.",
        )
    return None


def upload_too_large(size: int, container_type: ContainerType) -> WireError:
    """413 for an upload above Azure's documented limit for the container type."""
    limit = MAX_UPLOAD_BYTES[container_type]
    return WireError(
        413,
        "RequestEntityTooLarge",
        f"The file is {size} bytes; a {container_type} session accepts files up to {limit} bytes "
        f"({limit / (1024 * 1024):g} MB).",
    )


# --- Times ----------------------------------------------------------------------------------


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with ``Z``, as the later documents' examples write it (milliseconds)."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def legacy_timestamp(moment: datetime) -> str:
    """.NET's round-trip format with 7 fractional digits and ``Z`` (2024-02-02-preview files list)."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}0Z"


# --- Executions -----------------------------------------------------------------------------


class ExecutionStatus(StrEnum):
    """Azure.Core.Foundations.OperationState."""

    NOT_STARTED = "NotStarted"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"


class ExecutionType(StrEnum):
    SYNCHRONOUS = "Synchronous"
    ASYNCHRONOUS = "Asynchronous"


UNFINISHED_STATUSES = frozenset({ExecutionStatus.NOT_STARTED, ExecutionStatus.RUNNING})
# The only status the 2024-02-02-preview documents and recordings show.
LEGACY_STATUS_SUCCESS = "Success"

# Name of the value of the last expression in an execution answer, per container type and API
# generation. 2024-02-02-preview: Python pools answer `result` (recorded against a PythonLTS pool;
# LangChain's docs output), the NodeLTS tutorial shows `executionResult`. From 2024-10-02-preview
# on, `result.executionResult` for every code pool (SessionCodeExecutionResult); Shell pools give
# none (CodeExecution_Execute_ShellCommand example).
LEGACY_RESULT_FIELD: dict[ContainerType, str] = {
    ContainerType.NODE_LTS: "executionResult",
    ContainerType.PYTHON_LTS: "result",
    ContainerType.SHELL: "executionResult",
}
RESULT_FIELD: dict[ContainerType, str | None] = {
    ContainerType.NODE_LTS: "executionResult",
    ContainerType.PYTHON_LTS: "executionResult",
    ContainerType.SHELL: None,
}


@dataclass(frozen=True)
class ExecutionOutput:
    """What one finished execution produced, before it is shaped for the wire."""

    stdout: str = ""
    stderr: str = ""
    # The value of the last expression, JSON-typed ("" when there is none, as Azure answers).
    value: Any = ""
    duration_ms: int = 0
    # Shell pools: the command's exit code, which Azure answers as the top-level status ("0").
    exit_code: int | None = None


def legacy_execute_answer(container_type: ContainerType, output: ExecutionOutput) -> dict[str, Any]:
    """``POST code/execute`` (2024-02-02-preview): ``{"properties": {...}}``.

    Python pools answer with JSON.NET ``$id`` numbers as the recording shows; the NodeLTS tutorial
    shows none. Errors of the code itself are in ``stderr``; the status stays ``Success``. Code
    without a value (``print(...)``) answers ``""`` in both, not ``null`` as later versions do.
    """
    properties: dict[str, Any] = {
        "status": LEGACY_STATUS_SUCCESS,
        "stdout": output.stdout,
        "stderr": output.stderr,
        LEGACY_RESULT_FIELD[container_type]: "" if output.value is None else output.value,
        "executionTimeInMilliseconds": output.duration_ms,
    }
    if container_type is ContainerType.PYTHON_LTS:
        return {"$id": "1", "properties": {"$id": "2", **properties}}
    return {"properties": properties}


def execution_resource(
    container_type: ContainerType,
    *,
    execution_id: str,
    identifier: str,
    execution_type: ExecutionType,
    status: ExecutionStatus,
    output: ExecutionOutput | None = None,
    error: WireError | None = None,
) -> dict[str, Any]:
    """SessionCodeExecutionResource (2024-10-02-preview on), for ``POST executions`` and ``GET executions/{id}``.

    An unfinished execution has no ``result``. A Shell execution that succeeded answers its exit code
    as the top-level ``status`` (Azure's ShellCommand example: ``"status": "0"``) and has no
    ``executionResult``; one that failed answers ``Failed`` whatever its command returned (the Shell
    container's status values: ``Failed`` "Execution failed or timed out"), e.g. a session its disk limit
    ended after the command exited. ``error`` is an ErrorResponse (``{"error": {...}}``), as the document says.
    """
    body: dict[str, Any] = {"id": execution_id, "identifier": identifier, "executionType": str(execution_type)}
    finished = status not in UNFINISHED_STATUSES
    succeeded = status == ExecutionStatus.SUCCEEDED
    if container_type is ContainerType.SHELL and succeeded and output is not None and output.exit_code is not None:
        body["status"] = str(output.exit_code)
    else:
        body["status"] = str(status)
    if finished and output is not None:
        result: dict[str, Any] = {"stdout": output.stdout, "stderr": output.stderr}
        result_field = RESULT_FIELD[container_type]
        if result_field is not None:
            result[result_field] = output.value
        result["executionTimeInMilliseconds"] = output.duration_ms
        body["result"] = result
    if error is not None:
        body["error"] = error.body
    return body


def operation_location(api_version: str, execution_id: str, identifier: str, endpoint: str = "") -> str:
    """Where to poll an execution: ``{endpoint}/executions/{id}?api-version=…&identifier=…``.

    With no ``endpoint`` the location is relative, as the Azure-Samples recording shows.
    """
    query = urlencode({"api-version": api_version, "identifier": identifier})
    return f"{endpoint.rstrip('/')}/executions/{quote(execution_id, safe='')}?{query}"


def execution_headers(api_version: str, execution_id: str, identifier: str, endpoint: str = "") -> dict[str, str]:
    """Headers of a ``POST executions`` answer (``operation-id`` and ``Operation-Location``)."""
    return {
        OPERATION_ID_HEADER: execution_id,
        OPERATION_LOCATION_HEADER: operation_location(api_version, execution_id, identifier, endpoint),
    }


# --- Files ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileInfo:
    """One file or directory under ``/mnt/data`` as the wire describes it."""

    name: str
    size: int
    modified: datetime
    content_type: str = OCTET_STREAM
    # Parent directory relative to /mnt/data ("" at the top); 2025-10-02-preview answers it.
    directory: str = ""
    is_directory: bool = False


def file_resource(api_version: str, info: FileInfo) -> dict[str, Any]:
    """SessionResourceFile (2024-10-02-preview on): one file's description.

    ``type`` is ``File`` or ``Directory`` as Azure's examples write it; ``directory`` exists from
    2025-10-02-preview on.
    """
    if api_version == API_2024_02:
        raise ValueError(f"api-version {API_2024_02} describes files inside a list; use file_list.")
    body: dict[str, Any] = {
        "name": info.name,
        "type": "Directory" if info.is_directory else "File",
        "contentType": info.content_type,
        "sizeInBytes": info.size,
        "lastModifiedAt": timestamp(info.modified),
    }
    if api_version == API_2025_10:
        body["directory"] = info.directory
    return body


def file_list(api_version: str, files: Sequence[FileInfo]) -> dict[str, Any]:
    """``GET files``: PagedSessionResourceFile, or the 2024-02-02-preview ``$id``/``properties`` list.

    The 2024-02-02-preview list numbers ``$id`` in document order, as the recording and the docs show.
    """
    if api_version != API_2024_02:
        return {"value": [file_resource(api_version, info) for info in files]}
    items = []
    for index, info in enumerate(files):
        number = 2 + 2 * index
        items.append(
            {
                "$id": str(number),
                "properties": {
                    "$id": str(number + 1),
                    "filename": info.name if not info.directory else f"{info.directory}/{info.name}",
                    "size": info.size,
                    "lastModifiedTime": legacy_timestamp(info.modified),
                },
            }
        )
    return {"$id": "1", "value": items}


def file_metadata(api_version: str, info: FileInfo) -> dict[str, Any]:
    """``GET files/{name}``: SessionResourceFile from 2024-10-02-preview on; before, a list of the one
    file with empty ``$id``s (Azure-Samples' 2024-08-02-preview-and-before.md:
    ``{"value":[{"$id":"","properties":{"$id":"","filename":…,"size":…,"lastModifiedTime":…}}]}``)."""
    if api_version != API_2024_02:
        return file_resource(api_version, info)
    [item] = file_list(api_version, [info])["value"]
    item["$id"] = item["properties"]["$id"] = ""
    return {"value": [item]}


def delete_file_answer(api_version: str) -> dict[str, Any] | None:
    """``DELETE files/{name}``: no body (204) from 2024-10-02-preview on; before, 200 with the message
    of Azure-Samples' 2024-08-02-preview-and-before.md."""
    return {"message": "file deleted successfully"} if api_version == API_2024_02 else None


def upload_answer(api_version: str, uploaded: Sequence[FileInfo]) -> dict[str, Any]:
    """Answer to an upload: one SessionResourceFile from 2024-10-02-preview on; before, a list
    shaped like ``GET files`` (LangChain reads ``value[0].properties``)."""
    if api_version == API_2024_02:
        return file_list(api_version, uploaded)
    if len(uploaded) != 1:
        raise ValueError(f"api-version {api_version} answers an upload with one file, not {len(uploaded)}.")
    return file_resource(api_version, uploaded[0])


# --- Sessions and the pool ------------------------------------------------------------------


@dataclass(frozen=True)
class SessionInfo:
    """One session of the pool."""

    identifier: str
    created_at: datetime
    last_accessed_at: datetime
    expire_at: datetime
    # "The ETag of the session, representing the underlying container ID."
    etag: str


def session_resource(session: SessionInfo) -> dict[str, Any]:
    """Session (``GET session``, 2025-02-02-preview on)."""
    return {
        "identifier": session.identifier,
        "createdAt": timestamp(session.created_at),
        "lastAccessedAt": timestamp(session.last_accessed_at),
        "expireAt": timestamp(session.expire_at),
        "etag": session.etag,
    }


def session_list(sessions: Iterable[SessionInfo]) -> dict[str, Any]:
    """SessionsListResponse (``GET listSessions``)."""
    return {"sessions": [session_resource(session) for session in sessions]}


def stop_session_text(identifier: str, pool_name: str) -> str:
    """``POST .management/stopSession`` answers plain text (SessionPoolManagement_StopSession example)."""
    return f"Session {identifier} in session pool {pool_name} stopped."


@dataclass(frozen=True)
class Kernel:
    """JupyterKernel of the metadata answer."""

    name: str
    version: str
    project_url: str
    description: str


# The kernel each container type runs. NodeLTS: IJavascript (SessionPoolMetadata_Get example).
# PythonLTS: ipykernel (Azure's Python image runs Jupyter; the version is not documented). Shell
# pools run commands without a Jupyter kernel, but the document requires one: bash is named.
KERNELS: dict[ContainerType, Kernel] = {
    ContainerType.NODE_LTS: Kernel(
        "IJavascript",
        "5.2.1",
        "https://github.com/n-riesco/ijavascript",
        "Provides sync and async kernel for javascript code executions",
    ),
    ContainerType.PYTHON_LTS: Kernel("ipykernel", "", "https://github.com/ipython/ipykernel", "IPython kernel"),
    ContainerType.SHELL: Kernel("bash", "", "https://www.gnu.org/software/bash/", "Commands run by bash; no kernel"),
}


def pool_metadata(
    container_type: ContainerType,
    *,
    runtimes: Mapping[str, str],
    packages: Mapping[str, str],
    created_at: datetime,
    last_updated_at: datetime,
    kernel_version: str = "",
) -> dict[str, Any]:
    """SessionPoolMetadataResponse (``GET metadata``): runtimes and packages that exist locally."""
    kernel = KERNELS[container_type]
    return {
        "runtimes": [{"name": name, "version": version} for name, version in runtimes.items()],
        "preInstalledPackages": [{"name": name, "version": version} for name, version in packages.items()],
        "createdAt": timestamp(created_at),
        "lastUpdatedAt": timestamp(last_updated_at),
        "jupyterKernel": {
            "name": kernel.name,
            "version": kernel_version or kernel.version,
            "projectUrl": kernel.project_url,
            "description": kernel.description,
        },
    }


# --- Requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionRequest:
    """An execution request of either generation, in one shape."""

    code: str | None
    execution_type: ExecutionType
    timeout_seconds: int
    output_max_length: int = DEFAULT_OUTPUT_STREAMS_MAX_LENGTH
    shell_command: str | None = None
    exec_command_and_args: tuple[str, ...] | None = None
    stdin: str | None = None
    # returnJupyterFormatExecutionResult (2025-10-02-preview, PythonLTS): the result as Jupyter's text/plain.
    jupyter_format: bool = False


def _bad_request(message: str) -> WireError:
    return WireError(400, "InvalidRequestBody", message)


def _execution_seconds(container_type: ContainerType) -> tuple[int, int]:
    """(default, maximum) of timeoutInSeconds for the container type."""
    if container_type is ContainerType.SHELL:
        return SHELL_DEFAULT_EXECUTION_SECONDS, SHELL_MAX_EXECUTION_SECONDS
    return MAX_EXECUTION_SECONDS, MAX_EXECUTION_SECONDS


def parse_execution_request(api_version: str, body: Any, container_type: ContainerType) -> ExecutionRequest:
    """Read a ``code/execute`` or ``executions`` body; WireError 400 names the field and what is allowed.

    Field values are compared case-insensitively (clients send ``inline``/``synchronous``, the
    document lists ``Inline``/``Synchronous``). ``timeoutInSeconds`` defaults to the 220 s limit (Shell:
    180 s, at most 600 s).
    """
    if not isinstance(body, Mapping):
        raise _bad_request("The request body must be a JSON object.")
    if api_version == API_2024_02:
        fields = body.get("properties")
        if not isinstance(fields, Mapping):
            raise _bad_request(f'api-version {API_2024_02} expects {{"properties": {{"code": ...}}}}.')
    else:
        fields = body

    def text(name: str) -> str | None:
        value = fields.get(name)
        if value is not None and not isinstance(value, str):
            raise _bad_request(f"{name} must be a string, not {type(value).__name__}.")
        return value

    def number(name: str, default: int, upper: int | None) -> int:
        value = fields.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (upper and value > upper):
            allowed = f"1-{upper}" if upper else "a positive whole number"
            raise _bad_request(f"{name} must be {allowed}, got {value!r}.")
        return value

    def flag(name: str) -> bool:
        value = fields.get(name, False)
        if not isinstance(value, bool):
            raise _bad_request(f"{name} must be true or false, got {value!r}.")
        return value

    input_type = (text("codeInputType") or "Inline").lower()
    if input_type != "inline":
        raise _bad_request(f"codeInputType {input_type!r} is not supported locally; use Inline.")
    raw_type = (text("executionType") or "Synchronous").lower()
    types = {member.value.lower(): member for member in ExecutionType}
    if raw_type not in types:
        raise _bad_request(f"executionType {raw_type!r} is not one of {_listed(types.values())}.")

    shell_command = text("shellCommand")
    args = fields.get("execCommandAndArgs")
    if args is not None and (not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args)):
        raise _bad_request("execCommandAndArgs must be a non-empty list of strings.")
    code = text("code")
    if container_type is ContainerType.SHELL:
        if shell_command is not None and args is not None:
            raise _bad_request("Give shellCommand or execCommandAndArgs, not both.")
        if shell_command is None and args is None:
            if code is None:
                raise _bad_request("A Shell pool needs shellCommand or execCommandAndArgs.")
            shell_command = code
    elif code is None:
        raise _bad_request(f"code is required; a {container_type} pool runs code, not shell commands.")
    elif shell_command is not None or args is not None:
        raise _bad_request(f"shellCommand and execCommandAndArgs are only for Shell pools, not {container_type}.")

    return ExecutionRequest(
        code=code if container_type is not ContainerType.SHELL else None,
        execution_type=types[raw_type],
        timeout_seconds=number("timeoutInSeconds", *_execution_seconds(container_type)),
        output_max_length=number("outputStreamsMaxLength", DEFAULT_OUTPUT_STREAMS_MAX_LENGTH, None),
        shell_command=shell_command,
        exec_command_and_args=tuple(args) if args is not None else None,
        stdin=text("stdin"),
        jupyter_format=flag("returnJupyterFormatExecutionResult"),
    )
