"""Check a data-plane answer against Azure's own OpenAPI document of its api-version.

The documents live in ``tests/data/dataplane/`` (sources in ``tests/data/SOURCES.md``). The answer's
operation is found by method and path template, then its body is validated with ``jsonschema``
against the response schema for its status; ``$ref``s resolve through a ``referencing`` registry that
holds the whole document, so nothing is resolved by hand.

OpenAPI 2.0 schemas are JSON Schema draft 4 plus Azure extensions. Two of those change what is valid,
and the document is adjusted for them before it is registered:

- ``x-ms-enum`` with ``modelAsString: true`` marks an open enum: other values are allowed (Azure's
  own Shell example answers ``"status": "0"`` where OperationState lists words only).
- Azure's examples send ``null`` for optional properties (``nextLink`` in
  ``SessionResourceFiles_List_Recursive``), so a property that is not required may be ``null``.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.exceptions
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

DATAPLANE_DIR = Path(__file__).resolve().parent.parent / "data" / "dataplane"

# The document each api-version is checked against. Where the folder holds two revisions of one
# version, the later (`data-plane__DynamicSessions__…`) is the one Azure publishes now.
SPEC_FILES: dict[str, str] = {
    "2024-02-02-preview": "dynamicsessions-2024-02-02-preview.json",
    "2024-10-02-preview": "data-plane__Microsoft.App.DynamicSessions__2024-10-02-preview__DynamicSessions.json",
    "2025-02-02-preview": "data-plane__Microsoft.App.DynamicSessions__2025-02-02-preview__DynamicSessions.json",
    "2025-10-02-preview": "data-plane__DynamicSessions__2025-10-02-preview__DynamicSessions.json",
}

ERROR_CODE_HEADER = "x-ms-error-code"
OPERATION_LOCATION_HEADER = "Operation-Location"
# OperationState values of a long-running operation that is not finished: the client must poll.
UNFINISHED_STATES = frozenset({"NotStarted", "Running"})
HTTP_METHODS = frozenset({"get", "put", "post", "patch", "delete", "head", "options"})

INT32_RANGE = (-(2**31), 2**31 - 1)
INT64_RANGE = (-(2**63), 2**63 - 1)

FORMAT_CHECKER = jsonschema.FormatChecker()


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    # RFC 3339 needs a date, a time and an offset; Azure writes up to 7 fractional digits and "Z".
    if not isinstance(value, str):
        return True
    if "T" not in value.upper():
        raise ValueError(f"{value!r} has no time part")
    if datetime.fromisoformat(value).tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return True


@FORMAT_CHECKER.checks("int32")
def _is_int32(value: object) -> bool:
    return not isinstance(value, int) or INT32_RANGE[0] <= value <= INT32_RANGE[1]


@FORMAT_CHECKER.checks("int64")
def _is_int64(value: object) -> bool:
    return not isinstance(value, int) or INT64_RANGE[0] <= value <= INT64_RANGE[1]


@dataclass(frozen=True)
class Operation:
    """One operation of one api-version's document."""

    api_version: str
    method: str
    template: str
    operation_id: str
    definition: Mapping[str, Any]

    @property
    def statuses(self) -> list[str]:
        """Status codes the document lists for this operation (``default`` is the error answer)."""
        return list(self.definition["responses"])

    @property
    def success_status(self) -> int:
        """The one success status code the document gives."""
        codes = [int(code) for code in self.statuses if code != "default" and int(code) < 400]
        assert len(codes) == 1, f"{self} lists {codes} as success codes; expected one."
        return codes[0]

    @property
    def long_running(self) -> bool:
        return bool(self.definition.get("x-ms-long-running-operation"))

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.template} ({self.operation_id}, {self.api_version})"


def supported_versions() -> list[str]:
    """The api-versions a document is held for."""
    return list(SPEC_FILES)


def load_example(api_version: str, name: str) -> dict[str, Any]:
    """One of Azure's examples of ``api_version``, by its name (e.g. ``CodeExecution_Execute_Sync``)."""
    path = DATAPLANE_DIR / f"data-plane__Microsoft.App.DynamicSessions__{api_version}__examples__{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))


@functools.cache
def load_spec(api_version: str) -> dict[str, Any]:
    """The OpenAPI document of ``api_version`` as published (not adjusted)."""
    assert api_version in SPEC_FILES, (
        f"No data-plane document for api-version {api_version!r}; held: {', '.join(SPEC_FILES)}."
    )
    return json.loads((DATAPLANE_DIR / SPEC_FILES[api_version]).read_text(encoding="utf-8"))


