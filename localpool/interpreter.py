"""Driving one contained interpreter process: the framing protocol every session runtime speaks.

A runtime (localpool/runtimes.py) is a RuntimeCommand for the sandbox plus a runner program that
speaks this protocol (runner.js for NodeLTS, runner.py for PythonLTS and Shell):

    stdin  (from localpool): {"frame": "<random marker>"}                      once, first line
                             {"id": "<random>", "code": "...", ...request fields}
    stdout (to localpool):   <marker>{"type": "ready", ...}                    once, at start-up
                             <marker>{"type": "result", "id", "stdout", "stderr", "result",
                                      "error", "durationMs", "exitCode"?}

Every byte on stdout that is not a marked message is discarded (session code can write to fd 1),
each message is validated (session code can tamper with its runner), and an execution's deadline
covers sending the code too: an overrun kills the sandbox.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import json
import math
import os
import secrets
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from localpool.constants import (
    FRAME_MARKER_BYTES,
    INTERPRETER_START_TIMEOUT_SECONDS,
    MAX_PROTOCOL_LINE_BYTES,
    PROCESS_STOP_GRACE_SECONDS,
    STDERR_TAIL_BYTES,
)
from localpool.sandbox import RuntimeCommand, Sandbox
from localpool.wire import ContainerType

# The runner's stdout and stderr are read in chunks this big (a pipe holds 64 KiB).
_READ_CHUNK_BYTES = 64 * 1024
# The runner times an execution inside the server's own measurement of it; allow for rounding.
_DURATION_SLACK_MS = 100.0
# How often a writer blocked on a full pipe checks that the process is still alive.
_WRITE_POLL_SECONDS = 0.1
# What is awaited while an interpreter starts (request ids are 32 hex digits).
_READY = "ready"
# Every sandbox is started from this one long-lived thread: bwrap --die-with-parent ends the
# sandbox when the *thread* that started it exits, and request threads come and go.
_LAUNCHER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="localpool-launcher")


class InterpreterError(RuntimeError):
    """An interpreter process could not be started or is unusable."""


@dataclass
class RunOutcome:
    """What happened to one execution inside the interpreter.

    kind is "ok" (finished), "error" (the code threw or its promise rejected), "timeout" (killed
    after the deadline), "crash" (the process died, e.g. out of memory) or "broken" (the runner
    answered with a message the server cannot use, e.g. after session code tampered with it;
    error_message says what was wrong).
    """

    kind: str
    stdout: str = ""
    stderr: str = ""
    # The value of the last expression as a JSON value ("" or None when there is none).
    result: Any = ""
    duration_ms: int = 0
    error_name: str = ""
    error_message: str = ""
    error_code: str = ""
    # The exit code of the interpreter process, after a crash.
    exit_code: int | None = None
    process_stderr: str = ""
    # Shell: the exit code of the command the execution ran.
    command_exit_code: int | None = None


# What awaiting a message gives once the runner's stdout has closed (the process is gone).
_EOF = object()


class FrameScanner:
    """Finds the runner's marked protocol messages in its stdout and discards every other byte.

    Session code can write anything to fd 1, at any rate; the scanner only searches each chunk
    for the marker (no per-line work, no parsing) and keeps at most one message's bytes.
    """

    def __init__(self, marker: bytes, max_frame_bytes: int) -> None:
        """Scan for messages starting with marker and ending at a newline, at most max_frame_bytes long."""
        self._marker = marker
        self._max_frame_bytes = max_frame_bytes
        # The bytes of the message being read, or None while searching for a marker.
        self._frame: bytearray | None = None
        # The end of the previous chunk, in case a marker straddles two chunks.
        self._carry = b""

    def feed(self, chunk: bytes) -> list[bytes | None]:
        """The messages completed by chunk, in order; None stands for one that was too long."""
        data = self._carry + chunk if self._carry else chunk
        self._carry = b""
        found: list[bytes | None] = []
        position = 0
        while position < len(data):
            if self._frame is None:
                start = data.find(self._marker, position)
                if start < 0:
                    keep = min(len(self._marker) - 1, len(data) - position)
                    self._carry = data[len(data) - keep :] if keep else b""
                    break
                self._frame = bytearray()
                position = start + len(self._marker)
                continue
            end = data.find(b"\n", position)
            piece_end = len(data) if end < 0 else end
            if len(self._frame) + piece_end - position > self._max_frame_bytes:
                # Too long to be the runner's: report it once, then look for the next marker.
                found.append(None)
                self._frame = None
                position = piece_end
                continue
            self._frame += data[position:piece_end]
            if end < 0:
                break
            found.append(bytes(self._frame))
            self._frame = None
            position = end + 1
        return found


class Interpreter:
    """One long-lived interpreter process running its runtime's runner in a session directory.

    Not thread-safe: the owning session serialises calls to execute(). The thread awaiting a reply reads
    the runner's stdout itself (no reader thread to wake and hand the reply over: that hand-off was a
    quarter of the pool's CPU per execution); between executions nobody reads it, so past a pipe's 64 KiB
    a session's own writes to fd 1 block (or fail with EAGAIN, as Node.js keeps fd 1 non-blocking) until
    its next execution drains it.
    """

    def __init__(self, runtime: Runtime, workdir: Path, stream_max_chars: int, sandbox: Sandbox, runner: Path) -> None:
        """Start the process in its sandbox and wait until the runner says it is ready and contained.

        runner: the host path of the runtime's runner (the pool keeps a copy the sandbox's user can read).
        """
        self.workdir = workdir
        self._runtime = runtime
        self._stream_max_chars = stream_max_chars
        # Given to the runner on stdin before any session code runs; see runner.js.
        self._marker = secrets.token_hex(FRAME_MARKER_BYTES)
        # Only the awaited message (the reply to the request, or "ready") is taken from stdout; every
        # other byte is dropped, so nothing piles up however much the runner writes.
        self._scanner = FrameScanner(self._marker.encode(), MAX_PROTOCOL_LINE_BYTES)
        self._eof = False
        # Who may close stdout: close() (any thread) while no one reads it, else the reader as it returns;
        # never under a reader, whose descriptor number could meanwhile name another file.
        self._stdout_lock = threading.Lock()
        self._stdout_reading = False
        self._stdout_closing = False
        # Request ids only tell this interpreter's replies apart (each sandbox answers one request at a time).
        self._request_numbers = itertools.count(1)
        self._stderr_tail = bytearray()
        self._stderr_lock = threading.Lock()
        # EgressEnabled: the sandbox's own network namespace gets outbound-only user-mode networking.
        self._network = sandbox.network()
        # The seccomp filter's descriptor: read by bwrap as it starts, closed here once it has.
        filter_fd = sandbox.seccomp_descriptor()
        command, as_user = sandbox.as_sandbox_user(
            sandbox.command(
                runtime.command(workdir, stream_max_chars, sandbox.enabled, runner), workdir, self._network, filter_fd
            )
        )
        passed = (
            *(self._network.pass_fds if self._network is not None else ()),
            *(() if filter_fd is None else (filter_fd,)),
        )
        # Without a sandbox, a minimal environment: untrusted code must not see the server's variables.
        env = {"PATH": os.defpath, "HOME": str(workdir), "TMPDIR": str(workdir), "LANG": "C.UTF-8"}
        try:
            self._process = _LAUNCHER.submit(
                subprocess.Popen,
                command,
                cwd=workdir if not sandbox.enabled else "/",
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, so a kill reaches everything
                close_fds=True,
                pass_fds=passed,
                **as_user,
            ).result()
        except OSError as error:
            if self._network is not None:
                self._network.close()
            raise InterpreterError(f"The session sandbox could not be started: {error}.") from error
        finally:
            if filter_fd is not None:
                os.close(filter_fd)
        if self._network is not None:
            try:
                # Before the runner gets its frame marker: no session code runs without its network.
                self._network.attach()
            except RuntimeError as error:
                self.close()
                raise InterpreterError(f"The session sandbox's network could not be set up: {error}.") from error
        assert self._process.stdout is not None and self._process.stderr is not None
        self._stdout_poll = select.poll()
        self._stdout_poll.register(self._process.stdout.fileno(), select.POLLIN)
        threading.Thread(target=self._read_stderr, args=(self._process.stderr,), daemon=True).start()
        self._await_ready()
        # From now on requests are written without blocking (see execute): most fit the pipe at once.
        assert self._process.stdin is not None
        os.set_blocking(self._process.stdin.fileno(), False)

    @property
    def pid(self) -> int:
        """The process id of the interpreter (bwrap when sandboxed)."""
        return self._process.pid

    @property
    def alive(self) -> bool:
        """Whether the interpreter process is still running."""
        return self._process.poll() is None

    def _send(self, message: Mapping[str, Any]) -> bool:
        """Write one line to the runner's stdin; False when the process is gone."""
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps(message).encode() + b"\n")
            self._process.stdin.flush()
        except OSError:
            return False
        return True

    def _write_available(self, payload: bytes) -> bytes | None:
        """Write what the stdin pipe takes now; the bytes left, or None when the process is gone."""
        assert self._process.stdin is not None
        view = memoryview(payload)
        try:
            while view:
                view = view[os.write(self._process.stdin.fileno(), view) :]
        except BlockingIOError:
            pass
        except (OSError, ValueError):  # ValueError: stdin was closed (the interpreter was stopped)
            return None
        return bytes(view)

    def _write_rest(self, rest: bytes, sent: list[bool]) -> None:
        """Write rest as the runner reads it (in a thread of its own); sent gets whether all of it went.

        Through a duplicate of the pipe, so that close() closing stdin meanwhile never lets this write
        into whatever file reuses the descriptor number; the pipe breaks when the process dies.
        """
        assert self._process.stdin is not None
        try:
            fd = os.dup(self._process.stdin.fileno())
        except (OSError, ValueError):
            sent.append(False)
            return
        try:
            view = memoryview(rest)
            while view:
                select.select([], [fd], [], _WRITE_POLL_SECONDS)
                if self._process.poll() is not None:
                    sent.append(False)
                    return
                with contextlib.suppress(BlockingIOError):
                    view = view[os.write(fd, view) :]
            sent.append(True)
        except OSError:
            sent.append(False)
        finally:
            os.close(fd)

    def _await_reply(self, expected: str, deadline: float) -> object:
        """Read stdout until the message for expected (a request id, or _READY) arrives: the message (a dict),
        what was wrong with a broken one (a str), _EOF, or None at the deadline."""
        with self._stdout_lock:
            if self._stdout_closing:
                return _EOF
            self._stdout_reading = True
        try:
            while not self._eof:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._stdout_poll.poll(remaining * 1000):
                    return None
                assert self._process.stdout is not None
                chunk = os.read(self._process.stdout.fileno(), _READ_CHUNK_BYTES)
                self._eof = not chunk
                for frame in self._scanner.feed(chunk):
                    reply = self._reply_in(frame, expected)
                    if reply is not None:
                        return reply
            return _EOF
        finally:
            with self._stdout_lock:
                self._stdout_reading = False
                if self._stdout_closing:
                    self._close_stdout()

    def _close_stdout(self) -> None:
        """Close the runner's stdout (called with _stdout_lock held, while no one reads it)."""
        if self._process.stdout is not None:
            with contextlib.suppress(OSError):
                self._process.stdout.close()

    def _await_ready(self) -> None:
        message = None
        if self._send({"frame": self._marker}):
            message = self._await_reply(_READY, time.monotonic() + INTERPRETER_START_TIMEOUT_SECONDS)
        if not isinstance(message, dict):
            self.close()
            raise InterpreterError(
                f"{self._runtime.display_name} did not start the session runner"
                f" within {INTERPRETER_START_TIMEOUT_SECONDS:.0f} s: {self.process_stderr() or 'no output'}"
            )
        problem = self._runtime.ready_problem(message)
        if problem is not None:
            self.close()
            raise InterpreterError(problem)

    @staticmethod
    def _reply_in(frame: bytes | None, expected: str) -> dict[str, Any] | str | None:
        """The awaited reply if frame is it, what is wrong with frame if it is broken, else None (dropped)."""
        # Only the runner writes marked messages, so one that cannot be read means it is broken.
        if frame is None:
            return f"a message longer than {MAX_PROTOCOL_LINE_BYTES} bytes"
        try:
            message = json.loads(frame)
        except (ValueError, UnicodeDecodeError):
            message = None
        if not isinstance(message, dict):
            return "a message that is not a JSON object"
        if message.get("type") != ("ready" if expected == _READY else "result"):
            return None
        if expected != _READY and message.get("id") != expected:
            return None  # not the awaited request's (nothing else is ever pending)
        return message

    def _read_stderr(self, stream: IO[bytes]) -> None:
        """Keep the tail of the process's own stderr (V8's out-of-memory report lands here)."""
        while chunk := stream.read1(_READ_CHUNK_BYTES):  # type: ignore[attr-defined]
            with self._stderr_lock:
                self._stderr_tail += chunk[-STDERR_TAIL_BYTES:]
                del self._stderr_tail[:-STDERR_TAIL_BYTES]
        stream.close()

    def process_stderr(self) -> str:
        """The last few KiB the interpreter process itself wrote to stderr."""
        with self._stderr_lock:
            return self._stderr_tail.decode("utf-8", "replace").strip()

    def execute(self, code: str, timeout: float, fields: Mapping[str, Any] | None = None) -> RunOutcome:
        """Run code; on timeout the process is killed (its state is lost), the caller replaces it.

        fields: further request fields the runner understands (Shell: "argv", "stdin"; PythonLTS:
        "jupyter"), sent with the code.
        """
        started = time.monotonic()
        request_id = f"{next(self._request_numbers):032x}"
        # What the pipe takes now is written at once; the rest (a busy runner does not read stdin and
        # the pipe holds 64 KiB) by a thread beside the deadline, which starts before the write: an
        # overrun kills the sandbox either way.
        sent: list[bool] = []
        request = {**(fields or {}), "id": request_id, "code": code}
        rest = self._write_available(json.dumps(request).encode() + b"\n")
        writer = None
        if rest is None:
            sent.append(False)
        elif rest:
            writer = threading.Thread(target=self._write_rest, args=(rest, sent), daemon=True)
            writer.start()
        reply = self._await_reply(request_id, started + timeout)
        if reply is None:
            self.close()
            if writer is not None:
                writer.join()
            return RunOutcome(kind="timeout", duration_ms=_elapsed_ms(started))
        if writer is not None:
            writer.join()
        if sent == [False]:
            return self._crashed(started)
        if reply is _EOF:
            return self._crashed(started)
        elapsed_ms = (time.monotonic() - started) * 1000
        outcome = outcome_from_message(reply, self._stream_max_chars, elapsed_ms) if isinstance(reply, dict) else None
        if outcome is None:
            problem = reply if isinstance(reply, str) else "a reply with missing, mistyped or out-of-range fields"
            self.close()
            return RunOutcome(kind="broken", duration_ms=round(elapsed_ms), error_message=problem)
        return outcome

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
        if self._network is not None:
            self._network.close()
        # stderr: its reader thread closes it at end-of-file (closing a stream another thread is reading
        # would block on its lock); stdout: now, or by the thread reading it as it returns.
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        with self._stdout_lock:
            self._stdout_closing = True
            if not self._stdout_reading:
                self._close_stdout()


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _text(message: Mapping[str, Any], key: str, max_chars: int) -> str | None:
    """message[key] if it is a string of at most max_chars characters, else None."""
    value = message.get(key)
    return value if isinstance(value, str) and len(value) <= max_chars else None


