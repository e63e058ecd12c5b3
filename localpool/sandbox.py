"""The one operating-system sandbox every session runtime runs in: bubblewrap (``bwrap``).

A runtime (NodeLTS today) describes itself as a RuntimeCommand: the command line to run inside,
the host paths it needs read-only and its environment. Sandbox.command() wraps that in bwrap with
new user, PID, IPC, UTS, mount and network namespaces:

- read-only: /usr (and the /bin, /lib* links or directories of the host) plus the runtime's own binds;
- writable: the session directory, bind-mounted at /mnt/data, and a private size-limited /tmp;
- network: none but its own loopback; with egress enabled, outbound connections through
  slirp4netns (user-mode NAT attached to the sandbox's own namespace: no host loopback, no host
  abstract Unix sockets, no port reachable from outside);
- nothing else: no home, no checkout, no host /tmp, no host sockets, no host /proc, no /etc
  (except the resolver files when egress is enabled); the sandbox's own /proc has the host-wide
  files that describe the host (/proc/sys, cmdline, kallsyms, modules, keys, timers) emptied;
- runs as nobody (uid 65534) inside, with resource limits set by prlimit(1) once inside the new
  user namespace (so the process count is the sandbox's own, not the host user's);
- under a seccomp filter (localpool/seccomp.py) that refuses the kernel interfaces a session never
  needs, handed to bwrap as --seccomp on a descriptor of its own (seccomp_descriptor());
- when the server runs as root, bwrap itself is started as nobody too, so session code never maps
  to root on the host.

The total size of the session directory is enforced by the server (localpool/disk.py measures it),
so it stays a plain host directory that outlives each sandbox and that the server can read and write
(the files API).
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localpool import seccomp
from localpool.constants import (
    BWRAP_INSTALL_COMMAND,
    DEFAULT_SESSION_CPU_SECONDS,
    DEFAULT_SESSION_DISK_MB,
    DEFAULT_SESSION_MEMORY_MB,
    DEFAULT_SESSION_OPEN_FILES,
    DEFAULT_SESSION_PROCESSES,
    MIB,
    SANDBOX_GID,
    SANDBOX_HOSTNAME,
    SANDBOX_UID,
    SESSION_MOUNT_POINT,
    SESSION_TMP_BYTES,
    SLIRP4NETNS_INSTALL_COMMAND,
    USERNS_FIX_COMMAND,
)

BWRAP = "bwrap"
PRLIMIT = "/usr/bin/prlimit"
# util-linux's too: changes to the sandbox's user before bwrap runs (see Sandbox.as_sandbox_user).
SETPRIV = "/usr/bin/setpriv"
# The sandbox's private, memory-backed /tmp (a fresh tmpfs, never the host's).
SANDBOX_TMP = "/tmp"  # noqa: S108
# Top-level host paths that are links into /usr on merged-/usr systems, directories elsewhere.
_SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SLIRP4NETNS = "slirp4netns"
# What name resolution and TLS need when egress is enabled (resolv.conf is the sandbox's own, below).
_NETWORK_FILES = ("/etc/hosts", "/etc/nsswitch.conf", "/etc/ssl", "/etc/ca-certificates")
_RESOLV_CONF = "/etc/resolv.conf"
# slirp4netns's built-in DNS forwarder in its default network 10.0.2.0/24 (the sandbox is 10.0.2.100).
SLIRP_DNS = "10.0.2.3"
SLIRP_TAP = "tap0"
# The largest MTU slirp4netns allows: fewer, larger packets through the user-mode stack.
_SLIRP_MTU = 65520
# How long bwrap may take to report its namespaces and slirp4netns to configure the network.
_NETWORK_START_TIMEOUT_SECONDS = 10.0
_INFO_MAX_BYTES = 4096
# How often to look whether bwrap has given the sandbox's loopback its address (see wait_for_loopback).
_LOOPBACK_POLL_SECONDS = 0.001
# ioctl(2) on a namespace descriptor: a descriptor of the user namespace that owns it (linux/nsfs.h).
_NS_GET_USERNS = 0xB701
# util-linux unshare(1): a new mount namespace with every mount made private.
_PRIVATE_MOUNTS = ("/usr/bin/unshare", "--mount", "--propagation", "private", "--")
# Host-wide files of the sandbox's fresh /proc that tell session code about the host (its boot
# command line, kernel symbols and modules, keys, timers): each is covered by an empty /dev/null.
_MASKED_PROC_FILES = ("cmdline", "kallsyms", "modules", "keys", "key-users", "timer_list", "sched_debug", "kcore")
# The host's kernel settings (/proc/sys, read-only in bwrap's /proc) are hidden by an empty read-only tmpfs.
_PROC_SYS = "/proc/sys"
_EMPTY_TMPFS_BYTES = 4096
_PROBE_TIMEOUT_SECONDS = 10.0
# bwrap's words when the kernel refuses it a user namespace (sysctl, AppArmor, seccomp of a container).
_USERNS_REFUSALS = ("user namespace", "uid map", "permission denied", "operation not permitted", "no permissions")


def wait_for_loopback(pid: int, deadline: float) -> None:
    """Return once the network namespace of pid has 127.0.0.1; RuntimeError if pid ends or time runs out.

    bwrap reports the sandbox's pid before its child gives the loopback its address (RTM_NEWADDR, with
    NLM_F_EXCL). slirp4netns --configure brings lo up, and the kernel then adds 127.0.0.1 itself: if
    that comes first, bwrap's request fails and the sandbox dies ("loopback: Failed RTM_NEWADDR").
    So slirp4netns starts only once the address is there, as the namespace's routing table shows it.
    """
    table = f"/proc/{pid}/net/fib_trie"
    while True:
        try:
            with open(table, encoding="ascii") as handle:
                if "127.0.0.1" in handle.read():
                    return
        except OSError as error:
            raise RuntimeError(f"the sandbox ended before its loopback was set up ({error.strerror})") from error
        if time.monotonic() >= deadline:
            raise RuntimeError("bwrap did not set up the sandbox's loopback in time")
        time.sleep(_LOOPBACK_POLL_SECONDS)


@functools.cache
def _bwrap_version(bwrap: str) -> str:
    """bwrap's version, e.g. ``0.8.0`` (empty when it does not say)."""
    try:
        said = subprocess.run(  # noqa: S603 - the configured bwrap, fixed arguments
            [bwrap, "--version"], capture_output=True, text=True, timeout=_PROBE_TIMEOUT_SECONDS, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return said.split()[-1] if said.split() else ""


class SandboxUnavailableError(RuntimeError):
    """bubblewrap is missing or cannot create namespaces here; the message names the fix."""


class UserNetwork:
    """The outbound-only network of an EgressEnabled sandbox: slirp4netns attached to its namespace.

    Made before bwrap starts (the descriptors bwrap inherits), attached once it runs (attach()),
    closed with the sandbox (close(): slirp4netns also exits when the pool does, by its exit fd).
    """

    def __init__(self, slirp4netns: str) -> None:
        """Create the pipes bwrap reports its namespaces on and reads the sandbox's resolv.conf from."""
        self._slirp4netns = slirp4netns
        self._info_read, self.info_fd = os.pipe()
        self.resolv_fd, resolv_write = os.pipe()
        os.write(resolv_write, f"nameserver {SLIRP_DNS}\n".encode())
        os.close(resolv_write)
        self._exit_read, self._exit_write = os.pipe()
        self._process: subprocess.Popen[bytes] | None = None
        # close() can come from a request thread and the reaper at once: descriptors are closed once.
        self._lock = threading.Lock()

    @property
    def pass_fds(self) -> tuple[int, int]:
        """The descriptors bwrap must inherit."""
        return self.info_fd, self.resolv_fd

    def bwrap_args(self) -> list[str]:
        """bwrap options: report the namespaces on info_fd; /etc/resolv.conf names slirp4netns's DNS."""
        return ["--info-fd", str(self.info_fd), "--ro-bind-data", str(self.resolv_fd), _RESOLV_CONF]

    def attach(self) -> None:
        """Start slirp4netns on the running sandbox's network namespace; RuntimeError if it cannot."""
        os.close(self.info_fd)
        os.close(self.resolv_fd)
        self.info_fd = self.resolv_fd = -1
        deadline = time.monotonic() + _NETWORK_START_TIMEOUT_SECONDS
        info = b""
        while not info.rstrip().endswith(b"}") and len(info) < _INFO_MAX_BYTES:
            if not select.select([self._info_read], [], [], max(0.0, deadline - time.monotonic()))[0]:
                break
            chunk = os.read(self._info_read, _INFO_MAX_BYTES)
            if not chunk:
                break
            info += chunk
        try:
            child = int(json.loads(info)["child-pid"])
        except (ValueError, KeyError, TypeError) as error:
            raise RuntimeError("bwrap did not report the sandbox's process id") from error
        wait_for_loopback(child, deadline)
        ready_read, ready_write = os.pipe()
        # When the pool runs as root, slirp4netns runs as root too (it opens /dev/net/tun), confined by
        # its own --enable-sandbox and --enable-seccomp, in a mount namespace of its own whose mounts are
        # private first: its sandbox unmounts the old root, which must not reach the host's shared
        # mounts (it would unmount every /run/netns entry). Otherwise it joins the sandbox's user namespace.
        # The network namespace is reached by a descriptor (no pid reuse race); a non-root slirp4netns
        # joins the user namespace that owns it (NS_GET_USERNS), not bwrap's nested one for
        # --disable-userns, where it would have no rights over the network namespace.
        netns = os.open(f"/proc/{child}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        passed = [netns]
        prefix: list[str] = []
        userns: list[str] = []
        if os.geteuid() == 0:
            prefix = [*_PRIVATE_MOUNTS]
        else:
            owner = fcntl.ioctl(netns, _NS_GET_USERNS)
            passed.append(owner)
            userns = [f"--userns-path=/proc/self/fd/{owner}"]
        command = [
            *prefix,
            self._slirp4netns,
            *userns,
            "--configure",
            f"--mtu={_SLIRP_MTU}",
            "--disable-host-loopback",
            "--enable-sandbox",
            "--enable-seccomp",
            f"--exit-fd={self._exit_read}",
            f"--ready-fd={ready_write}",
            "--netns-type=path",
            f"/proc/self/fd/{netns}",
            SLIRP_TAP,
        ]
        try:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argument list
                command,
                pass_fds=(self._exit_read, ready_write, *passed),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        finally:
            os.close(ready_write)
            for fd in passed:
                os.close(fd)
        try:
            ready = select.select([ready_read], [], [], max(0.0, deadline - time.monotonic()))[0]
            if not ready or os.read(ready_read, 1) != b"1":
                said = b""
                if self._process.poll() is not None and self._process.stderr is not None:
                    said = self._process.stderr.read()[-500:]
                told = said.decode(errors="replace").strip() or "no message"
                raise RuntimeError(f"slirp4netns did not configure the network ({told})")
        finally:
            os.close(ready_read)
        # Its stderr is not read any more: slirp4netns writes little, and nothing once running.
        if self._process.stderr is not None:
            self._process.stderr.close()

    def close(self) -> None:
        """Stop slirp4netns and close every descriptor."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        for fd in (self.info_fd, self.resolv_fd, self._info_read, self._exit_write, self._exit_read):
            if fd >= 0:
                os.close(fd)
        self.info_fd = self.resolv_fd = self._info_read = self._exit_write = self._exit_read = -1
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            self._process = None


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one session's sandbox (defaults in localpool/constants.py)."""

    memory_mb: int = DEFAULT_SESSION_MEMORY_MB
    cpu_seconds: int = DEFAULT_SESSION_CPU_SECONDS
    processes: int = DEFAULT_SESSION_PROCESSES
    open_files: int = DEFAULT_SESSION_OPEN_FILES
    disk_mb: int = DEFAULT_SESSION_DISK_MB

    @property
    def disk_bytes(self) -> int:
        """The total disk limit of the session directory in bytes."""
        return self.disk_mb * MIB

    def prlimit_args(self) -> list[str]:
        """prlimit(1) options setting each limit (soft = hard, so session code cannot raise them)."""
        return [
            f"--as={_UNLIMITED}",  # address space stays free: WebAssembly and fetch reserve large ranges
            f"--data={self.memory_mb * MIB}",
            f"--cpu={self.cpu_seconds}",
            f"--nproc={self.processes}",
            f"--nofile={self.open_files}",
            # One byte past the limit: a file that would outgrow it alone is cut there, and the server's
            # measurement after the execution sees the breach (at the limit, it would see none).
            f"--fsize={self.disk_bytes + 1}",
            "--core=0",
        ]


_UNLIMITED = "unlimited"


@dataclass(frozen=True)
class RuntimeCommand:
    """What a runtime needs from the sandbox: its command line, read-only binds and environment.

    argv uses paths as seen inside the sandbox; ro_binds maps host paths to where they appear
    inside (the same path when None).
    """

    argv: Sequence[str]
    ro_binds: Mapping[str, str | None] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sandbox:
    """How sessions are contained: bubblewrap with limits, or (trusted code only) not at all."""

    limits: SandboxLimits = field(default_factory=SandboxLimits)
    egress: bool = False
    enabled: bool = True
    bwrap: str = BWRAP
    slirp4netns: str = SLIRP4NETNS

    def network(self) -> UserNetwork | None:
        """The user-mode network a new sandbox needs (EgressEnabled), or None."""
        return UserNetwork(self.slirp4netns) if self.enabled and self.egress else None

    @property
    def drops_root(self) -> bool:
        """Whether sandboxes are started as nobody because the server runs as root."""
        return self.enabled and os.geteuid() == 0

    def check(self, directory: Path | None = None) -> None:
        """Raise SandboxUnavailableError unless bwrap is installed and can create its namespaces.

        directory: also check that the sandbox's user can reach this host directory (the pool's root).
        """
        if not self.enabled:
            return
        found = shutil.which(self.bwrap)
        if found is None:
            raise SandboxUnavailableError(
                f"bubblewrap (bwrap) is not installed, and the local pool runs session code only inside "
                f"its sandbox: install it with '{BWRAP_INSTALL_COMMAND}' (as root)."
            )
        if self.egress and shutil.which(self.slirp4netns) is None:
            raise SandboxUnavailableError(
                "EgressEnabled sessions get their own outbound-only network from slirp4netns, which is not "
                f"installed: install it with '{SLIRP4NETNS_INSTALL_COMMAND}' (as root)."
            )
        try:
            filter_fd = self.seccomp_descriptor()
        except seccomp.SeccompUnavailableError as error:
            raise SandboxUnavailableError(str(error)) from error
        assert filter_fd is not None
        binds = ["--ro-bind", str(directory), SESSION_MOUNT_POINT] if directory is not None else []
        # The probe runs under the filter too: a kernel that refuses it is a sandbox that cannot start.
        probe = [found, *self._namespace_args(), *self._seccomp_args(filter_fd), *self._system_binds(), *binds]
        command, as_user = self.as_sandbox_user([*probe, "--", "/usr/bin/true"])
        try:
            completed = subprocess.run(  # noqa: S603 - fixed argument list
                command,
                capture_output=True,
                text=True,
                timeout=_PROBE_TIMEOUT_SECONDS,
                check=False,
                pass_fds=(filter_fd,),
                **as_user,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SandboxUnavailableError(f"bubblewrap ({found}) could not be run: {error}.") from error
        finally:
            os.close(filter_fd)
        if completed.returncode != 0:
            said = completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else "no message"
            if directory is not None:
                raise SandboxUnavailableError(
                    f"The sandbox's user (uid {SANDBOX_UID}) cannot reach the pool's directory {directory} "
                    f"(bwrap said: {said}); let it pass through every parent directory (chmod o+x) or "
                    "point TMPDIR at a directory that allows it."
                )
            if any(word in said.lower() for word in _USERNS_REFUSALS):
                raise SandboxUnavailableError(
                    f"bubblewrap cannot create user namespaces here (it said: {said}); allow them, e.g. on "
                    f"Ubuntu 24.04 with 'sudo {USERNS_FIX_COMMAND}'."
                )
            raise SandboxUnavailableError(f"bubblewrap failed to start a test sandbox (it said: {said}).")

    def describe(self) -> dict[str, str]:
        """What GET metadata lists beside the runtime: bubblewrap and the seccomp filter (nothing without them)."""
        if not self.enabled:
            return {}
        return {"bubblewrap": _bwrap_version(self.bwrap), "seccomp": f"libseccomp {seccomp.libseccomp_version()}"}

    def seccomp_descriptor(self) -> int | None:
        """A new descriptor of the seccomp filter for one bwrap (None without a sandbox).

        The caller passes it to bwrap (pass_fds) and closes it once bwrap has started;
        SeccompUnavailableError when libseccomp cannot build the filter.
        """
        return seccomp.descriptor() if self.enabled else None

    def as_sandbox_user(self, command: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
        """The command and subprocess.Popen arguments that start bwrap as nobody when the server runs as root.

        Through setpriv when it is installed: Popen's own user, group and groups switch cannot use vfork, so
        it forks the whole pool process (page tables of every thread and buffer, with the interpreter lock
        held: 19 ms per sandbox for a pool of 80 MiB and 200 threads, 1.3 ms with vfork); setpriv, which
        Popen starts with vfork, sets the real, effective and saved ids and the groups, then runs bwrap.
        """
        if not self.drops_root:
            return list(command), {}
        if os.access(SETPRIV, os.X_OK):
            ids = ["--reuid", str(SANDBOX_UID), "--regid", str(SANDBOX_GID), "--clear-groups"]
            return [SETPRIV, *ids, "--", *command], {}
        return list(command), {"user": SANDBOX_UID, "group": SANDBOX_GID, "extra_groups": []}

    def prepare_directory(self, path: Path, *, private: bool = True) -> None:
        """Make a host directory usable by the sandbox's user (it owns session directories)."""
        if not self.drops_root:
            return
        if private:
            os.chown(path, SANDBOX_UID, SANDBOX_GID)
            path.chmod(0o700)
        else:
            # The pool's root: nobody may pass through it to its own session directory, not list it.
            path.chmod(0o711)

    def command(
        self,
        runtime: RuntimeCommand,
        session_dir: Path,
        network: UserNetwork | None = None,
        seccomp_fd: int | None = None,
    ) -> list[str]:
        """The full command line running runtime in a sandbox with session_dir at /mnt/data.

        network: the sandbox's user-mode network (from network()), when egress is enabled.
        seccomp_fd: the filter's descriptor (from seccomp_descriptor()), required with a sandbox.
        """
        if not self.enabled:
            return list(runtime.argv)
        if seccomp_fd is None:
            raise ValueError("a sandboxed command needs the seccomp filter's descriptor (seccomp_descriptor())")
        args = [self.bwrap, *self._namespace_args(), *self._seccomp_args(seccomp_fd), *self._system_binds()]
        if network is not None:
            for path in _NETWORK_FILES:
                args += ["--ro-bind-try", path, path]
            args += network.bwrap_args()
        args += ["--proc", "/proc"]
        for name in _MASKED_PROC_FILES:
            # The sandbox's /proc is the same kernel's: a file missing on the host is missing inside.
            if os.path.exists(f"/proc/{name}"):
                args += ["--dev-bind", "/dev/null", f"/proc/{name}"]
        args += ["--size", str(_EMPTY_TMPFS_BYTES), "--perms", "0555", "--tmpfs", _PROC_SYS]
        args += [
            "--dev",
            "/dev",
            "--size",
            str(SESSION_TMP_BYTES),
            "--perms",
            "1777",
            "--tmpfs",
            SANDBOX_TMP,
        ]
        # After the private /tmp, so that a runtime installed under /tmp (a venv) is not hidden by it.
        for host, inside in runtime.ro_binds.items():
            args += ["--ro-bind", host, inside or host]
        args += [
            "--bind",
            str(session_dir),
            SESSION_MOUNT_POINT,
            "--chdir",
            SESSION_MOUNT_POINT,
            "--clearenv",
        ]
        # bwrap's root and /dev are memory-backed and writable by the sandbox's user: made read-only,
        # so the only writable places are /mnt/data and the size-limited /tmp.
        args += ["--remount-ro", "/dev", "--remount-ro", "/", "--remount-ro", _PROC_SYS]
        for name, value in {"HOME": SESSION_MOUNT_POINT, "TMPDIR": SANDBOX_TMP, **runtime.env}.items():
            args += ["--setenv", name, value]
        return [*args, "--", PRLIMIT, *self.limits.prlimit_args(), "--", *runtime.argv]

    def _namespace_args(self) -> list[str]:
        args = [
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_GID),
            "--hostname",
            SANDBOX_HOSTNAME,
        ]
        return args

    @staticmethod
    def _seccomp_args(seccomp_fd: int) -> list[str]:
        return ["--seccomp", str(seccomp_fd)]

    @staticmethod
    def _system_binds() -> list[str]:
        args = ["--ro-bind", "/usr", "/usr"]
        for path in _SYSTEM_LINKS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        return args
