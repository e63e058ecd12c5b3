"""The seccomp filter of every sandbox (localpool/seccomp.py), attacked from PythonLTS and Shell sessions.

Each refused call is made from session code (ctypes' libc.syscall; in a Shell session by /usr's python3)
with harmless invalid arguments, as bubblewrap's tests/try-syscall.c does: where the kernel gets the
call it fails harmlessly (EBADF, EFAULT, EINVAL, or EPERM for privileged-only calls), so the filter's
own errno shows that the filter answered. Needs bubblewrap (fails, never skips, without it). To see
every attack test fail without the filter, run this file once with LOCALPOOL_ATTACKS_NO_SECCOMP=1: the
pools then start bwrap without --seccomp (everything else the same).
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyseccomp
import pytest
import requests

from localpool import LocalPool
from localpool.disk import sandbox_processes
from localpool.sandbox import Sandbox
from localpool.wire import API_2025_10, ContainerType
from smoke.protocol import STATUS_SUCCEEDED
from tests.support.localpool_helpers import TOKEN, PoolClient, new_identifier

WITHOUT_FILTER = os.environ.get("LOCALPOOL_ATTACKS_NO_SECCOMP") == "1"
RUN_TIMEOUT_SECONDS = 30.0
ALL_32_BITS = 0xFFFFFFFF
HIGH_BIT = 1 << 32
# Flags the kernel refuses before it looks at namespaces: CLONE_SIGHAND without CLONE_VM (EINVAL).
CLONE_SIGHAND = 0x00000800
CLONE_PTRACE = 0x00002000
UFFD_USER_MODE_ONLY = 1
PTRACE_SEIZE = 0x4206
ADDR_NO_RANDOMIZE = 0x0040000
SYSLOG_ACTION_SIZE_BUFFER = 10
TIOCGWINSZ = 0x5413
AF_PACKET = 17
AF_VSOCK = 40
SOCK_STREAM = 1
SOCK_DGRAM = 2
SOCK_RAW = 3
SOCK_CLOEXEC = 0o2000000
IPPROTO_ICMP = 1
IPPROTO_ICMPV6 = 58
NETLINK_SOCK_DIAG = 4
NETLINK_KOBJECT_UEVENT = 15
# Newer than libseccomp 2.5.4's tables: the kernel's unified number (every architecture but alpha).
OPEN_TREE_ATTR = 467
NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
# i386's getpid through int 0x80 from 64-bit code, returning eax: mov eax, 20; int 0x80; ret.
I386_GETPID_CODE = "b814000000cd80c3"


@dataclass(frozen=True)
class Call:
    """One system call made by session code: a label, its name (or number) and its arguments."""

    label: str
    syscall: str | int
    args: tuple[int, ...]
    # The errno name the filter answers (None: allowed by the filter).
    refused: str | None


# Every entry of the filter's refuse list, each with arguments no kernel accepts.
REFUSED = [
    Call("io_uring_setup", "io_uring_setup", (0, 0), "ENOSYS"),
    Call("io_uring_enter", "io_uring_enter", (ALL_32_BITS, 0, 0, 0, 0, 0), "ENOSYS"),
    Call("io_uring_register", "io_uring_register", (ALL_32_BITS, 0, 0, 0), "ENOSYS"),
    Call("userfaultfd", "userfaultfd", (UFFD_USER_MODE_ONLY | 0x10,), "EPERM"),
    Call("perf_event_open", "perf_event_open", (0, 0, ALL_32_BITS, ALL_32_BITS, 0), "EPERM"),
    Call("bpf", "bpf", (0xFFFF, 0, 0), "EPERM"),
    Call("add_key", "add_key", (0, 0, 0, 0, 0), "EPERM"),
    Call("keyctl", "keyctl", (0xFFFF, 0, 0, 0, 0), "EPERM"),
    Call("request_key", "request_key", (0, 0, 0, 0), "EPERM"),
    Call("kexec_load", "kexec_load", (0, 0, 0, ALL_32_BITS), "EACCES"),
    Call("kexec_file_load", "kexec_file_load", (ALL_32_BITS, ALL_32_BITS, 0, 0, ALL_32_BITS), "EACCES"),
    Call("init_module", "init_module", (0, 0, 0), "EACCES"),
    Call("finit_module", "finit_module", (ALL_32_BITS, 0, ALL_32_BITS), "EACCES"),
    Call("delete_module", "delete_module", (0, ALL_32_BITS), "EACCES"),
    Call("open_by_handle_at", "open_by_handle_at", (ALL_32_BITS, 0, 0), "EPERM"),
    Call("name_to_handle_at", "name_to_handle_at", (ALL_32_BITS, 0, 0, 0, ALL_32_BITS), "EPERM"),
    Call("mount", "mount", (0, 0, 0, 0, 0), "EPERM"),
    Call("umount2", "umount2", (0, ALL_32_BITS), "EPERM"),
    Call("chroot", "chroot", (0,), "EPERM"),
    Call("pivot_root", "pivot_root", (0, 0), "EACCES"),
    Call("open_tree", "open_tree", (ALL_32_BITS, 0, ALL_32_BITS), "ENOSYS"),
    Call("open_tree_attr", OPEN_TREE_ATTR, (ALL_32_BITS, 0, ALL_32_BITS, 0, 0), "ENOSYS"),
    Call("move_mount", "move_mount", (ALL_32_BITS, 0, ALL_32_BITS, 0, ALL_32_BITS), "ENOSYS"),
    Call("fsopen", "fsopen", (0, ALL_32_BITS), "ENOSYS"),
    Call("fsconfig", "fsconfig", (ALL_32_BITS, 0xFFFF, 0, 0, 0), "ENOSYS"),
    Call("fsmount", "fsmount", (ALL_32_BITS, ALL_32_BITS, 0), "ENOSYS"),
    Call("fspick", "fspick", (ALL_32_BITS, 0, ALL_32_BITS), "ENOSYS"),
    Call("mount_setattr", "mount_setattr", (ALL_32_BITS, 0, ALL_32_BITS, 0, 0), "ENOSYS"),
    Call("unshare", "unshare", (NAMESPACE_FLAGS["CLONE_NEWNET"] | CLONE_PTRACE,), "EPERM"),
    Call("setns", "setns", (ALL_32_BITS, 0), "EPERM"),
    *[
        Call(f"clone {name}", "clone", (flag | CLONE_SIGHAND, 0, 0, 0, 0), "EPERM")
        for name, flag in NAMESPACE_FLAGS.items()
    ],
    Call("clone3", "clone3", (0, 0), "ENOSYS"),
    Call("ptrace", "ptrace", (PTRACE_SEIZE, ALL_32_BITS, 0, 0), "EPERM"),
    # The one call here the kernel would carry out (the runner's process is put back at once).
    Call("personality ADDR_NO_RANDOMIZE", "personality", (ADDR_NO_RANDOMIZE,), "EPERM"),
    Call("ioctl TIOCSTI", "ioctl", (ALL_32_BITS, 0x5412, 0), "EPERM"),
    Call("ioctl TIOCSTI with high bits", "ioctl", (ALL_32_BITS, HIGH_BIT | 0x5412, 0), "EPERM"),
    Call("ioctl TIOCLINUX", "ioctl", (ALL_32_BITS, 0x541C, 0), "EPERM"),
    Call("ioctl TIOCLINUX with high bits", "ioctl", (ALL_32_BITS, HIGH_BIT | 0x541C, 0), "EPERM"),
    Call("socket AF_PACKET", "socket", (AF_PACKET, SOCK_RAW, 0), "EAFNOSUPPORT"),
    Call("socket AF_PACKET with high bits", "socket", (HIGH_BIT | AF_PACKET, SOCK_RAW, 0), "EAFNOSUPPORT"),
    Call("socket AF_VSOCK", "socket", (AF_VSOCK, SOCK_STREAM, 0), "EAFNOSUPPORT"),
    Call("socket AF_INET raw", "socket", (2, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP), "ESOCKTNOSUPPORT"),
    Call("socket AF_INET6 raw", "socket", (10, SOCK_RAW, IPPROTO_ICMPV6), "ESOCKTNOSUPPORT"),
    Call("socket netlink NETLINK_SOCK_DIAG", "socket", (16, SOCK_RAW, NETLINK_SOCK_DIAG), "EPROTONOSUPPORT"),
    Call(
        "socket netlink NETLINK_KOBJECT_UEVENT", "socket", (16, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT), "EPROTONOSUPPORT"
    ),
    Call("syslog", "syslog", (SYSLOG_ACTION_SIZE_BUFFER, 0, 0), "EACCES"),
    Call("uselib", "uselib", (0,), "EPERM"),
    Call("acct", "acct", (0,), "EACCES"),
    Call("quotactl", "quotactl", (0xFFFF, 0, 0, 0), "EPERM"),
    Call("move_pages", "move_pages", (0, 1, 0, 0, 0, 0xFFFF), "EPERM"),
    Call("mbind", "mbind", (0, 0, 0xFFFF, 0, 0, 0), "EPERM"),
    Call("get_mempolicy", "get_mempolicy", (0, 0, 0, 0, 0xFFFF), "EPERM"),
    Call("set_mempolicy", "set_mempolicy", (0xFFFF, 0, 0), "EPERM"),
    Call("migrate_pages", "migrate_pages", (0, 0xFFFF, 0, 0), "EPERM"),
]
# Near neighbours of the refused calls that the filter must let through (the kernel answers them).
ALLOWED = [
    Call("socket AF_INET stream", "socket", (2, SOCK_STREAM, 0), None),
    Call("socket AF_UNIX", "socket", (1, SOCK_STREAM, 0), None),
    Call("socket netlink NETLINK_ROUTE", "socket", (16, SOCK_RAW, 0), None),
    Call("ioctl TIOCGWINSZ", "ioctl", (ALL_32_BITS, TIOCGWINSZ, 0), None),
    Call("personality PER_LINUX", "personality", (0,), None),
    Call("clone without namespace flags", "clone", (CLONE_SIGHAND, 0, 0, 0, 0), None),
]
# What the kernel answers the allowed calls in a sandbox ("ok": a descriptor or value came back).
ALLOWED_ANSWERS = {
    "socket AF_INET stream": "ok",
    "socket AF_UNIX": "ok",
    "socket netlink NETLINK_ROUTE": "ok",
    "ioctl TIOCGWINSZ": "EBADF",
    "personality PER_LINUX": "ok",
    "clone without namespace flags": "EINVAL",
}

# Run by the session: each call of the table (argv[1]) as [label, number, args]; prints {label: answer}.
PROBE = r"""
import ctypes, errno, json, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
answers = {}
for label, number, args in json.loads(sys.argv[1]):
    if number is None:
        # A call through i386's system-call table: another ABI, out of the native filter's rules.
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        page.write(bytes.fromhex(args[0]))
        getpid32 = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
        result = getpid32()
        answers[label] = "ok" if result >= 0 else errno.errorcode.get(-result, str(-result))
        continue
    ctypes.set_errno(0)
    result = libc.syscall(ctypes.c_long(number), *[ctypes.c_ulong(arg) for arg in args])
    code = ctypes.get_errno()
    answers[label] = "ok" if result >= 0 else errno.errorcode.get(code, str(code))
    if result >= 0 and label.startswith("socket"):
        libc.close(ctypes.c_int(result))
    if result >= 0 and label.startswith("personality"):
        libc.personality(ctypes.c_ulong(0))
