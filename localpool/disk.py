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
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

# How the session directory and its subdirectories are opened: never through a link.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_BLOCK_BYTES = 512
# Entries disappearing while walked (session code deletes as the server measures) are not errors.
_VANISHED = (errno.ENOENT, errno.ESRCH)


@dataclass(frozen=True)
class DiskUsage:
    """What a session's files take: bytes allocated, entries, and why the count is incomplete (if it is)."""

    used_bytes: int
    entries: int
    problem: str = ""


def directory_usage(path: Path, max_entries: int) -> DiskUsage:
    """Bytes allocated and entries under path, walked by directory descriptors, links not followed.

    Stops once past max_entries. problem is set when part of the tree could not be measured.
    """
    used = 0
    entries = 0
    try:
        root = os.open(path, DIR_FLAGS)
    except OSError as error:
        return DiskUsage(0, 0, f"cannot open the session directory: {error.strerror}")
    pending = [root]
    problem = ""
    try:
        while pending and entries <= max_entries and not problem:
            fd = pending.pop()
            try:
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
                os.close(fd)
    finally:
        for fd in pending:
            os.close(fd)
    return DiskUsage(used, entries, problem)


def sandbox_processes(pid: int) -> list[int]:
    """pid and all its descendants (through /proc/<pid>/task/<tid>/children)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for task in _task_files(current, "children"):
            if task.text is not None:
                pending.extend(int(child) for child in task.text.split())
    return found


class _TaskFile(NamedTuple):
    """One thread's /proc/<pid>/task/<tid>/<name>: its text, or None when it could not be read."""

    task: int
    text: str | None


def _task_files(pid: int, name: str) -> list[_TaskFile]:
    """The file `name` of every thread of pid; none when pid has ended."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    files: list[_TaskFile] = []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/{name}", encoding="ascii") as handle:
                text: str | None = handle.read()
        except OSError:
            text = None
        files.append(_TaskFile(int(task), text))
    return files


def activity(pids: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """(thread id, nanoseconds it has run) of every thread of the processes.

    Unchanged between two calls means no thread ran, started or ended: nothing in the sandbox can
    have written a byte (the scheduler's run time is exact, unlike clock ticks).
    """
    found: list[tuple[int, int]] = []
    for pid in pids:
        for task in _task_files(pid, "schedstat"):
            try:
                run_nanoseconds = int(task.text.split()[0]) if task.text is not None else -1
            except (ValueError, IndexError):
                run_nanoseconds = -1
            found.append((task.task, run_nanoseconds))
    return tuple(sorted(found))


def held_deleted_bytes(pids: Iterable[int], device: int, *, skip: Iterable[int] = ()) -> DiskUsage:
    """Bytes of files on device that the processes keep open or mapped after they were unlinked.

    skip: processes whose /proc entries may be unreadable and hold no session files (bwrap itself).
    Files are counted once however many descriptors or mappings reach them; a mapping counts up to
    its end (its file's size is not readable without the descriptor).
    """
    sizes: dict[int, int] = {}
    skipped = set(skip)
    dev_text = f"{os.major(device):02x}:{os.minor(device):02x}"
    for pid in pids:
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
            with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as handle:
                maps = handle.read().splitlines()
        except OSError as error:
            if error.errno in _VANISHED or pid in skipped:
                continue
            return DiskUsage(0, 0, f"cannot inspect sandbox process {pid}: {error.strerror}")
        for name in descriptors:
            try:
                info = os.stat(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if info.st_dev == device and info.st_nlink == 0 and stat.S_ISREG(info.st_mode):
                sizes[info.st_ino] = max(sizes.get(info.st_ino, 0), info.st_blocks * _BLOCK_BYTES)
        for line in maps:
            # address perms offset dev inode path, e.g. "7f..-7f.. rw-s 00000000 08:01 1234 /mnt/data/x (deleted)"
            parts = line.split(maxsplit=5)
            if len(parts) < 6 or parts[3] != dev_text or not parts[5].endswith("(deleted)"):
                continue
            start, end = (int(value, 16) for value in parts[0].split("-"))
            inode = int(parts[4])
            sizes[inode] = max(sizes.get(inode, 0), int(parts[2], 16) + end - start)
    return DiskUsage(sum(sizes.values()), len(sizes))
