"""Facts of the dynamic-sessions data plane that the smoke client and the local pool share.

Sources: the Azure REST API specs for Microsoft.App.DynamicSessions (2024-10-02-preview,
2025-10-02-preview), the Microsoft Learn Node.js sessions tutorials (2024-02-02-preview), and
the Azure Container Apps documentation on limits. See FACTS.md in the project's shared notes.
This module is pure data: no I/O, no third-party imports. Facts of the pool's resource (container
types) come from components/azure.py, their one definition.
"""

from __future__ import annotations

import re

# The first API generation: POST {endpoint}/code/execute with a {"properties": {...}} body.
API_2024_02 = "2024-02-02-preview"
# The second generation: POST {endpoint}/executions, answered 202 (200 from 2025-10-02-preview).
API_2024_10 = "2024-10-02-preview"
API_VERSIONS: tuple[str, ...] = (API_2024_02, API_2024_10)  # the ones the smoke check runs, in order
# A later /executions version: answered 200 instead of 202; the local pool speaks it too.
API_2025_10 = "2025-10-02-preview"

# Path suffixes below the pool management endpoint, one per generation.
CODE_EXECUTE_PATH = "/code/execute"
EXECUTIONS_PATH = "/executions"
# Files of a session (/mnt/data), from 2024-10-02-preview on: POST files (multipart, one part named
# "file") -> 200 {name, sizeInBytes, ...}; GET files -> {value: [...]}; GET files/{name}/content -> the
# bytes; DELETE files/{name} -> 204. 2024-02-02-preview documents no delete, so the round trip uses this one.
FILES_PATH = "/files"
FILES_API_VERSION = API_2024_10
FILE_FORM_FIELD = "file"

# Token audience of the data plane. Older clients used https://acasessions.io/.default.
TOKEN_AUDIENCE = "https://dynamicsessions.io"  # noqa: S105 - an audience, not a secret
DEFAULT_TOKEN_SCOPE = f"{TOKEN_AUDIENCE}/.default"

# Session identifier: 4-128 characters; letters, digits and | - & ^ % $ # ( ) { } [ ] ; < >
IDENTIFIER_PATTERN = re.compile(r"^[A-Za-z0-9|\-&^%$#(){}\[\];<>]{4,128}$")
IDENTIFIER_RULE = "4-128 characters: letters, digits and | - & ^ % $ # ( ) { } [ ] ; < >"

# Execution statuses of the 2024-10-02-preview generation.
STATUS_SUCCEEDED = "Succeeded"
STATUS_FAILED = "Failed"
STATUS_CANCELED = "Canceled"
STATUS_RUNNING = "Running"
STATUS_NOT_STARTED = "NotStarted"
PENDING_STATUSES = frozenset({STATUS_RUNNING, STATUS_NOT_STARTED})
# A Shell pool answers a finished command with its exit code as the status (Azure's
# CodeExecution_Execute_ShellCommand example: "status": "0"); "0" is a command that succeeded.
SHELL_STATUS_SUCCEEDED = "0"
SUCCEEDED_STATUSES = frozenset({STATUS_SUCCEEDED, SHELL_STATUS_SUCCEEDED})
# The only status the 2024-02-02-preview generation documents.
LEGACY_STATUS_SUCCESS = "Success"

# Service limits (Azure Container Apps dynamic sessions documentation).
MAX_EXECUTION_SECONDS = 220
DEFAULT_EXECUTION_TIMEOUT_SECONDS = 60
OUTPUT_STREAM_MAX_CHARS = 4096

# The hello-world program for each built-in container type.
HELLO_WORLD_CODE: dict[str, str] = {
    "NodeLTS": 'console.log("hello-world")',
    "PythonLTS": 'print("hello-world")',
    "Shell": "echo hello-world",
}
HELLO_WORLD_STDOUT = "hello-world\n"

# Response headers of the 2024-10-02-preview generation: where to poll a pending execution
# (relative, e.g. "/executions/<id>?api-version=...&identifier=...", or absolute) and its id.
OPERATION_LOCATION_HEADER = "Operation-Location"
OPERATION_ID_HEADER = "operation-id"
