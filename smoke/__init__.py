"""Post-deploy smoke check for an Azure Container Apps dynamic-sessions code-interpreter pool.

It runs hello-world on each data-plane API generation, waits out role propagation and a pool that is
still starting, and ends with one verdict line or JSON object (``python -m smoke --help``; exit codes
in ``smoke.outcome``). Library use::

    from smoke import run_smoke
    report = run_smoke("https://...", timeout=300)
    print(report.summary()); raise SystemExit(report.exit_code)

Public names load on first use (PEP 562), so that ``--help`` and usage errors need no azure-core.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"  # defined once; it appears in the User-Agent of every request

_MODULES = {
    "smoke.auth": "AzureCredentialTokenProvider Redactor StaticTokenProvider TokenProvider token_provider_from_env",
    "smoke.client": "SessionPoolClient",
    "smoke.endpoint": "PoolEndpoint",
    "smoke.outcome": "ExitCode Outcome",
    "smoke.runner": "SmokeReport SmokeResult run_smoke stdout_matches",
    "smoke.settings": "ConfigurationError CredentialError SmokeError new_identifier validate_identifier",
    "smoke.cli": "read_stack_outputs",
    "smoke.waiting": "Clock Deadline",
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names.split()}
__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    """Import the defining module of a public name on first access."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'smoke' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
