"""Every answer localpool.wire builds validates against Azure's document of its api-version."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from localpool import wire
from localpool.wire import ContainerType, ExecutionOutput, ExecutionStatus, ExecutionType, FileInfo, SessionInfo
from tests.support.dataplane_schema import operations as spec_operations
from tests.support.dataplane_schema import validate_response

MOMENT = datetime(2026, 12, 2, 5, 40, 1, 234567, tzinfo=UTC)
IDENTIFIER = "session-1"
EXECUTION_ID = "exec-1"
FILES = [
    FileInfo("hello.txt", 19, MOMENT, "text/plain"),
    FileInfo("nested", 4096, MOMENT, directory="", is_directory=True),
    FileInfo("deep.csv", 3, MOMENT, "text/csv", directory="nested"),
]
SESSION = SessionInfo(IDENTIFIER, MOMENT, MOMENT, MOMENT + timedelta(minutes=5), "2b0bd2e4-4bb3-4c1e-9a1f-0c0ffee00001")
OUTPUTS = {
    ContainerType.NODE_LTS: ExecutionOutput("hello-world\n", "", "", 5),
    ContainerType.PYTHON_LTS: ExecutionOutput("", "", 42, 8),
    ContainerType.SHELL: ExecutionOutput("first_input:x\n", "", "", 2, exit_code=0),
}
EXECUTIONS_VERSIONS = [wire.API_2024_10, wire.API_2025_02, wire.API_2025_10]
SESSION_VERSIONS = [wire.API_2025_02, wire.API_2025_10]


def _op(api_version: str, operation_id: str) -> wire.Operation:
    [op] = [op for op in wire.operations_for(api_version) if op.operation_id == operation_id]
    return op


def _path(op: wire.Operation, **params: str) -> str:
    return op.template.format(**params)


def _check(api_version: str, operation_id: str, body, headers=None, status=None, **params: str) -> None:
    op = _op(api_version, operation_id)
    checked = validate_response(
        api_version, op.method, _path(op, **params), status or op.success_status, headers or {}, body
    )
    assert checked.operation_id == operation_id


def test_supported_versions_are_the_documents() -> None:
    from tests.support.dataplane_schema import supported_versions

    assert list(wire.SUPPORTED_API_VERSIONS) == supported_versions()


@pytest.mark.parametrize("api_version", wire.SUPPORTED_API_VERSIONS)
def test_operations_match_the_document(api_version: str) -> None:
    ours = {(op.operation_id, op.method, op.template, op.success_status) for op in wire.operations_for(api_version)}
    theirs = {
        (op.operation_id, op.method.upper(), op.template, op.success_status) for op in spec_operations(api_version)
    }
    assert ours == theirs


@pytest.mark.parametrize("container_type", list(ContainerType))
def test_legacy_execute_answer(container_type: ContainerType) -> None:
    body = wire.legacy_execute_answer(container_type, OUTPUTS[container_type])
    _check(wire.API_2024_02, "CodeExecution_Execute", body)
    field = "result" if container_type is ContainerType.PYTHON_LTS else "executionResult"
    assert body["properties"][field] == OUTPUTS[container_type].value


@pytest.mark.parametrize("container_type", [ContainerType.PYTHON_LTS, ContainerType.NODE_LTS])
def test_legacy_answer_without_a_value_is_an_empty_string(container_type: ContainerType) -> None:
    # The Python recording (print only) and the NodeLTS tutorial (console.log only) both show "".
    body = wire.legacy_execute_answer(container_type, ExecutionOutput("hi\n", "", None, 10))
    field = "result" if container_type is ContainerType.PYTHON_LTS else "executionResult"
    assert body["properties"][field] == ""


def test_legacy_python_answer_matches_the_recording_shape() -> None:
    body = wire.legacy_execute_answer(ContainerType.PYTHON_LTS, ExecutionOutput("hi\n", "", "", 10))
    assert body == {
        "$id": "1",
        "properties": {
            "$id": "2",
            "status": "Success",
            "stdout": "hi\n",
            "stderr": "",
            "result": "",
            "executionTimeInMilliseconds": 10,
        },
    }


@pytest.mark.parametrize("api_version", EXECUTIONS_VERSIONS)
@pytest.mark.parametrize("container_type", list(ContainerType))
@pytest.mark.parametrize("execution_type", list(ExecutionType))
def test_finished_execution(api_version: str, container_type: ContainerType, execution_type: ExecutionType) -> None:
    body = wire.execution_resource(
        container_type,
        execution_id=EXECUTION_ID,
        identifier=IDENTIFIER,
        execution_type=execution_type,
        status=ExecutionStatus.SUCCEEDED,
        output=OUTPUTS[container_type],
    )
    headers = wire.execution_headers(api_version, EXECUTION_ID, IDENTIFIER)
    _check(api_version, "CodeExecution_Execute", body, headers)
    _check(api_version, "CodeExecution_Get", body, executionId=EXECUTION_ID)
    if container_type is ContainerType.SHELL:
        assert body["status"] == "0"
        assert "executionResult" not in body["result"]
    else:
        assert body["status"] == "Succeeded"
        assert body["result"]["executionResult"] == OUTPUTS[container_type].value


@pytest.mark.parametrize("api_version", EXECUTIONS_VERSIONS)
@pytest.mark.parametrize("status", sorted(wire.UNFINISHED_STATUSES))
def test_unfinished_execution_tells_where_to_poll(api_version: str, status: ExecutionStatus) -> None:
    body = wire.execution_resource(
        ContainerType.PYTHON_LTS,
        execution_id=EXECUTION_ID,
        identifier=IDENTIFIER,
        execution_type=ExecutionType.ASYNCHRONOUS,
        status=status,
    )
    assert "result" not in body
    headers = wire.execution_headers(api_version, EXECUTION_ID, IDENTIFIER, "https://127.0.0.1:8443/pool/")
    _check(api_version, "CodeExecution_Execute", body, headers)
    assert headers["Operation-Location"] == (
        f"https://127.0.0.1:8443/pool/executions/{EXECUTION_ID}?api-version={api_version}&identifier={IDENTIFIER}"
    )


@pytest.mark.parametrize("api_version", EXECUTIONS_VERSIONS)
def test_failed_execution_carries_an_error(api_version: str) -> None:
    error = wire.WireError(408, "ExecutionTimeout", "The code ran longer than 60 s.")
    body = wire.execution_resource(
        ContainerType.NODE_LTS,
        execution_id=EXECUTION_ID,
        identifier=IDENTIFIER,
        execution_type=ExecutionType.SYNCHRONOUS,
        status=ExecutionStatus.FAILED,
        output=ExecutionOutput("", "Timed out", None, 60000),
        error=error,
    )
    _check(api_version, "CodeExecution_Get", body, executionId=EXECUTION_ID)
    assert body["error"] == {"error": {"code": "ExecutionTimeout", "message": "The code ran longer than 60 s."}}


@pytest.mark.parametrize("api_version", EXECUTIONS_VERSIONS)
def test_a_failed_shell_execution_answers_failed_whatever_its_command_returned(api_version: str) -> None:
    """A command that exited 0 before the pool ended its session (disk limit) failed: not "status": "0"."""
    error = wire.WireError(500, "SessionDiskLimitExceeded", "The session's files went over its disk limit.")
    body = wire.execution_resource(
        ContainerType.SHELL,
        execution_id=EXECUTION_ID,
        identifier=IDENTIFIER,
        execution_type=ExecutionType.SYNCHRONOUS,
        status=ExecutionStatus.FAILED,
        output=ExecutionOutput("", "", None, 10, exit_code=0),
        error=error,
    )
    _check(api_version, "CodeExecution_Get", body, executionId=EXECUTION_ID)
    assert body["status"] == "Failed"
    assert body["error"]["error"]["code"] == "SessionDiskLimitExceeded"


def test_legacy_files() -> None:
    listing = wire.file_list(wire.API_2024_02, FILES)
    _check(wire.API_2024_02, "SessionResourceFiles_List", listing)
    assert [item["$id"] for item in listing["value"]] == ["2", "4", "6"]
    assert listing["value"][0]["properties"]["lastModifiedTime"] == "2026-12-02T05:40:01.2345670Z"
    assert listing["value"][2]["properties"]["filename"] == "nested/deep.csv"
    _check(wire.API_2024_02, "SessionResourceFiles_Upload", wire.upload_answer(wire.API_2024_02, FILES[:1]))
    _check(wire.API_2024_02, "SessionResourceFiles_GetContent", b"Hello from session!", name="hello.txt")
    with pytest.raises(ValueError, match="inside a list"):
        wire.file_resource(wire.API_2024_02, FILES[0])


def test_legacy_file_metadata_and_delete() -> None:
    # Azure-Samples' 2024-08-02-preview-and-before.md: GET files/{name} is the list of the one file,
    # with empty $ids; DELETE files/{name} answers 200 with a message.
    described = wire.file_metadata(wire.API_2024_02, FILES[2])
    _check(wire.API_2024_02, "SessionResourceFiles_Get", described, name="deep.csv")
    [item] = described["value"]
    assert item["$id"] == item["properties"]["$id"] == ""
    assert item["properties"]["filename"] == "nested/deep.csv"
    assert set(described) == {"value"}
    deleted = wire.delete_file_answer(wire.API_2024_02)
    _check(wire.API_2024_02, "SessionResourceFiles_Delete", deleted, name="hello.txt")
    assert deleted == {"message": "file deleted successfully"}
    assert wire.delete_file_answer(wire.API_2024_10) is None
    assert wire.file_metadata(wire.API_2024_10, FILES[0]) == wire.file_resource(wire.API_2024_10, FILES[0])


@pytest.mark.parametrize("api_version", EXECUTIONS_VERSIONS)
def test_files(api_version: str) -> None:
    _check(api_version, "SessionResourceFiles_List", wire.file_list(api_version, FILES))
    _check(api_version, "SessionResourceFiles_List", wire.file_list(api_version, []))
    _check(api_version, "SessionResourceFiles_Upload", wire.upload_answer(api_version, FILES[:1]))
    for info in FILES:
        _check(api_version, "SessionResourceFiles_Get", wire.file_resource(api_version, info), name=info.name)
    _check(api_version, "SessionResourceFiles_Delete", None, name="hello.txt")
    _check(api_version, "SessionResourceFiles_GetContent", b"\x00\x01", name="hello.txt")
    described = wire.file_resource(api_version, FILES[2])
    assert described["lastModifiedAt"] == "2026-12-02T05:40:01.234Z"
    assert ("directory" in described) == (api_version == wire.API_2025_10)
    with pytest.raises(ValueError, match="one file, not 2"):
        wire.upload_answer(api_version, FILES[:2])


@pytest.mark.parametrize("api_version", SESSION_VERSIONS)
@pytest.mark.parametrize("container_type", list(ContainerType))
def test_sessions_and_metadata(api_version: str, container_type: ContainerType) -> None:
    _check(api_version, "SessionManagement_Get", wire.session_resource(SESSION))
    _check(api_version, "ListSessions_Get", wire.session_list([SESSION, SESSION]))
    _check(api_version, "ListSessions_Get", wire.session_list([]))
    _check(api_version, "SessionManagement_Delete", None)
    metadata = wire.pool_metadata(
        container_type,
        runtimes={"python": "3.11.7"},
        packages={"numpy": "2.1.0"},
        created_at=MOMENT,
        last_updated_at=MOMENT,
    )
    _check(api_version, "SessionPoolMetadata_Get", metadata)


def test_stop_session_text() -> None:
    text = wire.stop_session_text("testSessionIdentifier", "testSessionPool")
    _check(wire.API_2025_10, "SessionPoolManagement_StopSession", text)
    assert text == "Session testSessionIdentifier in session pool testSessionPool stopped."


@pytest.mark.parametrize("api_version", wire.SUPPORTED_API_VERSIONS)
def test_errors_validate_on_every_operation(api_version: str) -> None:
    error = wire.WireError(404, "NotFound", "No such file.")
    for op in wire.operations_for(api_version):
        path = op.template.replace("{name}", "a.txt").replace("{executionId}", "x")
        validate_response(api_version, op.method, path, error.status, error.headers, error.body)


def test_unknown_api_version_names_the_supported_ones() -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.resolve("POST", "/executions", "2023-01-01")
    error = caught.value
    assert (error.status, error.code) == (400, "UnsupportedApiVersion")
    assert "'2023-01-01'" in error.message
    assert (
        "The supported api-versions are '2024-10-02-preview, 2025-02-02-preview, 2025-10-02-preview'" in error.message
    )
    validate_response(wire.API_2025_10, "POST", "/executions", error.status, error.headers, error.body)


def test_path_of_another_version_names_where_it_exists() -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.resolve("GET", "/session", wire.API_2024_10)
    assert caught.value.code == "UnsupportedApiVersion"
    assert "'2025-02-02-preview, 2025-10-02-preview'" in caught.value.message


def test_missing_api_version() -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.resolve("GET", "/files", None)
    assert (caught.value.status, caught.value.code) == (400, "ApiVersionUnspecified")


def test_missing_api_version_names_only_versions_with_the_path() -> None:
    # 2024-02-02-preview has no /executions: naming it would send the caller to a version that 404s.
    with pytest.raises(wire.WireError) as caught:
        wire.resolve("GET", "/executions", None)
    assert (caught.value.status, caught.value.code) == (400, "ApiVersionUnspecified")
    assert (
        "The supported api-versions are '2024-10-02-preview, 2025-02-02-preview, 2025-10-02-preview'."
        in caught.value.message
    )
    assert wire.API_2024_02 not in caught.value.message


def test_unknown_path_and_wrong_method() -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.resolve("GET", "/nothing", wire.API_2025_10)
    assert (caught.value.status, caught.value.code) == (404, "NotFound")
    assert "GET /listSessions" in caught.value.message
    with pytest.raises(wire.WireError) as caught:
        wire.resolve("PUT", "/files/a.txt", wire.API_2025_10)
    assert caught.value.status == 405
    assert "it accepts GET, DELETE" in caught.value.message


@pytest.mark.parametrize(
    ("method", "path", "api_version", "operation_id", "params"),
    [
        ("POST", "/code/execute", wire.API_2024_02, "CodeExecution_Execute", {}),
        ("POST", "/code/execute/", wire.API_2024_02, "CodeExecution_Execute", {}),
        ("POST", "/files/upload", wire.API_2024_02, "SessionResourceFiles_Upload", {}),
        ("GET", "/files/content/a.txt", wire.API_2024_02, "SessionResourceFiles_GetContent", {"name": "a.txt"}),
        ("GET", "/files/a.txt", wire.API_2024_02, "SessionResourceFiles_Get", {"name": "a.txt"}),
        ("DELETE", "/files/a.txt", wire.API_2024_02, "SessionResourceFiles_Delete", {"name": "a.txt"}),
        ("GET", "/executions/e1", wire.API_2025_02, "CodeExecution_Get", {"executionId": "e1"}),
        ("GET", "/files/a.txt/content", wire.API_2024_10, "SessionResourceFiles_GetContent", {"name": "a.txt"}),
        ("DELETE", "/session", wire.API_2025_10, "SessionManagement_Delete", {}),
        ("post", "/.management/stopSession", wire.API_2025_10, "SessionPoolManagement_StopSession", {}),
    ],
)
def test_resolve(method: str, path: str, api_version: str, operation_id: str, params: dict[str, str]) -> None:
    op, found = wire.resolve(method, path, api_version)
    assert (op.operation_id, found) == (operation_id, params)


def test_identifier_rule() -> None:
    assert wire.invalid_identifier("0b8f3c1e-uuid-like") is None
    assert wire.invalid_identifier("a|b{c}[d];<e>") is None
    assert wire.invalid_identifier("abc").code == "InvalidIdentifier"
    assert wire.invalid_identifier(None).status == 400
    assert "not valid" in wire.invalid_identifier("x" * 129).message


def test_upload_limits_are_the_documented_figures() -> None:
    """sessions-code-interpreter.md: 128 MB; the Shell image's api-spec-shell.md: 250 MB (MB read as MiB)."""
    assert wire.MAX_UPLOAD_BYTES == {
        ContainerType.NODE_LTS: 128 * 2**20,
        ContainerType.PYTHON_LTS: 128 * 2**20,
        ContainerType.SHELL: 250 * 2**20,
    }


