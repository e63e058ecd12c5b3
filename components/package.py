"""The component package: CodeInterpreterPool served over Pulumi's provider protocol.

The SDK's component host (`pulumi.provider.experimental`) derives the schema from the component's
annotations and docstrings and answers GetSchema and Construct. One thing is ours: a bad input. The host
turns any exception from the constructor into its text followed by a Python stack; a SettingsError is a
user's mistake, so it goes back as Pulumi's structured InputPropertiesError instead — the component's one
message, and each bad input by its path — and nothing is registered.
"""

from __future__ import annotations

from typing import Any

from pulumi.errors import InputPropertiesError
from pulumi.provider import main
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.server import ComponentInitError

from components import __version__
from components.session_pool import CodeInterpreterPool
from components.settings import CONFIG_NAMESPACE, SettingsError

PACKAGE_NAME = CONFIG_NAMESPACE


class CodeInterpreterPoolProvider(ComponentProvider):
    """The SDK's component provider, with the component's validation messages passed on as they are."""

    def __init__(self) -> None:
        super().__init__([CodeInterpreterPool], PACKAGE_NAME, version=__version__)

    def construct(self, name: str, resource_type: str, inputs: Any, options: Any = None) -> Any:
        try:
            return super().construct(name, resource_type, inputs, options)
        except ComponentInitError as error:
            if not isinstance(error.inner, SettingsError):
                raise
            problems = [{"property_path": path, "reason": reason} for path, reason in error.inner.property_errors()]
            raise InputPropertiesError(str(error.inner), problems) from None


def schema() -> dict[str, Any]:
    """The package's schema, as GetSchema answers it."""
    import json

    return json.loads(CodeInterpreterPoolProvider().schema)  # type: ignore[attr-defined]


def serve(args: list[str]) -> None:
    """Run the plugin: serve the provider on a local port and print it (the engine's address is args[0])."""
    main(CodeInterpreterPoolProvider(), args)
