"""Post-deploy smoke check for an Azure Container Apps dynamic-sessions code-interpreter pool.

It runs hello-world in the pool's language on each data-plane API generation (2024-02-02-preview
``/code/execute`` and 2024-10-02-preview ``/executions``), waits out role propagation and a pool
that is still starting, and ends with one verdict line (or one JSON object with ``--json``)::

    python -m smoke [--endpoint URL | --stack NAME] [--api-version 2024-02-02-preview|2024-10-02-preview|all]
                    [--container-type NodeLTS|PythonLTS|Shell] [--identifier ID] [--timeout SECONDS]
                    [--request-timeout SECONDS] [--scope SCOPE] [--files] [--json]

Exit codes are defined once, in ``smoke.outcome.ExitCode`` (``python -m smoke --help`` prints them).

Library use::

    from smoke import run_smoke
    report = run_smoke("https://...", timeout=300)
    print(report.summary()); raise SystemExit(report.exit_code)

The public names are loaded on first use (PEP 562), so that ``python -m smoke --help`` and usage
errors answer without importing azure-core or requests.
"""

from __future__ import annotations

import importlib
from typing import Any

from smoke._version import __version__

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "AzureCredentialTokenProvider": "smoke.auth",
    "Redactor": "smoke.auth",
    "StaticTokenProvider": "smoke.auth",
    "TokenProvider": "smoke.auth",
    "token_provider_from_env": "smoke.auth",
    "SessionPoolClient": "smoke.client",
    "PoolEndpoint": "smoke.endpoint",
    "ConfigurationError": "smoke.errors",
    "CredentialError": "smoke.errors",
    "SmokeError": "smoke.errors",
    "ExitCode": "smoke.outcome",
    "Outcome": "smoke.outcome",
    "SmokeReport": "smoke.runner",
    "SmokeResult": "smoke.runner",
    "run_smoke": "smoke.runner",
    "stdout_matches": "smoke.runner",
    "new_identifier": "smoke.settings",
    "validate_identifier": "smoke.settings",
    "StackOutputs": "smoke.stack",
    "read_stack_outputs": "smoke.stack",
    "Clock": "smoke.waiting",
    "Deadline": "smoke.waiting",
    "SystemClock": "smoke.waiting",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    """Import the defining module of a public name on first access (PEP 562)."""
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'smoke' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