@pytest.mark.parametrize("container_type", list(ContainerType))
def test_upload_limit_error(container_type: ContainerType) -> None:
    error = wire.upload_too_large(wire.MAX_UPLOAD_BYTES[container_type] + 1, container_type)
    assert error.status == 413
    assert f"a {container_type} session accepts files up to {wire.MAX_UPLOAD_BYTES[container_type]} bytes" in (
        error.message
    )
    validate_response(wire.API_2025_10, "POST", "/files", 413, error.headers, error.body)


class TestParseExecutionRequest:
    def test_legacy_body(self) -> None:
        body = {"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": "1+1"}}
        request = wire.parse_execution_request(wire.API_2024_02, body, ContainerType.PYTHON_LTS)
        assert (request.code, request.execution_type) == ("1+1", ExecutionType.SYNCHRONOUS)
        assert request.timeout_seconds == wire.MAX_EXECUTION_SECONDS

    def test_shell_bodies(self) -> None:
        parse = wire.parse_execution_request
        shell = ContainerType.SHELL
        assert parse(wire.API_2025_02, {"shellCommand": "ls"}, shell).shell_command == "ls"
        body = {"execCommandAndArgs": ["ls", "-a"], "timeoutInSeconds": 10, "stdin": "x"}
        request = parse(wire.API_2025_10, body, shell)
        assert (request.exec_command_and_args, request.stdin, request.timeout_seconds) == (("ls", "-a"), "x", 10)
        with pytest.raises(wire.WireError, match="not both"):
            parse(wire.API_2025_10, {"shellCommand": "ls", "execCommandAndArgs": ["ls"]}, shell)

    def test_shell_timeouts_follow_the_shell_api(self) -> None:
        parse = wire.parse_execution_request
        assert parse(wire.API_2025_10, {"shellCommand": "ls"}, ContainerType.SHELL).timeout_seconds == 180
        assert parse(wire.API_2025_10, {"shellCommand": "ls", "timeoutInSeconds": 600}, ContainerType.SHELL)
        with pytest.raises(wire.WireError, match="timeoutInSeconds must be 1-600"):
            parse(wire.API_2025_10, {"shellCommand": "ls", "timeoutInSeconds": 601}, ContainerType.SHELL)
        with pytest.raises(wire.WireError, match="timeoutInSeconds must be 1-220"):
            parse(wire.API_2025_10, {"code": "1", "timeoutInSeconds": 600}, ContainerType.PYTHON_LTS)

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ([], "must be a JSON object"),
            ({"code": 1}, "code must be a string, not int"),
            ({"code": "1", "timeoutInSeconds": 221}, "timeoutInSeconds must be 1-220, got 221"),
            ({"code": "1", "executionType": "later"}, "executionType 'later' is not one of"),
            ({"code": "1", "codeInputType": "InlineBase64"}, "codeInputType 'inlinebase64' is not supported"),
            ({"shellCommand": "ls"}, "code is required; a PythonLTS pool runs code"),
            ({"code": "1", "shellCommand": "ls"}, "only for Shell pools"),
        ],
    )
    def test_bad_bodies(self, body, message: str) -> None:
        with pytest.raises(wire.WireError, match=message) as caught:
            wire.parse_execution_request(wire.API_2025_10, body, ContainerType.PYTHON_LTS)
        assert caught.value.status == 400

    def test_legacy_body_without_properties(self) -> None:
        with pytest.raises(wire.WireError, match="expects"):
            wire.parse_execution_request(wire.API_2024_02, {"code": "1"}, ContainerType.NODE_LTS)


