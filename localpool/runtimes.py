"""The runtime of each container type: NodeLTS (localpool/node.py), PythonLTS and Shell (runner.py).

A runtime is found once, at start-up (a missing binary is a RuntimeUnavailableError whose message
is the one sentence the CLI prints before exiting with code 2), and then describes how to start its
runner in a session's sandbox (localpool/interpreter.py drives it).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from localpool.constants import (
    BASH_INSTALL_HINT,
    MIN_PYTHON_VERSION,
    PYTHON_ENV_VAR,
    PYTHON_INSTALL_HINT,
    SANDBOX_UID,
)
from localpool.interpreter import Runtime, RuntimeUnavailableError, find_executable
from localpool.node import find_node
from localpool.sandbox import RuntimeCommand
from localpool.wire import ContainerType

RUNNER_SCRIPT = Path(__file__).resolve().with_name("runner.py")
# Where the runner appears inside the sandbox (read-only).
RUNNER_INSIDE = "/opt/localpool/runner.py"
_PROBE_TIMEOUT_SECONDS = 30.0
# Run once by the chosen Python, isolated as in the sandbox: its version, where it lives and the
# distributions it can import (what GET metadata lists as preInstalledPackages).
_PYTHON_PROBE = """
import importlib.metadata, json, os, sys
packages = {}
for dist in importlib.metadata.distributions():
    name = dist.metadata["Name"]
    if name:
        packages.setdefault(name, dist.version)
print(json.dumps({"version": list(sys.version_info[:3]), "prefix": sys.prefix, "base_prefix": sys.base_prefix,
                  "executable": os.path.realpath(sys.executable), "packages": packages}))
"""
SYSTEM_PYTHON = "/usr/bin/python3"
_PATH_INSIDE = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class PythonUnavailableError(RuntimeUnavailableError):
    """Python is missing or too old for the PythonLTS and Shell session runner."""


class ShellUnavailableError(RuntimeUnavailableError):
    """bash is missing."""


def _closed_to_others(path: Path) -> Path | None:
    """The first directory on the way to path (or path itself) that other users cannot pass or read."""
    resolved = path.resolve()
    for directory in [*reversed(resolved.parents), resolved]:
        needed = stat.S_IXOTH | (stat.S_IROTH if directory == resolved else 0)
        try:
            if directory.stat().st_mode & needed != needed:
                return directory
        except OSError:
            return directory
    return None


def _outside_usr(paths: list[str]) -> dict[str, str | None]:
    """Read-only binds (same path inside) for the directories not already under the sandbox's /usr."""
    binds: dict[str, str | None] = {}
    for path in paths:
        if path and not Path(path).resolve().is_relative_to("/usr"):
            binds[path] = None
    return binds


@dataclass(frozen=True)
class PythonInstallation:
    """A usable Python: its binary (as given: a venv's python stays the venv's), version and packages."""

    path: str
    version: tuple[int, int, int]
    packages: Mapping[str, str]
    # Directories outside /usr it needs inside the sandbox (a venv, an installation under /opt).
    binds: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def version_text(self) -> str:
        """The version, e.g. ``3.12.3``."""
        return ".".join(str(part) for part in self.version)


def find_python(environ: Mapping[str, str] | None = None, *, nobody_reads: bool = False) -> PythonInstallation:
    """Locate Python (``$LOCALPOOL_PYTHON``, else the system's /usr/bin/python3, else ``python3`` on PATH).

    Checks its version and lists its packages. The system Python comes first because a Python under a
    home directory (pyenv, a user's venv) is usually out of reach of the sandbox's user.

    nobody_reads: the sandbox is started as nobody (the server runs as root), so what is bound must
    be readable by others. Raises PythonUnavailableError with a one-line, human-readable message otherwise.
    """
    env = os.environ if environ is None else environ
    override = env.get(PYTHON_ENV_VAR, "").strip()
    wanted = override or (SYSTEM_PYTHON if os.access(SYSTEM_PYTHON, os.X_OK) else "python3")
    origin = f"{PYTHON_ENV_VAR}={override!r}" if override else "PATH"
    found = find_executable(wanted, env)
    if found is None:
        raise PythonUnavailableError(
            f"Python was not found (looked for {wanted!r} via {origin}); the local pool runs PythonLTS and "
            f"Shell sessions with it: {PYTHON_INSTALL_HINT}, or point {PYTHON_ENV_VAR} at a python3 binary."
        )
    found = os.path.abspath(found)
    try:
        completed = subprocess.run(  # noqa: S603 - the binary is the operator's own choice
            [found, "-I", "-c", _PYTHON_PROBE],
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_SECONDS,
            check=False,
        )
        facts: dict[str, Any] = json.loads(completed.stdout) if completed.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, ValueError) as error:
        raise PythonUnavailableError(f"Python at {found} could not be run ({error}); {PYTHON_INSTALL_HINT}.") from error
    version = tuple(facts.get("version") or ())
    if len(version) != len(MIN_PYTHON_VERSION) + 1:
        said = (completed.stderr.strip().splitlines() or ["no output"])[-1][:120]
        raise PythonUnavailableError(f"{found} did not report a Python version ({said}); {PYTHON_INSTALL_HINT}.")
    if version[:2] < MIN_PYTHON_VERSION:
        raise PythonUnavailableError(
            f"Python {'.'.join(map(str, version))} at {found} is too old: the local pool needs Python "
            f"{'.'.join(map(str, MIN_PYTHON_VERSION))} or newer; {PYTHON_INSTALL_HINT}."
        )
    executable_home = str(Path(facts["executable"]).parent.parent)
    binds = _outside_usr([facts["prefix"], facts["base_prefix"], executable_home])
    if nobody_reads:
        for path in binds:
            blocked = _closed_to_others(Path(path))
            if blocked is not None:
                raise PythonUnavailableError(
                    f"Python at {found} lives in {path}, which the sandbox's user (uid {SANDBOX_UID}) cannot "
                    f"read ({blocked} is closed to others); use {SYSTEM_PYTHON} or a Python or venv outside home "
                    f"directories, e.g. under /opt, as {PYTHON_ENV_VAR}."
                )
    return PythonInstallation(
        path=found,
        version=(int(version[0]), int(version[1]), int(version[2])),
        packages=dict(sorted(facts["packages"].items(), key=lambda item: item[0].lower())),
        binds=binds,
    )


