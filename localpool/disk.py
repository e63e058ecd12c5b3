"""Measuring a session's disk use: its /mnt/data directory plus the files its sandbox holds deleted.

The session directory is a plain host directory (files must survive the sandboxes that come and
go: a timeout kills one and the next execution starts another; uploads can come before the first),
so its total size is measured rather than reserved. The measurement is made to be sound:

- the tree is walked from directory file descriptors (``openat`` with ``O_NOFOLLOW``), so a path
  that is short inside but longer than PATH_MAX on the host is measured like any other;
- any error other than an entry vanishing while it is walked makes the measurement incomplete,
  which the caller treats as a breach (a session cannot hide files by making the walk fail);
- files that sandbox processes keep open (or mapped) after unlinking them are counted too, found
  through ``/proc/<pid>/fd`` and ``/proc/<pid>/maps`` of every process of the sandbox.

It runs as every execution finishes, so it is kept cheap: /proc is read in one pass with few system
calls, a process whose threads have not run since it was last inspected (bwrap and its init,
waiting on their child) is not inspected again while it held nothing deleted, and the sandbox's
processes are not inspected at all while an inotify watch on every directory of the tree says no
file in it can have become a held deleted one (TreeWatch).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from inotify_simple import INotify
from inotify_simple import flags as inotify_flags

# How the session directory and its subdirectories are opened: never through a link.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_BLOCK_BYTES = 512
# Entries disappearing while walked (session code deletes as the server measures) are not errors.
_VANISHED = (errno.ENOENT, errno.ESRCH)
# /proc/<pid>/task/<tid>/children and schedstat are short: one read this big takes them whole.
_PROC_READ_BYTES = 64 * 1024
_PAGE_BYTES = 4096
# What the kernel appends to the path of a file that was unlinked (in /proc/<pid>/maps and fd links).
_DELETED = b"(deleted)"


@dataclass(frozen=True)
class DiskUsage:
    """What a session's files take: bytes allocated, entries, and why the count is incomplete (if it is)."""

    used_bytes: int
    entries: int
    problem: str = ""


def directory_usage(
    path: Path | int, max_entries: int, on_directory: Callable[[int, bool], None] | None = None
) -> DiskUsage:
    """Bytes allocated and entries under path, walked by directory descriptors, links not followed.

    path: the directory, or a descriptor open on it (left open; its offset is back at the start after).
    Stops once past max_entries. problem is set when part of the tree could not be measured.
    on_directory: called with the descriptor of every directory walked before it is listed, and whether it is the root.
    """
    used = 0
    entries = 0
    if isinstance(path, int):
        root, given = path, path
    else:
        given = -1
        try:
            root = os.open(path, DIR_FLAGS)
        except OSError as error:
            return DiskUsage(0, 0, f"cannot open the session directory: {error.strerror}")
    pending = [root]
    at_root = True
    problem = ""
    try:
        while pending and entries <= max_entries and not problem:
            fd = pending.pop()
            try:
                if on_directory is not None:
                    # Not by number: a later directory's descriptor may reuse the root's once it is closed.
                    on_directory(fd, at_root)
                at_root = False
                with os.scandir(fd) as listing:
                    for entry in listing:
                        entries += 1
                        try:
                            info = entry.stat(follow_symlinks=False)
                        except OSError as error:
                            if error.errno in _VANISHED:
                                continue
                            problem = f"cannot measure {entry.name!r}: {error.strerror}"
                            break
                        used += info.st_blocks * _BLOCK_BYTES
                        if stat.S_ISDIR(info.st_mode):
                            try:
                                pending.append(os.open(entry.name, DIR_FLAGS, dir_fd=fd))
                            except OSError as error:
                                if error.errno not in _VANISHED:
                                    problem = f"cannot enter {entry.name!r}: {error.strerror}"
                                    break
            except OSError as error:
                problem = f"cannot list a directory: {error.strerror}"
            finally:
                if fd != given:
                    os.close(fd)
    finally:
        for fd in pending:
            if fd != given:
                os.close(fd)
    return DiskUsage(used, entries, problem)


