"""The local pool's whole data plane: every operation of every api-version, files in /mnt/data, sessions, TLS.

Every answer goes through check_answer (PoolClient's response hook), which validates it against
Azure's document of its api-version (tests/support/dataplane_schema.py).
"""

from __future__ import annotations

import email.utils
import glob
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from localpool import LocalPool, SandboxLimits, wire
from localpool.constants import BASE_PATH
from localpool.files import SessionFiles
from localpool.tls import TlsSetupError, make_self_signed
from tests.support import dataplane_schema
from tests.support.localpool_helpers import (
    PROJECT_ROOT,
    TOKEN,
    PoolClient,
    checked_session,
    cli_pool,
    new_identifier,
)

UPLOAD_NAME = "hello.txt"
UPLOAD_BYTES = b"Hello from the test!\n"
ALL_OPERATIONS = [
    (version, op.operation_id) for version in dataplane_schema.supported_versions() for op in
    dataplane_schema.operations(version)
]  # fmt: skip


def params(identifier: str | None, api_version: str, **extra: str) -> dict[str, str]:
    query = {"api-version": api_version, **extra}
    if identifier is not None:
        query["identifier"] = identifier
    return query


def upload(
    client: PoolClient, identifier: str, api_version: str, name: str = UPLOAD_NAME, data: bytes = UPLOAD_BYTES,
    **extra: str,
) -> requests.Response:  # fmt: skip
    path = "/files/upload" if api_version == wire.API_2024_02 else "/files"
    return client.http.post(
        client.endpoint + path, params=params(identifier, api_version, **extra), files={"file": (name, data)}
    )


def execute(client: PoolClient, identifier: str, api_version: str, code: str) -> requests.Response:
    """The version's code execution: POST code/execute (2024-02-02-preview) or POST executions."""
    if api_version == wire.API_2024_02:
        return client.legacy(identifier, code)
    return client.execute(identifier, code, api_version=api_version)


def content_path(api_version: str, name: str) -> str:
    return f"/files/content/{name}" if api_version == wire.API_2024_02 else f"/files/{name}/content"


def perform(client: PoolClient, api_version: str, operation_id: str, identifier: str) -> requests.Response:
    """Drive one operation to success (after whatever it needs first)."""
    endpoint, query = client.endpoint, params(identifier, api_version)
    http = client.http
    actions: dict[str, Callable[[], requests.Response]] = {
        "CodeExecution_Execute": lambda: execute(client, identifier, api_version, "6 * 7"),
        "CodeExecution_Get": lambda: http.get(
            f"{endpoint}/executions/{execute(client, identifier, api_version, '1').json()['id']}", params=query
        ),
        "SessionResourceFiles_Upload": lambda: upload(client, identifier, api_version),
        "SessionResourceFiles_List": lambda: (upload(client, identifier, api_version), http.get(
            endpoint + "/files", params=query))[1],
        "SessionResourceFiles_Get": lambda: (upload(client, identifier, api_version), http.get(
            f"{endpoint}/files/{UPLOAD_NAME}", params=query))[1],
        "SessionResourceFiles_GetContent": lambda: (upload(client, identifier, api_version), http.get(
            endpoint + content_path(api_version, UPLOAD_NAME), params=query))[1],
        "SessionResourceFiles_Delete": lambda: (upload(client, identifier, api_version), http.delete(
            f"{endpoint}/files/{UPLOAD_NAME}", params=query))[1],
        "ListSessions_Get": lambda: (execute(client, identifier, api_version, "1"), http.get(
            endpoint + "/listSessions", params=params(None, api_version)))[1],
        "SessionManagement_Get": lambda: (execute(client, identifier, api_version, "1"), http.get(
            endpoint + "/session", params=query))[1],
        "SessionManagement_Delete": lambda: (execute(client, identifier, api_version, "1"), http.delete(
            endpoint + "/session", params=query))[1],
        "SessionPoolMetadata_Get": lambda: http.get(endpoint + "/metadata", params=params(None, api_version)),
        "SessionPoolManagement_StopSession": lambda: (execute(client, identifier, api_version, "1"), http.post(
            endpoint + "/.management/stopSession", params=query))[1],
    }  # fmt: skip
    return actions[operation_id]()


def examples(api_version: str, operation_id: str) -> list[dict[str, Any]]:
    """Azure's example answers (status 200) of one operation in one version, from tests/data/dataplane."""
    found = []
    for name in glob.glob(str(dataplane_schema.DATAPLANE_DIR / f"*__{api_version}__examples__*.json")):
        example = json.loads(Path(name).read_text(encoding="utf-8"))
        body = example.get("responses", {}).get("200", {}).get("body")
        if example.get("operationId") == operation_id and isinstance(body, dict):
            found.append(body)
    return found


