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


def run_smoke_cli(
    *args: str, token: str | None, extra_env: dict[str, str] | None = None, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m smoke ARGS`` from the project root; ``token`` becomes DYNAMIC_SESSIONS_TOKEN."""
    env = {name: value for name, value in os.environ.items() if name not in _AMBIENT and not name.startswith("AZURE_")}
    if token is not None:
        env["DYNAMIC_SESSIONS_TOKEN"] = token
    if path is not None:
        env["PATH"] = path
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "smoke", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )
