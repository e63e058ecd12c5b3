"""Benchmark of the local pool's file operations (issue 9); prints each figure next to its target.

Run: ``.venv/bin/python bench/bench_files.py`` (loopback only, about 10-20 s; needs bubblewrap).

1. Upload then download of a 100 MB file (multipart POST files, then GET files/{name}/content,
   streamed): seconds for each and together (target: together <= 3 s); the bytes are compared.
2. Listing 1,000 files that session code wrote into /mnt/data: median and worst of GET files
   (target: <= 200 ms).

The pool runs as ``python -m localpool`` in its own process (client and server do not share an
interpreter). No figure is asserted; MISS lines say what to look at.
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import time
import uuid
from pathlib import Path

import requests

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from localpool.process import local_pool_process  # noqa: E402
from localpool.wire import API_2025_10  # noqa: E402

TOKEN = "bench-token-not-a-secret"
UPLOAD_BYTES = 100 * 1000 * 1000
UPLOAD_TARGET_SECONDS = 3.0
LISTED_FILES = 1000
LIST_ROUNDS = 20
LIST_TARGET_SECONDS = 0.2
# The session's disk limit must hold the 100 MB file (the default is 100 MiB, just above it).
DISK_MB = 200
DOWNLOAD_CHUNK_BYTES = 1024 * 1024
TIMEOUT_SECONDS = 120


def verdict(value: float, target: float) -> str:
    return "ok  " if value <= target else "MISS"


def multipart(name: str, payload: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + payload + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def bench_upload_download(http: requests.Session, endpoint: str) -> None:
    identifier = f"bench-{uuid.uuid4()}"
    query = {"api-version": API_2025_10, "identifier": identifier}
    payload = bytes(range(256)) * (UPLOAD_BYTES // 256) + b"\0" * (UPLOAD_BYTES % 256)
    expected = hashlib.sha256(payload).hexdigest()
    body, content_type = multipart("big.bin", payload)
    del payload
    started = time.perf_counter()
    reply = http.post(
        endpoint + "/files", params=query, data=body, headers={"Content-Type": content_type}, timeout=TIMEOUT_SECONDS
    )
    uploaded = time.perf_counter() - started
    reply.raise_for_status()
    assert reply.json()["sizeInBytes"] == UPLOAD_BYTES, reply.text
    del body
    digest = hashlib.sha256()
    started = time.perf_counter()
    with http.get(endpoint + "/files/big.bin/content", params=query, stream=True, timeout=TIMEOUT_SECONDS) as answer:
        answer.raise_for_status()
        for chunk in answer.iter_content(DOWNLOAD_CHUNK_BYTES):
            digest.update(chunk)
    downloaded = time.perf_counter() - started
    same = digest.hexdigest() == expected
    total = uploaded + downloaded
    print(f"upload 100 MB:            {uploaded:6.2f} s")
    print(f"download 100 MB:          {downloaded:6.2f} s   (bytes identical: {same})")
    mark = verdict(total, UPLOAD_TARGET_SECONDS)
    print(f"{mark} upload+download:      {total:6.2f} s   target <= {UPLOAD_TARGET_SECONDS} s")
    http.delete(endpoint + "/session", params=query, timeout=TIMEOUT_SECONDS)


def bench_listing(http: requests.Session, endpoint: str) -> None:
    identifier = f"bench-{uuid.uuid4()}"
    query = {"api-version": API_2025_10, "identifier": identifier}
    code = (
        "const fs = require('fs');"
        f"for (let i = 0; i < {LISTED_FILES}; i++) fs.writeFileSync(`/mnt/data/file-${{i}}.txt`, String(i));"
    )
    reply = http.post(endpoint + "/executions", params=query, json={"code": code}, timeout=TIMEOUT_SECONDS)
    assert reply.json()["status"] == "Succeeded", reply.text
    times = []
    for _ in range(LIST_ROUNDS):
        started = time.perf_counter()
        listed = http.get(endpoint + "/files", params=query, timeout=TIMEOUT_SECONDS)
        times.append(time.perf_counter() - started)
        assert len(listed.json()["value"]) == LISTED_FILES
    median, worst = statistics.median(times), max(times)
    print(
        f"{verdict(median, LIST_TARGET_SECONDS)} list {LISTED_FILES} files:       median {median * 1000:6.1f} ms, "
        f"worst {worst * 1000:6.1f} ms   target <= {LIST_TARGET_SECONDS * 1000:.0f} ms"
    )


def main() -> int:
    with local_pool_process("--quiet", "--token", TOKEN, "--disk-mb", str(DISK_MB)) as running:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {TOKEN}"
        bench_upload_download(http, running.endpoint)
        bench_listing(http, running.endpoint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
