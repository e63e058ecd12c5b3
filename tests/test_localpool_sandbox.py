"""The sandbox layer alone (localpool/sandbox.py), with a shell as the runtime: what bubblewrap
contains without any help from Node.js's permission model. Needs bubblewrap (fails, never skips,
without it). A runtime is a command line, read-only binds and an environment, nothing else.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localpool.constants import SANDBOX_HOSTNAME, SANDBOX_UID, SESSION_MOUNT_POINT
from localpool.sandbox import (
    RuntimeCommand,
    Sandbox,
    SandboxLimits,
    SandboxUnavailableError,
    wait_for_loopback,
)
from tests.support.localpool_helpers import PROJECT_ROOT

RUN_TIMEOUT_SECONDS = 20


@pytest.fixture
def session_dir() -> Iterator[Path]:
    """A session directory prepared as the pool prepares one (owned by nobody when run as root)."""
    root = Path(tempfile.mkdtemp(prefix="sandbox-test-")).resolve()
    sandbox = Sandbox()
    sandbox.prepare_directory(root, private=False)
    directory = root / "session"
    directory.mkdir()
    sandbox.prepare_directory(directory)
    try:
        yield directory
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)


def shell(script: str, session_dir: Path, sandbox: Sandbox | None = None) -> subprocess.CompletedProcess[str]:
    """Run a bash script as the runtime of a sandbox (default limits, EgressDisabled)."""
    chosen = sandbox or Sandbox()
    chosen.check()
    filter_fd = chosen.seccomp_descriptor()
    assert filter_fd is not None
    command, as_user = chosen.as_sandbox_user(
        chosen.command(RuntimeCommand(argv=["/bin/bash", "-c", script]), session_dir, seccomp_fd=filter_fd)
    )
    try:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            check=False,
            pass_fds=(filter_fd,),
            **as_user,
        )
    finally:
        os.close(filter_fd)


def test_the_sandbox_sees_only_the_system_its_directory_and_a_private_tmp(session_dir: Path) -> None:
    with tempfile.NamedTemporaryFile(dir="/tmp", prefix="host-only-") as planted:
        script = (
            "ls -A / | sort | tr '\\n' ' '; echo; id -u; hostname; "
            f"for p in /etc/passwd {planted.name} {Path.home()} {PROJECT_ROOT} /run /var /home; do "
            'test -e $p && echo "visible $p"; done; '
            f"echo data > {SESSION_MOUNT_POINT}/out.txt && echo tmp > /tmp/t && echo wrote; "
            'for p in /usr/x /x /dev/shm/x /mnt/x; do (echo x > $p) 2>/dev/null && echo "wrote $p"; done; '
            "ls /proc | grep -c '^[0-9]'"
        )
        completed = shell(script, session_dir)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0].split() == sorted(["bin", "dev", "lib", "lib64", "mnt", "proc", "tmp", "usr", *_extra_roots()])
    assert lines[1] == str(SANDBOX_UID)
    assert lines[2] == SANDBOX_HOSTNAME
    assert not [line for line in lines if line.startswith("visible")]
    # Only /mnt/data and /tmp are writable: not /usr, nor bwrap's memory-backed root and /dev.
    assert "wrote" in lines
    assert not [line for line in lines if line.startswith("wrote ")]
    # Its own PID namespace: only a handful of processes (bwrap's init, bash and its pipeline).
    assert int(lines[-1]) < 10
    assert (session_dir / "out.txt").read_text() == "data\n"


def test_the_sandbox_proc_does_not_describe_the_host(session_dir: Path) -> None:
    script = (
        "for f in /proc/cmdline /proc/kallsyms /proc/modules; do echo $f $(head -c 4096 $f 2>/dev/null | wc -c); done; "
        "echo sys $(ls -A /proc/sys | wc -l); (echo 1 > /proc/sys/x) 2>/dev/null && echo wrote-sys; true"
    )
    completed = shell(script, session_dir)
    assert completed.returncode == 0, completed.stderr
    # The host has them (the check could otherwise pass on a kernel without them).
    assert Path("/proc/cmdline").read_text() and os.listdir("/proc/sys")
    assert completed.stdout.splitlines() == ["/proc/cmdline 0", "/proc/kallsyms 0", "/proc/modules 0", "sys 0"]


def _extra_roots() -> list[str]:
    """Top-level system links or directories the host has beyond /bin, /lib and /lib64."""
    return [name for name in ("sbin", "lib32", "libx32") if os.path.lexists(f"/{name}")]


def test_egress_disabled_has_no_route_to_the_host(session_dir: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        script = f"(echo > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo reached"
        completed = shell(script, session_dir)
    assert "reached" not in completed.stdout


_ABSTRACT_PROBE = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1].replace("@", "\\0", 1))
    print("reached-abstract")
except OSError:
    pass
"""