class SandboxSnapshot(NamedTuple):
    """The processes of a sandbox and what each one's threads had run, read in one pass over /proc.

    threads[pid] is ((thread id, nanoseconds it has run), ...) sorted. Unchanged between two snapshots
    means no thread ran, started or ended: nothing in the sandbox can have written a byte, opened a
    descriptor or mapped a file (the scheduler's run time is exact, unlike clock ticks).
    """

    pids: tuple[int, ...]
    threads: dict[int, tuple[tuple[int, int], ...]]

    @property
    def shape(self) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
        """The processes and their threads, without run times."""
        return self.pids, tuple(tuple(task for task, _ in self.threads[pid]) for pid in self.pids)

    @property
    def activity(self) -> tuple[tuple[int, ...], tuple[tuple[tuple[int, int], ...], ...]]:
        """The whole sandbox's activity: equal for two snapshots when nothing in it ran."""
        return self.pids, tuple(self.threads[pid] for pid in self.pids)


class _Dirent(ctypes.Structure):
    """struct dirent of Linux's C library (glibc and musl alike)."""

    _fields_ = (
        ("d_ino", ctypes.c_uint64),
        ("d_off", ctypes.c_int64),
        ("d_reclen", ctypes.c_ushort),
        ("d_type", ctypes.c_ubyte),
        ("d_name", ctypes.c_char * 256),
    )


