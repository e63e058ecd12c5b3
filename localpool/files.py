"""A session's files: the host directory the sandbox binds at /mnt/data, read and written safely.

Session code runs as another user and may leave anything behind: symbolic links, FIFOs, directories
named like files. Every access here walks the path one component at a time from a directory file
descriptor with ``O_NOFOLLOW`` (``openat``), so a link is never followed and ``..`` never leaves the
session directory; only regular files are read.
"""

from __future__ import annotations

import contextlib
import mimetypes
import os
import stat
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header

from localpool.disk import DIR_FLAGS, directory_usage
from localpool.wire import FILES_ROOT, MAX_UPLOAD_BYTES, ContainerType, FileInfo, WireError, shown, upload_too_large

# O_NONBLOCK: opening a FIFO the session left behind must not hang the server.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Uploads are written under a hidden name first, then renamed: a half-written file is never listed.
_PARTIAL_PREFIX = ".localpool-upload-"
FILE_MODE = 0o644
DIRECTORY_MODE = 0o755
# Entries counted when measuring the disk use before an upload (the disk watcher has its own bound).
MAX_COUNTED_ENTRIES = 1_000_000
MULTIPART = "multipart/form-data"


def invalid_path(value: str, why: str) -> WireError:
    """400 for a path or file name that cannot name a place under /mnt/data."""
    return WireError(400, "InvalidPath", f"The path {shown(value)!r} {why}; give a path below {FILES_ROOT}.")


def file_not_found(where: str) -> WireError:
    """404 for a file or directory that does not exist in the session."""
    return WireError(404, "FileNotFound", f"The session has no file {where!r} in {FILES_ROOT}.")


def disk_full(limit_bytes: int) -> WireError:
    """413 for an upload that would take the session's files over its disk limit."""
    return WireError(
        413,
        "SessionDiskLimitExceeded",
        f"The upload would take the session's files in {FILES_ROOT} over its disk limit of {limit_bytes} bytes "
        "(--disk-mb); delete files or upload a smaller one.",
    )


def split_path(value: str | None) -> list[str]:
    """The components of a directory path below /mnt/data (``/mnt/data/a/b``, ``a/b`` and ``/a/b`` alike)."""
    if not value:
        return []
    if "\x00" in value:
        raise invalid_path(value, "contains a NUL character")
    text = value.replace("\\", "/")
    if text == FILES_ROOT or text.startswith(FILES_ROOT + "/"):
        text = text[len(FILES_ROOT) :]
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise invalid_path(value, "climbs out with '..'")
    return parts


def file_name(value: str) -> str:
    """One file name; a client's ``/mnt/data/x.txt`` (llama-index, semantic-kernel) means ``x.txt``."""
    parts = split_path(value)
    if len(parts) != 1:
        raise invalid_path(value, "is not one file name")
    return parts[0]


def upload_name(filename: str) -> str:
    """The name an uploaded part is stored under: its file name without any directories."""
    parts = split_path(filename)
    if not parts:
        raise invalid_path(filename, "is not a file name")
    return parts[-1]


@dataclass(frozen=True)
class _Entry:
    name: str
    directory: str
    stat: os.stat_result


def _info(entry: _Entry) -> FileInfo:
    is_directory = stat.S_ISDIR(entry.stat.st_mode)
    content_type = "application/octet-stream"
    if not is_directory:
        content_type = mimetypes.guess_type(entry.name, strict=False)[0] or content_type
    return FileInfo(
        name=entry.name,
        size=entry.stat.st_size,
        modified=datetime.fromtimestamp(entry.stat.st_mtime, UTC),
        content_type=content_type,
        directory=entry.directory,
        is_directory=is_directory,
    )


