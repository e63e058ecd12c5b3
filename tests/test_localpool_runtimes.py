"""PythonLTS and Shell sessions (issue 9, part R): behaviour checked against Azure's own examples,
state between executions, limits, and the sandbox attacks of issue 8 per runtime, each followed by
hello-world.

The sessions are driven through SessionManager (the layer below HTTP), so these tests pin what each
runtime does; how an answer is shaped on the wire is localpool/wire.py's business (tests/test_wire.py).
They need bubblewrap, like the other sandbox tests (never skipped).
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localpool import LocalPool
from localpool.constants import SESSION_MOUNT_POINT
from localpool.interpreter import Interpreter
from localpool.runner import result_value
from localpool.runtimes import PythonUnavailableError
from localpool.sandbox import SandboxLimits
from localpool.sessions import (
    ERROR_CRASHED,
    ERROR_DISK_LIMIT,
    ERROR_EXECUTION,
    ERROR_TIMEOUT,
    Execution,
)
from localpool.wire import API_2025_10, ContainerType
from smoke.protocol import (
    HELLO_WORLD_CODE,
    HELLO_WORLD_STDOUT,
    OUTPUT_STREAM_MAX_CHARS,
    STATUS_FAILED,
    STATUS_SUCCEEDED,
)
from tests.support.dataplane_schema import load_example
from tests.support.localpool_helpers import (
    PROJECT_ROOT,
    SANDBOXED,
    SMALL_DISK_MB,
    TOKEN,
    PoolClient,
    cli_env,
    new_identifier,
    no_connection,
    run_cli,
)

PYTHON_RESULT_EXAMPLES = [
    "CodeExecution_Execute_Result_None",
    "CodeExecution_Execute_Result_None_JupyterFormat",
    "CodeExecution_Execute_Result_NaN",
    "CodeExecution_Execute_Result_NaN_JupyterFormat",
    "CodeExecution_Execute_Result_StringNaN",
    "CodeExecution_Execute_Result_StringNaN_JupyterFormat",
]
SHELL_EXAMPLES = ["CodeExecution_Execute_ShellCommand", "CodeExecution_Execute_ShellExecCommandAndArgs"]
TIMEOUT_SECONDS = 20.0
SHORT_TIMEOUT_SECONDS = 1.0


def open_pool(container_type: ContainerType, **options: Any) -> LocalPool:
    return LocalPool(
        sandbox=SANDBOXED,
        token=TOKEN,
        container_type=container_type,
        max_sessions=64,
        cooldown_seconds=30.0,
        limits=SandboxLimits(disk_mb=SMALL_DISK_MB),
        **options,
    )


@pytest.fixture(scope="module")
def python_pool() -> Iterator[LocalPool]:
    """A PythonLTS pool (EgressDisabled, the default)."""
    with open_pool(ContainerType.PYTHON_LTS) as pool:
        yield pool


@pytest.fixture(scope="module")
def shell_pool() -> Iterator[LocalPool]:
    """A Shell pool (EgressDisabled, the default)."""
    with open_pool(ContainerType.SHELL) as pool:
        yield pool


def run(pool: LocalPool, identifier: str, code: str, timeout: float = TIMEOUT_SECONDS, **fields: Any) -> Execution:
    """One synchronous execution in the identifier's session."""
    session = pool.manager.acquire(identifier)
    try:
        execution = pool.manager.new_execution(session, "Synchronous")
        pool.manager.run(session, execution, code, timeout, fields or None)
    finally:
        pool.manager.release(session)
    return execution


def assert_hello_world(pool: LocalPool) -> None:
    """The pool still runs its type's hello-world in a fresh session."""
    execution = run(pool, new_identifier("hello"), HELLO_WORLD_CODE[pool.container_type.value])
    assert (execution.status, execution.stdout) == (STATUS_SUCCEEDED, HELLO_WORLD_STDOUT), execution.stderr


# -- PythonLTS -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PYTHON_RESULT_EXAMPLES)
def test_python_results_match_azures_examples(python_pool: LocalPool, name: str) -> None:
    recorded = load_example(API_2025_10, name)
    request = recorded["parameters"]["codeExecutionRequest"]
    expected = recorded["responses"]["200"]["body"]
    jupyter = bool(request.get("returnJupyterFormatExecutionResult"))
    execution = run(python_pool, new_identifier(), request["code"], jupyter=jupyter)
    assert execution.status == expected["status"]
    assert execution.stdout == expected["result"]["stdout"]
    assert execution.stderr == expected["result"]["stderr"]
    assert execution.result == expected["result"]["executionResult"]


