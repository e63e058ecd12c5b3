"""Defaults and input rules of the smoke check: light to import, so the CLI can validate before loading requests."""

from __future__ import annotations

import uuid

from smoke.errors import ConfigurationError
from smoke.protocol import DEFAULT_EXECUTION_TIMEOUT_SECONDS, IDENTIFIER_PATTERN, IDENTIFIER_RULE

DEFAULT_CONTAINER_TYPE = "NodeLTS"
# Role assignments take minutes to reach the data plane; ten minutes covers the slow cases.
DEFAULT_TIMEOUT_SECONDS = 600.0
# One request may legitimately take as long as the execution timeout sent to the pool, plus slack
# for allocating a new session; beyond that the request is abandoned and retried.
REQUEST_TIMEOUT_SLACK_SECONDS = 15.0
DEFAULT_REQUEST_TIMEOUT_SECONDS = DEFAULT_EXECUTION_TIMEOUT_SECONDS + REQUEST_TIMEOUT_SLACK_SECONDS
IDENTIFIER_PREFIX = "smoke-"


def new_identifier() -> str:
    """A fresh session identifier (``smoke-<uuid4>``), valid under the identifier rule."""
    return f"{IDENTIFIER_PREFIX}{uuid.uuid4()}"


def validate_identifier(identifier: str) -> str:
    """Return ``identifier`` if it follows the data plane's rule; ConfigurationError otherwise."""
    if not IDENTIFIER_PATTERN.fullmatch(identifier):
        raise ConfigurationError(
            f"The session identifier {identifier!r} is not valid: it must be {IDENTIFIER_RULE}. "
            "Omit --identifier to use a fresh UUID-based one."
        )
    return identifier
