"""Benchmark of the smoke check and the local pool; prints each figure next to its target.

Run: ``.venv/bin/python bench/bench_smoke.py`` (loopback only, bounded loops, about 30-45 s).

1. Whole-process time of ``python -m smoke --endpoint ... --api-version 2024-10-02-preview`` against
   the local pool, against a bare one-request Python script (requests, one POST) to the same
   endpoint; median of N runs each (interleaved), and the ratio.
2. The local pool's warm execution round trip (p50/p95 over many requests on one session) and a new
   session's first execution (median over several fresh identifiers).
3. Executions per second with 4 concurrent clients (threads, one session each) for ~3 s.
4. A scripted server answering 403 for 3 s, then success: how late after the window the smoke CLI
   reports success, and how many requests it made (worst of a few runs).

The local pool runs as a separate process (``python -m localpool``), so client and server do not
share an interpreter. No figure is asserted; MISS lines say what to look at.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from localpool.process import LocalPoolStartError, local_pool_process  # noqa: E402
from smoke.protocol import API_2024_10, HELLO_WORLD_CODE  # noqa: E402
from tests.support.scripted_pool import Reply, ScriptedPool, execution_body, for_window  # noqa: E402

TOKEN = "bench-token-not-a-secret"
CODE = HELLO_WORLD_CODE["NodeLTS"]
EXECUTE_BODY = {"code": CODE, "codeInputType": "Inline", "executionType": "Synchronous", "timeoutInSeconds": 60}

PROCESS_RUNS = 10
WARM_REQUESTS = 200
NEW_SESSIONS = 10
CONCURRENT_CLIENTS = 4
THROUGHPUT_SECONDS = 3.0
FORBIDDEN_WINDOW_SECONDS = 3.0
FORBIDDEN_RUNS = 3
# Enough sessions for every fresh identifier this script creates; a short cooldown reaps them as it goes.
POOL_MAX_SESSIONS = 64
POOL_COOLDOWN_SECONDS = 10.0
POOL_START_TIMEOUT_SECONDS = 30.0
SUBPROCESS_TIMEOUT_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 10.0

TARGET_PROCESS_RATIO = 1.5
TARGET_WARM_P50_MS = 15.0
TARGET_NEW_SESSION_MS = 250.0
TARGET_LATE_SECONDS = 1.5
TARGET_REQUESTS = 10

BARE_SCRIPT = """
import sys, uuid, requests
endpoint, token = sys.argv[1], sys.argv[2]
response = requests.post(
    endpoint + "/executions",
    params={"api-version": "2024-10-02-preview", "identifier": str(uuid.uuid4())},
    headers={"Authorization": "Bearer " + token},
    json={"code": 'console.log("hello-world")', "codeInputType": "Inline",
          "executionType": "Synchronous", "timeoutInSeconds": 60},
    timeout=30,
)
response.raise_for_status()
assert response.json()["result"]["stdout"] == "hello-world\\n", response.text
"""


@dataclass(frozen=True)
class Figure:
    """One printed line: what was measured, its value, and its target (None when there is none)."""

    name: str
    value: float
    unit: str
    target: float | None = None
    higher_is_better: bool = False

    def verdict(self) -> str:
        if self.target is None:
            return "-"
        met = self.value >= self.target if self.higher_is_better else self.value <= self.target
        return "PASS" if met else "MISS"

    def line(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        target = f"{sign} {self.target:g} {self.unit}" if self.target is not None else "(no target)"
        return f"  {self.name:<58} {self.value:>9.2f} {self.unit:<5} target {target:<14} {self.verdict()}"


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


@contextmanager
def bench_pool() -> Iterator[str]:
    """Start ``python -m localpool`` in its own process and yield its endpoint; stop it afterwards."""
    env = {**os.environ, "LOCALPOOL_TOKEN": TOKEN}
    args = ("--quiet", "--max-sessions", str(POOL_MAX_SESSIONS), "--cooldown", str(POOL_COOLDOWN_SECONDS))
    try:
        with local_pool_process(*args, env=env, start_timeout=POOL_START_TIMEOUT_SECONDS) as running:
            yield running.endpoint
    except LocalPoolStartError as error:
        raise SystemExit(str(error)) from None


def timed_process(command: Sequence[str], env: dict[str, str]) -> float:
    """Seconds one command takes from spawn to exit; fails loudly unless it exits 0."""
    started = time.perf_counter()
    completed = subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_SECONDS
    )
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"{command[:4]} exited {completed.returncode}: {completed.stdout}{completed.stderr}")
    return elapsed


def bench_process_time(endpoint: str) -> list[Figure]:
    env = {**os.environ, "DYNAMIC_SESSIONS_TOKEN": TOKEN}
    smoke_cmd = [sys.executable, "-m", "smoke", "--endpoint", endpoint, "--api-version", API_2024_10]
    bare_cmd = [sys.executable, "-c", BARE_SCRIPT, endpoint, TOKEN]
    smoke_times, bare_times = [], []
    for _ in range(PROCESS_RUNS):  # interleaved, so drift in machine load hits both alike
        smoke_times.append(timed_process(smoke_cmd, env))
        bare_times.append(timed_process(bare_cmd, env))
    smoke_median, bare_median = statistics.median(smoke_times), statistics.median(bare_times)
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        # Then smoke/ is compiled from source on every start, while requests has bytecode from install.
        print("  note: PYTHONDONTWRITEBYTECODE is set, so the smoke CLI's own modules are compiled on every run")
    return [
        Figure(f"smoke CLI whole process, median of {PROCESS_RUNS}", smoke_median * 1000, "ms"),
        Figure(f"bare one-request script, median of {PROCESS_RUNS}", bare_median * 1000, "ms"),
        Figure("ratio smoke CLI / bare script", smoke_median / bare_median, "x", TARGET_PROCESS_RATIO),
    ]


def execute(session: requests.Session, endpoint: str, identifier: str) -> float:
    """One synchronous hello-world on ``identifier``; returns its round trip in milliseconds."""
    started = time.perf_counter()
    response = session.post(
        endpoint + "/executions",
        params={"api-version": API_2024_10, "identifier": identifier},
        headers={"Authorization": f"Bearer {TOKEN}"},
        json=EXECUTE_BODY,
        timeout=REQUEST_TIMEOUT_SECONDS,
    )
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    if response.json().get("status") != "Succeeded":
        raise SystemExit(f"local pool execution did not succeed: {response.text[:300]}")
    return elapsed


def bench_pool_latency(endpoint: str) -> list[Figure]:
    with requests.Session() as session:
        identifier = f"bench-warm-{uuid.uuid4()}"
        execute(session, endpoint, identifier)  # creates the session
        warm = [execute(session, endpoint, identifier) for _ in range(WARM_REQUESTS)]
        first = [execute(session, endpoint, f"bench-new-{uuid.uuid4()}") for _ in range(NEW_SESSIONS)]
    return [
        Figure(
            f"local pool warm round trip p50 ({WARM_REQUESTS} on one session)",
            percentile(warm, 0.5),
            "ms",
            TARGET_WARM_P50_MS,
        ),
        Figure(f"local pool warm round trip p95 ({WARM_REQUESTS} on one session)", percentile(warm, 0.95), "ms"),
        Figure(
            f"new session first execution, median of {NEW_SESSIONS}",
            statistics.median(first),
            "ms",
            TARGET_NEW_SESSION_MS,
        ),
    ]


def bench_throughput(endpoint: str) -> list[Figure]:
    counts = [0] * CONCURRENT_CLIENTS
    errors: list[str] = []
    stop_at = time.monotonic() + THROUGHPUT_SECONDS

    def client(index: int) -> None:
        identifier = f"bench-tput-{index}-{uuid.uuid4()}"
        with requests.Session() as session:
            try:
                execute(session, endpoint, identifier)  # session creation is not part of the rate
                while time.monotonic() < stop_at:
                    execute(session, endpoint, identifier)
                    counts[index] += 1
            except (requests.RequestException, SystemExit) as error:
                errors.append(str(error))

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(index,)) for index in range(CONCURRENT_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=THROUGHPUT_SECONDS + SUBPROCESS_TIMEOUT_SECONDS)
    elapsed = time.monotonic() - started
    if errors:
        print(f"  throughput clients reported errors: {errors[:3]}")
    return [
        Figure(
            f"executions/s, {CONCURRENT_CLIENTS} concurrent clients for {THROUGHPUT_SECONDS:g} s",
            sum(counts) / elapsed,
            "/s",
        )
    ]


def bench_forbidden_window() -> list[Figure]:
    env = {**os.environ, "DYNAMIC_SESSIONS_TOKEN": TOKEN}
    lateness, request_counts = [], []
    for _ in range(FORBIDDEN_RUNS):
        succeed: Callable = lambda request: Reply(202, execution_body())  # noqa: E731
        with ScriptedPool(for_window(FORBIDDEN_WINDOW_SECONDS, Reply(403), succeed)) as pool:
            command = [
                sys.executable,
                "-m",
                "smoke",
                "--endpoint",
                pool.endpoint,
                "--api-version",
                API_2024_10,
                "--timeout",
                "30",
            ]
            timed_process(command, env)
            finished = time.monotonic()
            window_end = pool.requests[0].arrived + FORBIDDEN_WINDOW_SECONDS
            lateness.append(finished - window_end)
            request_counts.append(len(pool.requests))
    return [
        Figure(
            f"403 for {FORBIDDEN_WINDOW_SECONDS:g} s: success reported late by (worst of {FORBIDDEN_RUNS})",
            max(lateness),
            "s",
            TARGET_LATE_SECONDS,
        ),
        Figure(
            f"403 for {FORBIDDEN_WINDOW_SECONDS:g} s: requests made (worst of {FORBIDDEN_RUNS})",
            max(request_counts),
            "",
            TARGET_REQUESTS,
        ),
    ]


def main() -> int:
    started = time.monotonic()
    sections: list[tuple[str, Callable[[], list[Figure]]]] = []
    with bench_pool() as endpoint:
        print(f"local pool: {endpoint}")
        sections = [
            ("1. process start-up: smoke CLI vs bare script", lambda: bench_process_time(endpoint)),
            ("2. local pool latency", lambda: bench_pool_latency(endpoint)),
            ("3. local pool throughput", lambda: bench_throughput(endpoint)),
        ]
        figures: list[Figure] = []
        for title, run in sections:
            print(title)
            for figure in run():
                print(figure.line(), flush=True)
                figures.append(figure)
    print("4. waiting out role propagation (scripted 403 window)")
    for figure in bench_forbidden_window():
        print(figure.line(), flush=True)
        figures.append(figure)
    missed = [figure.name for figure in figures if figure.verdict() == "MISS"]
    print(
        f"done in {time.monotonic() - started:.1f} s; {len(missed)} target(s) missed"
        + (f": {missed}" if missed else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
