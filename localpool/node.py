"""Finding Node.js and driving one contained Node.js interpreter process (localpool/runner.js)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import resource
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from localpool.constants import (
    INTERPRETER_START_TIMEOUT_SECONDS,
    MAX_PROTOCOL_LINE_BYTES,
    MIN_NODE_MAJOR,
    NODE_ENV_VAR,
    NODE_INSTALL_HINT,
    PROCESS_STOP_GRACE_SECONDS,
    SESSION_ADDRESS_SPACE_BYTES,
    SESSION_HEAP_MB,
    STDERR_TAIL_BYTES,
)

RUNNER_SCRIPT = Path(__file__).resolve().with_name("runner.js")
# `node --version` prints e.g. "v20.20.2".
_VERSION_PATTERN = re.compile(r"^v(\d+)\.(\d+)\.(\d+)")
_VERSION_TIMEOUT_SECONDS = 10.0
# The permission model's flag lost its "experimental-" prefix in Node 23.5 and 22.13.
_STABLE_PERMISSION_FLAG_SINCE = ((22, 13), (23, 5))
# The runner sends no more than this after a kill; the reader drains it in chunks this big.
_READ_CHUNK_BYTES = 64 * 1024


class NodeUnavailableError(RuntimeError):
    """Node.js is missing or too old; the message says what is missing and how to install it."""


class InterpreterError(RuntimeError):
    """A Node.js interpreter process could not be started or is unusable."""


@dataclass(frozen=True)
class NodeRuntime:
    """A usable Node.js binary and its version."""

    path: str
    version: tuple[int, int, int]

    @property
    def version_text(self) -> str:
        """The version as Node prints it, e.g. ``v20.20.2``."""
        return "v" + ".".join(str(part) for part in self.version)

    def permission_flag(self) -> str:
        """The flag that turns the permission model on for this Node version."""
        major_minor = self.version[:2]
        stable_22, stable_23 = _STABLE_PERMISSION_FLAG_SINCE
        if major_minor >= stable_23 or (stable_22 <= major_minor < (stable_23[0], 0)):
            return "--permission"
        return "--experimental-permission"


def find_node(environ: Mapping[str, str] | None = None) -> NodeRuntime:
    """Locate Node.js (``$LOCALPOOL_NODE`` or ``node`` on PATH) and check it is new enough.

    Raises NodeUnavailableError with a one-line, human-readable message otherwise.
    """
    env = os.environ if environ is None else environ
    override = env.get(NODE_ENV_VAR, "").strip()
    wanted = override or "node"
    origin = f"{NODE_ENV_VAR}={override!r}" if override else "PATH"
    found = shutil.which(wanted, path=env.get("PATH", os.defpath)) if os.sep not in wanted else wanted
    if not found or not os.access(found, os.X_OK) or not os.path.isfile(found):
        raise NodeUnavailableError(
            f"Node.js was not found (looked for {wanted!r} via {origin}); the local pool runs JavaScript "
            f"with it: {NODE_INSTALL_HINT}, or point {NODE_ENV_VAR} at a node binary."
        )
    try:
        completed = subprocess.run(  # noqa: S603 - the binary is the operator's own choice
            [found, "--version"], capture_output=True, text=True, timeout=_VERSION_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise NodeUnavailableError(f"Node.js at {found} could not be run ({error}); {NODE_INSTALL_HINT}.") from error
    match = _VERSION_PATTERN.match(completed.stdout.strip())
    if completed.returncode != 0 or match is None:
        raise NodeUnavailableError(
            f"{found} did not report a Node.js version (got {completed.stdout.strip()[:80]!r}); {NODE_INSTALL_HINT}."
        )
    version = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
    if version[0] < MIN_NODE_MAJOR:
        raise NodeUnavailableError(
            f"Node.js {match.group(0)} at {found} is too old: the local pool needs Node.js {MIN_NODE_MAJOR} "
            f"or newer for its permission model; {NODE_INSTALL_HINT}."
        )
    return NodeRuntime(path=found, version=version)


@dataclass
class RunOutcome:
    """What happened to one execution inside the interpreter.

    kind is "ok" (finished), "error" (the code threw or its promise rejected), "timeout" (killed
    after the deadline) or "crash" (the process died, e.g. out of memory).
    """

    kind: str
    stdout: str = ""
    stderr: str = ""
    result: str = ""
    duration_ms: int = 0
    error_name: str = ""
    error_message: str = ""
    error_code: str = ""
    exit_code: int | None = None
    process_stderr: str = ""


# Sentinel the reader thread queues when the runner's stdout closes.
_EOF = object()


class Interpreter:
    """One long-lived Node.js process running runner.js in a session directory.

    Not thread-safe: the owning session serialises calls to execute().
    """

    def __init__(self, runtime: NodeRuntime, workdir: Path, stream_max_chars: int) -> None:
        """Start the process and wait until the runner says it is ready and contained."""
        self.workdir = workdir
        self._messages: queue.Queue[Any] = queue.Queue()
        self._stderr_tail = bytearray()
        self._stderr_lock = threading.Lock()
        command = [
            runtime.path,
            runtime.permission_flag(),
            f"--allow-fs-read={RUNNER_SCRIPT}",
            f"--allow-fs-read={workdir}",
            f"--allow-fs-write={workdir}",
            f"--max-old-space-size={SESSION_HEAP_MB}",
            # The permission model's ExperimentalWarning would otherwise reach the process's stderr.
            "--no-warnings",
            str(RUNNER_SCRIPT),
            str(stream_max_chars),
        ]
        # A minimal environment: untrusted code must not see the server's variables (tokens, keys).
        env = {"PATH": os.defpath, "HOME": str(workdir), "TMPDIR": str(workdir), "LANG": "C.UTF-8"}
        try:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
                command,
                cwd=workdir,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, so a kill reaches everything
                close_fds=True,
            )
        except OSError as error:
            raise InterpreterError(f"Node.js could not be started: {error}.") from error
        assert self._process.stdout is not None and self._process.stderr is not None
        threading.Thread(target=self._read_messages, args=(self._process.stdout,), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(self._process.stderr,), daemon=True).start()
        self._await_ready()

    @property
    def pid(self) -> int:
        """The process id of the Node.js process."""
        return self._process.pid

    @property
    def alive(self) -> bool:
        """Whether the Node.js process is still running."""
        return self._process.poll() is None

    def _await_ready(self) -> None:
        try:
            message = self._messages.get(timeout=INTERPRETER_START_TIMEOUT_SECONDS)
        except queue.Empty:
            message = None
        if message is _EOF or not isinstance(message, dict) or message.get("type") != "ready":
            self.close()
            raise InterpreterError(
                "Node.js did not start the session runner"
                f" within {INTERPRETER_START_TIMEOUT_SECONDS:.0f} s: {self.process_stderr() or 'no output'}"
            )
        if message.get("permission") is not True:
            self.close()
            raise InterpreterError(
                "Node.js started without an active permission model, so session code would not be "
                "contained; refusing to run it."
            )
        # Capping the address space only now avoids failing V8's own start-up reservations; no user
        # code has run yet. This also bounds Buffers, which live outside the V8 heap limit.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            limit = (SESSION_ADDRESS_SPACE_BYTES, SESSION_ADDRESS_SPACE_BYTES)
            resource.prlimit(self._process.pid, resource.RLIMIT_AS, limit)

    def _read_messages(self, stream: IO[bytes]) -> None:
        """Queue every protocol message; ignore noise (e.g. code writing straight to fd 1)."""
        while True:
            line = stream.readline(MAX_PROTOCOL_LINE_BYTES + 1)
            if not line:
                break
            if not line.endswith(b"\n"):
                # Over-long line: drop it and the rest of it, chunk by chunk.
                while line and not line.endswith(b"\n"):
                    line = stream.readline(_READ_CHUNK_BYTES)
                continue
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                self._messages.put(message)
        stream.close()
        self._messages.put(_EOF)

    def _read_stderr(self, stream: IO[bytes]) -> None:
        """Keep the tail of the process's own stderr (V8's out-of-memory report lands here)."""
        while chunk := stream.read1(_READ_CHUNK_BYTES):  # type: ignore[attr-defined]
            with self._stderr_lock:
                self._stderr_tail += chunk
                del self._stderr_tail[:-STDERR_TAIL_BYTES]
        stream.close()

    def process_stderr(self) -> str:
        """The last few KiB the Node.js process itself wrote to stderr."""
        with self._stderr_lock:
            return self._stderr_tail.decode("utf-8", "replace").strip()

    def execute(self, code: str, timeout: float) -> RunOutcome:
        """Run code; on timeout the process is killed (its state is lost), the caller replaces it."""
        started = time.monotonic()
        request_id = uuid.uuid4().hex
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps({"id": request_id, "code": code}).encode() + b"\n")
            self._process.stdin.flush()
        except OSError:
            return self._crashed(started)
        deadline = started + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                return RunOutcome(kind="timeout", duration_ms=_elapsed_ms(started))
            try:
                message = self._messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if message is _EOF:
                return self._crashed(started)
            if message.get("type") == "result" and message.get("id") == request_id:
                return _outcome_from_message(message)

    def _crashed(self, started: float) -> RunOutcome:
        try:
            exit_code = self._process.wait(timeout=PROCESS_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.close()
            exit_code = self._process.returncode
        return RunOutcome(
            kind="crash",
            duration_ms=_elapsed_ms(started),
            exit_code=exit_code,
            process_stderr=self.process_stderr(),
        )

    def close(self) -> None:
        """Kill the process group (nothing in it is worth a graceful stop) and reap it."""
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=PROCESS_STOP_GRACE_SECONDS)
        # Only stdin: the reader threads close stdout/stderr when they reach end-of-file, and
        # closing a stream another thread is reading would block on its lock.
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _text(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key)
    return value if isinstance(value, str) else ""


def _outcome_from_message(message: Mapping[str, Any]) -> RunOutcome:
    error = message.get("error")
    duration = message.get("durationMs")
    outcome = RunOutcome(
        kind="error" if isinstance(error, dict) else "ok",
        stdout=_text(message, "stdout"),
        stderr=_text(message, "stderr"),
        result=_text(message, "result"),
        duration_ms=round(duration) if isinstance(duration, int | float) else 0,
    )
    if isinstance(error, dict):
        outcome.error_name = _text(error, "name")
        outcome.error_message = _text(error, "message")
        outcome.error_code = _text(error, "code")
    return outcome
