"""The smoke CLI end to end against the offline stand-in of the pool (localpool), over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

localpool = pytest.importorskip("localpool", reason="the local pool is not part of this checkout")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
POOL_TOKEN = "smk-LOCALPOOL-TOKEN-5a1e9d3b-never-print-me"
WRONG_TOKEN = "smk-WRONG-TOKEN-0c7f2e94-never-print-me"
ENDPOINT_LINE_PREFIX = "POOL_MANAGEMENT_ENDPOINT="
POOL_START_TIMEOUT_SECONDS = 20


def run_smoke_cli(*args: str, token: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DYNAMIC_SESSIONS_TOKEN": token}
    env.pop("POOL_MANAGEMENT_ENDPOINT", None)
    return subprocess.run(
        [sys.executable, "-m", "smoke", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def pool() -> Iterator[object]:
    """One LocalPool for the module, requiring POOL_TOKEN."""
    try:
        local = localpool.LocalPool(token=POOL_TOKEN)
    except localpool.NodeUnavailableError as error:
        pytest.skip(f"the local pool needs Node.js: {error}")
    with local:
        yield local


def test_both_generations_pass_end_to_end(pool) -> None:
    completed = run_smoke_cli("--endpoint", pool.endpoint, "--json", token=POOL_TOKEN)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    verdict = json.loads(completed.stdout)
    assert verdict["ok"] is True and verdict["endpoint"] == pool.endpoint
    assert [result["apiVersion"] for result in verdict["results"]] == ["2024-02-02-preview", "2024-10-02-preview"]
    for result in verdict["results"]:
        assert result["ok"] is True and result["stdout"] == "hello-world\n" and result["attempts"] == 1
    assert POOL_TOKEN not in completed.stdout + completed.stderr


def test_same_identifier_twice_reuses_the_session(pool) -> None:
    for _ in range(2):
        completed = run_smoke_cli("--endpoint", pool.endpoint, "--identifier", "smoke-reused-1", token=POOL_TOKEN)
        assert completed.returncode == 0, completed.stdout + completed.stderr
        assert completed.stdout.startswith("PASS hello-world ran on ")


def test_wrong_token_exits_3_at_the_deadline(pool) -> None:
    completed = run_smoke_cli("--endpoint", pool.endpoint, "--timeout", "1.5", "--json", token=WRONG_TOKEN)
    assert completed.returncode == 3, completed.stdout + completed.stderr
    verdict = json.loads(completed.stdout)
    assert verdict["ok"] is False and verdict["exitCode"] == 3
    assert verdict["results"][0]["outcome"] == "unauthorized"
    assert verdict["results"][0]["httpStatus"] in (401, 403)
    assert WRONG_TOKEN not in completed.stdout + completed.stderr


def test_against_python_m_localpool(tmp_path: Path) -> None:
    """The documented flow: start ``python -m localpool``, read its endpoint line, smoke it."""
    env = {**os.environ, "LOCALPOOL_TOKEN": POOL_TOKEN}
    server = subprocess.Popen(
        [sys.executable, "-m", "localpool", "--quiet"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline().strip()
        if not line and server.wait(timeout=POOL_START_TIMEOUT_SECONDS) == 2:
            pytest.skip(f"python -m localpool cannot run here: {server.stderr.read().strip()}")
        assert line.startswith(ENDPOINT_LINE_PREFIX), line
        endpoint = line.removeprefix(ENDPOINT_LINE_PREFIX)
        completed = run_smoke_cli("--endpoint", endpoint, "--api-version", "2024-10-02-preview", token=POOL_TOKEN)
        assert completed.returncode == 0, completed.stdout + completed.stderr
        assert completed.stdout.startswith(f"PASS hello-world ran on {endpoint} (2024-10-02-preview: ")
    finally:
        server.terminate()
        try:
            server.wait(timeout=POOL_START_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stdout.close()
        server.stderr.close()