@pytest.mark.parametrize(("api_version", "operation_id"), ALL_OPERATIONS)
def test_every_documented_operation_succeeds_as_documented(
    client: PoolClient, api_version: str, operation_id: str
) -> None:
    reply = perform(client, api_version, operation_id, new_identifier())
    below = urlsplit(reply.request.url or "").path[len(BASE_PATH) :]
    operation = dataplane_schema.find_operation(api_version, reply.request.method or "", below)
    assert reply.status_code == operation.success_status, reply.text
    assert operation.operation_id == operation_id
    if reply.headers.get("Content-Type", "").startswith("application/json"):
        body = reply.json()
        for example in examples(api_version, operation_id):
            # Every field Azure's example answers with (non-null) is in the local answer too.
            shown = {key for key, value in example.items() if value is not None}
            assert shown <= set(body), f"{operation_id} lacks {shown - set(body)} of Azure's example"


def test_localpool_does_not_import_the_smoke_client() -> None:
    # One source of truth: the pool's answers come from localpool.wire, never from smoke.protocol.
    code = (
        "import sys, localpool, localpool.__main__, localpool.server, localpool.process\n"
        "print(sorted(name for name in sys.modules if name == 'smoke' or name.startswith('smoke.')))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    assert found.stdout.strip() == "[]", found.stdout


def test_operations_tested_are_all_wire_offers() -> None:
    documented = {(version, op_id) for version, op_id in ALL_OPERATIONS}
    offered = {
        (version, op.operation_id) for version in wire.SUPPORTED_API_VERSIONS for op in wire.operations_for(version)
    }
    assert documented == offered


# -- files in /mnt/data -----------------------------------------------------------------------------


def run_js(client: PoolClient, identifier: str, code: str) -> dict[str, Any]:
    return client.run(identifier, code, api_version=wire.API_2025_10)


def test_uploaded_files_are_visible_to_code_and_code_written_files_are_listed_and_downloadable(
    client: PoolClient,
) -> None:
    identifier = new_identifier()
    assert upload(client, identifier, wire.API_2025_10).status_code == 200
    seen = run_js(client, identifier, f"require('fs').readFileSync('/mnt/data/{UPLOAD_NAME}', 'utf8')")
    assert seen["result"]["executionResult"] == UPLOAD_BYTES.decode()
    run_js(
        client,
        identifier,
        "fs = require('fs'); fs.mkdirSync('/mnt/data/out'); fs.writeFileSync('/mnt/data/out/r.csv', 'a,b')",
    )
    query = params(identifier, wire.API_2025_10)
    listed = client.http.get(client.endpoint + "/files", params=query).json()["value"]
    assert {(item["name"], item["type"]) for item in listed} == {(UPLOAD_NAME, "File"), ("out", "Directory")}
    inside = client.http.get(client.endpoint + "/files", params={**query, "path": "out"}).json()["value"]
    assert [(item["name"], item["sizeInBytes"], item["contentType"]) for item in inside] == [("r.csv", 3, "text/csv")]
    content = client.http.get(client.endpoint + "/files/r.csv/content", params={**query, "path": "/mnt/data/out"})
    assert content.content == b"a,b"
    assert content.headers["Content-Type"] == wire.OCTET_STREAM


def test_recursive_listing_and_upload_into_a_path(client: PoolClient) -> None:
    identifier = new_identifier()
    query = params(identifier, wire.API_2025_10)
    assert upload(client, identifier, wire.API_2025_10, "deep.txt", b"x", path="a/b").status_code == 200
    flat = client.http.get(client.endpoint + "/files", params=query).json()["value"]
    assert [item["name"] for item in flat] == ["a"]
    deep = client.http.get(client.endpoint + "/files", params={**query, "recursive": "true"}).json()["value"]
    assert [(item["directory"], item["name"]) for item in deep] == [("", "a"), ("a", "b"), ("a/b", "deep.txt")]
    legacy = client.http.get(client.endpoint + "/files", params=params(identifier, wire.API_2024_10)).json()["value"]
    assert "directory" not in legacy[0]


def test_2024_02_upload_takes_the_file_name_of_a_mnt_data_path_and_answers_a_list(client: PoolClient) -> None:
    identifier = new_identifier()
    # llama-index and semantic-kernel send filename="/mnt/data/<name>".
    reply = upload(client, identifier, wire.API_2024_02, name="/mnt/data/x.txt")
    assert reply.json()["value"][0]["properties"]["filename"] == "x.txt"
    files = client.http.get(client.endpoint + "/files", params=params(identifier, wire.API_2024_02)).json()
    assert [item["properties"]["filename"] for item in files["value"]] == ["x.txt"]


def test_delete_file_removes_it_and_a_missing_file_is_404(client: PoolClient) -> None:
    identifier = new_identifier()
    upload(client, identifier, wire.API_2025_02)
    query = params(identifier, wire.API_2025_02)
    assert client.http.delete(f"{client.endpoint}/files/{UPLOAD_NAME}", params=query).status_code == 204
    again = client.http.delete(f"{client.endpoint}/files/{UPLOAD_NAME}", params=query)
    assert again.status_code == 404 and again.json()["error"]["code"] == "FileNotFound"
    missing = client.http.get(f"{client.endpoint}/files/{UPLOAD_NAME}/content", params=query)
    assert missing.status_code == 404


def test_2024_02_file_metadata_and_delete_as_azures_sample_shows(client: PoolClient) -> None:
    # Azure-Samples' code-interpreter/2024-08-02-preview-and-before.md documents both for the older versions.
    identifier = new_identifier()
    upload(client, identifier, wire.API_2024_02)
    query = params(identifier, wire.API_2024_02)
    described = client.http.get(f"{client.endpoint}/files/{UPLOAD_NAME}", params=query)
    assert described.status_code == 200, described.text
    [item] = described.json()["value"]
    assert item["properties"]["filename"] == UPLOAD_NAME
    assert item["properties"]["size"] == len(UPLOAD_BYTES)
    deleted = client.http.delete(f"{client.endpoint}/files/{UPLOAD_NAME}", params=query)
    assert (deleted.status_code, deleted.json()) == (200, {"message": "file deleted successfully"})
    assert client.http.get(client.endpoint + "/files", params=query).json()["value"] == []
    again = client.http.delete(f"{client.endpoint}/files/{UPLOAD_NAME}", params=query)
    assert again.status_code == 404 and again.json()["error"]["code"] == "FileNotFound"


def test_links_and_special_files_a_session_leaves_are_never_followed(client: PoolClient, pool: LocalPool) -> None:
    identifier = new_identifier()
    run_js(client, identifier, "1")
    workdir = pool.manager.find(identifier).workdir
    secret = workdir.parent / "outside-secret.txt"
    secret.write_text("host secret")
    try:
        (workdir / "link.txt").symlink_to(secret)
        (workdir / "dirlink").symlink_to(workdir.parent)
        os.mkfifo(workdir / "pipe")
        query = params(identifier, wire.API_2025_10)
        for name, extra in (("link.txt", {}), ("pipe", {}), ("outside-secret.txt", {"path": "dirlink"})):
            reply = client.http.get(f"{client.endpoint}/files/{name}/content", params={**query, **extra}, timeout=10)
            assert reply.status_code == 404, (name, reply.text)
            assert b"host secret" not in reply.content
        listed = client.http.get(client.endpoint + "/files", params={**query, "recursive": "true"}).json()["value"]
        assert listed == []
        # An upload over a link replaces the link; it never writes through it.
        upload(client, identifier, wire.API_2025_10, name="link.txt", data=b"new")
        assert secret.read_text() == "host secret"
        climbing = client.http.get(f"{client.endpoint}/files", params={**query, "path": "../.."})
        assert climbing.status_code == 400 and climbing.json()["error"]["code"] == "InvalidPath"
    finally:
        secret.unlink()


def test_chunked_upload_is_accepted(client: PoolClient) -> None:
    identifier = new_identifier()
    boundary = "chunkedboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="c.txt"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + b"chunk-data"
        + f"\r\n--{boundary}--\r\n".encode()
    )
    pieces = iter([body[:30], body[30:61], body[61:]])  # a generator body makes requests send it chunked
    reply = client.http.post(
        client.endpoint + "/files/upload",
        params=params(identifier, wire.API_2024_02),
        data=pieces,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert reply.request.headers.get("Transfer-Encoding") == "chunked"
    assert reply.status_code == 200, reply.text
    content = client.http.get(client.endpoint + "/files/content/c.txt", params=params(identifier, wire.API_2024_02))
    assert content.content == b"chunk-data"


def test_multipart_labelled_application_json_is_read_by_its_boundary(client: PoolClient) -> None:
    # semantic-kernel sends its multipart body with Content-Type: application/json.
    identifier = new_identifier()
    prepared = requests.Request("POST", client.endpoint + "/files/upload", files={"file": ("sk.txt", b"sk")}).prepare()
    reply = client.http.post(
        client.endpoint + "/files/upload",
        params=params(identifier, wire.API_2024_02),
        data=prepared.body,
        headers={"Content-Type": "application/json"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["value"][0]["properties"]["filename"] == "sk.txt"


def test_upload_above_azures_limit_is_413_before_the_body_is_read(pool: LocalPool) -> None:
    announced = wire.MAX_UPLOAD_BYTES[pool.container_type] * 2
    head = (
        f"POST {BASE_PATH}/files?api-version={wire.API_2025_10}&identifier=big-upload HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{pool.port}\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {announced}\r\n\r\n"
    )
    with socket.create_connection((pool.host, pool.port), timeout=10) as connection:
        connection.sendall(head.encode())
        answer = connection.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "RequestEntityTooLarge" in answer


@pytest.mark.parametrize("container_type", list(wire.ContainerType))
def test_each_container_types_upload_limit_holds_to_the_byte(container_type: wire.ContainerType) -> None:
    """Real uploads at the limit Azure documents for the type (Shell 250 MB, the others 128 MB): one byte
    over is 413 and stores nothing, exactly the limit is stored (the disk limit set above both)."""
    limit = wire.MAX_UPLOAD_BYTES[container_type]
    disk = SandboxLimits(disk_mb=max(wire.MAX_UPLOAD_BYTES.values()) // (1024 * 1024) + 10)
    with (
        LocalPool(token=TOKEN, container_type=container_type, prewarm=False, limits=disk) as local,
        PoolClient(local.endpoint) as client,
    ):
        identifier = new_identifier()
        over = upload(client, identifier, wire.API_2025_10, name="big.bin", data=b"x" * (limit + 1))
        assert over.status_code == 413, over.text[:300]
        assert over.json()["error"] == {
            "code": "RequestEntityTooLarge",
            "message": f"The file is {limit + 1} bytes; a {container_type} session accepts files up to {limit} bytes "
            f"({limit // (1024 * 1024)} MB).",
        }
        listed = client.http.get(client.endpoint + "/files", params=params(identifier, wire.API_2025_10))
        assert listed.json()["value"] == []
        at_limit = upload(client, identifier, wire.API_2025_10, name="big.bin", data=b"x" * limit)
        assert at_limit.status_code == 200, at_limit.text[:300]
        assert at_limit.json()["sizeInBytes"] == limit


def test_upload_beyond_the_session_disk_limit_is_413_and_leaves_nothing() -> None:
    with LocalPool(token=TOKEN, prewarm=False, limits=SandboxLimits(disk_mb=1)) as small:
        client = PoolClient(small.endpoint)
        identifier = new_identifier()
        reply = upload(client, identifier, wire.API_2025_10, name="big.bin", data=b"x" * (2 * 1024 * 1024))
        assert reply.status_code == 413 and reply.json()["error"]["code"] == "SessionDiskLimitExceeded"
        listed = client.http.get(client.endpoint + "/files", params=params(identifier, wire.API_2025_10))
        assert listed.json()["value"] == []
        client.close()


def test_later_versions_take_one_file_per_upload_and_store_none_of_a_second(client: PoolClient) -> None:
    identifier = new_identifier()
    reply = client.http.post(
        client.endpoint + "/files",
        params=params(identifier, wire.API_2025_02),
        files=[("file", ("one.txt", b"1")), ("file", ("two.txt", b"2"))],
    )
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "InvalidMultipartBody"
    listed = client.http.get(client.endpoint + "/files", params=params(identifier, wire.API_2025_02)).json()["value"]
    assert "two.txt" not in [item["name"] for item in listed]
    both = client.http.post(
        client.endpoint + "/files/upload",
        params=params(identifier, wire.API_2024_02),
        files=[("file", ("one.txt", b"1")), ("file", ("two.txt", b"2"))],
    )
    assert [item["properties"]["filename"] for item in both.json()["value"]] == ["one.txt", "two.txt"]


def test_session_files_reject_climbing_paths(tmp_path: Path) -> None:
    files = SessionFiles(tmp_path, owner=None, disk_limit_bytes=1024, container_type=wire.ContainerType.NODE_LTS)
    for bad in ("..", "a/../../b", "x\x00y"):
        with pytest.raises(wire.WireError) as caught:
            files.list(bad)
        assert caught.value.status == 400


# -- sessions -----------------------------------------------------------------------------------------


def test_delete_session_makes_the_next_execution_start_fresh(client: PoolClient) -> None:
    identifier = new_identifier()
    query = params(identifier, wire.API_2025_10)
    run_js(client, identifier, "globalThis.kept = 7; require('fs').writeFileSync('/mnt/data/f.txt', 'x')")
    sessions = client.http.get(client.endpoint + "/listSessions", params=params(None, wire.API_2025_10)).json()
    assert identifier in [session["identifier"] for session in sessions["sessions"]]
    assert client.http.get(client.endpoint + "/session", params=query).json()["identifier"] == identifier
    assert client.http.delete(client.endpoint + "/session", params=query).status_code == 204
    assert client.http.get(client.endpoint + "/session", params=query).status_code == 404
    fresh = run_js(client, identifier, "typeof globalThis.kept")
    assert fresh["result"]["executionResult"] == "undefined"
    assert client.http.get(client.endpoint + "/files", params=query).json()["value"] == []


def test_stop_session_answers_plain_text(client: PoolClient) -> None:
    identifier = new_identifier()
    run_js(client, identifier, "1")
    reply = client.http.post(client.endpoint + "/.management/stopSession", params=params(identifier, wire.API_2025_10))
    assert reply.text == wire.stop_session_text(identifier, "localpool")
    assert client.http.get(client.endpoint + "/session", params=params(identifier, wire.API_2025_10)).status_code == 404


def test_unknown_api_version_names_the_supported_ones(client: PoolClient) -> None:
    reply = client.http.get(client.endpoint + "/files", params=params("abcd", "2023-01-01"))
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "UnsupportedApiVersion"
    assert all(version in reply.json()["error"]["message"] for version in wire.SUPPORTED_API_VERSIONS)
    older = client.http.get(client.endpoint + "/metadata", params=params(None, wire.API_2024_10))
    assert older.status_code == 400 and wire.API_2025_02 in older.json()["error"]["message"]


# -- HTTPS -----------------------------------------------------------------------------------------


def test_tls_serves_https_with_a_certificate_clients_can_trust() -> None:
    with LocalPool(token=TOKEN, prewarm=False, tls=True) as secure:
        assert secure.endpoint.startswith("https://") and secure.cert_path is not None
        http = checked_session()
        reply = http.get(
            secure.endpoint + "/metadata",
            params=params(None, wire.API_2025_10),
            headers={"Authorization": f"Bearer {TOKEN}"},
            verify=str(secure.cert_path),
            timeout=30,
        )
        assert reply.status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(secure.endpoint + "/metadata", timeout=30)  # not trusted without the certificate
        cert_dir = secure.cert_path.parent
    assert not cert_dir.exists()


def test_own_certificate_is_served_and_an_unusable_one_is_a_clear_error(tmp_path: Path) -> None:
    cert, key = make_self_signed(tmp_path)
    with LocalPool(token=TOKEN, prewarm=False, cert=cert, key=key) as secure:
        assert secure.cert_path == cert and secure.origin.startswith("https://")
        reply = checked_session().get(
            secure.endpoint + "/metadata",
            params=params(None, wire.API_2025_10),
            headers={"Authorization": f"Bearer {TOKEN}"},
            verify=str(cert),
            timeout=30,
        )
        assert reply.status_code == 200
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate")
    with pytest.raises(TlsSetupError, match="Cannot use the certificate"):
        LocalPool(token=TOKEN, prewarm=False, cert=broken, key=key)
    with pytest.raises(ValueError, match="--cert and --key together"):
        LocalPool(token=TOKEN, prewarm=False, cert=cert)


def test_cli_tls_prints_the_certificate_path() -> None:
    with cli_pool("--tls") as running:
        assert running.cert_path is not None and Path(running.cert_path).is_file()


def test_every_answer_has_the_date_of_its_second_in_https_format(client: PoolClient) -> None:
    query = params(new_identifier("date"), wire.API_2024_10)
    dates = []
    for _ in range(2):
        before = time.time()
        answer = client.http.get(client.endpoint + "/files", params=query)
        after = time.time()
        assert answer.status_code == 200
        header = answer.headers["Date"]
        assert header.endswith(" GMT"), header
        sent = email.utils.parsedate_to_datetime(header).timestamp()
        assert int(before) <= sent <= after, (header, before, after)
        dates.append(header)
        time.sleep(1.1)
    assert dates[0] != dates[1]  # not one second's header for ever