def test_python_state_persists_between_executions(python_pool: LocalPool) -> None:
    identifier = new_identifier()
    assert run(python_pool, identifier, "import math\nx = 41\ndef double(n):\n    return 2 * n").result is None
    execution = run(python_pool, identifier, "print(math.pi > 3)\ndouble(x + 1) // 2")
    assert (execution.status, execution.stdout, execution.result) == (STATUS_SUCCEEDED, "True\n", 42)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4, 4),
        ("nan", "nan"),
        (float("nan"), None),
        (float("inf"), None),
        (None, None),
        (True, True),
        ([1, (2, 3), {"a": None}], [1, [2, 3], {"a": None}]),
        ({1, 2}, "{1, 2}"),
        ("x" * (OUTPUT_STREAM_MAX_CHARS + 10), "x" * OUTPUT_STREAM_MAX_CHARS),
        (list(range(OUTPUT_STREAM_MAX_CHARS)), repr(list(range(OUTPUT_STREAM_MAX_CHARS)))[:OUTPUT_STREAM_MAX_CHARS]),
    ],
)
def test_python_result_values(value: Any, expected: Any) -> None:
    assert result_value(value, OUTPUT_STREAM_MAX_CHARS, jupyter=False) == expected


def test_python_figures_come_back_as_png_images() -> None:
    """A figure as the last expression is an image object, as facts__data-plane-2024-02-02-preview-files.md records."""

    class Figure:
        def _repr_png_(self) -> bytes:
            return b"\x89PNG fake"

    image = {"type": "image", "format": "png", "base64_data": base64.b64encode(b"\x89PNG fake").decode()}
    assert result_value(Figure(), OUTPUT_STREAM_MAX_CHARS, jupyter=False) == image
    # Jupyter format asks for text/plain; a class (not a figure) is its repr.
    assert result_value(Figure(), OUTPUT_STREAM_MAX_CHARS, jupyter=True).startswith("<")
    assert result_value(Figure, OUTPUT_STREAM_MAX_CHARS, jupyter=False).startswith("<class ")


def test_python_exception_fails_with_the_traceback_and_keeps_the_session(python_pool: LocalPool) -> None:
    identifier = new_identifier()
    run(python_pool, identifier, "kept = 'still here'")
    failed = run(python_pool, identifier, "print('before')\ndef boom():\n    return 1 / 0\nboom()")
    assert failed.status == STATUS_FAILED
    assert failed.stdout == "before\n"
    assert failed.error_code == ERROR_EXECUTION
    assert failed.stderr.startswith("Traceback (most recent call last):\n")
    assert 'File "<stdin>", line 3, in boom' in failed.stderr
    assert failed.stderr.endswith("ZeroDivisionError: division by zero\n")
    assert "runner.py" not in failed.stderr  # the runner's own frames are not the user's business
    assert run(python_pool, identifier, "kept").result == "still here"


def test_python_syntax_error_is_reported(python_pool: LocalPool) -> None:
    failed = run(python_pool, new_identifier(), "def broken(:\n    pass")
    assert failed.status == STATUS_FAILED
    assert "SyntaxError" in failed.stderr and failed.error_code == ERROR_EXECUTION


def test_python_top_level_await_and_input(python_pool: LocalPool) -> None:
    identifier = new_identifier()
    awaited = run(python_pool, identifier, "import asyncio\nawait asyncio.sleep(0)\n'awaited'")
    assert awaited.result == "awaited", awaited.stderr
    # Session code never reads the runner's protocol: its stdin is empty.
    no_input = run(python_pool, identifier, "input()")
    assert no_input.status == STATUS_FAILED and "EOFError" in no_input.stderr


