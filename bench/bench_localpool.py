"""Benchmark of the sandboxed local pool (issue 8); prints each figure next to its target.

Run: ``.venv/bin/python bench/bench_localpool.py`` (loopback only, bounded loops, about 30-60 s;
needs bubblewrap, as the pool does).

1. Warm execution round trip: p50/p95 of synchronous executions on one session (keep-alive).
2. First execution of a new session (a prewarmed spare sandbox is kept): median and worst.
3. Memory of an idle session: resident (RSS) and proportional (PSS, shared pages split) set of all
   processes of one sandbox (bwrap, its init, Node.js), averaged over idle sessions.
4. 50 live sessions at once: all created, all answering a second round; total memory.
5. 200 concurrent clients (one connection each) on 10 sessions: how many were answered, and how.
6. PythonLTS and Shell (issue 9): warm round trip p50/p95, first execution of a new session (with
   the spare), idle session RSS/PSS.
7. Throughput (issue 15), per container type: executions/s with 1, 2, 4 and 8 keep-alive clients,
   each on its own warm session, and the pool process's own CPU time per execution (all its
   threads, from /proc/<pid>/stat; the sandboxes are other processes), in microseconds, with the share
   of the machine's CPU time the hypervisor gave other guests meanwhile (steal, from /proc/stat: on a
   shared machine it moves every figure). The clients speak raw HTTP/1.1 over one socket each, so the
   client side costs little of the machine's two cores.

``--container-type PythonLTS`` (repeatable) runs only the figures of the types named (1-5 are NodeLTS's).

Figures 1 and 5 talk to ``python -m localpool`` in its own process (client and server do not share
an interpreter); 2-4 use an in-process LocalPool, whose sandboxes' pids are known. No figure is
asserted; MISS lines say what to look at.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import socket
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from localpool import LocalPool  # noqa: E402
from localpool.disk import sandbox_processes  # noqa: E402
from localpool.process import local_pool_process  # noqa: E402
from localpool.wire import ContainerType  # noqa: E402
from smoke.protocol import API_2024_10, EXECUTIONS_PATH, HELLO_WORLD_CODE  # noqa: E402

TOKEN = "bench-token-not-a-secret"
WARM_REQUESTS = 300
NEW_SESSIONS = 15
# Time for the pool to make its next spare sandbox between two new sessions.
SPARE_SETTLE_SECONDS = 0.4
IDLE_SESSIONS = 10
LIVE_SESSIONS = 50
CONCURRENT_CLIENTS = 200
CONCURRENT_IDENTIFIERS = 10
REQUEST_TIMEOUT_SECONDS = 120.0
MIB = 1024 * 1024
# Throughput: clients at once (each on its own session) and how long each measurement runs.
THROUGHPUT_CLIENTS = (1, 2, 4, 8)
THROUGHPUT_SECONDS = 3.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

TARGET_WARM_P50_MS = 5.0
TARGET_NEW_SESSION_MS = 150.0
TARGET_IDLE_MIB = 40.0
# Issue 9: PythonLTS targets; NodeLTS's figures must be no worse than after the sandbox.
TARGET_PYTHON_NEW_SESSION_MS = 300.0
TARGET_PYTHON_WARM_P50_MS = 10.0
# Issue 15: throughput with 8 keep-alive clients on 8 warm NodeLTS sessions, and what each execution
# costs the pool process itself.
TARGET_EXECUTIONS_PER_SECOND = 1000.0
TARGET_POOL_CPU_US = 500.0
TARGET_WARM_P50_MS_15 = 2.0
TARGET_LOAD_P99_MS = 500.0
TARGET_IDLE_PSS_MIB = 12.0
# A cheap statement and the code that sets a variable in an idle session, per container type.
WARM_CODE = {ContainerType.NODE_LTS: "1 + 1", ContainerType.PYTHON_LTS: "1 + 1", ContainerType.SHELL: "true"}
SET_CODE = {ContainerType.NODE_LTS: "var kept = 1", ContainerType.PYTHON_LTS: "kept = 1", ContainerType.SHELL: "true"}


def report(name: str, value: float, unit: str, target: float | None = None, *, at_most: bool = True) -> None:
    """One line: the figure, and its target with OK/MISS when there is one."""
    line = f"{name:<48} {value:10.1f} {unit}"
    if target is not None:
        ok = value <= target if at_most else value >= target
        line += f"   target {'<=' if at_most else '>='} {target:g} {unit}: {'OK' if ok else 'MISS'}"
    print(line, flush=True)


def execute(http: requests.Session, endpoint: str, identifier: str, code: str = "1 + 1") -> requests.Response:
    """One synchronous execution."""
    return http.post(
        endpoint + EXECUTIONS_PATH,
        params={"api-version": API_2024_10, "identifier": identifier},
        json={"code": code},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=REQUEST_TIMEOUT_SECONDS,
    )


def timed(action: Callable[[], requests.Response]) -> tuple[float, requests.Response]:
    """Milliseconds an action took, and its response."""
    started = time.perf_counter()
    response = action()
    return (time.perf_counter() - started) * 1000, response


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of values lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def memory_kib(pid: int, field: str) -> int:
    """A field (Rss, Pss) of /proc/<pid>/smaps_rollup in KiB; 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def sandbox_memory(pool: LocalPool, identifier: str) -> tuple[float, float]:
    """(RSS, PSS) in MiB of every process of the identifier's sandbox."""
    session = pool.manager.find(identifier)
    assert session is not None and session.interpreter is not None
    pids = sandbox_processes(session.interpreter.pid)
    return (
        sum(memory_kib(pid, "Rss") for pid in pids) / 1024,
        sum(memory_kib(pid, "Pss") for pid in pids) / 1024,
    )