def _adjusted(node: Any) -> Any:
    """The document with open enums opened and optional properties allowed to be null (see module doc)."""
    if isinstance(node, list):
        return [_adjusted(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _adjusted(value) for key, value in node.items()}
    if out.get("x-ms-enum", {}).get("modelAsString"):
        out.pop("enum", None)
    properties = out.get("properties")
    if isinstance(properties, dict) and out.get("type") == "object":
        required = set(out.get("required", []))
        out["properties"] = {
            name: schema if name in required else {"anyOf": [{"type": "null"}, schema]}
            for name, schema in properties.items()
        }
    return out


def _spec_uri(api_version: str) -> str:
    return f"urn:dynamicsessions:{api_version}"


@functools.cache
def _registry() -> Registry:
    resources = [
        (_spec_uri(version), Resource.from_contents(_adjusted(copy.deepcopy(load_spec(version))), DRAFT4))
        for version in SPEC_FILES
    ]
    return Registry().with_resources(resources)


def operations(api_version: str) -> list[Operation]:
    """Every operation the document of ``api_version`` declares."""
    spec = load_spec(api_version)
    return [
        Operation(api_version, method, template, definition["operationId"], definition)
        for template, methods in spec["paths"].items()
        for method, definition in methods.items()
        if method in HTTP_METHODS
    ]


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts) + "$")


def find_operation(api_version: str, method: str, path: str) -> Operation:
    """The operation that answers ``method path`` (query string ignored) in ``api_version``."""
    path = "/" + path.split("?", 1)[0].lstrip("/")
    candidates = [
        op
        for op in operations(api_version)
        if op.method == method.lower() and _template_pattern(op.template).match(path)
    ]
    # A literal template (files/upload) wins over a parameterised one that also matches.
    candidates.sort(key=lambda op: op.template.count("{"))
    assert candidates, (
        f"api-version {api_version} has no operation {method.upper()} {path}; it has: "
        + ", ".join(f"{op.method.upper()} {op.template}" for op in operations(api_version))
        + "."
    )
    return candidates[0]


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = {key.lower(): value for key, value in headers.items()}
    return lowered.get(name.lower())


def validate_response(
    api_version: str,
    method: str,
    path: str,
    status: int,
    headers: Mapping[str, str],
    body: Any,
) -> Operation:
    """Assert that an answer matches the document of ``api_version``; return the operation it answered.

    ``body`` is the parsed JSON for JSON answers, ``bytes``/``str`` for file contents and text, and
    ``None`` (or empty) where the document declares no body.
    """
    op = find_operation(api_version, method, path)
    key = str(status)
    if key not in op.definition["responses"]:
        assert status >= 400 and "default" in op.definition["responses"], (
            f"{op} answers {', '.join(op.statuses)}; got status {status}."
        )
        key = "default"
    response = op.definition["responses"][key]
    where = f"{op}, status {status}"

    for name, declared in response.get("headers", {}).items():
        value = _header(headers, name)
        if value is not None:
            assert declared.get("type", "string") == "string" and isinstance(value, str), (
                f"{where}: header {name} must be a string, got {value!r}."
            )

    schema = response.get("schema")
    if schema is None:
        assert body in (None, b"", ""), f"{where}: the document declares no body, got {body!r:.200}."
        return op
    if schema.get("type") == "file":
        assert isinstance(body, bytes | str), f"{where}: a file body must be bytes, got {type(body).__name__}."
        return op

    validator = jsonschema.Draft4Validator(
        {"$ref": f"{_spec_uri(api_version)}#/{_pointer('paths', op.template, op.method, 'responses', key, 'schema')}"},
        registry=_registry(),
        format_checker=FORMAT_CHECKER,
    )
    # best_match descends into anyOf branches (the null-or-schema wrapping) to the error that explains most.
    problems = [jsonschema.exceptions.best_match([error]) for error in validator.iter_errors(body)]
    assert not problems, f"{where}: the body does not match the schema:\n" + "\n".join(
        f"  at {'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message[:300]}" for error in problems
    )

    if key == "default" or status >= 400:
        # Azure REST API guidelines: an error answer carries x-ms-error-code equal to error.code.
        code = _header(headers, ERROR_CODE_HEADER)
        assert code is not None, f"{where}: an error answer must carry the {ERROR_CODE_HEADER} header."
        assert code == body["error"]["code"], (
            f"{where}: {ERROR_CODE_HEADER} is {code!r} but error.code is {body['error']['code']!r}."
        )
    elif op.long_running and isinstance(body, Mapping) and body.get("status") in UNFINISHED_STATES:
        # final-state-via operation-location: an unfinished operation tells the client where to poll.
        assert _header(headers, OPERATION_LOCATION_HEADER), (
            f"{where}: status {body['status']} needs an {OPERATION_LOCATION_HEADER} header to poll."
        )
    return op