def _runner_command(
    python: PythonInstallation, mode: list[str], runner: Path, sandboxed: bool, env: Mapping[str, str]
) -> RuntimeCommand:
    runner_path = RUNNER_INSIDE if sandboxed else str(runner)
    # -I: no user site, no PYTHON* variables, no script directory on sys.path; -B: no .pyc files.
    argv = [python.path, "-I", "-B", runner_path, *mode]
    ro_binds: dict[str, str | None] = {str(runner): RUNNER_INSIDE, **python.binds}
    return RuntimeCommand(argv=argv, ro_binds=ro_binds, env={"PATH": _PATH_INSIDE, "LANG": "C.UTF-8", **env})


@dataclass(frozen=True)
class PythonRuntime:
    """PythonLTS: a persistent Python namespace per session (runner.py python)."""

    python: PythonInstallation

    container_type: ClassVar[ContainerType] = ContainerType.PYTHON_LTS
    display_name: ClassVar[str] = "Python"
    runner_script: ClassVar[Path] = RUNNER_SCRIPT

    @property
    def path(self) -> str:
        """The python binary."""
        return self.python.path

    @property
    def version_text(self) -> str:
        """Python's version, e.g. ``3.12.3``."""
        return self.python.version_text

    def command(self, workdir: Path, stream_max_chars: int, sandboxed: bool, runner: Path) -> RuntimeCommand:
        """python -I runner.py python <max chars>, with the session directory as working directory."""
        # matplotlib and fontconfig write caches under $HOME (/mnt/data, listed as the session's files).
        caches = {"MPLCONFIGDIR": "/tmp/matplotlib", "XDG_CACHE_HOME": "/tmp/.cache"}  # noqa: S108 - the private /tmp
        return _runner_command(self.python, ["python", str(stream_max_chars)], runner, sandboxed, caches)

    @staticmethod
    def ready_problem(message: Mapping[str, Any]) -> str | None:
        """Nothing to check: Python has no permission model; the sandbox is the containment."""
        return None

    def describe(self) -> tuple[dict[str, str], dict[str, str], str]:
        """(runtimes, packages, kernel version) for GET metadata: the packages this Python can import."""
        return {"python": self.version_text}, dict(self.python.packages), ""


@dataclass(frozen=True)
class ShellRuntime:
    """Shell: each execution runs one command by bash in the session directory (runner.py shell)."""

    python: PythonInstallation
    bash: str
    bash_version: str

    container_type: ClassVar[ContainerType] = ContainerType.SHELL
    display_name: ClassVar[str] = "bash"
    runner_script: ClassVar[Path] = RUNNER_SCRIPT

    @property
    def path(self) -> str:
        """The bash binary."""
        return self.bash

    @property
    def version_text(self) -> str:
        """bash's version, e.g. ``5.2.21``."""
        return self.bash_version

    def command(self, workdir: Path, stream_max_chars: int, sandboxed: bool, runner: Path) -> RuntimeCommand:
        """python -I runner.py shell <max chars> <bash>, with the session directory as working directory."""
        command = _runner_command(self.python, ["shell", str(stream_max_chars), self.bash], runner, sandboxed, {})
        extra = _outside_usr([str(Path(self.bash).parent)])
        return RuntimeCommand(argv=command.argv, ro_binds={**command.ro_binds, **extra}, env=command.env)

    @staticmethod
    def ready_problem(message: Mapping[str, Any]) -> str | None:
        """Nothing to check: the sandbox is the containment."""
        return None

    def describe(self) -> tuple[dict[str, str], dict[str, str], str]:
        """(runtimes, packages, kernel version) for GET metadata: bash, and the Python beside it."""
        return {"bash": self.bash_version, "python": self.python.version_text}, {}, self.bash_version


def find_bash(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(path, version) of bash on PATH; ShellUnavailableError when there is none."""
    env = os.environ if environ is None else environ
    found = shutil.which("bash", path=env.get("PATH", os.defpath))
    if found is None:
        raise ShellUnavailableError(
            f"bash was not found on PATH; the local pool runs Shell sessions with it: {BASH_INSTALL_HINT}."
        )
    found = str(Path(found).resolve())
    try:
        completed = subprocess.run(  # noqa: S603 - fixed arguments
            [found, "-c", "echo ${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}.${BASH_VERSINFO[2]}"],
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ShellUnavailableError(f"bash at {found} could not be run ({error}); {BASH_INSTALL_HINT}.") from error
    return found, completed.stdout.strip()


def find_runtime(
    container_type: ContainerType, environ: Mapping[str, str] | None = None, *, nobody_reads: bool = False
) -> Runtime:
    """The runtime of container_type, found on this machine (RuntimeUnavailableError when it is not).

    nobody_reads: the sandbox runs as nobody (Sandbox.drops_root), so the runtime must be readable by others.
    """
    if container_type is ContainerType.NODE_LTS:
        return find_node(environ)
    python = find_python(environ, nobody_reads=nobody_reads)
    if container_type is ContainerType.PYTHON_LTS:
        return PythonRuntime(python)
    bash, version = find_bash(environ)
    return ShellRuntime(python, bash, version)
