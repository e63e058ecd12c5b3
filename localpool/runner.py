"""The runner of one PythonLTS or Shell session, inside its sandbox (standard library only).

Speaks localpool's framing protocol (see localpool/interpreter.py) on the file descriptors it was
started with, then hides them from session code: fd 0 reads /dev/null, and what session code writes
to fd 1 directly is discarded by localpool (only marked messages count).

    python3 runner.py python <max characters per output stream>
        Each request's "code" runs in one persistent namespace, as an IPython kernel runs cells:
        variables, imports and functions stay for the next execution. The value of a last
        expression comes back as "result" (see result_value); an exception is answered with
        Python's traceback in stderr and its type and message in "error".
    python3 runner.py shell <max characters per output stream>
        Each request runs one command in the session directory: "code" by bash -c, or "argv"
        as an executable and its arguments, with "stdin" as its standard input. The answer
        carries its stdout, stderr and "exitCode". Every command starts a fresh bash, so the
        working directory and variables do not carry over; files in /mnt/data do.
"""

from __future__ import annotations

import ast
import base64
import builtins
import codecs
import errno
import io
import json
import math
import os
import subprocess
import sys
import threading
import time
import traceback
from typing import Any

# Captured before session code runs (it shares this interpreter and can replace module attributes).
_write = os.write
_loads = json.loads
_dumps = json.dumps
_monotonic = time.monotonic
_RUNNER_FILE = __file__
# The flag compile() sets on code that awaits at top level (inspect.CO_COROUTINE, without importing inspect).
_CO_COROUTINE = 0x80
_READ_CHUNK_BYTES = 64 * 1024
# A shell's exit status when a signal ended the command (as bash reports it).
_SIGNAL_EXIT_BASE = 128
_COMMAND_NOT_FOUND = 127
_CANNOT_EXECUTE = 126
# The shell of Shell sessions when the server names none (it passes the bash it found and reports).
_SHELL = "/bin/bash"
# How long output may still arrive after the command exited (background jobs keep the pipes open).
_OUTPUT_GRACE_SECONDS = 0.2


class CappedText(io.TextIOBase):
    """A text stream that keeps the first max_chars characters written to it and drops the rest."""

    def __init__(self, max_chars: int) -> None:
        """Keep at most max_chars characters."""
        self._parts: list[str] = []
        self._room = max_chars

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """What print() and friends expect of a text stream."""
        return "utf-8"

    def writable(self) -> bool:
        """Always writable."""
        return True

    def write(self, text: str) -> int:
        """Keep what fits; report everything as written (output is cut, never an error)."""
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self._room > 0:
            piece = text[: self._room]
            self._parts.append(piece)
            self._room -= len(piece)
        return len(text)

    def getvalue(self) -> str:
        """Everything kept so far."""
        return "".join(self._parts)


def result_value(value: Any, max_chars: int, jupyter: bool) -> Any:
    """The value of a last expression as Azure's Python pools answer it in executionResult.

    None gives null; NaN and infinities give null (CodeExecution_Execute_Result_NaN); strings,
    numbers and booleans come back as themselves (``2+2`` gives 4, ``"nan"`` gives "nan"); lists,
    tuples and dicts of those as JSON when that fits in max_chars. A figure (an object with a PNG
    form, e.g. a matplotlib Figure) is ``{"type": "image", "format": "png", "base64_data": ...}`` as
    a real PythonLTS pool answers one. Anything else, and everything with
    returnJupyterFormatExecutionResult (jupyter), is its text/plain form, repr() (the
    *_JupyterFormat examples: "nan", "'nan'"), cut at max_chars.
    """
    if value is None:
        return None
    image = None if jupyter else _png(value)
    if image is not None:
        return {"type": "image", "format": "png", "base64_data": base64.b64encode(image).decode("ascii")}
    if not jupyter:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, str):
            return value[:max_chars]
        if isinstance(value, bool | int | float):
            return value
        if isinstance(value, list | tuple | dict):
            try:
                text = _dumps(value, allow_nan=False)
            except (TypeError, ValueError, RecursionError):
                text = None
            if text is not None and len(text) <= max_chars:
                return _loads(text)
    return repr(value)[:max_chars]


def _png(value: Any) -> bytes | None:
    """The PNG form of a figure: IPython's _repr_png_, or a matplotlib-style savefig; None for other values."""
    if isinstance(value, type):
        return None
    try:
        if callable(getattr(value, "_repr_png_", None)):
            data = value._repr_png_()
            return data if isinstance(data, bytes) else None
        if callable(getattr(value, "savefig", None)) and callable(getattr(value, "get_axes", None)):
            buffer = io.BytesIO()
            value.savefig(buffer, format="png")
            return buffer.getvalue()
    except Exception:
        return None
    return None