class SessionFiles:
    """The files of one session directory (the host side of /mnt/data)."""

    def __init__(
        self,
        root: Path,
        *,
        owner: tuple[int, int] | None,
        disk_limit_bytes: int,
        container_type: ContainerType,
        held_bytes: Callable[[], int] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """root: the session directory; owner: (uid, gid) new files get (the sandbox's user), if any;
        container_type: whose upload limit applies (wire.MAX_UPLOAD_BYTES).

        held_bytes: what the session's sandbox holds besides the directory (files it keeps open after
        deleting them); on_change: told when an upload or a
        delete changed the directory.
        """
        self.root = root
        self.owner = owner
        self.disk_limit_bytes = disk_limit_bytes
        self.container_type = container_type
        self._held_bytes = held_bytes
        self.on_change = on_change

    @contextlib.contextmanager
    def _directory(self, parts: list[str], *, create: bool = False) -> Iterator[int]:
        """A file descriptor of the directory ``parts`` below the root, never through a link."""
        try:
            fd = os.open(self.root, DIR_FLAGS)
        except FileNotFoundError as error:
            raise file_not_found("/".join(parts)) from error
        try:
            for index, part in enumerate(parts):
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, DIRECTORY_MODE, dir_fd=fd)
                        self._own(part, fd)
                try:
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                except (FileNotFoundError, NotADirectoryError, OSError) as error:
                    raise file_not_found("/".join(parts[: index + 1])) from error
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def _own(self, name: str, dir_fd: int) -> None:
        if self.owner is not None:
            os.chown(name, *self.owner, dir_fd=dir_fd, follow_symlinks=False)

    def list(self, path: str | None = None, *, recursive: bool = False) -> list[FileInfo]:
        """Files and directories in ``path`` (all levels below it when recursive), sorted by place and name.

        Symbolic links and special files are left out: they are nothing a client can download.
        """
        with self._directory(split_path(path)) as fd:
            return [_info(entry) for entry in self._walk(fd, "", recursive)]

    def _walk(self, fd: int, directory: str, recursive: bool) -> Iterator[_Entry]:
        with os.scandir(fd) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
        for entry in entries:
            if entry.name.startswith(_PARTIAL_PREFIX):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                continue
            yield _Entry(entry.name, directory, info)
            if recursive and stat.S_ISDIR(info.st_mode):
                try:
                    child = os.open(entry.name, DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue
                try:
                    yield from self._walk(child, f"{directory}/{entry.name}".lstrip("/"), True)
                finally:
                    os.close(child)

    def describe(self, name: str, path: str | None = None) -> FileInfo:
        """One file or directory's description (404 if missing or not a regular file or directory)."""
        parts, leaf = split_path(path), file_name(name)
        with self._directory(parts) as fd:
            try:
                info = os.stat(leaf, dir_fd=fd, follow_symlinks=False)
            except OSError as error:
                raise file_not_found("/".join([*parts, leaf])) from error
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
            raise file_not_found("/".join([*parts, leaf]))
        return _info(_Entry(leaf, "/".join(parts), info))

    def open_for_reading(self, name: str, path: str | None = None) -> tuple[int, FileInfo]:
        """An open file descriptor of a regular file and its description; the caller closes it."""
        parts, leaf = split_path(path), file_name(name)
        with self._directory(parts) as dir_fd:
            try:
                fd = os.open(leaf, _READ_FLAGS, dir_fd=dir_fd)
            except OSError as error:
                raise file_not_found("/".join([*parts, leaf])) from error
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise file_not_found("/".join([*parts, leaf]))
        os.set_blocking(fd, True)
        return fd, _info(_Entry(leaf, "/".join(parts), info))

    def delete(self, name: str, path: str | None = None) -> None:
        """Remove a file (or an empty directory); 404 if there is none."""
        parts, leaf = split_path(path), file_name(name)
        with self._directory(parts) as fd:
            try:
                os.unlink(leaf, dir_fd=fd)
            except IsADirectoryError:
                try:
                    os.rmdir(leaf, dir_fd=fd)
                except OSError as error:
                    raise WireError(
                        409, "DirectoryNotEmpty", f"The directory {leaf!r} is not empty; delete its files first."
                    ) from error
            except FileNotFoundError as error:
                raise file_not_found("/".join([*parts, leaf])) from error
        if self.on_change is not None:
            # A file the sandbox keeps open now takes the disk unseen in the directory.
            self.on_change()

    def used_bytes(self) -> int:
        """Bytes the session's files take on disk (links not followed), plus what its sandbox holds deleted.

        A directory that cannot be measured completely counts as full (413 to any upload).
        """
        usage = directory_usage(self.root, MAX_COUNTED_ENTRIES)
        if usage.problem:
            return self.disk_limit_bytes
        return usage.used_bytes + (self._held_bytes() if self._held_bytes is not None else 0)

    def writer(self, filename: str, path: str | None = None) -> Upload:
        """Start writing an uploaded file; call Upload.write() with its bytes, then commit() or abort()."""
        return Upload(self, split_path(path), upload_name(filename))


class Upload:
    """One file being uploaded: written under a hidden name, renamed into place when complete."""

    def __init__(self, files: SessionFiles, parts: list[str], name: str) -> None:
        """Open the hidden file in the target directory (made if missing)."""
        self.files = files
        self.name = name
        self.parts = parts
        self.size = 0
        self._max_bytes = MAX_UPLOAD_BYTES[files.container_type]
        self._budget = files.disk_limit_bytes - files.used_bytes()
        self._partial = f"{_PARTIAL_PREFIX}{uuid.uuid4().hex}"
        with files._directory(parts, create=True) as fd:
            self._dir_fd = os.dup(fd)
        self._fd = os.open(self._partial, _CREATE_FLAGS, FILE_MODE, dir_fd=self._dir_fd)
        files._own(self._partial, self._dir_fd)

    def write(self, data: bytes) -> None:
        """Append bytes; 413 past Azure's upload limit (of the container type) or the session's disk limit."""
        self.size += len(data)
        if self.size > self._max_bytes:
            raise upload_too_large(self.size, self.files.container_type)
        if self.size > self._budget:
            raise disk_full(self.files.disk_limit_bytes)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def commit(self) -> FileInfo:
        """Put the file in place under its name (replacing a file, never writing through a link)."""
        os.close(self._fd)
        self._fd = -1
        try:
            os.replace(self._partial, self.name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        except OSError as error:
            self.abort()
            raise WireError(
                409, "FileConflict", f"Cannot store the upload as {self.name!r}: a directory has that name."
            ) from error
        info = os.stat(self.name, dir_fd=self._dir_fd, follow_symlinks=False)
        os.close(self._dir_fd)
        self._dir_fd = -1
        if self.files.on_change is not None:
            self.files.on_change()
        return _info(_Entry(self.name, "/".join(self.parts), info))

    def abort(self) -> None:
        """Remove the partial file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._dir_fd >= 0:
            with contextlib.suppress(OSError):
                os.unlink(self._partial, dir_fd=self._dir_fd)
            os.close(self._dir_fd)
            self._dir_fd = -1


def _bad_form(message: str) -> WireError:
    return WireError(400, "InvalidMultipartBody", message)


def multipart_boundary(content_type: str | None, first_bytes: bytes) -> bytes:
    """The boundary of a multipart body, from its Content-Type or, when a client labels the body
    otherwise (semantic-kernel sends ``application/json``), from its first line ``--<boundary>``."""
    kind, options = parse_options_header(content_type or "")
    if kind == MULTIPART.encode():
        boundary = options.get(b"boundary")
        if not boundary:
            raise _bad_form(f"The Content-Type {MULTIPART} has no boundary parameter.")
        return boundary
    first_line = first_bytes.split(b"\r\n", 1)[0]
    if first_line.startswith(b"--") and 2 < len(first_line) <= 72:
        return first_line[2:]
    raise _bad_form(f"Upload files as {MULTIPART} with a part named 'file' (got Content-Type {content_type!r}).")


def receive_upload(
    files: SessionFiles,
    chunks: Iterator[bytes],
    content_type: str | None,
    path: str | None,
    max_files: int | None = None,
) -> list[FileInfo]:
    """Stream a multipart body into the session: every part with a file name becomes a file.

    Nothing is kept in memory beyond one chunk; a part that fails (too large, disk full, bad name)
    leaves no file behind. max_files: a file part beyond it is refused (400) before it is stored.
    """
    iterator = iter(chunks)
    first = next(iterator, b"")
    boundary = multipart_boundary(content_type, first)
    stored: list[FileInfo] = []
    state: dict[str, object] = {"field": b"", "headers": {}, "upload": None}

    def on_part_begin() -> None:
        state["headers"] = {}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] = bytes(state["field"]) + data[start:end]  # type: ignore[arg-type]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        headers = state["headers"]
        name = bytes(state["field"]).lower()  # type: ignore[arg-type]
        headers[name] = headers.get(name, b"") + data[start:end]  # type: ignore[union-attr]

    def on_header_end() -> None:
        state["field"] = b""

    def on_headers_finished() -> None:
        disposition = state["headers"].get(b"content-disposition", b"")  # type: ignore[union-attr]
        _, options = parse_options_header(disposition)
        filename = options.get(b"filename")
        if filename and max_files is not None and len(stored) >= max_files:
            raise _bad_form(f"This api-version takes {max_files} file per upload; send one request per file.")
        if filename:
            state["upload"] = files.writer(filename.decode("utf-8", "replace"), path)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        upload = state["upload"]
        if upload is not None:
            upload.write(data[start:end])  # type: ignore[union-attr]

    def on_part_end() -> None:
        upload = state["upload"]
        if upload is not None:
            state["upload"] = None
            stored.append(upload.commit())  # type: ignore[union-attr]

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        parser.write(first)
        for chunk in iterator:
            parser.write(chunk)
        parser.finalize()
    except WireError:
        raise
    except Exception as error:  # python-multipart raises its own errors for malformed bodies
        raise _bad_form(f"The multipart body could not be read ({error}).") from error
    finally:
        upload = state["upload"]
        if upload is not None:
            upload.abort()  # type: ignore[union-attr]
    if not stored:
        raise _bad_form("The multipart body has no file part (a part with a filename, named 'file').")
    return stored
