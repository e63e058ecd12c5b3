"""Sessions of the local pool: one contained interpreter and /mnt/data directory per identifier, ended
after a cooldown or on request (DELETE session)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from localpool.constants import (
    DISK_CHECK_INTERVAL_SECONDS,
    MAX_EXECUTION_RECORDS_PER_SESSION,
    MAX_QUEUED_EXECUTIONS_PER_POOL,
    MAX_QUEUED_EXECUTIONS_PER_SESSION,
    MAX_REAPER_INTERVAL_SECONDS,
    MAX_SESSION_DIRECTORY_ENTRIES,
    SANDBOX_GID,
    SANDBOX_UID,
    SESSION_HEAP_MB,
    SESSION_MOUNT_POINT,
)
from localpool.disk import (
    DIR_FLAGS,
    DiskUsage,
    HeldFiles,
    SandboxSnapshot,
    TreeWatch,
    directory_usage,
    held_deleted_bytes,
    sandbox_snapshot,
)
from localpool.files import SessionFiles
from localpool.interpreter import Interpreter, InterpreterError, RunOutcome, Runtime
from localpool.sandbox import Sandbox
from localpool.wire import DEFAULT_OUTPUT_STREAMS_MAX_LENGTH as OUTPUT_STREAM_MAX_CHARS
from localpool.wire import UNFINISHED_STATUSES as PENDING_STATUSES
from localpool.wire import ExecutionStatus, SessionInfo

STATUS_FAILED = ExecutionStatus.FAILED
STATUS_NOT_STARTED = ExecutionStatus.NOT_STARTED
STATUS_RUNNING = ExecutionStatus.RUNNING
STATUS_SUCCEEDED = ExecutionStatus.SUCCEEDED

# Error codes of failed executions ("error": {"code": ...} in the 2024-10-02-preview generation).
ERROR_EXECUTION = "ExecutionError"
ERROR_TIMEOUT = "ExecutionTimeout"
ERROR_CRASHED = "InterpreterCrashed"
ERROR_START_FAILED = "InterpreterStartFailed"
ERROR_DISK_LIMIT = "SessionDiskLimitExceeded"
_SHUTTING_DOWN = "The session ended because the local pool is shutting down."
# Words V8 writes to stderr when it dies for lack of memory.
_OUT_OF_MEMORY_MARKERS = ("heap limit", "out of memory", "oom", "allocation failed")


class SessionLimitError(RuntimeError):
    """A new session would exceed the pool's maximum number of live sessions (or the machine's descriptors)."""


class QueueFullError(RuntimeError):
    """A session or the pool already has as many unfinished executions as it accepts."""


@dataclass
class Execution:
    """One code execution and its (eventual) result, as both API generations report it."""

    id: str
    identifier: str
    execution_type: str
    status: str = STATUS_NOT_STARTED
    stdout: str = ""
    stderr: str = ""
    # The value of the last expression, a JSON value ("" or None when there is none).
    result: Any = ""
    time_ms: int = 0
    # Shell: the command's exit code.
    exit_code: int | None = None
    error_code: str = ""
    error_message: str = ""
    finished: threading.Event = field(default_factory=threading.Event)
    # Its place in the session's order of executions.
    ticket: int = 0

    @property
    def pending(self) -> bool:
        """Whether the execution has not finished yet."""
        return self.status in PENDING_STATUSES

    def finish(self, outcome: RunOutcome, timeout: float, breach: str, runtime_name: str) -> None:
        """Record an interpreter outcome; the status is written last so readers see whole results.

        breach: why the server ended the session during or right after the execution (e.g. its disk
        limit), if it did; the execution then fails with it whatever the code returned.
        runtime_name: the interpreter, as failure messages name it.
        """
        self.stdout = outcome.stdout[:OUTPUT_STREAM_MAX_CHARS]
        self.result = outcome.result[:OUTPUT_STREAM_MAX_CHARS] if isinstance(outcome.result, str) else outcome.result
        self.exit_code = outcome.command_exit_code
        self.time_ms = outcome.duration_ms
        stderr = outcome.stderr
        if outcome.kind == "ok" and not breach:
            status = STATUS_SUCCEEDED
        else:
            status = STATUS_FAILED
            self.error_code, self.error_message = (
                (ERROR_DISK_LIMIT, breach) if breach else _describe_failure(outcome, timeout, runtime_name)
            )
            if breach or outcome.kind != "error":
                # The runner already wrote "Uncaught ..." for errors; say what happened otherwise.
                stderr = f"{stderr}{self.error_message}\n"
        self.stderr = stderr[:OUTPUT_STREAM_MAX_CHARS]
        self.status = status
        self.finished.set()

    def fail(self, code: str, message: str) -> None:
        """Mark the execution failed without an interpreter outcome (e.g. Node.js did not start)."""
        self.error_code, self.error_message = code, message
        self.stderr = f"{message}\n"[:OUTPUT_STREAM_MAX_CHARS]
        self.status = STATUS_FAILED
        self.finished.set()


def _describe_failure(outcome: RunOutcome, timeout: float, runtime_name: str) -> tuple[str, str]:
    lost = (
        f"The next execution starts a fresh {runtime_name} process, so everything defined in earlier "
        "executions of this session is lost (files in the session directory are kept)."
    )
    if outcome.kind == "error":
        kind = f"{outcome.error_name} [{outcome.error_code}]" if outcome.error_code else outcome.error_name
        return ERROR_EXECUTION, f"{kind or 'Error'}: {outcome.error_message}"
    if outcome.kind == "timeout":
        return (
            ERROR_TIMEOUT,
            f"The execution did not finish within its timeout of {timeout:g} s and was stopped. {lost}",
        )
    if outcome.kind == "broken":
        return (
            ERROR_CRASHED,
            f"The session's {runtime_name} process answered with {outcome.error_message}, so it was stopped. {lost}",
        )
    process_stderr = outcome.process_stderr.lower()
    if any(marker in process_stderr for marker in _OUT_OF_MEMORY_MARKERS):
        heap = f"the JavaScript heap is capped at {SESSION_HEAP_MB} MB, " if runtime_name == "Node.js" else ""
        cause = f"it ran out of memory ({heap}the whole sandbox by its memory limit)"
    else:
        cause = f"it exited with code {outcome.exit_code}"
    return ERROR_CRASHED, f"The session's {runtime_name} process died during the execution: {cause}. {lost}"


def _new_execution_id() -> str:
    """A version-4 UUID, as Azure's execution ids are; unique, not secret (reading an execution takes the
    token and its session), so drawn without the system call uuid4() makes for every execution."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