def pool_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process pid (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command: state is field 3, utime and stime are fields 14 and 15 (man 5 proc).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class RawClient:
    """One keep-alive HTTP/1.1 connection sending the same synchronous execution again and again."""

    def __init__(self, endpoint: str, identifier: str, code: str) -> None:
        """Connect to the pool and prepare the request bytes."""
        origin, _, path = endpoint.removeprefix("http://").partition("/")
        host, _, port = origin.rpartition(":")
        self._sock = socket.create_connection((host, int(port)))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._file = self._sock.makefile("rb")
        body = json.dumps({"code": code}).encode()
        target = f"/{path}{EXECUTIONS_PATH}?api-version={API_2024_10}&identifier={identifier}"
        self._request = (
            f"POST {target} HTTP/1.1\r\nHost: {origin}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    def execute(self) -> int:
        """Send the execution, read the whole answer; its status code."""
        self._sock.sendall(self._request)
        status = int(self._file.readline().split()[1])
        length = 0
        while (line := self._file.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = self._file.read(length)
        if status != requests.codes.ok or b'"error": {' in body:
            raise RuntimeError(f"execution answered {status}: {body[:200]!r}")
        return status

    def close(self) -> None:
        """Close the connection."""
        self._file.close()
        self._sock.close()


def machine_times() -> list[int]:
    """The machine's CPU times (user, nice, system, idle, iowait, irq, softirq, steal, ...) from /proc/stat."""
    return [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]


def steal_percent(before: list[int], after: list[int]) -> float:
    """The share of the machine's CPU time between two readings that the hypervisor gave other guests."""
    spent = [end - start for start, end in zip(before, after, strict=True)]
    return 100 * spent[7] / max(1, sum(spent))


def throughput(endpoint: str, pid: int, container_type: ContainerType, clients: int) -> tuple[float, float, float]:
    """(executions/s, pool CPU µs per execution, steal %) of `clients` keep-alive clients on their own warm
    sessions."""
    code = WARM_CODE[container_type]
    connections = [RawClient(endpoint, f"rate-{uuid.uuid4()}", code) for _ in range(clients)]
    for connection in connections:
        connection.execute()  # the session is made and its interpreter warm
    counts = [0] * clients
    stop = threading.Event()
    start = threading.Barrier(clients + 1)

    def drive(index: int) -> None:
        start.wait()
        while not stop.is_set():
            connections[index].execute()
            counts[index] += 1

    threads = [threading.Thread(target=drive, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    cpu_before, machine_before, began = pool_cpu_seconds(pid), machine_times(), time.perf_counter()
    time.sleep(THROUGHPUT_SECONDS)
    done, cpu_after, wall = sum(counts), pool_cpu_seconds(pid), time.perf_counter() - began
    steal = steal_percent(machine_before, machine_times())
    stop.set()
    for thread in threads:
        thread.join()
    for connection in connections:
        connection.close()
    return done / wall, (cpu_after - cpu_before) * 1_000_000 / max(1, done), steal


def bench_throughput(container_type: ContainerType) -> None:
    """Figure 7 for one container type, against `python -m localpool` in its own process."""
    name = container_type.value
    args = ("--quiet", "--token", TOKEN, "--max-sessions", "64", "--container-type", name)
    with local_pool_process(*args) as running:
        for clients in THROUGHPUT_CLIENTS:
            rate, cpu_us, steal = throughput(running.endpoint, running.process.pid, container_type, clients)
            full = clients == max(THROUGHPUT_CLIENTS)
            rate_target = TARGET_EXECUTIONS_PER_SECOND if full and container_type is ContainerType.NODE_LTS else None
            report(f"7. {name} executions/s, {clients} keep-alive clients", rate, "/s", rate_target, at_most=False)
            cpu_target = TARGET_POOL_CPU_US if full else None
            report(f"   {name} pool CPU per execution, {clients} clients", cpu_us, "µs", cpu_target)
            # Time the hypervisor gave other guests meanwhile: above a few per cent, every figure is worse.
            print(f"   (machine CPU time stolen by other guests meanwhile: {steal:.0f} %)", flush=True)


def bench_warm_and_load() -> None:
    """Figures 1 and 5, against `python -m localpool` in its own process."""
    args = ("--quiet", "--token", TOKEN, "--max-sessions", "64")
    with local_pool_process(*args) as running, requests.Session() as http:
        identifier = f"warm-{uuid.uuid4()}"
        assert execute(http, running.endpoint, identifier).status_code == requests.codes.ok
        times = [timed(lambda: execute(http, running.endpoint, identifier))[0] for _ in range(WARM_REQUESTS)]
        report("1. warm round trip p50", statistics.median(times), "ms", TARGET_WARM_P50_MS_15)
        report("   warm round trip p95", percentile(times, 0.95), "ms")

        identifiers = [f"load-{uuid.uuid4()}" for _ in range(CONCURRENT_IDENTIFIERS)]

        def one(index: int) -> tuple[float, int | str]:
            with requests.Session() as own:
                try:
                    took, reply = timed(
                        lambda: execute(own, running.endpoint, identifiers[index % len(identifiers)], "1 + 1")
                    )
                except requests.RequestException as error:
                    return 0.0, type(error).__name__
                return took, reply.status_code

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=CONCURRENT_CLIENTS) as executor:
            outcomes = list(executor.map(one, range(CONCURRENT_CLIENTS)))
        wall = time.perf_counter() - started
        answered = [took for took, status in outcomes if status == requests.codes.ok]
        others: dict[str, int] = {}
        for _, status in outcomes:
            if status != requests.codes.ok:
                others[str(status)] = others.get(str(status), 0) + 1
        report(
            f"5. {CONCURRENT_CLIENTS} concurrent clients answered 200",
            len(answered),
            "clients",
            CONCURRENT_CLIENTS,
            at_most=False,
        )
        print(f"   other outcomes: {others or 'none'}; wall {wall:.2f} s", flush=True)
        if answered:
            report("   latency p50 under load", statistics.median(answered), "ms")
            report("   latency p99 under load", percentile(answered, 0.99), "ms", TARGET_LOAD_P99_MS)


def bench_sessions() -> None:
    """Figures 2-4, against an in-process LocalPool (its sandboxes' pids are known)."""
    with LocalPool(token=TOKEN, max_sessions=NEW_SESSIONS + 5) as pool, requests.Session() as http:
        time.sleep(SPARE_SETTLE_SECONDS)
        first_times = []
        for _ in range(NEW_SESSIONS):
            took, reply = timed(
                lambda: execute(http, pool.endpoint, f"new-{uuid.uuid4()}", HELLO_WORLD_CODE["NodeLTS"])
            )
            assert reply.status_code == requests.codes.ok, reply.text
            first_times.append(took)
            time.sleep(SPARE_SETTLE_SECONDS)
        report(
            "2. first execution of a new session (median)", statistics.median(first_times), "ms", TARGET_NEW_SESSION_MS
        )
        report("   first execution of a new session (worst)", max(first_times), "ms")
    with LocalPool(token=TOKEN, prewarm=False) as cold_pool, requests.Session() as http:
        cold = [
            timed(lambda: execute(http, cold_pool.endpoint, f"cold-{uuid.uuid4()}", HELLO_WORLD_CODE["NodeLTS"]))[0]
            for _ in range(5)
        ]
        report("   ... without a spare (sandbox + Node.js start)", statistics.median(cold), "ms")
    with LocalPool(token=TOKEN, max_sessions=LIVE_SESSIONS + 5) as pool, requests.Session() as http:
        time.sleep(SPARE_SETTLE_SECONDS)
        idle = [f"idle-{uuid.uuid4()}" for _ in range(IDLE_SESSIONS)]
        for identifier in idle:
            execute(http, pool.endpoint, identifier, "var kept = 1")
        time.sleep(1.0)
        memories = [sandbox_memory(pool, identifier) for identifier in idle]
        report("3. idle session RSS (mean)", statistics.mean(rss for rss, _ in memories), "MiB", TARGET_IDLE_MIB)
        pss = statistics.mean(pss for _, pss in memories)
        report("   idle session PSS (mean, shared pages split)", pss, "MiB", TARGET_IDLE_PSS_MIB)

        live = [f"live-{uuid.uuid4()}" for _ in range(LIVE_SESSIONS - len(idle))] + idle
        started = time.perf_counter()
        for identifier in live:
            assert execute(http, pool.endpoint, identifier, "var kept = 1").status_code == requests.codes.ok
        created = time.perf_counter() - started
        every = pool.manager.live_sessions()
        answering = sum(
            execute(http, pool.endpoint, identifier, "typeof process").json()["result"]["executionResult"] == "object"
            for identifier in every
        )
        report(
            f"4. live sessions answering a second round (of {len(every)})",
            answering,
            "sessions",
            LIVE_SESSIONS,
            at_most=False,
        )
        print(f"   {len(live)} sessions created in {created:.2f} s", flush=True)
        pss_total = sum(sandbox_memory(pool, identifier)[1] for identifier in pool.manager.live_sessions())
        report("   total PSS of all live sandboxes", pss_total, "MiB")


def bench_runtime(container_type: ContainerType) -> None:
    """Figure 6 for PythonLTS or Shell: warm round trip, first execution, idle memory."""
    name = container_type.value
    args = ("--quiet", "--token", TOKEN, "--container-type", name)
    with local_pool_process(*args) as running, requests.Session() as http:
        identifier = f"warm-{uuid.uuid4()}"
        code = WARM_CODE[container_type]
        assert execute(http, running.endpoint, identifier, code).status_code == requests.codes.ok
        times = [timed(lambda: execute(http, running.endpoint, identifier, code))[0] for _ in range(WARM_REQUESTS)]
        warm_target = TARGET_PYTHON_WARM_P50_MS if container_type is ContainerType.PYTHON_LTS else None
        report(f"6. {name} warm round trip p50", statistics.median(times), "ms", warm_target)
        report(f"   {name} warm round trip p95", percentile(times, 0.95), "ms")
    pool_options = {"token": TOKEN, "max_sessions": NEW_SESSIONS + 5, "container_type": name}
    with LocalPool(**pool_options) as pool, requests.Session() as http:
        time.sleep(SPARE_SETTLE_SECONDS)
        first_times = []
        for _ in range(NEW_SESSIONS):
            took, reply = timed(lambda: execute(http, pool.endpoint, f"new-{uuid.uuid4()}", HELLO_WORLD_CODE[name]))
            assert reply.status_code == requests.codes.ok, reply.text
            first_times.append(took)
            time.sleep(SPARE_SETTLE_SECONDS)
        new_target = TARGET_PYTHON_NEW_SESSION_MS if container_type is ContainerType.PYTHON_LTS else None
        report(f"   {name} first execution of a new session (median)", statistics.median(first_times), "ms", new_target)
        report(f"   {name} first execution of a new session (worst)", max(first_times), "ms")
        idle = [f"idle-{uuid.uuid4()}" for _ in range(min(IDLE_SESSIONS, 4))]
        for identifier in idle:
            execute(http, pool.endpoint, identifier, SET_CODE[container_type])
        time.sleep(1.0)
        memories = [sandbox_memory(pool, identifier) for identifier in idle]
        report(f"   {name} idle session RSS (mean)", statistics.mean(rss for rss, _ in memories), "MiB")
        report(f"   {name} idle session PSS (mean)", statistics.mean(pss for _, pss in memories), "MiB")
    with LocalPool(token=TOKEN, prewarm=False, container_type=name) as cold_pool, requests.Session() as http:
        cold = [
            timed(lambda: execute(http, cold_pool.endpoint, f"cold-{uuid.uuid4()}", HELLO_WORLD_CODE[name]))[0]
            for _ in range(5)
        ]
        report(f"   {name} ... without a spare (sandbox + interpreter start)", statistics.median(cold), "ms")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks of the container types asked for (all by default) and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--container-type", action="append", choices=[str(t) for t in ContainerType])
    parser.add_argument("--throughput-only", action="store_true", help="only figure 7 (executions/s, pool CPU)")
    options = parser.parse_args(argv)
    chosen = [ContainerType(t) for t in options.container_type or [str(t) for t in ContainerType]]
    for container_type in chosen:
        bench_throughput(container_type)
    if options.throughput_only:
        return 0
    if ContainerType.NODE_LTS in chosen:
        bench_warm_and_load()
        bench_sessions()
    for container_type in chosen:
        if container_type is not ContainerType.NODE_LTS:
            bench_runtime(container_type)
    return 0


if __name__ == "__main__":
    sys.exit(main())