def test_egress_enabled_has_its_own_outbound_only_network(session_dir: Path) -> None:
    sandbox = Sandbox(egress=True)
    sandbox.check()
    abstract_name = f"\0sandbox-probe-{os.getpid()}"
    with socket.socket() as listener, socket.socket(socket.AF_UNIX) as abstract:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        abstract.bind(abstract_name)
        abstract.listen(1)
        script = (
            # slirp4netns configures tap0 once the sandbox runs: wait for it (at most 20 s).
            "for i in $(seq 200); do grep -q tap0 /proc/net/route && break; sleep 0.1; done; "
            f"(echo > /dev/tcp/127.0.0.1/{listener.getsockname()[1]}) 2>/dev/null && echo reached-loopback; "
            f"/usr/bin/python3 -c '{_ABSTRACT_PROBE}' @{abstract_name[1:]}; "
            "cut -f1-3 /proc/net/route; cat /etc/resolv.conf"
        )
        network = sandbox.network()
        assert network is not None
        filter_fd = sandbox.seccomp_descriptor()
        assert filter_fd is not None
        command, as_user = sandbox.as_sandbox_user(
            sandbox.command(RuntimeCommand(argv=["/bin/bash", "-c", script]), session_dir, network, filter_fd)
        )
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            text=True,
            pass_fds=(*network.pass_fds, filter_fd),
            **as_user,
        )
        os.close(filter_fd)
        try:
            network.attach()
            out, _ = process.communicate(timeout=RUN_TIMEOUT_SECONDS)
        finally:
            network.close()
            if process.poll() is None:
                process.kill()
    # Neither the host's loopback nor its abstract Unix sockets; a default route through slirp4netns.
    assert "reached" not in out
    assert "tap0\t00000000\t0202000A" in out.splitlines()
    assert "nameserver 10.0.2.3" in out


def test_egress_enabled_without_slirp4netns_is_refused() -> None:
    with pytest.raises(SandboxUnavailableError, match=r"apt-get install slirp4netns"):
        Sandbox(egress=True, slirp4netns="slirp4netns-that-does-not-exist").check()


def test_limits_hold_processes_tmp_files_and_namespaces(session_dir: Path) -> None:
    limits = SandboxLimits(processes=16, open_files=32, disk_mb=1)
    script = (
        # perl (Debian's perl-base is essential) forks without bash's retry-and-wait on EAGAIN.
        "perl -e 'my @kids; for (1..40) { my $p = fork(); last unless defined $p; "
        'if (!$p) { sleep 5; exit } push @kids, $p } print "procs ", scalar(@kids), "\\n"; kill 9, @kids\'; '
        "head -c 2000000 /dev/zero > /mnt/data/big 2>/dev/null; echo size $(stat -c %s /mnt/data/big); "
        "head -c 50000000 /dev/zero > /tmp/big 2>/dev/null || echo tmp-full; "
        "echo files $(ulimit -n); unshare -U true 2>/dev/null || echo no-nested-userns"
    )
    completed = shell(script, session_dir, Sandbox(limits=limits))
    facts = dict(line.split(" ", 1) for line in completed.stdout.splitlines() if " " in line)
    assert int(facts["procs"]) < 16
    # Cut one byte past the disk limit, so the server's measurement sees the breach.
    assert int(facts["size"]) == limits.disk_bytes + 1
    assert facts["files"] == "32"
    assert "tmp-full" in completed.stdout and "no-nested-userns" in completed.stdout


def test_missing_bubblewrap_is_one_sentence_with_the_fix() -> None:
    with pytest.raises(SandboxUnavailableError, match=r"apt-get install bubblewrap"):
        Sandbox(bwrap="bwrap-that-does-not-exist").check()