print(json.dumps(answers))
"""


def _table(calls: list[Call]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for call in calls:
        number = call.syscall
        if isinstance(number, str):
            number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, number)
            assert number >= 0, f"{call.syscall} has no number on this architecture"
        rows.append([call.label, number, list(call.args)])
    return rows


def _all_calls() -> list[list[Any]]:
    rows = _table(REFUSED + ALLOWED)
    if platform.machine() == "x86_64":
        rows.append(["i386 int 0x80 getpid", None, [I386_GETPID_CODE]])
    return rows


@pytest.fixture(scope="module", autouse=True)
def _filter_switch() -> Iterator[None]:
    """LOCALPOOL_ATTACKS_NO_SECCOMP=1: bwrap starts without --seccomp, to see the attack tests fail."""
    if not WITHOUT_FILTER:
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Sandbox, "_seccomp_args", staticmethod(lambda fd: []))
        yield


def _open_pool(container_type: ContainerType) -> LocalPool:
    return LocalPool(token=TOKEN, container_type=container_type, max_sessions=8, cooldown_seconds=30.0)


def _run(pool: LocalPool, identifier: str, code: str, **fields: Any) -> Any:
    session = pool.manager.acquire(identifier)
    try:
        execution = pool.manager.new_execution(session, "Synchronous")
        pool.manager.run(session, execution, code, RUN_TIMEOUT_SECONDS, fields or None)
    finally:
        pool.manager.release(session)
    return execution


@pytest.fixture(scope="module")
def python_answers(_filter_switch: None) -> dict[str, str]:
    """What each call answered in a PythonLTS session (ctypes in the session's own interpreter)."""
    code = f"import sys\nsys.argv = ['probe', {json.dumps(json.dumps(_all_calls()))}]\n{PROBE}"
    with _open_pool(ContainerType.PYTHON_LTS) as pool:
        execution = _run(pool, new_identifier("seccomp"), code)
    assert execution.status == STATUS_SUCCEEDED, execution.stderr
    return json.loads(execution.stdout)


@pytest.fixture(scope="module")
def shell_answers(_filter_switch: None) -> dict[str, str]:
    """What each call answered in a Shell session (a python3 from /usr started by the command)."""
    argv = ["/usr/bin/python3", "-I", "-c", PROBE, json.dumps(_all_calls())]
    with _open_pool(ContainerType.SHELL) as pool:
        execution = _run(pool, new_identifier("seccomp"), "", argv=argv)
    assert execution.stderr == "", execution.stderr
    return json.loads(execution.stdout)


@pytest.mark.parametrize("call", REFUSED, ids=lambda call: call.label)
def test_python_session_is_refused(python_answers: dict[str, str], call: Call) -> None:
    assert python_answers[call.label] == call.refused


@pytest.mark.parametrize("call", REFUSED, ids=lambda call: call.label)
def test_shell_session_is_refused(shell_answers: dict[str, str], call: Call) -> None:
    assert shell_answers[call.label] == call.refused


@pytest.mark.parametrize("call", ALLOWED, ids=lambda call: call.label)
def test_neighbours_of_refused_calls_reach_the_kernel(
    python_answers: dict[str, str], shell_answers: dict[str, str], call: Call
) -> None:
    assert python_answers[call.label] == shell_answers[call.label] == ALLOWED_ANSWERS[call.label]


@pytest.mark.skipif(platform.machine() != "x86_64", reason="i386's int 0x80 exists only on x86_64")
def test_another_abi_is_refused_as_a_whole(python_answers: dict[str, str], shell_answers: dict[str, str]) -> None:
    # Without the filter the kernel's IA-32 emulation answers getpid.
    assert python_answers["i386 int 0x80 getpid"] == shell_answers["i386 int 0x80 getpid"] == "ENOSYS"


@pytest.mark.parametrize("container_type", list(ContainerType), ids=lambda kind: kind.value)
def test_every_process_of_every_runtime_runs_under_the_filter(container_type: ContainerType) -> None:
    """/proc/<pid>/status: Seccomp 2 (filter mode) for every process in the sandbox, not for bwrap outside."""
    code = {
        ContainerType.NODE_LTS: "1 + 1",
        ContainerType.PYTHON_LTS: "open('/proc/self/status').read()",
        ContainerType.SHELL: "grep Seccomp: /proc/self/status",
    }[container_type]
    identifier = new_identifier("status")
    with _open_pool(container_type) as pool:
        execution = _run(pool, identifier, code)
        session = pool.manager.find(identifier)
        assert session is not None and session.interpreter is not None
        outside = session.interpreter.pid
        inside = [pid for pid in sandbox_processes(outside) if pid != outside]
        modes = {pid: _status_field(pid, "Seccomp") for pid in inside}
        assert _status_field(outside, "Seccomp") == "0"  # bwrap's own setup is not filtered
    assert execution.status == STATUS_SUCCEEDED, execution.stderr
    assert len(inside) >= 2 and set(modes.values()) == {"2"}, modes
    if container_type is not ContainerType.NODE_LTS:
        assert "Seccomp:\t2" in f"{execution.result}{execution.stdout}"


def _status_field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"/proc/{pid}/status has no {name}")


