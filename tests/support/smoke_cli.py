"""Run ``python -m smoke`` as a real subprocess with a controlled environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_SECONDS = 60
# Variables that would change where the CLI looks for an endpoint or a credential.
_AMBIENT = {"DYNAMIC_SESSIONS_TOKEN", "POOL_MANAGEMENT_ENDPOINT"}


def _cli_env(token: str | None, extra_env: dict[str, str] | None, path: str | None) -> dict[str, str]:
    """The environment of one CLI run: ours minus endpoint and credential settings, plus the given ones."""
    env = {name: value for name, value in os.environ.items() if name not in _AMBIENT and not name.startswith("AZURE_")}
    if token is not None:
        env["DYNAMIC_SESSIONS_TOKEN"] = token
    if path is not None:
        env["PATH"] = path
    env.update(extra_env or {})
    return env


def run_smoke_cli(
    *args: str, token: str | None, extra_env: dict[str, str] | None = None, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m smoke ARGS`` from the project root; ``token`` becomes DYNAMIC_SESSIONS_TOKEN."""
    return subprocess.run(
        [sys.executable, "-m", "smoke", *args],
        cwd=PROJECT_ROOT,
        env=_cli_env(token, extra_env, path),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )


def start_smoke_cli(*args: str, token: str | None) -> subprocess.Popen[str]:
    """Start ``python -m smoke ARGS`` without waiting, stdout and stderr piped (the caller communicates)."""
    return subprocess.Popen(
        [sys.executable, "-m", "smoke", *args],
        cwd=PROJECT_ROOT,
        env=_cli_env(token, None, None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