@pytest.fixture
def empty_netns(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    """A process in a new network namespace that gives its loopback 127.0.0.1 only once the gate file
    exists, and writes the marker file just before (yields the process, the gate and the marker)."""
    gate, marker = tmp_path / "gate", tmp_path / "about-to-add-the-address"
    script = (
        f"echo in-the-namespace; while [ ! -e {gate} ]; do sleep 0.01; done; : > {marker}; ip link set lo up; sleep 30"
    )
    command = ["unshare", "--user", "--map-root-user", "--net", "sh", "-c", script]
    with subprocess.Popen(command, stdout=subprocess.PIPE) as process:
        try:
            assert process.stdout is not None and process.stdout.readline() == b"in-the-namespace\n"
            yield process, gate, marker
        finally:
            process.kill()


def test_slirp4netns_waits_until_the_sandbox_loopback_has_its_address(
    empty_netns: tuple[subprocess.Popen[bytes], Path, Path],
) -> None:
    """slirp4netns brings lo up (the kernel then adds 127.0.0.1); before bwrap has added it, that kills
    bwrap ("loopback: Failed RTM_NEWADDR": 1 sandbox in 40 under load), so attach() waits for it."""
    process, gate, marker = empty_netns
    opener = threading.Timer(0.3, gate.touch)
    opener.start()
    try:
        wait_for_loopback(process.pid, time.monotonic() + RUN_TIMEOUT_SECONDS)
    finally:
        opener.join()
    assert marker.exists()


def test_waiting_for_the_loopback_ends_with_the_sandbox_or_the_deadline(
    empty_netns: tuple[subprocess.Popen[bytes], Path, Path],
) -> None:
    process, _, marker = empty_netns
    with pytest.raises(RuntimeError, match="did not set up the sandbox's loopback in time"):
        wait_for_loopback(process.pid, time.monotonic())
    process.kill()
    process.wait()
    with pytest.raises(RuntimeError, match="the sandbox ended before its loopback was set up"):
        wait_for_loopback(process.pid, time.monotonic() + RUN_TIMEOUT_SECONDS)
    assert not marker.exists()


def _ids_of_bwrap(session_dir: Path) -> dict[str, str]:
    """Uid, Gid and Groups (from /proc/<pid>/status) of a bwrap started as the pool starts one."""
    sandbox = Sandbox()
    filter_fd = sandbox.seccomp_descriptor()
    assert filter_fd is not None
    command, as_user = sandbox.as_sandbox_user(
        sandbox.command(RuntimeCommand(argv=["/bin/sleep", "30"]), session_dir, seccomp_fd=filter_fd)
    )
    process = subprocess.Popen(command, pass_fds=(filter_fd,), **as_user)
    os.close(filter_fd)
    try:
        status = Path(f"/proc/{process.pid}/status")
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        while "Name:\tbwrap" not in status.read_text() and time.monotonic() < deadline:
            time.sleep(0.01)
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
        return {name: " ".join(fields[name].split()) for name in ("Name", "Uid", "Gid", "Groups")}
    finally:
        process.kill()
        process.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="only a pool run as root starts bwrap as nobody")
@pytest.mark.parametrize("setpriv", ["installed", "missing"])
def test_a_root_pool_starts_bwrap_as_nobody_with_every_id_and_no_groups(
    session_dir: Path, setpriv: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With setpriv, Popen can use vfork; without it Popen switches the ids itself (a fork). The same ids either way.
    if setpriv == "missing":
        monkeypatch.setattr("localpool.sandbox.SETPRIV", "/nonexistent/setpriv")
    else:
        assert os.access("/usr/bin/setpriv", os.X_OK), "util-linux's setpriv, beside its prlimit"
        command, as_user = Sandbox().as_sandbox_user(["bwrap"])
        assert (command[0], as_user) == ("/usr/bin/setpriv", {})  # nothing that keeps Popen from vfork
    nobody = " ".join([str(SANDBOX_UID)] * 4)
    assert _ids_of_bwrap(session_dir) == {"Name": "bwrap", "Uid": nobody, "Gid": nobody, "Groups": ""}