def test_python_output_is_capped_and_fd_writes_are_ignored(python_pool: LocalPool) -> None:
    identifier = new_identifier()
    flood = run(
        python_pool, identifier, "import os\nfor _ in range(200_000):\n    print('x' * 100)\nos.write(1, b'y' * 10**6)"
    )
    assert flood.status == STATUS_SUCCEEDED
    assert flood.stdout == ("x" * 100 + "\n") * (OUTPUT_STREAM_MAX_CHARS // 101) + "x" * (OUTPUT_STREAM_MAX_CHARS % 101)
    assert_hello_world(python_pool)


def test_python_timeout_restarts_the_session_fresh(python_pool: LocalPool) -> None:
    identifier = new_identifier()
    run(python_pool, identifier, "state = 1")
    hung = run(python_pool, identifier, "while True:\n    pass", timeout=SHORT_TIMEOUT_SECONDS)
    assert (hung.status, hung.error_code) == (STATUS_FAILED, ERROR_TIMEOUT)
    assert "fresh Python process" in hung.stderr
    after = run(python_pool, identifier, "state")
    assert after.status == STATUS_FAILED and "NameError" in after.stderr
    assert_hello_world(python_pool)


def test_python_files_are_in_the_session_directory(python_pool: LocalPool) -> None:
    identifier = new_identifier()
    execution = run(python_pool, identifier, "import os\nopen('out.txt', 'w').write('data')\nos.getcwd()")
    assert execution.result == SESSION_MOUNT_POINT
    session = python_pool.manager.find(identifier)
    assert session is not None and (session.workdir / "out.txt").read_text() == "data"
    # Uploaded modules are importable, as in Azure's kernel (its working directory is on sys.path).
    (session.workdir / "helper.py").write_text("ANSWER = 42\n")
    assert run(python_pool, identifier, "import helper\nhelper.ANSWER").result == 42


def test_python_metadata_lists_what_exists_locally(python_pool: LocalPool) -> None:
    runtimes, packages, _kernel = python_pool.runtime.describe()
    assert runtimes == {"python": python_pool.runtime.version_text}
    version = run(python_pool, new_identifier(), "import platform\nplatform.python_version()").result
    assert version == python_pool.runtime.version_text
    # What GET metadata lists is what session code can import, no more and no less.
    code = (
        "import importlib.metadata as m\n"
        "names = {}\n"
        "for d in m.distributions():\n"
        "    names.setdefault(d.metadata['Name'], d.version)\n"
        f"names == {dict(packages)!r}"
    )
    assert packages and run(python_pool, new_identifier(), code).result is True


def test_python_from_a_venv_brings_its_packages() -> None:
    """LOCALPOOL_PYTHON=<venv>/bin/python: the venv is bound read-only and its packages are importable and listed."""
    # Not under pytest's own temporary directory: the sandbox's user must be able to reach the venv.
    venv = Path(tempfile.mkdtemp(prefix="localpool-venv-"))
    try:
        venv.chmod(0o755)
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
        site = next(venv.glob("lib/python3*/site-packages"))
        (site / "localpool_probe.py").write_text("ANSWER = 42\n")
        dist = site / "localpool_probe-1.2.3.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: localpool-probe\nVersion: 1.2.3\n")
        environ = {**os.environ, "LOCALPOOL_PYTHON": str(venv / "bin" / "python")}
        with LocalPool(token=TOKEN, container_type=ContainerType.PYTHON_LTS, environ=environ) as pool:
            assert pool.runtime.describe()[1] == {"localpool-probe": "1.2.3"}
            execution = run(pool, new_identifier(), "import sys, localpool_probe\nlocalpool_probe.ANSWER, sys.prefix")
            assert execution.result == [42, str(venv)], execution.stderr
    finally:
        shutil.rmtree(venv, ignore_errors=True)


def test_shell_sessions_run_the_bash_found_on_path() -> None:
    """The bash the pool found (and GET metadata reports) is the one that runs commands, bound read-only."""
    # Not under pytest's own temporary directory: the sandbox's user must be able to reach it.
    wrapper_dir = Path(tempfile.mkdtemp(prefix="localpool-bash-"))
    try:
        wrapper_dir.chmod(0o755)
        wrapper = wrapper_dir / "bash"
        wrapper.write_text('#!/bin/sh\nLOCALPOOL_WRAPPED=yes exec /bin/bash "$@"\n')
        wrapper.chmod(0o755)
        environ = {**os.environ, "PATH": f"{wrapper_dir}{os.pathsep}{os.environ['PATH']}"}
        with LocalPool(token=TOKEN, container_type=ContainerType.SHELL, environ=environ) as pool:
            assert pool.runtime.path == str(wrapper)
            execution = run(pool, new_identifier(), 'echo "wrapped: $LOCALPOOL_WRAPPED"')
            assert execution.stdout == "wrapped: yes\n", execution.stderr
    finally:
        shutil.rmtree(wrapper_dir, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="only a pool run as root starts its sandboxes as nobody")
