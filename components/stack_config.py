"""Read the raw config of a namespace from the running Pulumi program.

The Pulumi SDK reads one key at a time; to reject misspelled keys the program needs them all, so
this looks at the same two places `pulumi.Config` does: values set in-process (mocks, tests) and
the PULUMI_CONFIG bag the CLI passes to the program.
"""

from __future__ import annotations

from typing import Any

from pulumi.runtime import config as runtime_config


def read_namespace(namespace: str) -> dict[str, Any]:
    """Return every config value under `namespace:` keyed by its name without the namespace."""
    prefix = f"{namespace}:"
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    return {key[len(prefix) :]: runtime_config.get_config(key) for key in keys if key.startswith(prefix)}
