"""A copy of what scripts/destroy.sh runs (the script, components/, offline/ and the project's .venv)
in a temporary project, with a fake `pulumi` on PATH that records its arguments."""

from __future__ import annotations

import shutil
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