def test_a_python_the_sandbox_user_cannot_read_is_refused_at_start() -> None:
    private = Path(tempfile.mkdtemp(prefix="localpool-private-"))  # mode 0700, as a home directory
    try:
        subprocess.run(
            ["/usr/bin/python3", "-m", "venv", "--without-pip", str(private / "venv")], check=True, timeout=60
        )
        environ = {**os.environ, "LOCALPOOL_PYTHON": str(private / "venv" / "bin" / "python")}
        with pytest.raises(PythonUnavailableError, match=r"cannot read \(.*localpool-private-.* is closed to others\)"):
            LocalPool(token=TOKEN, container_type=ContainerType.PYTHON_LTS, environ=environ)
    finally:
        shutil.rmtree(private, ignore_errors=True)


# -- Shell ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHELL_EXAMPLES)
def test_shell_matches_azures_examples(shell_pool: LocalPool, name: str) -> None:
    recorded = load_example(API_2025_10, name)
    request = recorded["parameters"]["codeExecutionRequest"]
    expected = recorded["responses"]["200"]["body"]
    identifier = new_identifier()
    if "execCommandAndArgs" in request:
        # The example lists a file uploaded before; upload one of that name.
        run(shell_pool, identifier, "true")
        session = shell_pool.manager.find(identifier)
        assert session is not None
        (session.workdir / "previouslyuploadedfile.txt").write_text("uploaded\n")
        execution = run(shell_pool, identifier, "", argv=request["execCommandAndArgs"])
    else:
        execution = run(shell_pool, identifier, request["shellCommand"], stdin=request["stdin"])
    assert str(execution.exit_code) == expected["status"]
    assert execution.stdout == expected["result"]["stdout"]
    assert execution.stderr == expected["result"]["stderr"]


def test_shell_exit_codes_stderr_and_what_carries_over(shell_pool: LocalPool) -> None:
    identifier = new_identifier()
    first = run(shell_pool, identifier, "pwd; echo oops >&2; cd /tmp; export KEPT=1; echo file > note.txt; exit 3")
    assert (first.status, first.exit_code) == (STATUS_SUCCEEDED, 3)
    assert (first.stdout, first.stderr) == (f"{SESSION_MOUNT_POINT}\n", "oops\n")
    # Each command starts in /mnt/data with a fresh environment; files stay.
    second = run(shell_pool, identifier, 'pwd; echo "[${KEPT:-}]"; cat /tmp/note.txt')
    assert second.stdout == f"{SESSION_MOUNT_POINT}\n[]\nfile\n"
    missing = run(shell_pool, identifier, "", argv=["no-such-command"])
    assert missing.exit_code == 127 and "no-such-command" in missing.stderr


def test_shell_background_job_does_not_hold_the_answer(shell_pool: LocalPool) -> None:
    execution = run(shell_pool, new_identifier(), "sleep 60 & echo started", timeout=5.0)
    assert (execution.status, execution.stdout) == (STATUS_SUCCEEDED, "started\n")