@dataclass
class Session:
    """A live session: its directory, its interpreter (started lazily) and its execution records."""

    identifier: str
    workdir: Path
    # The directory, open (O_NOFOLLOW) for its disk checks, and its device; closed as the session ends.
    # Walking from it skips an open and a close per check, and the inotify event that open would raise.
    directory_fd: int
    device: int
    interpreter: Interpreter | None = None
    # Executions of this session run one at a time, in the order they were accepted (tickets);
    # other sessions never wait on it.
    turn: threading.Condition = field(default_factory=threading.Condition)
    next_ticket: int = 0
    serving: int = 0
    # Executions accepted but not finished; a session with any is never ended by the cooldown.
    active: int = 0
    last_used: float = field(default_factory=time.monotonic)
    executions: OrderedDict[str, Execution] = field(default_factory=OrderedDict)
    # Set when the cooldown or a shutdown ended the session.
    ended: bool = False
    # Why the server ended the session (a limit it broke), for the execution that was running.
    breach: str = ""
    # Wall-clock times for GET session / listSessions.
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    accessed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # "The ETag of the session, representing the underlying container ID": one per sandbox directory.
    etag: str = field(default_factory=lambda: uuid.uuid4().hex)
    # What the sandbox's threads had run when its disk use was last measured within the limit
    # (None: measure at the next check, e.g. after an upload).
    disk_checked: tuple[Any, ...] | None = None
    # What each sandbox process held deleted when last inspected (see held_deleted_bytes); emptied
    # when the server changes the directory (a file it deletes may be held open by the sandbox).
    held_files: HeldFiles = field(default_factory=HeldFiles)
    # Whether the sandbox's processes were last inspected completely and held no deleted file of the
    # session: then, while the tree's watch reports no change, they need not be inspected again.
    held_nothing: bool = False
    # One disk check of the session at a time (the periodic one and the one before an answer): a check
    # that finds no change must not answer while another, which took the change, is still measuring.
    # Held too while directory_fd is closed (re-entrant: a check that finds a breach ends the session).
    disk_lock: threading.RLock = field(default_factory=threading.RLock)

    def record(self, execution: Execution) -> None:
        """Remember an execution for GET /executions/<id>, forgetting the oldest finished ones."""
        self.executions[execution.id] = execution
        while len(self.executions) > MAX_EXECUTION_RECORDS_PER_SESSION:
            oldest_id, oldest = next(iter(self.executions.items()))
            if oldest.pending:
                break
            del self.executions[oldest_id]