@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandbox", "no-sandbox"])
def test_metadata_says_whether_the_filter_is_on(sandboxed: bool) -> None:
    with LocalPool(token=TOKEN, sandbox=sandboxed, prewarm=False) as pool, PoolClient(pool.endpoint) as client:
        reply = client.http.get(pool.endpoint + "/metadata", params={"api-version": API_2025_10}, timeout=30)
    assert reply.status_code == requests.codes.ok, reply.text
    runtimes = {entry["name"]: entry["version"] for entry in reply.json()["runtimes"]}
    if sandboxed:
        assert runtimes["seccomp"].startswith("libseccomp 2.") and runtimes["bubblewrap"][0].isdigit(), runtimes
    else:
        assert "seccomp" not in runtimes and "bubblewrap" not in runtimes, runtimes
    assert "node" in runtimes


# What each runtime does that goes through the calls next to the refused ones: threads and processes
# (clone3 refused, clone allowed), executable memory, sockets, NETLINK_ROUTE, pipes and common tools.
PYTHON_WORKLOAD = """
import asyncio, json, os, socket, subprocess, threading
done = []
workers = [threading.Thread(target=done.append, args=(n,)) for n in range(4)]
[w.start() for w in workers]; [w.join() for w in workers]
child = os.fork()
if child == 0:
    os._exit(7)
forked = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
listed = subprocess.run(["ls", "/usr"], capture_output=True, text=True, check=True).stdout.split()
async def piped():
    process = await asyncio.create_subprocess_exec("cat", stdin=-1, stdout=-1)
    return (await process.communicate(b"piped"))[0].decode()
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(1)
client = socket.create_connection(server.getsockname()); accepted = server.accept()[0]
client.sendall(b"tcp"); received = accepted.recv(3).decode()
json.dumps([sorted(done), forked, "bin" in listed, asyncio.run(piped()), received, socket.if_nameindex()[0][1]])
"""
NODE_WORKLOAD = """
const wasm = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 7, 1, 96, 2, 127, 127, 1, 127, 3, 2, 1, 0, 7, 7, 1,
  3, 97, 100, 100, 0, 0, 10, 9, 1, 7, 0, 32, 0, 32, 1, 106, 11]);
Promise.all([
  WebAssembly.instantiate(wasm).then((m) => m.instance.exports.add(2, 3)),
  fetch('http://127.0.0.1:9/').then(() => 'answered', (e) => 'refused'),
  Promise.resolve(Object.keys(require('os').networkInterfaces()).join(',')),
  new Promise((resolve) => require('crypto').scrypt('a', 'b', 16, (e, key) => resolve(key.length))),
]).then((all) => JSON.stringify(all))
"""
SHELL_WORKLOAD = (
    "printf 'b\\na\\nb\\n' | sort | uniq -c | sed 's/^ *//; s/ //' | tr '\\n' ' '; "
    "mkdir -p d && echo x > d/f && tar czf d.tgz d && tar tzf d.tgz | xargs echo; "
    "find d -type f | sed 's/^/found /'; (sleep 0.1 & wait) && echo waited; "
    "perl -e 'my $p = fork(); if (!$p) { exit 3 } waitpid($p, 0); print $? >> 8, \"\\n\"'; "
    "ip -o link show lo | cut -d' ' -f2; ps -o comm= | sort | tr '\\n' ' '"
)


