"""Finding Node.js and driving one contained Node.js interpreter process (localpool/runner.js)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

from localpool.constants import (
    FRAME_MARKER_BYTES,
    INTERPRETER_START_TIMEOUT_SECONDS,
    MAX_PROTOCOL_LINE_BYTES,
    MIN_NODE_MAJOR,
    NODE_ENV_VAR,
    NODE_INSTALL_HINT,
    PROCESS_STOP_GRACE_SECONDS,
    SESSION_HEAP_MB,
    SESSION_MOUNT_POINT,
    STDERR_TAIL_BYTES,
)
from localpool.sandbox import RuntimeCommand, Sandbox
from localpool.wire import ContainerType

RUNNER_SCRIPT = Path(__file__).resolve().with_name("runner.js")
# Where the runner appears inside the sandbox (read-only).
RUNNER_INSIDE = "/opt/localpool/runner.js"
# `node --version` prints e.g. "v20.20.2".
_VERSION_PATTERN = re.compile(r"^v(\d+)\.(\d+)\.(\d+)")
_VERSION_TIMEOUT_SECONDS = 10.0
# The permission model's flag lost its "experimental-" prefix in Node 23.5 and 22.13.
_STABLE_PERMISSION_FLAG_SINCE = ((22, 13), (23, 5))
# The readers drain the runner's stdout and stderr in chunks this big (a pipe holds 64 KiB).
_READ_CHUNK_BYTES = 64 * 1024
# The runner times an execution inside the server's own measurement of it; allow for rounding.
_DURATION_SLACK_MS = 100.0
# What the reader waits for while an interpreter starts (request ids are 32 hex digits).
_READY = "ready"
# Every sandbox is started from this one long-lived thread: bwrap --die-with-parent ends the
# sandbox when the *thread* that started it exits, and request threads come and go.
_LAUNCHER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="localpool-launcher")


class NodeUnavailableError(RuntimeError):
    """Node.js is missing or too old; the message says what is missing and how to install it."""


class InterpreterError(RuntimeError):
    """A Node.js interpreter process could not be started or is unusable."""


@dataclass(frozen=True)
class NodeRuntime:
    """A usable Node.js binary and its version."""

    path: str
    version: tuple[int, int, int]

    # Stub until the runtimes branch (part R) lands: what the server needs of every runtime.
    container_type: ClassVar[ContainerType] = ContainerType.NODE_LTS

    def describe(self) -> tuple[dict[str, str], dict[str, str], str]:
        """(runtimes, pre-installed packages, kernel version) for GET metadata."""
        return {"node": self.version_text}, {}, ""

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
    after the deadline), "crash" (the process died, e.g. out of memory) or "broken" (the runner
    answered with a message the server cannot use, e.g. after session code tampered with it;
    error_message says what was wrong).
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


# What the mailbox holds once the runner's stdout has closed (the process is gone).
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
    """One long-lived Node.js process running runner.js in a session directory.

    Not thread-safe: the owning session serialises calls to execute().
    """

    def __init__(
        self, runtime: NodeRuntime, workdir: Path, stream_max_chars: int, sandbox: Sandbox, runner: Path = RUNNER_SCRIPT
    ) -> None:
        """Start the process in its sandbox and wait until the runner says it is ready and contained.

        runner: the host path of runner.js (the pool keeps a copy the sandbox's user can read).
        """
        self.workdir = workdir
        self._stream_max_chars = stream_max_chars
        # Given to the runner on stdin before any session code runs; see runner.js.
        self._marker = secrets.token_hex(FRAME_MARKER_BYTES)
        # The one message the reader may deliver: the reply to the awaited request (or "ready").
        # Everything else is dropped, so nothing piles up however much the runner writes.
        self._mailbox = threading.Condition()
        self._expected: str | None = _READY
        self._reply: dict[str, Any] | str | None = None
        self._eof = False
        self._stderr_tail = bytearray()
        self._stderr_lock = threading.Lock()
        command = sandbox.command(node_command(runtime, workdir, stream_max_chars, sandbox.enabled, runner), workdir)
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
                **sandbox.popen_user(),
            ).result()
        except OSError as error:
            raise InterpreterError(f"The session sandbox could not be started: {error}.") from error
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

    def _send(self, message: Mapping[str, str]) -> bool:
        """Write one line to the runner's stdin; False when the process is gone."""
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps(message).encode() + b"\n")
            self._process.stdin.flush()
        except OSError:
            return False
        return True

    def _await_reply(self, deadline: float) -> object:
        """The awaited message (a dict), what was wrong with a broken one (a str), _EOF, or None at the deadline."""
        with self._mailbox:
            self._mailbox.wait_for(lambda: self._reply is not None or self._eof, max(0.0, deadline - time.monotonic()))
            reply = self._reply if self._reply is not None else (_EOF if self._eof else None)
            self._expected, self._reply = None, None
            return reply

    def _await_ready(self) -> None:
        message = None
        if self._send({"frame": self._marker}):
            message = self._await_reply(time.monotonic() + INTERPRETER_START_TIMEOUT_SECONDS)
        if not isinstance(message, dict):
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

    def _read_messages(self, stream: IO[bytes]) -> None:
        """Drain the runner's stdout, delivering only the awaited message (see FrameScanner)."""
        scanner = FrameScanner(self._marker.encode(), MAX_PROTOCOL_LINE_BYTES)
        while chunk := stream.read1(_READ_CHUNK_BYTES):  # type: ignore[attr-defined]
            for frame in scanner.feed(chunk):
                self._deliver(frame)
        stream.close()
        with self._mailbox:
            self._eof = True
            self._mailbox.notify_all()

    def _deliver(self, frame: bytes | None) -> None:
        """Hand a marked message to the waiting execute() if it is the one awaited; drop it otherwise."""
        with self._mailbox:
            expected = self._expected
            if expected is None or self._reply is not None:
                return
        # Only the runner writes marked messages, so one that cannot be read means it is broken.
        reply: dict[str, Any] | str
        if frame is None:
            reply = f"a message longer than {MAX_PROTOCOL_LINE_BYTES} bytes"
        else:
            try:
                message = json.loads(frame)
            except (ValueError, UnicodeDecodeError):
                message = None
            if not isinstance(message, dict):
                reply = "a message that is not a JSON object"
            elif message.get("type") != ("ready" if expected == _READY else "result"):
                return
            elif expected != _READY and message.get("id") != expected:
                return  # not the awaited request's (nothing else is ever pending)
            else:
                reply = message
        with self._mailbox:
            if self._expected == expected and self._reply is None:
                self._reply = reply
                self._mailbox.notify_all()

    def _read_stderr(self, stream: IO[bytes]) -> None:
        """Keep the tail of the process's own stderr (V8's out-of-memory report lands here)."""
        while chunk := stream.read1(_READ_CHUNK_BYTES):  # type: ignore[attr-defined]
            with self._stderr_lock:
                self._stderr_tail += chunk[-STDERR_TAIL_BYTES:]
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
        with self._mailbox:
            self._expected, self._reply = request_id, None
        # The write can block (a busy runner does not read stdin and the pipe holds 64 KiB), so it
        # runs beside the deadline, which starts before it: an overrun kills the sandbox either way.
        sent: list[bool] = []
        writer = threading.Thread(target=lambda: sent.append(self._send({"id": request_id, "code": code})), daemon=True)
        writer.start()
        reply = self._await_reply(started + timeout)
        if reply is None:
            self.close()
            writer.join()
            return RunOutcome(kind="timeout", duration_ms=_elapsed_ms(started))
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
        # Only stdin: the reader threads close stdout/stderr when they reach end-of-file, and
        # closing a stream another thread is reading would block on its lock.
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()


