"""Azure's own data-plane examples validate against their documents; broken answers do not."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.dataplane_schema import (
    DATAPLANE_DIR,
    find_operation,
    load_example,
    load_spec,
    operations,
    supported_versions,
    validate_response,
)

# Examples of an earlier revision of a document, replaced by a later revision of the same example
# (`data-plane__DynamicSessions__…`); the earlier one answers 202 where the current document says 200.
SUPERSEDED_EXAMPLES = {
    "data-plane__Microsoft.App.DynamicSessions__2024-10-02-preview__examples__CodeExecution_Execute_Sync.json",
}

EXAMPLE_FILES = sorted(
    path.name for path in DATAPLANE_DIR.glob("data-plane__*__examples__*.json") if path.name not in SUPERSEDED_EXAMPLES
)

# Recorded or documented answers of 2024-02-02-preview, which has no OpenAPI examples: (file, method, path).
BLOG = "blog__tkubica12_tkubica12.github.io__aca-sessions-llm-langchain__"
DOCS = "docs__MicrosoftDocs_azure-docs__"
V2402 = "_2024-02-02-preview_response.json"
RECORDINGS_2024_02 = [
    (f"{BLOG}code-execute{V2402}", "POST", "/code/execute"),
    (f"{BLOG}files-list{V2402}", "GET", "/files"),
    (f"{DOCS}sessions-code-interpreter__files-list{V2402}", "GET", "/files"),
    (f"{DOCS}sessions-tutorial-nodejs__code-execute{V2402}", "POST", "/code/execute"),
]
NEW = "data-plane__DynamicSessions__"


def _read(name: str) -> Any:
    return json.loads((DATAPLANE_DIR / name).read_text(encoding="utf-8"))


def _example_path(template: str, parameters: dict[str, Any]) -> str:
    path = template
    for name, value in parameters.items():
        path = path.replace("{" + name + "}", str(value))
    assert "{" not in path, f"The example gives no value for a parameter of {template}."
    return path


def _operation_of_example(example: dict[str, Any]):
    version = example["parameters"]["api-version"]
    [op] = [op for op in operations(version) if op.operation_id == example["operationId"]]
    return op


def test_every_version_has_a_document_and_operations() -> None:
    assert supported_versions() == [
        "2024-02-02-preview",
        "2024-10-02-preview",
        "2025-02-02-preview",
        "2025-10-02-preview",
    ]
    for version in supported_versions():
        assert load_spec(version)["info"]["version"] == version
        assert operations(version), version


def test_examples_are_found() -> None:
    # Guards the parametrisation below: a renamed folder must not leave it with nothing to check.
    assert len(EXAMPLE_FILES) >= 45


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_azure_example_validates(name: str) -> None:
    example = _read(name)
    op = _operation_of_example(example)
    path = _example_path(op.template, example["parameters"])
    assert example["responses"], name
    for status, response in example["responses"].items():
        checked = validate_response(
            op.api_version, op.method, path, int(status), response.get("headers", {}), response.get("body")
        )
        assert checked.operation_id == example["operationId"]


@pytest.mark.parametrize(("name", "method", "path"), RECORDINGS_2024_02)
def test_2024_02_recording_validates(name: str, method: str, path: str) -> None:
    validate_response("2024-02-02-preview", method, path, 200, {}, _read(name))


def _sync_example() -> dict[str, Any]:
    example = _read(f"{NEW}2025-10-02-preview__examples__CodeExecution_Execute_Sync.json")
    return copy.deepcopy(example["responses"]["200"])


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda body: body.pop("identifier"), "'identifier' is a required property"),
        (lambda body: body.update(status=7), "at status"),
        (lambda body: body["result"].update(stdout=["not", "a", "string"]), "at result/stdout"),
        (lambda body: body["result"].update(executionTimeInMilliseconds="5"), "executionTimeInMilliseconds"),
        (lambda body: body.update(error={"message": "no code"}), "'error' is a required property"),
    ],
)
def test_broken_execution_body_fails(mutate, expected: str) -> None:
    response = _sync_example()
    mutate(response["body"])
    with pytest.raises(AssertionError, match=expected):
        validate_response("2025-10-02-preview", "POST", "/executions", 200, response["headers"], response["body"])


def test_wrong_status_fails() -> None:
    response = _sync_example()
    with pytest.raises(AssertionError, match="answers 200, default; got status 202"):
        validate_response("2025-10-02-preview", "POST", "/executions", 202, response["headers"], response["body"])


def test_body_where_none_is_declared_fails() -> None:
    with pytest.raises(AssertionError, match="declares no body"):
        validate_response("2025-02-02-preview", "DELETE", "/files/a.txt", 204, {}, {"deleted": True})


def test_error_needs_its_code_header() -> None:
    body = {"error": {"code": "NotFound", "message": "No such file."}}
    validate_response("2025-10-02-preview", "GET", "/files/a.txt", 404, {"x-ms-error-code": "NotFound"}, body)
    with pytest.raises(AssertionError, match="must carry the x-ms-error-code"):
        validate_response("2025-10-02-preview", "GET", "/files/a.txt", 404, {}, body)
    with pytest.raises(AssertionError, match=r"is 'Other' but error\.code is 'NotFound'"):
        validate_response("2025-10-02-preview", "GET", "/files/a.txt", 404, {"x-ms-error-code": "Other"}, body)
    with pytest.raises(AssertionError, match="'message' is a required property"):
        validate_response(
            "2025-10-02-preview", "GET", "/files/a.txt", 404, {"x-ms-error-code": "X"}, {"error": {"code": "X"}}
        )


def test_running_execution_needs_operation_location() -> None:
    example = load_example("2025-02-02-preview", "CodeExecution_Execute_Async_Running")
    response = example["responses"]["200"]
    headers = {k: v for k, v in response["headers"].items() if k.lower() != "operation-location"}
    with pytest.raises(AssertionError, match="needs an Operation-Location header"):
        validate_response("2025-02-02-preview", "POST", "/executions", 200, headers, response["body"])


def test_bad_date_fails() -> None:
    example = load_example("2025-10-02-preview", "SessionManagement_Get")
    body = copy.deepcopy(example["responses"]["200"]["body"])
    body["createdAt"] = "yesterday"
    with pytest.raises(AssertionError, match="at createdAt"):
        validate_response("2025-10-02-preview", "GET", "/session", 200, {}, body)


def test_2024_02_result_field_is_required() -> None:
    body = _read(RECORDINGS_2024_02[0][0])
    del body["properties"]["result"]
    with pytest.raises(AssertionError, match="at properties"):
        validate_response("2024-02-02-preview", "POST", "/code/execute", 200, {}, body)


def test_unknown_path_and_version_fail() -> None:
    with pytest.raises(AssertionError, match="has no operation GET /session"):
        find_operation("2024-10-02-preview", "GET", "/session")
    with pytest.raises(AssertionError, match="No data-plane document for api-version '2023-01-01'"):
        find_operation("2023-01-01", "GET", "/files")


def test_literal_path_wins_over_template() -> None:
    assert find_operation("2024-02-02-preview", "POST", "/files/upload").operation_id == "SessionResourceFiles_Upload"
    assert find_operation("2025-10-02-preview", "GET", "/files/a.txt/content?x=1").operation_id == (
        "SessionResourceFiles_GetContent"
    )


def test_file_content_must_be_bytes() -> None:
    validate_response("2025-10-02-preview", "GET", "/files/a/content", 200, {}, b"abc")
    with pytest.raises(AssertionError, match="must be bytes"):
        validate_response("2025-10-02-preview", "GET", "/files/a/content", 200, {}, {"a": 1})


def test_dataplane_dir_is_in_tests_data() -> None:
    assert Path(__file__).parent / "data" / "dataplane" == DATAPLANE_DIR


def _required_fields(api_version: str, schema: dict) -> list[str]:
    ref = schema.get("$ref", "")
    if not ref.startswith("#/definitions/"):
        return []
    return load_spec(api_version)["definitions"][ref.removeprefix("#/definitions/")].get("required", [])


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_example_without_a_required_field_fails(name: str) -> None:
    # The validator can fail on every example it passes: drop each required field in turn.
    example = _read(name)
    op = _operation_of_example(example)
    path = _example_path(op.template, example["parameters"])
    for status, response in example["responses"].items():
        schema = op.definition["responses"][status].get("schema", {})
        for field in _required_fields(op.api_version, schema):
            body = copy.deepcopy(response["body"])
            del body[field]
            with pytest.raises(AssertionError, match=f"'{field}' is a required property"):
                validate_response(op.api_version, op.method, path, int(status), response.get("headers", {}), body)


def test_most_examples_have_required_fields_to_drop() -> None:
    # Proves the test above checks something: examples without a JSON body (204, file, text) drop nothing.
    with_fields = 0
    for name in EXAMPLE_FILES:
        example = _read(name)
        op = _operation_of_example(example)
        for status in example["responses"]:
            with_fields += bool(_required_fields(op.api_version, op.definition["responses"][status].get("schema", {})))
    assert with_fields >= 35