# --- What real clients send (tests/data/clients, made by scripts/record_clients.py) ---------

CLIENTS_DIR = Path(__file__).parent / "data" / "clients"
RECORDINGS = sorted(path.name for path in CLIENTS_DIR.glob("*.json"))


def test_recordings_are_there() -> None:
    # Six tools of five packages; guards the parametrisation below against an empty folder.
    assert len(RECORDINGS) == 6


@pytest.mark.parametrize("name", RECORDINGS)
def test_every_recorded_call_is_an_operation_of_the_wire(name: str) -> None:
    recording = json.loads((CLIENTS_DIR / name).read_text(encoding="utf-8"))
    pool_path = recording["endpoint"].split("<port>", 1)[1]
    container_type = ContainerType(recording["container_type"])
    assert recording["failures"] == []
    assert recording["calls"]
    for call in recording["calls"]:
        assert call["path"].startswith(pool_path), call["path"]
        [api_version] = call["query"]["api-version"]
        op, _ = wire.resolve(call["method"], call["path"][len(pool_path) :], api_version)
        assert op.operation_id == call["answer"]["operation"]
        assert wire.invalid_identifier(call["query"]["identifier"][0].replace("<", "").replace(">", "")) is None
        assert call["headers"]["Authorization"] == "<redacted>"
        if op.operation_id == "CodeExecution_Execute":
            wire.parse_execution_request(api_version, call["body"]["json"], container_type)
        if op.operation_id == "SessionResourceFiles_Upload":
            [part] = call["body"]["multipart"]
            assert 'name="file"' in part["headers"]["Content-Disposition"]


def test_echoed_values_are_cut() -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.resolve("GET", "/files", "v" * 5000)
    assert len(caught.value.message) < 400
    assert "v" * wire.MAX_ECHOED_CHARS + "…" in caught.value.message