def node_command(
    runtime: NodeRuntime, workdir: Path, stream_max_chars: int, sandboxed: bool, runner: Path = RUNNER_SCRIPT
) -> RuntimeCommand:
    """Node.js running runner.js with its permission model on (the second layer inside the sandbox).

    Inside the sandbox the session directory is /mnt/data and the runner sits at RUNNER_INSIDE;
    without a sandbox (trusted code only) the host paths are used.
    """
    node = str(Path(runtime.path).resolve())
    session, runner_path = (SESSION_MOUNT_POINT, RUNNER_INSIDE) if sandboxed else (str(workdir), str(runner))
    argv = [
        node,
        runtime.permission_flag(),
        f"--allow-fs-read={runner_path}",
        f"--allow-fs-read={session}",
        f"--allow-fs-write={session}",
        f"--max-old-space-size={SESSION_HEAP_MB}",
        # The permission model's ExperimentalWarning would otherwise reach the process's stderr.
        "--no-warnings",
        runner_path,
        str(stream_max_chars),
    ]
    ro_binds: dict[str, str | None] = {str(runner): RUNNER_INSIDE}
    if not node.startswith("/usr/"):
        # A Node.js installed outside /usr (e.g. under /opt): its whole installation, read-only.
        ro_binds[str(Path(node).parent.parent)] = None
    return RuntimeCommand(argv=argv, ro_binds=ro_binds, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _text(message: Mapping[str, Any], key: str, max_chars: int) -> str | None:
    """message[key] if it is a string of at most max_chars characters, else None."""
    value = message.get(key)
    return value if isinstance(value, str) and len(value) <= max_chars else None


def outcome_from_message(message: Mapping[str, Any], max_chars: int, elapsed_ms: float) -> RunOutcome | None:
    """The outcome a runner's result message describes, or None if any field is missing or malformed.

    Every field is checked (type, length, a finite duration no longer than the server measured):
    session code can tamper with its runner, and what it sends must never break the server.
    """
    stdout, stderr, result = (_text(message, key, max_chars) for key in ("stdout", "stderr", "result"))
    duration = message.get("durationMs")
    if (
        stdout is None
        or stderr is None
        or result is None
        or isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not math.isfinite(duration)
        or not 0 <= duration <= elapsed_ms + _DURATION_SLACK_MS
    ):
        return None
    outcome = RunOutcome(kind="ok", stdout=stdout, stderr=stderr, result=result, duration_ms=round(duration))
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