class SessionManager:
    """The live sessions of a pool, their limits, the cooldown reaper and a pre-warmed spare process."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        max_sessions: int,
        cooldown_seconds: float,
        sandbox: Sandbox,
        prewarm: bool = True,
    ) -> None:
        """Create the pool's private temporary directory and start the background threads."""
        self.runtime = runtime
        self.max_sessions = max_sessions
        self.cooldown_seconds = cooldown_seconds
        self.sandbox = sandbox
        # Resolved: a TMPDIR behind a symbolic link (macOS's /var) must not confuse the binds.
        self.root = Path(tempfile.mkdtemp(prefix="localpool-")).resolve()
        sandbox.prepare_directory(self.root, private=False)
        # The sandbox's user reads the runner from here (the checkout may be private to its owner).
        self.runner = self.root / runtime.runner_script.name
        shutil.copyfile(runtime.runner_script, self.runner)
        self.runner.chmod(0o644)
        try:
            sandbox.check(self.root)
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        self._queued = 0
        self._watch = TreeWatch()
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._prewarm = prewarm
        self._spare: Interpreter | None = None
        self._spare_wanted = threading.Event()
        self._threads = [
            threading.Thread(target=self._reap_loop, name="localpool-reaper", daemon=True),
            threading.Thread(target=self._disk_loop, name="localpool-disk", daemon=True),
        ]
        if prewarm:
            self._threads.append(threading.Thread(target=self._spare_loop, name="localpool-spare", daemon=True))
            self._spare_wanted.set()
        for thread in self._threads:
            thread.start()

    # -- sessions -----------------------------------------------------------------------------

    def acquire(self, identifier: str) -> Session:
        """Return the identifier's session (creating it), marked busy until release() is called.

        Raises SessionLimitError when a new session would exceed max_sessions, QueueFullError when
        the session or the pool already holds its maximum of unfinished executions.
        """
        with self._lock:
            if self._closed.is_set():
                raise SessionLimitError("The local pool is shutting down.")
            session = self._sessions.get(identifier)
            if session is not None and session.active >= MAX_QUEUED_EXECUTIONS_PER_SESSION:
                raise QueueFullError(
                    f"Session {identifier!r} already has {MAX_QUEUED_EXECUTIONS_PER_SESSION} unfinished "
                    "executions; wait for one to finish."
                )
            if self._queued >= MAX_QUEUED_EXECUTIONS_PER_POOL:
                raise QueueFullError(
                    f"The local pool already has {MAX_QUEUED_EXECUTIONS_PER_POOL} unfinished executions; "
                    "wait for some to finish."
                )
            if session is None:
                if len(self._sessions) >= self.max_sessions:
                    raise SessionLimitError(
                        f"The session pool already has its maximum of {self.max_sessions} live sessions; "
                        f"reuse an identifier or wait until an idle session ends "
                        f"({self.cooldown_seconds:g} s after its last execution)."
                    )
                session = self._new_session(identifier)
                self._sessions[identifier] = session
            session.active += 1
            self._queued += 1
            return session

    def _new_session(self, identifier: str) -> Session:
        """Build a session, adopting the spare interpreter (and its directory) when one is ready."""
        spare, self._spare = self._spare, None
        if spare is not None and spare.alive:
            self._spare_wanted.set()
            return self._session_in(identifier, spare.workdir, spare)
        if spare is not None:
            spare.close()
        self._spare_wanted.set()
        # Directory names never contain the identifier: identifiers may hold characters like | ; < >.
        return self._session_in(identifier, self._new_directory(), None)

    def _session_in(self, identifier: str, workdir: Path, interpreter: Interpreter | None) -> Session:
        """A session in workdir (with its interpreter, if one is started); when its directory cannot be
        opened (out of descriptors), nothing is left behind and SessionLimitError says why."""
        try:
            fd = os.open(workdir, DIR_FLAGS)
        except OSError as error:
            if interpreter is not None:
                interpreter.close()
            self._remove_directory(workdir)
            raise SessionLimitError(
                f"The local pool cannot open a new session's directory: {error.strerror}."
            ) from error
        return Session(identifier, workdir, fd, os.fstat(fd).st_dev, interpreter)

    def _new_directory(self) -> Path:
        """A fresh session directory, owned by the sandbox's user."""
        workdir = Path(tempfile.mkdtemp(prefix="session-", dir=self.root))
        # Watched before any sandbox can write in it (its directories are watched as they are walked).
        self._watch.start(str(workdir))
        self.sandbox.prepare_directory(workdir)
        return workdir

    def _remove_directory(self, workdir: Path) -> None:
        """Remove a session directory made by _new_directory, and its tree from the watch."""
        shutil.rmtree(workdir, ignore_errors=True)
        self._watch.forget(str(workdir))

    def _new_interpreter(self, workdir: Path) -> Interpreter:
        return Interpreter(self.runtime, workdir, OUTPUT_STREAM_MAX_CHARS, self.sandbox, self.runner)

    def release(self, session: Session) -> None:
        """Mark one execution of the session as done; the cooldown starts counting from now."""
        with self._lock:
            session.active -= 1
            self._queued -= 1
            session.last_used = time.monotonic()
            session.accessed_at = datetime.now(UTC)

    def find(self, identifier: str) -> Session | None:
        """The identifier's live session, if any (never creates one)."""
        with self._lock:
            return self._sessions.get(identifier)

    def files(self, session: Session) -> SessionFiles:
        """The session's /mnt/data as the server reads and writes it (new files owned by the sandbox's user)."""
        owner = (SANDBOX_UID, SANDBOX_GID) if self.sandbox.drops_root else None

        def changed() -> None:
            session.disk_checked = None
            session.held_files = HeldFiles()
            session.held_nothing = False

        return SessionFiles(
            session.workdir,
            owner=owner,
            disk_limit_bytes=self.sandbox.limits.disk_bytes,
            container_type=self.runtime.container_type,
            held_bytes=lambda: self._held_bytes(session),
            on_change=changed,
        )

    def _sandbox(self, session: Session) -> tuple[SandboxSnapshot, list[int]]:
        """(the processes of the session's sandbox and their threads, those that may be unreadable: bwrap itself)."""
        interpreter = session.interpreter
        if interpreter is None or not interpreter.alive:
            return SandboxSnapshot((), {}), []
        return sandbox_snapshot(interpreter.pid), [interpreter.pid] if self.sandbox.enabled else []

    def _held_bytes(self, session: Session) -> int:
        """Bytes of files the session's sandbox keeps open or mapped after deleting them (an unreadable
        process counts as the whole limit: what it holds cannot be known)."""
        snapshot, launcher = self._sandbox(session)
        if not snapshot.pids:
            return 0
        held = held_deleted_bytes(snapshot, session.device, skip=launcher)
        return self.sandbox.limits.disk_bytes if held.problem else held.used_bytes

    def disk_breach(self, session: Session, *, force: bool = False) -> str:
        """Why the session's files are over its disk limit (empty when they are not); call it holding
        session.disk_lock (end_if_over_disk_limit does), which keeps directory_fd open meanwhile.

        Counted: the session directory (walked by descriptors; a part that cannot be measured is a
        breach) and the files its sandbox keeps open or mapped after deleting them. Skipped, unless
        force, when no thread of the sandbox has run since the last measurement within the limit and
        nothing was uploaded or deleted since: then nothing can have changed. The sandbox's processes
        are inspected only when a file of the tree can have become a held deleted one (see TreeWatch)
        or they held one last time, and of them only those that ran (or held deleted files).
        """
        snapshot: SandboxSnapshot | None = None
        launcher: list[int] = []
        if not force:
            snapshot, launcher = self._sandbox(session)
            if snapshot.activity == session.disk_checked:
                return ""
        limit = self.sandbox.limits.disk_bytes
        if session.directory_fd < 0:
            return ""  # the session ended meanwhile
        tree = str(session.workdir)

        def watch(fd: int, root: bool) -> None:
            self._watch.watch_directory(tree, fd, root=root)

        usage = directory_usage(session.directory_fd, MAX_SESSION_DIRECTORY_ENTRIES, watch)
        # After the walk: a directory it watched for the first time counts as a change.
        changed = self._watch.take_changed(tree)
        held = DiskUsage(0, 0)
        if changed or not session.held_nothing:
            if snapshot is None:
                snapshot, launcher = self._sandbox(session)
            held = held_deleted_bytes(snapshot, session.device, skip=launcher, known=session.held_files)
            session.held_nothing = not held.problem and not held.entries
        over = (
            f"{self.sandbox.limits.disk_mb} MiB or {MAX_SESSION_DIRECTORY_ENTRIES} entries"
            if not (usage.problem or held.problem)
            else f"{self.sandbox.limits.disk_mb} MiB (its use could not be measured: {usage.problem or held.problem})"
        )
        if (
            usage.problem
            or held.problem
            or usage.used_bytes + held.used_bytes > limit
            or usage.entries > MAX_SESSION_DIRECTORY_ENTRIES
        ):
            return (
                f"The session's files in {SESSION_MOUNT_POINT} went over its disk limit of {over}, so the session "
                "was ended and its files removed; the next execution starts a new session."
            )
        # Without a snapshot (nothing inspected) the next periodic check measures again.
        session.disk_checked = snapshot.activity if snapshot is not None else None
        return ""

    def describe(self, session: Session) -> SessionInfo:
        """The session as GET session answers it; it expires one cooldown after its last use."""
        return SessionInfo(
            identifier=session.identifier,
            created_at=session.created_at,
            last_accessed_at=session.accessed_at,
            expire_at=session.accessed_at + timedelta(seconds=self.cooldown_seconds),
            etag=session.etag,
        )

    def sessions(self) -> list[Session]:
        """The live sessions, oldest first."""
        with self._lock:
            return sorted(self._sessions.values(), key=lambda session: session.created_at)

    def delete(self, identifier: str) -> bool:
        """End the identifier's session now (its process and files); False if there is none.

        The next request with the identifier starts a fresh session.
        """
        with self._lock:
            session = self._sessions.pop(identifier, None)
        if session is None:
            return False
        session.breach = "The session was deleted (DELETE session) while this execution ran."
        self._end(session)
        return True

    def live_sessions(self) -> list[str]:
        """Identifiers of the live sessions."""
        with self._lock:
            return list(self._sessions)

    def new_execution(self, session: Session, execution_type: str, execution_id: str | None = None) -> Execution:
        """Create and record an execution of the session (status NotStarted)."""
        execution = Execution(
            id=execution_id or _new_execution_id(), identifier=session.identifier, execution_type=execution_type
        )
        with self._lock:
            session.record(execution)
        with session.turn:
            execution.ticket = session.next_ticket
            session.next_ticket += 1
        return execution

    def run(
        self,
        session: Session,
        execution: Execution,
        code: str,
        timeout: float,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Run the execution in the session's interpreter (after the executions accepted before it).

        code: the code (Shell: the command bash runs); fields: what else the runtime's runner reads
        (Shell: "argv" instead of the command, "stdin"; PythonLTS: "jupyter" for
        returnJupyterFormatExecutionResult).
        Every execution made by new_execution() must be passed here exactly once, or later ones wait.
        """
        with session.turn:
            session.turn.wait_for(lambda: session.serving == execution.ticket)
        try:
            self._run_in_turn(session, execution, code, timeout, fields)
        finally:
            with session.turn:
                session.serving += 1
                session.turn.notify_all()

    def _run_in_turn(
        self, session: Session, execution: Execution, code: str, timeout: float, fields: Mapping[str, Any] | None
    ) -> None:
        execution.status = STATUS_RUNNING
        try:
            interpreter = session.interpreter
            if interpreter is None or not interpreter.alive:
                if interpreter is not None:
                    interpreter.close()
                session.interpreter = None
                if session.ended:
                    raise InterpreterError(session.breach or _SHUTTING_DOWN)
                interpreter = self._new_interpreter(session.workdir)
                session.interpreter = interpreter
                if session.ended:
                    # _end() ran while the interpreter was starting; do not leave the process behind.
                    interpreter.close()
                    raise InterpreterError(session.breach or _SHUTTING_DOWN)
        except InterpreterError as error:
            execution.fail(ERROR_START_FAILED, str(error))
            return
        outcome = interpreter.execute(code, timeout, fields)
        if outcome.kind in {"timeout", "crash", "broken"}:
            interpreter.close()
            session.interpreter = None
        if not session.ended:
            # Measured before answering: code that writes past the limit and returns at once finishes
            # before the periodic check comes round, and must not be answered Succeeded.
            self.end_if_over_disk_limit(session, force=True)
        # Read last, whoever found it: the periodic check may end the session between the interpreter's
        # answer and this line, and that answer must not say Succeeded for a session whose files are gone.
        execution.finish(outcome, timeout, session.breach, self.runtime.display_name)

    def _end(self, session: Session) -> None:
        session.ended = True
        if session.interpreter is not None:
            session.interpreter.close()
            session.interpreter = None
        with session.disk_lock:  # no check is walking the directory from its descriptor
            fd, session.directory_fd = session.directory_fd, -1
        if fd >= 0:
            os.close(fd)
        self._remove_directory(session.workdir)

    # -- background threads ---------------------------------------------------------------------

    def _reap_loop(self) -> None:
        """End sessions idle for the cooldown: kill the process and remove the directory."""
        interval = min(MAX_REAPER_INTERVAL_SECONDS, self.cooldown_seconds / 4)
        while not self._closed.wait(interval):
            now = time.monotonic()
            with self._lock:
                expired = [
                    session
                    for session in self._sessions.values()
                    if session.active == 0 and now - session.last_used >= self.cooldown_seconds
                ]
                for session in expired:
                    del self._sessions[session.identifier]
            for session in expired:
                self._end(session)

    def _disk_loop(self) -> None:
        """End sessions whose files outgrow the disk limit (see disk_breach)."""
        while not self._closed.wait(DISK_CHECK_INTERVAL_SECONDS):
            with self._lock:
                sessions = list(self._sessions.values())
            for session in sessions:
                self.end_if_over_disk_limit(session)

    def end_if_over_disk_limit(self, session: Session, *, force: bool = False) -> None:
        """End the session if its files are over the disk limit (see disk_breach; force: even if nothing ran)."""
        with session.disk_lock:
            breach = self.disk_breach(session, force=force)
            if breach:
                self._end_for_breach(session, breach)

    def _end_for_breach(self, session: Session, breach: str) -> None:
        """End a session that broke a limit; its identifier starts a new session next time."""
        session.breach = breach
        with self._lock:
            if self._sessions.get(session.identifier) is session:
                del self._sessions[session.identifier]
        self._end(session)

    def _spare_loop(self) -> None:
        """Keep one started interpreter ready so a new session's first execution skips its start-up."""
        while not self._closed.is_set():
            self._spare_wanted.wait()
            self._spare_wanted.clear()
            # Checked after clear(): close() sets _closed before it wakes this thread.
            if self._closed.is_set():
                return
            with self._lock:
                if self._spare is not None:
                    continue
            workdir = self._new_directory()
            try:
                spare = self._new_interpreter(workdir)
            except InterpreterError:
                # Without a spare, sessions start their own interpreter (and report any failure).
                self._remove_directory(workdir)
                continue
            with self._lock:
                if not self._closed.is_set() and self._spare is None:
                    self._spare, spare = spare, None
            if spare is not None:
                spare.close()
                self._remove_directory(workdir)

    def close(self) -> None:
        """End every session, stop the spare and remove the pool's temporary directory."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            sessions = list(self._sessions.values())
            self._sessions.clear()
            spare, self._spare = self._spare, None
        self._spare_wanted.set()
        for session in sessions:
            self._end(session)
        if spare is not None:
            spare.close()
        for thread in self._threads:
            thread.join()
        self._watch.close()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.root)