class PythonSession:
    """One persistent Python namespace, executing code as a notebook cell."""

    def __init__(self, max_chars: int) -> None:
        """A fresh namespace whose code sees the session directory on sys.path (as Azure's cwd is)."""
        self.max_chars = max_chars
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        sys.path.insert(0, os.getcwd())
        sys.stdin = io.StringIO("")

    def run(self, request: dict[str, Any], stdout: CappedText, stderr: CappedText) -> tuple[Any, Any]:
        """(result, error) of one execution; output goes to stdout and stderr."""
        try:
            return self._evaluate(request["code"], bool(request.get("jupyter"))), None
        except BaseException as error:
            stderr.write(_traceback_text(error))
            return None, {"name": type(error).__name__, "message": _safe_str(error)[: self.max_chars], "code": ""}

    def _evaluate(self, code: str, jupyter: bool) -> Any:
        tree = ast.parse(code, filename="<stdin>", mode="exec")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        self._run(compile(tree, "<stdin>", "exec", flags=flags))
        if last is None:
            return None
        expression = ast.Expression(last.value)
        value = self._run(compile(expression, "<stdin>", "eval", flags=flags))
        return result_value(value, self.max_chars, jupyter)

    def _run(self, compiled: Any) -> Any:
        # eval() runs "exec" code objects too, and unlike exec() it returns the coroutine of code
        # that awaits at top level.
        value = eval(compiled, self.namespace)  # noqa: S307 - running the session's code is the point
        if compiled.co_flags & _CO_COROUTINE:
            import asyncio  # only for code that awaits: it costs start-up time

            value = asyncio.run(value)
        return value


def _safe_str(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:
        return "an exception that could not be described"


def _traceback_text(error: BaseException) -> str:
    """Python's traceback of error, without the runner's own frames."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == _RUNNER_FILE:
        tb = tb.tb_next
    try:
        return "".join(traceback.format_exception(type(error), error, tb))
    except Exception:
        return f"{type(error).__name__}: {_safe_str(error)}\n"


class ShellSession:
    """Runs each request as one command in the session directory."""

    def __init__(self, max_chars: int, shell: str = _SHELL) -> None:
        """Commands run by shell -c; their output is cut at max_chars characters per stream."""
        self.max_chars = max_chars
        self.shell = shell
        self.cwd = os.getcwd()

    def run(self, request: dict[str, Any], stdout: CappedText, stderr: CappedText) -> tuple[Any, Any]:
        """Run the command; its exit code is stored in self.exit_code."""
        argv = request.get("argv")
        command = list(argv) if isinstance(argv, list) and argv else [self.shell, "-c", request["code"]]
        stdin = request.get("stdin")
        try:
            process = subprocess.Popen(  # noqa: S603 - running the session's command is the point
                command,
                cwd=self.cwd,
                stdin=subprocess.PIPE if isinstance(stdin, str) else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as error:
            stderr.write(f"{command[0]}: {error.strerror or error}\n")
            self.exit_code = _COMMAND_NOT_FOUND if error.errno == errno.ENOENT else _CANNOT_EXECUTE
            return None, None
        readers = [
            threading.Thread(target=self._drain, args=(process.stdout, stdout), daemon=True),
            threading.Thread(target=self._drain, args=(process.stderr, stderr), daemon=True),
        ]
        try:
            for reader in readers:
                reader.start()
        except RuntimeError as error:  # no thread left under the process limit (e.g. a fork bomb running)
            process.kill()
            process.wait()
            stderr.write(f"{command[0]}: {error}\n")
            self.exit_code = _CANNOT_EXECUTE
            return None, None
        if process.stdin is not None:
            try:
                process.stdin.write(stdin.encode())
                process.stdin.close()
            except OSError:
                pass  # the command did not read all of it
        code = process.wait()
        # A command that left a background job holding its output open answers without waiting for it.
        deadline = _monotonic() + _OUTPUT_GRACE_SECONDS
        for reader in readers:
            reader.join(max(0.0, deadline - _monotonic()))
        self.exit_code = code if code >= 0 else _SIGNAL_EXIT_BASE - code
        return None, None

    def _drain(self, stream: Any, into: CappedText) -> None:
        """Read the stream to its end (so the command never blocks), keeping what fits."""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while chunk := stream.read1(_READ_CHUNK_BYTES):
            into.write(decoder.decode(chunk))
        into.write(decoder.decode(b"", final=True))
        stream.close()

    exit_code: int = 0


def serve(mode: str, max_chars: int, shell: str = _SHELL) -> None:
    """Answer requests from the protocol's stdin until it closes (shell: what Shell sessions run commands with)."""
    protocol_out = os.dup(1)
    requests = os.fdopen(os.dup(0), "rb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    marker = ""

    def send(message: dict[str, Any]) -> None:
        data = (marker + _dumps(message) + "\n").encode("utf-8", "replace")
        while data:
            data = data[_write(protocol_out, data) :]

    session: PythonSession | ShellSession = (
        PythonSession(max_chars) if mode == "python" else ShellSession(max_chars, shell)
    )
    idle = CappedText(0)
    sys.stdout, sys.stderr = idle, idle
    for line in requests:
        try:
            request = _loads(line)
        except ValueError:
            continue
        if not isinstance(request, dict):
            continue
        if not marker:
            if isinstance(request.get("frame"), str) and request["frame"]:
                marker = request["frame"]
                send({"type": "ready"})
            continue
        if not isinstance(request.get("id"), str) or not isinstance(request.get("code"), str):
            continue
        stdout, stderr = CappedText(max_chars), CappedText(max_chars)
        sys.stdout, sys.stderr = stdout, stderr
        started = _monotonic()
        result, error = session.run(request, stdout, stderr)
        sys.stdout, sys.stderr = idle, idle
        message = {
            "type": "result",
            "id": request["id"],
            "stdout": stdout.getvalue(),
            "stderr": stderr.getvalue(),
            "result": result,
            "error": error,
            "durationMs": (_monotonic() - started) * 1000,
        }
        if isinstance(session, ShellSession):
            message["exitCode"] = session.exit_code
        send(message)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), *sys.argv[3:4])