def test_python_keeps_threads_processes_sockets_and_netlink() -> None:
    with _open_pool(ContainerType.PYTHON_LTS) as pool:
        execution = _run(pool, new_identifier("works"), PYTHON_WORKLOAD)
    assert execution.status == STATUS_SUCCEEDED, execution.stderr
    assert json.loads(execution.result) == [[0, 1, 2, 3], 7, True, "piped", "tcp", "lo"]


def test_node_keeps_webassembly_fetch_its_thread_pool_and_netlink() -> None:
    with _open_pool(ContainerType.NODE_LTS) as pool:
        execution = _run(pool, new_identifier("works"), NODE_WORKLOAD)
    assert execution.status == STATUS_SUCCEEDED, execution.stderr
    assert json.loads(execution.result) == [5, "refused", "lo", 16]


def test_shell_keeps_its_common_tools() -> None:
    with _open_pool(ContainerType.SHELL) as pool:
        execution = _run(pool, new_identifier("works"), SHELL_WORKLOAD)
    assert execution.stderr == "", execution.stderr
    lines = execution.stdout.splitlines()
    assert lines[:5] == ["1a 2b d/ d/f", "found d/f", "waited", "3", "lo:"], lines
    assert {"bash", "ps"} <= set(lines[5].split()), lines