def test_shell_output_flood_is_capped(shell_pool: LocalPool) -> None:
    execution = run(shell_pool, new_identifier(), "yes | head -c 50000000; yes err | head -c 5000000 >&2")
    assert execution.stdout == "y\n" * (OUTPUT_STREAM_MAX_CHARS // 2)
    assert len(execution.stderr) == OUTPUT_STREAM_MAX_CHARS
    assert_hello_world(shell_pool)


def test_shell_timeout_is_reported_and_the_session_recovers(shell_pool: LocalPool) -> None:
    identifier = new_identifier()
    hung = run(shell_pool, identifier, "sleep 30", timeout=SHORT_TIMEOUT_SECONDS)
    assert (hung.status, hung.error_code) == (STATUS_FAILED, ERROR_TIMEOUT)
    assert run(shell_pool, identifier, "echo back").stdout == "back\n"


# The session's whole disk limit plus one byte: within RLIMIT_FSIZE (one byte past the limit), so the
# command writes it all and exits 0, and over the limit, so the pool ends the session.
OVER_THE_DISK_LIMIT = f"head -c {SandboxLimits(disk_mb=SMALL_DISK_MB).disk_bytes + 1} /dev/zero > big.bin"


def _shell_http_run(pool: LocalPool, identifier: str, command: str) -> dict[str, Any]:
    with PoolClient(pool.endpoint) as client:
        return client.run(identifier, "", api_version=API_2025_10, shellCommand=command, timeoutInSeconds=60)


def _assert_failed_by_the_disk_limit(body: dict[str, Any]) -> None:
    # Azure's Shell container: status Failed "Execution failed or timed out"; never the exit code.
    assert body["status"] == STATUS_FAILED, body
    assert body["error"]["error"]["code"] == ERROR_DISK_LIMIT, body


def test_shell_ended_by_the_disk_limit_after_its_command_exited_answers_failed(
    shell_pool: LocalPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command exits 0, then the periodic disk check ends the session before the answer (forced here)."""
    identifier = new_identifier()
    answered = Interpreter.execute
    seen: list[tuple[int | None, bool]] = []

    def answer_then_periodic_check(self: Interpreter, *args: Any, **kwargs: Any) -> Any:
        session = shell_pool.manager.find(identifier)
        assert session is not None
        outcome = answered(self, *args, **kwargs)
        shell_pool.manager.end_if_over_disk_limit(session)
        seen.append((outcome.command_exit_code, session.ended))
        return outcome

    monkeypatch.setattr(Interpreter, "execute", answer_then_periodic_check)
    body = _shell_http_run(shell_pool, identifier, OVER_THE_DISK_LIMIT)
    assert seen == [(0, True)], "the command did not exit 0, or the check did not end the session before the answer"
    _assert_failed_by_the_disk_limit(body)


def test_shell_ended_by_the_disk_limit_during_its_command_answers_failed(shell_pool: LocalPool) -> None:
    """The periodic disk check ends the session while the command still runs (it sleeps after writing)."""
    identifier = new_identifier()
    body = _shell_http_run(shell_pool, identifier, f"{OVER_THE_DISK_LIMIT}; sleep 30; echo finished")
    assert "finished" not in body["result"]["stdout"], body
    _assert_failed_by_the_disk_limit(body)


# -- the sandbox, per runtime (issue 8's attacks) -----------------------------------------------

ATTACKS: dict[ContainerType, dict[str, str]] = {
    ContainerType.PYTHON_LTS: {
        "passwd": "open('/etc/passwd').read()",
        "checkout": f"import os\nos.path.exists({str(PROJECT_ROOT)!r}), os.listdir('/')",
        "connect": "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)",
        "fork_bomb": "import os\nwhile True:\n    os.fork()",
        # Files each under the size limit, together over the session's total.
        "disk_fill": "import time\nfor i in range(3):\n    open(f'f{i}', 'wb').write(b'x' * 5_000_000)\ntime.sleep(5)",
        "set_secret": "secret = 'first session'\nopen('secret.txt', 'w').write('first')",
        # Other sessions' directories would be beside this one (without the sandbox they are).
        "read_secret": "import glob\nprint(glob.glob('../*/*'), glob.glob('/mnt/*/*'))\nsecret",
    },
    ContainerType.SHELL: {
        "passwd": "cat /etc/passwd",
        "checkout": f"ls {PROJECT_ROOT}; ls /",
        "connect": "exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected",
        "fork_bomb": "b() { b | b; }; b",
        "disk_fill": "for i in 1 2 3; do head -c 5000000 /dev/zero > f$i; done; sleep 5",
        "set_secret": "echo first > secret.txt; export SECRET=first",
        "read_secret": 'ls ../*/ /mnt/*/; echo "[${SECRET:-}]"',
    },
}
RUNTIMES = [ContainerType.PYTHON_LTS, ContainerType.SHELL]


@pytest.fixture(params=RUNTIMES, ids=[str(t) for t in RUNTIMES])
def sandboxed(request: pytest.FixtureRequest, python_pool: LocalPool, shell_pool: LocalPool) -> LocalPool:
    return python_pool if request.param is ContainerType.PYTHON_LTS else shell_pool


def attack(pool: LocalPool, name: str, timeout: float = TIMEOUT_SECONDS, port: int = 0) -> Execution:
    code = ATTACKS[pool.container_type][name].replace("{port}", str(port))
    return run(pool, new_identifier("attack"), code, timeout)


def test_host_files_are_not_readable(sandboxed: LocalPool) -> None:
    execution = attack(sandboxed, "passwd")
    assert execution.status == STATUS_FAILED or execution.exit_code != 0
    assert "root:" not in execution.stdout + str(execution.result)
    assert "No such file" in execution.stderr
    assert_hello_world(sandboxed)


def test_the_checkout_is_not_visible(sandboxed: LocalPool) -> None:
    execution = attack(sandboxed, "checkout")
    seen = execution.stdout + execution.stderr + str(execution.result)
    assert "Pulumi.yaml" not in seen and "work" not in seen.split()
    if sandboxed.container_type is ContainerType.PYTHON_LTS:
        assert execution.result[0] is False
    assert_hello_world(sandboxed)


def test_egress_disabled_reaches_nothing_on_the_host(sandboxed: LocalPool, host_listener: socket.socket) -> None:
    execution = attack(sandboxed, "connect", port=host_listener.getsockname()[1])
    assert no_connection(host_listener)
    assert "connected" not in execution.stdout
    assert execution.status == STATUS_FAILED or execution.exit_code != 0
    assert_hello_world(sandboxed)


def test_a_fork_bomb_is_contained(sandboxed: LocalPool) -> None:
    execution = attack(sandboxed, "fork_bomb", timeout=3.0)
    # Stopped at the deadline, ended by the process limit (bash then exits non-zero), or it took the
    # session's runner down with it (the sandbox is then replaced): contained in every case.
    stopped = {ERROR_TIMEOUT, ERROR_EXECUTION, ERROR_CRASHED}
    assert execution.error_code in stopped or execution.exit_code not in {None, 0}
    assert_hello_world(sandboxed)


def test_disk_fill_ends_the_session(sandboxed: LocalPool) -> None:
    execution = attack(sandboxed, "disk_fill", timeout=15.0)
    assert (execution.status, execution.error_code) == (STATUS_FAILED, ERROR_DISK_LIMIT)
    assert_hello_world(sandboxed)


# Files written through shared mappings, their descriptors closed and names unlinked: only the
# mappings hold them (ctypes, because Python's mmap keeps a descriptor of its own).
_MAPPED_AND_UNLINKED = """
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
size = 5_000_000
for i in range(3):
    fd = os.open(f'm{i}', os.O_RDWR | os.O_CREAT)
    os.ftruncate(fd, size)
    address = libc.mmap(None, size, 3, 1, fd, 0)  # PROT_READ | PROT_WRITE, MAP_SHARED
    os.close(fd)
    os.unlink(f'm{i}')
    ctypes.memset(address, 1, size)
time.sleep(5)
"""


def test_files_held_only_by_mappings_count_against_the_disk_limit(python_pool: LocalPool) -> None:
    execution = run(python_pool, new_identifier("attack"), _MAPPED_AND_UNLINKED, 15.0)
    assert (execution.status, execution.error_code) == (STATUS_FAILED, ERROR_DISK_LIMIT), execution.stderr
    assert_hello_world(python_pool)


def _unlinked_later(*names: str) -> tuple[str, str]:
    """(setup, hold) of _HELD_AFTER_QUIET: files opened by the quiet executions (their directories made first),
    written through their descriptors and unlinked by the last."""
    directories = sorted({os.path.dirname(name) for name in names} - {""})
    setup = f"""
if 'kept' not in globals():
    for directory in {directories!r}:
        os.mkdir(directory)
    kept = [open(name, 'wb') for name in {names!r}]
"""
    hold = f"""
for f in kept:
    f.write(chunk)
    f.flush()
for name in {names!r}:
    os.unlink(name)
"""
    return setup, hold


# Files that become held deleted ones in an execution that returns at once, after executions that
# held nothing (so the pool stopped inspecting the sandbox's descriptors and mappings until its watch
# on the session's directories reports a change): (what the quiet executions set up, what the last
# one does); each of the two files is 60 % of the limit.
_HELD_AFTER_QUIET = {
    # Never named: O_TMPFILE (its open is all the directory sees).
    "tmpfile": (
        "",
        """
kept = []
for _ in range(2):
    fd = os.open('.', os.O_TMPFILE | os.O_WRONLY, 0o600)
    os.write(fd, chunk)
    kept.append(fd)
""",
    ),
    # Unlinked in a directory made by the same execution (not watched yet when it is unlinked).
    "unlinked-in-a-new-directory": (
        "",
        """
os.makedirs('new/deeper')
kept = []
for i in range(2):
    fd = os.open(f'new/deeper/f{i}', os.O_CREAT | os.O_WRONLY, 0o600)
    os.write(fd, chunk)
    os.unlink(f'new/deeper/f{i}')
    kept.append(fd)
""",
    ),
    # Opened by earlier executions; the last writes through the descriptors and unlinks the names.
    "unlinked-later": _unlinked_later("f0", "sub/f1"),
    # The same in a tree without subdirectories (whose walk opens no directory but the kept root).
    "unlinked-later-flat": _unlinked_later("f0", "f1"),
    # Held open by earlier executions, replaced by a rename in the last: the directory keeps one file,
    # the descriptor the other.
    "renamed-over": (
        """
if 'kept' not in globals():
    with open('a', 'wb') as f:
        f.write(chunk)
    kept = [open('a', 'rb'), open('b', 'wb')]
""",
        """
kept[1].write(chunk)
kept[1].flush()
os.rename('b', 'a')
""",
    ),
}


@pytest.mark.parametrize(("setup", "hold"), _HELD_AFTER_QUIET.values(), ids=_HELD_AFTER_QUIET.keys())
def test_a_file_held_after_quiet_executions_is_counted_before_the_answer(
    python_pool: LocalPool, setup: str, hold: str
) -> None:
    identifier = new_identifier("quiet")
    size = SMALL_DISK_MB * 1024 * 1024 * 6 // 10
    for _ in range(3):
        execution = run(python_pool, identifier, f"import os\nchunk = b'x' * {size}\n{setup}\n1")
        assert execution.status == "Succeeded", execution
    execution = run(python_pool, identifier, hold + "'held'")
    assert (execution.status, execution.error_code) == (STATUS_FAILED, ERROR_DISK_LIMIT), execution
    assert_hello_world(python_pool)


def test_a_python_memory_bomb_fails_the_execution_only(python_pool: LocalPool) -> None:
    identifier = new_identifier("attack")
    run(python_pool, identifier, "kept = 1")
    bomb = run(python_pool, identifier, "hoard = bytearray(4 * 1024**3)")
    assert (bomb.status, bomb.error_code) == (STATUS_FAILED, ERROR_EXECUTION)
    assert bomb.stderr.endswith("MemoryError\n")
    assert run(python_pool, identifier, "kept").result == 1
    assert_hello_world(python_pool)


def test_a_second_session_cannot_see_the_first(sandboxed: LocalPool) -> None:
    run(sandboxed, new_identifier("first"), ATTACKS[sandboxed.container_type]["set_secret"])
    execution = attack(sandboxed, "read_secret")
    assert "first" not in execution.stdout + str(execution.result)
    assert "secret.txt" not in execution.stdout + str(execution.result)
    assert_hello_world(sandboxed)


def test_sessions_run_concurrently_without_sharing_state(python_pool: LocalPool) -> None:
    identifiers = [new_identifier("parallel") for _ in range(4)]
    results: dict[str, Any] = {}

    def work(identifier: str) -> None:
        run(python_pool, identifier, f"mine = {identifier!r}")
        results[identifier] = run(python_pool, identifier, "mine").result

    threads = [threading.Thread(target=work, args=(identifier,)) for identifier in identifiers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {identifier: identifier for identifier in identifiers}


# -- start-up ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("container_type", "env", "sentence"),
    [
        ("PythonLTS", {"LOCALPOOL_PYTHON": "/no/such/python3"}, "Python was not found"),
        ("Shell", {"LOCALPOOL_PYTHON": "/usr/bin/python3", "PATH": "/no/such/dir"}, "bash was not found on PATH"),
    ],
)
def test_a_missing_runtime_ends_start_up_with_exit_2_and_one_sentence(
    container_type: str, env: dict[str, str], sentence: str
) -> None:
    completed = run_cli("--container-type", container_type, env=cli_env(**env))
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr.count("\n") == 1 and sentence in completed.stderr
    assert "Traceback" not in completed.stderr
