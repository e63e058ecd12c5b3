"""Errors, defaults and input rules of the smoke check: light to import, so usage errors answer without azure-core."""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Mapping

from smoke.protocol import DEFAULT_EXECUTION_TIMEOUT_SECONDS, IDENTIFIER_PATTERN, IDENTIFIER_RULE


class SmokeError(Exception):
    """Base class of every error the smoke check raises on purpose."""


class ConfigurationError(SmokeError):
    """The check cannot start: no endpoint, a bad URL or identifier, a missing tool (exit code 2)."""


class CredentialError(ConfigurationError):
    """No bearer token could be obtained for the data plane (exit code 2)."""


DEFAULT_CONTAINER_TYPE = "NodeLTS"
# Role assignments take minutes to reach the data plane; ten minutes covers the slow cases.
DEFAULT_TIMEOUT_SECONDS = 600.0
# One request may take as long as the execution timeout sent to the pool, plus slack for allocating a session.
DEFAULT_REQUEST_TIMEOUT_SECONDS = DEFAULT_EXECUTION_TIMEOUT_SECONDS + 15.0
# No request is started with less time than this left; also the shortest --timeout, so one request is always sent.
MIN_ATTEMPT_SECONDS = 0.5
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


# The certificate file OpenSSL, Python's ssl and httpx trust (the local pool's --tls prints it).
# requests, under azure-core, reads only REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE, which images often set to
# the system bundle; SSL_CERT_FILE, the variable a user sets for this pool, takes precedence.
CA_FILE_ENV_VAR = "SSL_CERT_FILE"


def ca_file_from_env(env: Mapping[str, str]) -> str | None:
    """$SSL_CERT_FILE when set (None: requests' own defaults); ConfigurationError when it is no file."""
    path = env.get(CA_FILE_ENV_VAR, "").strip()
    if not path:
        return None
    if not os.path.isfile(path):
        raise ConfigurationError(
            f"{CA_FILE_ENV_VAR}={path!r} is not a readable file; set it to a PEM certificate file "
            "(the local pool prints it with --tls) or unset it."
        )
    return path


def validate_timeouts(timeout: float, request_timeout: float) -> None:
    """ConfigurationError unless ``timeout`` >= MIN_ATTEMPT_SECONDS and ``request_timeout`` > 0, both finite."""
    if not (math.isfinite(timeout) and timeout >= MIN_ATTEMPT_SECONDS):
        raise ConfigurationError(
            f"The overall timeout must be at least {MIN_ATTEMPT_SECONDS:g} seconds, the shortest time one request "
            f"needs: a finite, positive number of seconds (got {timeout!r}); the default is "
            f"{DEFAULT_TIMEOUT_SECONDS:g}."
        )
    if not (math.isfinite(request_timeout) and request_timeout > 0):
        raise ConfigurationError(
            f"The request timeout must be a finite, positive number of seconds (got {request_timeout!r}); "
            f"the default is {DEFAULT_REQUEST_TIMEOUT_SECONDS:g}."
        )
