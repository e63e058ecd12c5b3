"""The system-call filter of every session sandbox: a seccomp BPF program built with libseccomp.

Namespaces hide the host, but session code still reaches the whole kernel. The filter takes the
interfaces behind most recent kernel escapes away, as Docker's default profile and Flatpak's filter do
(default allow, a refuse list): io_uring, userfaultfd, perf events, eBPF, the keyring, kexec and
modules, file handles, the mount family and the new mount API, namespace creation, ptrace,
personalities, terminal injection (TIOCSTI, TIOCLINUX) and every socket family a session never needs.

Each refused call answers an errno, never kills: ENOSYS where callers fall back to an older call
(clone3 to clone, io_uring to epoll and threads: libuv, glibc; the new mount API to mount(2)),
EAFNOSUPPORT/ESOCKTNOSUPPORT/EPROTONOSUPPORT for sockets (what a kernel without that family, type
or protocol says), EPERM for the rest, as Flatpak does, except where the kernel itself already
answers EPERM to the sandbox (privileged-only calls: kexec, modules, pivot_root, acct, syslog; ENOSYS
too where the kernel is built without them): those answer EACCES, as a security policy's refusal, so the filter's own
answer stays recognisable (tests/test_localpool_seccomp.py tells each apart). The program is built for the
native architecture only: a call of another ABI (i386's int 0x80 on x86_64, x32) answers ENOSYS, so
the rules cannot be bypassed through a second system-call table.

bubblewrap loads it (``--seccomp FD``) as the last step before it runs the sandbox's command, after
its own setup (loopback, --disable-userns), so the filter binds session code and everything it
starts. slirp4netns keeps its own filter (--enable-seccomp). pyseccomp (ctypes over libseccomp) is
imported only when a sandbox is wanted: --no-sandbox needs neither.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
from dataclasses import dataclass

from localpool.constants import LIBSECCOMP_INSTALL_COMMAND

# libseccomp's comparison operators (enum scmp_compare).
_NE = 1
_GE = 5
_EQ = 4
_MASKED_EQ = 7
# The kernel reads int and unsigned int arguments as 32 bits; the register holds 64 (CVE-2019-10063).
_LOW_32_BITS = 0xFFFFFFFF

# clone(2) namespace flags (linux/sched.h); CLONE_NEWTIME shares its bit with clone's exit signal.
_CLONE_NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
# Terminal ioctls that act on another process's input or console (asm-generic/ioctls.h).
TIOCSTI = 0x5412
TIOCLINUX = 0x541C
# The only personality allowed: Linux's default (PER_LINUX), what every process starts with.
PER_LINUX = 0
# Socket families a session keeps (linux/socket.h): Unix, IPv4, IPv6 and netlink (NETLINK_ROUTE only).
AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10
AF_NETLINK = 16
ALLOWED_SOCKET_FAMILIES = (AF_UNIX, AF_INET, AF_INET6, AF_NETLINK)
# One past the highest family this libseccomp's kernel headers know (AF_MCTP = 45); above it all refused.
_AF_MAX = 46
SOCK_RAW = 3
_SOCK_TYPE_MASK = 0xF
NETLINK_ROUTE = 0


@dataclass(frozen=True)
class Rule:
    """One refusal: the call, the errno it answers and (optionally) the argument test that selects it.

    compare: (argument index, operator, datum, mask-or-second datum) tuples, all of which must hold.
    """

    syscall: str
    errno: int
    compare: tuple[tuple[int, int, int, int], ...] = ()
    why: str = ""


def _calls(names: str, code: int, why: str) -> list[Rule]:
    return [Rule(name, code, (), why) for name in names.split()]


def _rules() -> list[Rule]:
    # The clone(2) flags argument is the first on every architecture this pool runs on (x86_64, aarch64).
    rules = [
        *_calls("io_uring_setup io_uring_enter io_uring_register", errno.ENOSYS, "io_uring (kCTF findings)"),
        *_calls("userfaultfd", errno.EPERM, "stalls kernel threads on a page fault (race exploits)"),
        *_calls("perf_event_open", errno.EPERM, "perf events"),
        *_calls("bpf", errno.EPERM, "eBPF"),
        *_calls("add_key keyctl request_key", errno.EPERM, "the kernel keyring is not namespaced"),
        *_calls("kexec_load kexec_file_load", errno.EACCES, "kexec (privileged only)"),
        *_calls("init_module finit_module delete_module", errno.EACCES, "module loading (privileged only)"),
        *_calls("open_by_handle_at name_to_handle_at", errno.EPERM, "file handles escape bind mounts"),
        *_calls("mount umount umount2 chroot", errno.EPERM, "the mount family"),
        *_calls("pivot_root", errno.EACCES, "the mount family (privileged only)"),
        *_calls(
            "open_tree open_tree_attr move_mount fsopen fsconfig fsmount fspick mount_setattr",
            errno.ENOSYS,
            "the new mount API (CVE-2021-41133): ENOSYS makes callers fall back to mount(2), refused above",
        ),
        *_calls("unshare setns", errno.EPERM, "namespace creation and entry"),
        *_calls("clone3", errno.ENOSYS, "its flags are in memory, out of a filter's reach: glibc falls back to clone"),
        *_calls("ptrace", errno.EPERM, "ptrace"),
        *_calls("syslog", errno.EACCES, "the host's kernel log (privileged where dmesg_restrict is set)"),
        *_calls("uselib", errno.EPERM, "a.out libraries, obsolete (Flatpak's list)"),
        *_calls("acct", errno.EACCES, "process accounting (privileged only; Flatpak's list)"),
        *_calls("quotactl", errno.EPERM, "disk quotas of the host's file systems (Flatpak's list)"),
        *_calls("move_pages mbind get_mempolicy set_mempolicy migrate_pages", errno.EPERM, "NUMA (Flatpak's list)"),
        Rule("personality", errno.EPERM, ((0, _NE, PER_LINUX, 0),), "personalities (ASLR off, READ_IMPLIES_EXEC)"),
    ]
    for name, flag in _CLONE_NAMESPACE_FLAGS.items():
        rules.append(Rule("clone", errno.EPERM, ((0, _MASKED_EQ, flag, flag),), f"clone with {name}"))
    for request, why in ((TIOCSTI, "TIOCSTI types into a terminal"), (TIOCLINUX, "TIOCLINUX (CVE-2023-28100)")):
        rules.append(Rule("ioctl", errno.EPERM, ((1, _MASKED_EQ, _LOW_32_BITS, request),), why))
    # Families above the kept ones, with or without high bits (any value >= _AF_MAX as 64 bits).
    rules.append(Rule("socket", errno.EAFNOSUPPORT, ((0, _GE, _AF_MAX, 0),), "socket families a session never needs"))
    for family in range(AF_UNIX + 1, _AF_MAX):
        if family not in ALLOWED_SOCKET_FAMILIES:
            rules.append(Rule("socket", errno.EAFNOSUPPORT, ((0, _EQ, family, 0),), f"socket family {family}"))
    for family in (AF_INET, AF_INET6):
        raw = ((0, _EQ, family, 0), (1, _MASKED_EQ, _SOCK_TYPE_MASK, SOCK_RAW))
        rules.append(Rule("socket", errno.ESOCKTNOSUPPORT, raw, "raw IP sockets"))
    netlink = ((0, _EQ, AF_NETLINK, 0), (2, _NE, NETLINK_ROUTE, 0))
    rules.append(Rule("socket", errno.EPROTONOSUPPORT, netlink, "netlink protocols other than NETLINK_ROUTE"))
    return rules


RULES = _rules()
# System calls newer than libseccomp 2.5.4's tables: numbers from 424 on are the same on every
# architecture but alpha (the kernel's unified syscall table since Linux 5.1).
_NUMBERS_NEWER_THAN_LIBSECCOMP = {"open_tree_attr": 467}


class SeccompUnavailableError(RuntimeError):
    """libseccomp (or its Python binding) is missing or refused the filter; the message names the fix."""


@functools.cache
def program() -> bytes:
    """The filter as a BPF program for bwrap --seccomp (built once); SeccompUnavailableError if it cannot be."""
    try:
        import pyseccomp  # only a sandboxed pool needs libseccomp
    except (ImportError, RuntimeError) as error:
        raise SeccompUnavailableError(
            f"the seccomp filter of every sandbox cannot be built ({error}): install libseccomp with "
            f"'{LIBSECCOMP_INSTALL_COMMAND}' (as root) and pyseccomp with 'pip install -r requirements.txt'."
        ) from error
    try:
        built = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
        # Another ABI's calls would skip every rule below: refused as a whole.
        built.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.ERRNO(errno.ENOSYS))
        for rule in RULES:
            number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, rule.syscall)
            if number == -1:
                number = _NUMBERS_NEWER_THAN_LIBSECCOMP.get(rule.syscall, -1)
            if number == -1:
                raise OSError(errno.ENOSYS, f"libseccomp does not know the system call {rule.syscall}")
            arguments = [pyseccomp.Arg(arg, op, a, b) for arg, op, a, b in rule.compare]
            built.add_rule(pyseccomp.ERRNO(rule.errno), number, *arguments)
        read_fd = os.memfd_create("localpool-seccomp-export", os.MFD_CLOEXEC)
        with os.fdopen(read_fd, "w+b") as exported:
            built.export_bpf(exported)
            exported.seek(0)
            return exported.read()
    except OSError as error:
        raise SeccompUnavailableError(
            f"libseccomp could not build the seccomp filter of every sandbox ({error.strerror or error}): "
            f"install a current libseccomp with '{LIBSECCOMP_INSTALL_COMMAND}' (as root)."
        ) from error


@functools.cache
def libseccomp_version() -> str:
    """The version of the libseccomp that builds the filter, e.g. ``2.5.4`` (empty when unknown)."""

    class _Version(ctypes.Structure):
        _fields_ = (("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint))

    found = ctypes.util.find_library("seccomp")
    if found is None:
        return ""
    library = ctypes.CDLL(found)
    library.seccomp_version.restype = ctypes.POINTER(_Version)
    version = library.seccomp_version().contents
    return f"{version.major}.{version.minor}.{version.micro}"


def descriptor() -> int:
    """A new descriptor holding the program, for one bwrap to read (the caller closes it once bwrap runs).

    One per sandbox: bwrap reads from the descriptor's offset, which a shared one would move for all.
    """
    fd = os.memfd_create("localpool-seccomp", os.MFD_CLOEXEC)
    try:
        os.write(fd, program())
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
