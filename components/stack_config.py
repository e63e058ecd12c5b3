"""Read the raw config of the running Pulumi program: its own namespace, and keys nothing reads.

The Pulumi SDK reads one key at a time; to reject misspelled keys the program needs them all, so
this looks at the same two places `pulumi.Config` does: values set in-process (mocks, tests) and
the PULUMI_CONFIG bag the CLI passes to the program.
"""

from __future__ import annotations

from typing import Any

from pulumi.runtime import config as runtime_config

# Namespaces besides the project's that something in a deploy reads: the Azure provider and the
# Pulumi engine (e.g. pulumi:tags). A key in any other namespace is read by nobody.
OTHER_READ_NAMESPACES: tuple[str, ...] = ("azure-native", "pulumi")


def _all_keys() -> set[str]:
    return set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())


def read_namespace(namespace: str) -> dict[str, Any]:
    """Return every config value under `namespace:` keyed by its name without the namespace."""
    prefix = f"{namespace}:"
    return {key[len(prefix) :]: runtime_config.get_config(key) for key in _all_keys() if key.startswith(prefix)}


def unread_keys(namespace: str) -> list[str]:
    """Return the config keys in no namespace that the program or its provider reads, sorted.

    A misspelled namespace (`dynamic-session:maxSessions`) lands here: legal for the Pulumi CLI,
    but the program would run on the default.
    """
    read = {namespace, *OTHER_READ_NAMESPACES}
    return sorted(key for key in _all_keys() if key.split(":", 1)[0] not in read)
