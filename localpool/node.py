"""NodeLTS: finding Node.js and the command that runs localpool/runner.js in the sandbox."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from localpool.constants import (
    MIN_NODE_MAJOR,
    NODE_ENV_VAR,
    NODE_INSTALL_HINT,
    SESSION_HEAP_MB,
    SESSION_MOUNT_POINT,
)
from localpool.interpreter import FrameScanner as FrameScanner
from localpool.interpreter import Interpreter as Interpreter
from localpool.interpreter import InterpreterError as InterpreterError
from localpool.interpreter import RunOutcome as RunOutcome
from localpool.interpreter import RuntimeUnavailableError, find_executable
from localpool.interpreter import outcome_from_message as outcome_from_message
from localpool.sandbox import RuntimeCommand
from localpool.wire import ContainerType

RUNNER_SCRIPT = Path(__file__).resolve().with_name("runner.js")
# Where the runner appears inside the sandbox (read-only).
RUNNER_INSIDE = "/opt/localpool/runner.js"
# `node --version` prints e.g. "v20.20.2".
_VERSION_PATTERN = re.compile(r"^v(\d+)\.(\d+)\.(\d+)")
_VERSION_TIMEOUT_SECONDS = 10.0
# The permission model's flag lost its "experimental-" prefix in Node 23.5 and 22.13.
_STABLE_PERMISSION_FLAG_SINCE = ((22, 13), (23, 5))


class NodeUnavailableError(RuntimeUnavailableError):
    """Node.js is missing or too old; the message says what is missing and how to install it."""


@dataclass(frozen=True)
class NodeRuntime:
    """A usable Node.js binary and its version: the NodeLTS runtime."""

    path: str
    version: tuple[int, int, int]

    container_type: ClassVar[ContainerType] = ContainerType.NODE_LTS
    display_name: ClassVar[str] = "Node.js"
    runner_script: ClassVar[Path] = RUNNER_SCRIPT

    @property
    def version_text(self) -> str:
        """The version as Node prints it, e.g. ``v20.20.2``."""
        return "v" + ".".join(str(part) for part in self.version)

    def permission_flag(self) -> str:
        """The flag that turns the permission model on for this Node version."""
        major_minor = self.version[:2]
        stable_22, stable_23 = _STABLE_PERMISSION_FLAG_SINCE
        if major_minor >= stable_23 or (stable_22 <= major_minor < (stable_23[0], 0)):
            return "--permission"
        return "--experimental-permission"

    def command(self, workdir: Path, stream_max_chars: int, sandboxed: bool, runner: Path) -> RuntimeCommand:
        """Node.js running runner.js with its permission model on (the second layer inside the sandbox).

        Inside the sandbox the session directory is /mnt/data and the runner sits at RUNNER_INSIDE;
        without a sandbox (trusted code only) the host paths are used.
        """
        node = str(Path(self.path).resolve())
        session, runner_path = (SESSION_MOUNT_POINT, RUNNER_INSIDE) if sandboxed else (str(workdir), str(runner))
        argv = [
            node,
            self.permission_flag(),
            f"--allow-fs-read={runner_path}",
            f"--allow-fs-read={session}",
            f"--allow-fs-write={session}",
            f"--max-old-space-size={SESSION_HEAP_MB}",
            # The permission model's ExperimentalWarning would otherwise reach the process's stderr.
            "--no-warnings",
            runner_path,
            str(stream_max_chars),
        ]
        ro_binds: dict[str, str | None] = {str(runner): RUNNER_INSIDE}
        if not node.startswith("/usr/"):
            # A Node.js installed outside /usr (e.g. under /opt): its whole installation, read-only.
            ro_binds[str(Path(node).parent.parent)] = None
        return RuntimeCommand(argv=argv, ro_binds=ro_binds, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})

    @staticmethod
    def ready_problem(message: Mapping[str, Any]) -> str | None:
        """Why a started runner must not run session code (its permission model is off), or None."""
        if message.get("permission") is not True:
            return (
                "Node.js started without an active permission model, so session code would not be "
                "contained; refusing to run it."
            )
        return None

    def describe(self) -> tuple[dict[str, str], dict[str, str], str]:
        """(runtimes, packages, kernel version) for GET metadata: Node.js itself, no npm packages."""
        return {"node": self.version_text}, {}, ""


def find_node(environ: Mapping[str, str] | None = None) -> NodeRuntime:
    """Locate Node.js (``$LOCALPOOL_NODE`` or ``node`` on PATH) and check it is new enough.

    Raises NodeUnavailableError with a one-line, human-readable message otherwise.
    """
    env = os.environ if environ is None else environ
    override = env.get(NODE_ENV_VAR, "").strip()
    wanted = override or "node"
    origin = f"{NODE_ENV_VAR}={override!r}" if override else "PATH"
    found = find_executable(wanted, env)
    if found is None:
        raise NodeUnavailableError(
            f"Node.js was not found (looked for {wanted!r} via {origin}); the local pool runs JavaScript "
            f"with it: {NODE_INSTALL_HINT}, or point {NODE_ENV_VAR} at a node binary."
        )
    try:
        completed = subprocess.run(  # noqa: S603 - the binary is the operator's own choice
            [found, "--version"], capture_output=True, text=True, timeout=_VERSION_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise NodeUnavailableError(f"Node.js at {found} could not be run ({error}); {NODE_INSTALL_HINT}.") from error
    match = _VERSION_PATTERN.match(completed.stdout.strip())
    if completed.returncode != 0 or match is None:
        raise NodeUnavailableError(
            f"{found} did not report a Node.js version (got {completed.stdout.strip()[:80]!r}); {NODE_INSTALL_HINT}."
        )
    version = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
    if version[0] < MIN_NODE_MAJOR:
        raise NodeUnavailableError(
            f"Node.js {match.group(0)} at {found} is too old: the local pool needs Node.js {MIN_NODE_MAJOR} "
            f"or newer for its permission model; {NODE_INSTALL_HINT}."
        )
    return NodeRuntime(path=found, version=version)