class _HeldLockProc:
    """Reads of small /proc files and descriptor links without releasing the interpreter lock.

    os.open/os.read/os.readlink release it around every system call; a measurement makes dozens of
    calls of a few microseconds each, and with many request threads waiting every release hands the
    lock over and back (two context switches per call, most of the pool's CPU under load). These
    calls never wait on the measured process (unlike /proc/<pid>/maps, which is read normally).
    """

    def __init__(self) -> None:
        self._libc = ctypes.PyDLL(None, use_errno=True)  # PyDLL: the lock is held during the call
        self._libc.open.argtypes, self._libc.open.restype = [ctypes.c_char_p, ctypes.c_int], ctypes.c_int
        self._libc.read.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
        self._libc.read.restype = ctypes.c_ssize_t
        self._libc.close.argtypes, self._libc.close.restype = [ctypes.c_int], ctypes.c_int
        self._libc.readlink.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
        self._libc.readlink.restype = ctypes.c_ssize_t
        self._libc.opendir.argtypes, self._libc.opendir.restype = [ctypes.c_char_p], ctypes.c_void_p
        self._libc.readdir.argtypes, self._libc.readdir.restype = [ctypes.c_void_p], ctypes.POINTER(_Dirent)
        self._libc.closedir.argtypes, self._libc.closedir.restype = [ctypes.c_void_p], ctypes.c_int
        self._buffers = threading.local()

    def _buffer(self) -> ctypes.Array[ctypes.c_char]:
        buffer = getattr(self._buffers, "buffer", None)
        if buffer is None:
            buffer = self._buffers.buffer = ctypes.create_string_buffer(_PROC_READ_BYTES)
        return buffer

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None when it cannot be read (e.g. the process ended)."""
        fd = self._libc.open(os.fsencode(path), os.O_RDONLY | os.O_CLOEXEC)
        if fd < 0:
            return None
        try:
            buffer, data = self._buffer(), b""
            while True:
                count = self._libc.read(fd, buffer, _PROC_READ_BYTES)
                if count < 0:
                    return None
                data += ctypes.string_at(buffer, count)
                # A read shorter than a page is the whole file; a longer one may have stopped at a page.
                if count < _PAGE_BYTES:
                    return data
        finally:
            self._libc.close(fd)

    def listdir(self, path: str) -> list[str] | None:
        """The names in a /proc directory (without . and ..), or None when it cannot be listed."""
        directory = self._libc.opendir(os.fsencode(path))
        if not directory:
            return None
        names: list[str] = []
        try:
            ctypes.set_errno(0)
            while entry := self._libc.readdir(directory):
                name = entry.contents.d_name
                if name not in (b".", b".."):
                    names.append(os.fsdecode(name))
            return None if ctypes.get_errno() else names
        finally:
            self._libc.closedir(directory)

    def readlink(self, path: str) -> str | None:
        """Where the link points, or None when it cannot be read."""
        buffer = self._buffer()
        count = self._libc.readlink(os.fsencode(path), buffer, _PROC_READ_BYTES)
        return os.fsdecode(ctypes.string_at(buffer, count)) if count >= 0 else None


_PROC = _HeldLockProc()
_read = _PROC.read


def sandbox_snapshot(pid: int) -> SandboxSnapshot:
    """pid and all its descendants (through /proc/<pid>/task/<tid>/children), with every thread's run time."""
    found: list[int] = []
    threads: dict[int, tuple[tuple[int, int], ...]] = {}
    pending = [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        tasks = _PROC.listdir(f"/proc/{current}/task") or []
        runs: list[tuple[int, int]] = []
        for task in tasks:
            children = _read(f"/proc/{current}/task/{task}/children")
            if children:
                pending.extend(int(child) for child in children.split())
            schedstat = _read(f"/proc/{current}/task/{task}/schedstat")
            try:
                run_nanoseconds = int(schedstat.split()[0]) if schedstat is not None else -1
            except (ValueError, IndexError):
                run_nanoseconds = -1
            runs.append((int(task), run_nanoseconds))
        threads[current] = tuple(sorted(runs))
    return SandboxSnapshot(tuple(sorted(found)), threads)


def sandbox_processes(pid: int) -> list[int]:
    """pid and all its descendants."""
    return list(sandbox_snapshot(pid).pids)


@dataclass
class HeldFiles:
    """What held_deleted_bytes found per process, to skip the processes that cannot have changed.

    For each process: its threads' run times when it was inspected and the deleted files it held
    ({inode: bytes}). Kept only while the sandbox's set of processes and threads stays the same.
    """

    shape: tuple[tuple[int, ...], tuple[tuple[int, ...], ...]] = ((), ())
    found: dict[int, tuple[tuple[tuple[int, int], ...], dict[int, int]]] = field(default_factory=dict)


def _held_by_process(pid: int, device: int, dev_text: bytes) -> dict[int, int] | OSError:
    """{inode: bytes} of the files on device that process pid holds open or mapped after they were
    unlinked, or the error that kept its /proc entries from being read."""
    descriptors = _PROC.listdir(f"/proc/{pid}/fd")
    if descriptors is None:
        return OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    maps = _read_all(f"/proc/{pid}/maps")
    if isinstance(maps, OSError):
        return maps
    sizes: dict[int, int] = {}
    for name in descriptors:
        target = _PROC.readlink(f"/proc/{pid}/fd/{name}")
        # Pipes, sockets and anonymous inodes ("pipe:[12]", "anon_inode:[eventfd]") are no files;
        # every file, on any mount, reads as a path.
        if target is None or not target.startswith("/"):
            continue
        try:
            info = os.stat(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if info.st_dev == device and info.st_nlink == 0 and stat.S_ISREG(info.st_mode):
            sizes[info.st_ino] = max(sizes.get(info.st_ino, 0), info.st_blocks * _BLOCK_BYTES)
    if _DELETED in maps:
        for line in maps.splitlines():
            # address perms offset dev inode path, e.g. "7f..-7f.. rw-s 00000000 08:01 1234 /mnt/data/x (deleted)"
            parts = line.split(maxsplit=5)
            if len(parts) < 6 or parts[3] != dev_text or not parts[5].endswith(_DELETED):
                continue
            start, end = (int(value, 16) for value in parts[0].split(b"-"))
            inode = int(parts[4])
            sizes[inode] = max(sizes.get(inode, 0), int(parts[2], 16) + end - start)
    return sizes


def _read_all(path: str) -> bytes | OSError:
    """A /proc file of any length, or the error that kept it from being read."""
    try:
        with open(path, "rb", buffering=0) as handle:
            return handle.readall()
    except OSError as error:
        return error


def held_deleted_bytes(
    snapshot: SandboxSnapshot, device: int, *, skip: Iterable[int] = (), known: HeldFiles | None = None
) -> DiskUsage:
    """Bytes of files on device that the sandbox's processes keep open or mapped after they were unlinked.

    skip: processes whose /proc entries may be unreadable and hold no session files (bwrap itself).
    known: what an earlier call found, updated here. A process whose threads have not run since it was
    inspected, and which held nothing then, is not inspected again: only its own threads can change its
    descriptors and mappings, or a process sharing them (CLONE_FILES, CLONE_VM), which ran and is
    inspected; if any process or thread came or went, every process is inspected.
    Files are counted once however many descriptors or mappings reach them; a mapping counts up to
    its end (its file's size is not readable without the descriptor).
    """
    skipped = set(skip)
    dev_text = f"{os.major(device):02x}:{os.minor(device):02x}".encode()
    if known is not None and known.shape != snapshot.shape:
        known.shape, known.found = snapshot.shape, {}
    sizes: dict[int, int] = {}
    for pid in snapshot.pids:
        threads = snapshot.threads[pid]
        previous = known.found.get(pid) if known is not None else None
        if previous is not None and previous[0] == threads and not previous[1]:
            continue
        held = _held_by_process(pid, device, dev_text)
        if isinstance(held, OSError):
            if held.errno in _VANISHED or pid in skipped:
                continue
            return DiskUsage(0, 0, f"cannot inspect sandbox process {pid}: {held.strerror}")
        if known is not None:
            known.found[pid] = (threads, held)
        for inode, size in held.items():
            sizes[inode] = max(sizes.get(inode, 0), size)
    return DiskUsage(sum(sizes.values()), len(sizes))


# What makes a file of a watched directory a deleted one someone may hold: unlinking it, renaming
# another over it (or it away), and an open, since O_TMPFILE makes a file that never had a name (its
# open is reported to the directory, as "#<inode>").
_HOLD_EVENTS = inotify_flags.DELETE | inotify_flags.MOVED_FROM | inotify_flags.MOVED_TO | inotify_flags.OPEN


class TreeWatch:
    """Tells whether a file of a session's tree can have become a deleted one a sandbox holds, so the
    sandbox's /proc entries (descriptors, mappings) need not be read after every execution.

    One inotify instance for the pool, a watch on every directory of each tree (added as the tree is
    walked: watch_directory). A tree is changed from its first check on until take_changed() is called
    with no deletion, rename or file open reported in any of its directories since the last call, and
    no directory newly watched (an unlink there before its watch existed is not reported). A watch that
    cannot be added (the user's inotify limit), or an overflowed event queue, makes the tree changed for
    good or once, i.e. the sandbox is inspected as before.
    """

    def __init__(self) -> None:
        # Without an inotify instance (the user's limit reached) every tree counts as changed at every check.
        try:
            self._inotify: INotify | None = INotify(nonblocking=True)
        except OSError:
            self._inotify = None
        self._lock = threading.Lock()
        self._owners: dict[int, str] = {}
        # Trees whose root is watched: a root (the session directory, a mount point in the sandbox) is
        # never replaced while its session lives, so its watch is not added again at every walk.
        self._roots: dict[str, int] = {}
        self._changed: set[str] = set()
        self._unwatchable: set[str] = set()

    def start(self, tree: str) -> None:
        """Begin watching a new tree (its directories are added by watch_directory): changed until checked."""
        with self._lock:
            self._changed.add(tree)

    def watch_directory(self, tree: str, fd: int, *, root: bool = False) -> None:
        """Watch the directory open as fd, a part of tree (root: its top; a directory not watched before
        changes the tree)."""
        if (root and tree in self._roots) or self._inotify is None:
            return
        try:
            wd = self._inotify.add_watch(f"/proc/self/fd/{fd}", _HOLD_EVENTS | inotify_flags.ONLYDIR)
        except (OSError, ValueError):  # ValueError: the pool closed the watch meanwhile
            with self._lock:
                self._unwatchable.add(tree)
            return
        with self._lock:
            if self._owners.get(wd) != tree:
                self._owners[wd] = tree
                self._changed.add(tree)
            if root:
                self._roots[tree] = wd

    def take_changed(self, tree: str) -> bool:
        """Whether tree changed (see the class) since the last call; the next call starts from now."""
        with self._lock:
            if self._inotify is None or self._inotify.closed:
                return True
            self._drain()
            changed = tree in self._changed or tree in self._unwatchable
            self._changed.discard(tree)
            return changed

    def forget(self, tree: str) -> None:
        """Stop tracking a tree that was removed (its watches end with its directories)."""
        with self._lock:
            if self._inotify is not None and not self._inotify.closed:
                self._drain()
            self._changed.discard(tree)
            self._unwatchable.discard(tree)
            self._roots.pop(tree, None)
            for wd in [wd for wd, owner in self._owners.items() if owner == tree]:
                del self._owners[wd]

    def close(self) -> None:
        """Release the inotify instance."""
        with self._lock:
            if self._inotify is not None:
                self._inotify.close()

    def _drain(self) -> None:
        """Read every queued event, marking the trees they concern as changed (called with the lock held)."""
        assert self._inotify is not None
        while events := self._inotify.read(timeout=0):
            for event in events:
                if event.mask & inotify_flags.Q_OVERFLOW:
                    self._changed.update(self._owners.values())
                    continue
                tree = self._owners.get(event.wd)
                if tree is None:
                    continue
                if event.mask & inotify_flags.IGNORED:
                    del self._owners[event.wd]
                    if self._roots.get(tree) == event.wd:
                        del self._roots[tree]
                        self._changed.add(tree)
                    continue
                if event.mask & inotify_flags.ISDIR and not event.mask & (
                    inotify_flags.DELETE | inotify_flags.MOVED_FROM | inotify_flags.MOVED_TO
                ):
                    continue  # a directory opened (the walk itself): no file can become held by that
                self._changed.add(tree)
