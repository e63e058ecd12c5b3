"""A copy of what scripts/destroy.sh runs (the script, components/, offline/ and the project's .venv)
in a temporary project, with a fake `pulumi` on PATH that records its arguments."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_COPIED = ("components", "offline")


def make_destroy_project(root: Path) -> Path:
    """Lay out a project in `root` that destroy.sh can run in; return the fake pulumi's record file."""
    (root / "scripts").mkdir()
    for script in ("destroy.sh", "require-pulumi.sh"):
        shutil.copy2(PROJECT_ROOT / "scripts" / script, root / "scripts" / script)
    for package in _COPIED:
        shutil.copytree(PROJECT_ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".venv").symlink_to((PROJECT_ROOT / ".venv").resolve())
    calls = root / "pulumi-calls.txt"
    (root / "bin").mkdir()
    fake = root / "bin" / "pulumi"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{calls}"\necho "fake pulumi ran"\n')
    fake.chmod(0o755)
    return calls


class DestroySandbox:
    """A copy of what scripts/destroy.sh runs in a temp project, with a fake `pulumi` that records its arguments."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls = make_destroy_project(root)
        self.bin = root / "bin"

    def stack_file(self, stack: str, protect: str | None) -> None:
        lines = ["config:", f"  dynamic-sessions:location: northcentralus  # stack {stack}"]
        if protect is not None:
            lines.append(f"  dynamic-sessions:protect: {protect}")
        self.write_stack(stack, "\n".join(lines) + "\n")

    def write_stack(self, stack: str, text: str) -> None:
        """Pulumi.<stack>.yaml with this text."""
        (self.root / f"Pulumi.{stack}.yaml").write_text(text)

    def env(self, **values: str) -> dict[str, str]:
        return {"PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}", "HOME": str(self.root), **values}

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(self.root / "scripts" / "destroy.sh"), *args],
            env=self.env(**env),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def run_at_terminal(self, typed: str, **env: str) -> tuple[int, str]:
        """Run with a terminal as standard input and type `typed` into it."""
        controller, terminal = pty.openpty()
        try:
            process = subprocess.Popen(
                ["bash", str(self.root / "scripts" / "destroy.sh")],
                env=self.env(**env),
                cwd=self.root,
                stdin=terminal,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            os.write(controller, typed.encode() + b"\n")
            _out, err = process.communicate(timeout=30)
        finally:
            os.close(controller)
            os.close(terminal)
        return process.returncode, err

    def pulumi_args(self) -> list[str] | None:
        return self.calls.read_text().splitlines() if self.calls.exists() else None