def _is_result_value(value: Any, max_chars: int) -> bool:
    """Whether value can be an execution's result: null, a finite number, a bool, a capped string,
    or a list or object (already bounded by the message's size)."""
    if value is None or isinstance(value, bool | int | list | dict):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= max_chars


def outcome_from_message(message: Mapping[str, Any], max_chars: int, elapsed_ms: float) -> RunOutcome | None:
    """The outcome a runner's result message describes, or None if any field is missing or malformed.

    Every field is checked (type, length, a finite duration no longer than the server measured):
    session code can tamper with its runner, and what it sends must never break the server.
    """
    stdout, stderr = (_text(message, key, max_chars) for key in ("stdout", "stderr"))
    result = message.get("result")
    duration = message.get("durationMs")
    exit_code = message.get("exitCode")
    if (
        stdout is None
        or stderr is None
        or not _is_result_value(result, max_chars)
        or not (exit_code is None or (isinstance(exit_code, int) and not isinstance(exit_code, bool)))
        or isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not math.isfinite(duration)
        or not 0 <= duration <= elapsed_ms + _DURATION_SLACK_MS
    ):
        return None
    outcome = RunOutcome(
        kind="ok",
        stdout=stdout,
        stderr=stderr,
        result=result,
        duration_ms=round(duration),
        command_exit_code=exit_code,
    )
    error = message.get("error")
    if error is None:
        return outcome
    if not isinstance(error, dict):
        return None
    name, text, code = (_text(error, key, max_chars) for key in ("name", "message", "code"))
    if name is None or text is None or code is None:
        return None
    outcome.kind, outcome.error_name, outcome.error_message, outcome.error_code = "error", name, text, code
    return outcome


