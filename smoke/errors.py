"""Exceptions the smoke check raises for problems a person must fix before it can run."""

from __future__ import annotations


class SmokeError(Exception):
    """Base class of every error the smoke check raises on purpose."""


class ConfigurationError(SmokeError):
    """The check cannot start: no endpoint, a bad URL or identifier, a missing tool (exit code 2)."""


class CredentialError(ConfigurationError):
    """No bearer token could be obtained for the data plane (exit code 2)."""
