"""Replay what real dynamic-sessions clients send (tests/data/clients/, made by scripts/record_clients.py).

Each recorded request is sent, unchanged in method, path below the endpoint, query, content type,
framing (chunked or not) and body, to a live local pool; each must get the success answer the
recording expects, valid per Azure's document (check_answer). Every recording is replayed in full
against a pool of its container type (PythonLTS or Shell): executions must run without an error and
print what the client's code prints, downloads must give back what was uploaded.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localpool import LocalPool
from smoke.protocol import HELLO_WORLD_STDOUT
from tests.support.localpool_helpers import MODULE_POOL_MAX_SESSIONS, TOKEN, PoolClient

RECORDINGS = sorted((Path(__file__).resolve().parent / "data" / "clients").glob("*.json"))
EXECUTION_OPERATIONS = frozenset({"CodeExecution_Execute", "CodeExecution_Get"})
# The code the recorder's drivers run (scripts/record_clients.py) and what it prints.
HELLO_WORLD_CODE = frozenset({"print('hello-world')", "echo hello-world"})
# The container types the recorded clients are made for (none is for NodeLTS).
CLIENT_CONTAINER_TYPES = ("PythonLTS", "Shell")
# Chunks a recorded chunked body is sent in (any split works; several prove the framing is decoded).
CHUNK_BYTES = 64


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def multipart_body(parts: list[dict[str, Any]], boundary: str) -> bytes:
    """The multipart body a client sent, rebuilt from the recording's parts."""
    body = b""
    for part in parts:
        head = "".join(f"{name}: {value}\r\n" for name, value in part["headers"].items())
        body += f"--{boundary}\r\n{head}\r\n".encode() + part["text"].encode() + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def replay(client: PoolClient, recording: dict[str, Any], call: dict[str, Any], sessions: dict[str, str]) -> Any:
    """Send one recorded call to the pool (fresh identifiers stand in for the recorded placeholders)."""
    pool_path = recording["endpoint"].split("<port>", 1)[1]
    below = call["path"][len(pool_path) :]
    query = {
        name: [sessions.setdefault(value, f"replay-{uuid.uuid4()}") if value.startswith("<session") else value
               for value in values]
        for name, values in call["query"].items()
    }  # fmt: skip
    headers = {}
    content_type = call["headers"].get("Content-Type")
    body = call["body"]
    data: Any = None
    if body and "multipart" in body:
        boundary = uuid.uuid4().hex
        data = multipart_body(body["multipart"], boundary)
        headers["Content-Type"] = content_type.replace("<boundary>", boundary)
    elif body and "json" in body:
        data = json.dumps(body["json"]).encode()
        headers["Content-Type"] = content_type
    elif content_type:
        headers["Content-Type"] = content_type
    if call["chunked"] and data is not None:
        payload = data
        data = iter([payload[i : i + CHUNK_BYTES] for i in range(0, len(payload), CHUNK_BYTES)])
    reply = client.http.request(call["method"], client.endpoint + below, params=query, data=data, headers=headers)
    assert reply.status_code == call["answer"]["status"], f"{call['step']}: {reply.status_code} {reply.text[:300]}"
    if call["chunked"]:
        assert reply.request.headers.get("Transfer-Encoding") == "chunked"
    return reply


@pytest.fixture(scope="module")
def typed_pools() -> Iterator[dict[str, LocalPool]]:
    """A pool of each container type the recorded clients are made for, shared by the recordings."""
    with contextlib.ExitStack() as stack:
        yield {
            container_type: stack.enter_context(
                LocalPool(token=TOKEN, container_type=container_type, max_sessions=MODULE_POOL_MAX_SESSIONS)
            )
            for container_type in CLIENT_CONTAINER_TYPES
        }


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda path: path.stem)
def test_recorded_file_and_session_calls_succeed(pool: LocalPool, path: Path) -> None:
    recording = load(path)
    sessions: dict[str, str] = {}
    uploaded: set[bytes] = set()
    replayed = 0
    with PoolClient(pool.endpoint) as client:
        for call in recording["calls"]:
            if call["answer"]["operation"] in EXECUTION_OPERATIONS:
                continue
            reply = replay(client, recording, call, sessions)
            replayed += 1
            if call["answer"]["operation"] == "SessionResourceFiles_Upload":
                uploaded.update(part["text"].encode() for part in call["body"]["multipart"])
            if call["answer"]["operation"] == "SessionResourceFiles_GetContent":
                assert reply.content in uploaded, f"{call['step']}: got {reply.content[:100]!r}"
    assert replayed > 0, f"{path.name} has no file or session calls"


def execution_output(call: dict[str, Any], answer: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(the code or command the call sent, the answer's output fields), in either generation."""
    sent = call["body"]["json"]
    if "properties" in sent:  # 2024-02-02-preview: {"properties": {...}} both ways
        return sent["properties"]["code"], answer["properties"]
    assert answer["status"] in {"Succeeded", "0"}, answer
    return sent.get("code") or sent.get("shellCommand") or " ".join(sent["execCommandAndArgs"]), answer["result"]


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda path: path.stem)
def test_recorded_calls_succeed_on_a_pool_of_the_clients_container_type(
    typed_pools: dict[str, LocalPool], path: Path
) -> None:
    recording = load(path)
    assert recording["container_type"] in CLIENT_CONTAINER_TYPES, recording["container_type"]
    pool = typed_pools[recording["container_type"]]
    sessions: dict[str, str] = {}
    uploaded: set[bytes] = set()
    counted = {"executions": 0, "hello-world": 0}
    with PoolClient(pool.endpoint) as client:
        assert pool.container_type.value == recording["container_type"]
        for call in recording["calls"]:
            reply = replay(client, recording, call, sessions)
            operation = call["answer"]["operation"]
            if operation == "CodeExecution_Execute":
                code, output = execution_output(call, reply.json())
                assert output["stderr"] == "", f"{call['step']}: {code!r} wrote {output['stderr'][:300]!r}"
                counted["executions"] += 1
                if code.strip() in HELLO_WORLD_CODE:  # llama-index adds a newline
                    assert output["stdout"] == HELLO_WORLD_STDOUT, f"{call['step']}: {output}"
                    counted["hello-world"] += 1
            if operation == "SessionResourceFiles_Upload":
                uploaded.update(part["text"].encode() for part in call["body"]["multipart"])
            if operation == "SessionResourceFiles_GetContent":
                assert reply.content in uploaded, f"{call['step']}: got {reply.content[:100]!r}"
    # Every recording runs its driver's hello-world once (the checks above ran).
    assert counted["hello-world"] == 1, counted