class RuntimeUnavailableError(RuntimeError):
    """A runtime's binary is missing or unusable; the message names it and how to install it."""


def find_executable(wanted: str, environ: Mapping[str, str]) -> str | None:
    """wanted itself when it is a path, else looked up on environ's PATH; None unless an executable file."""
    found = shutil.which(wanted, path=environ.get("PATH", os.defpath)) if os.sep not in wanted else wanted
    return found if found and os.access(found, os.X_OK) and os.path.isfile(found) else None


class Runtime(Protocol):
    """One container type's interpreter: a sandbox command plus a runner speaking the protocol above."""

    container_type: ContainerType
    # How people call the interpreter in messages ("Node.js", "Python", "bash").
    display_name: str
    # The runner program in localpool/, copied where the sandbox's user can read it.
    runner_script: Path
    path: str

    @property
    def version_text(self) -> str:
        """The interpreter's version, as it prints it."""
        ...

    def command(self, workdir: Path, stream_max_chars: int, sandboxed: bool, runner: Path) -> RuntimeCommand:
        """The command running the runner (at host path runner) for the session directory workdir."""
        ...

    def ready_problem(self, message: Mapping[str, Any]) -> str | None:
        """Why the runner's ready message means session code must not run, or None."""
        ...

    def describe(self) -> tuple[dict[str, str], dict[str, str], str]:
        """(runtimes, packages, kernel version) that exist locally, for GET metadata."""
        ...
