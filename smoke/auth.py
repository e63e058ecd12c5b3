"""Bearer tokens for the data plane, and the redaction that keeps them out of every output.

The providers are azure-core token credentials (``get_token(*scopes) -> AccessToken``): azure-core's
BearerTokenCredentialPolicy caches their tokens and asks again shortly before one expires.
"""

from __future__ import annotations

import abc
import logging
import os
import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from smoke.errors import CredentialError
from smoke.protocol import DEFAULT_TOKEN_SCOPE, TOKEN_AUDIENCE

if TYPE_CHECKING:  # azure-core loads only when a token is handed out: usage errors answer without it
    from azure.core.credentials import AccessToken

TOKEN_ENV_VAR = "DYNAMIC_SESSIONS_TOKEN"  # noqa: S105 - the variable's name, not a secret
# A pasted "Authorization" value: the word Bearer, then whitespace or nothing at all ("Bearer " alone).
_BEARER_PREFIX = re.compile(r"bearer(?:\s+|$)", re.IGNORECASE)
REDACTED = "[REDACTED]"
# Secrets shorter than this (only ever test values; real tokens run to ~1500 characters) are
# redacted only where they stand alone, so that a token like "x" does not mangle every word.
MIN_SUBSTRING_SECRET_CHARS = 8
_TOKEN_CHARACTER = r"[A-Za-z0-9._~+/=-]"  # noqa: S105 - a character class, not a secret
# A token given up front never expires as far as the check knows; the pool says when it has.
STATIC_TOKEN_EXPIRES_ON = 2**62
# A command to show the user, not a secret.
TOKEN_COMMAND = f"az account get-access-token --resource {TOKEN_AUDIENCE} --query accessToken -o tsv"
SIGN_IN_HINT = (
    "Sign in with `az login` (or provide a managed identity / AZURE_CLIENT_ID, AZURE_TENANT_ID and "
    f"AZURE_CLIENT_SECRET), or set {TOKEN_ENV_VAR} to the output of `{TOKEN_COMMAND}`."
)


class Redactor:
    """Remembers every secret handed out and replaces it with ``[REDACTED]`` in any text."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        """Remember ``secret`` so that later text containing it is scrubbed."""
        if secret:
            with self._lock:
                self._secrets.add(secret)

    def __call__(self, text: str) -> str:
        """Return ``text`` with every remembered secret replaced (longest first, so none leaks partly)."""
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            if len(secret) >= MIN_SUBSTRING_SECRET_CHARS:
                text = text.replace(secret, REDACTED)
            else:
                standalone = rf"(?<!{_TOKEN_CHARACTER}){re.escape(secret)}(?!{_TOKEN_CHARACTER})"
                text = re.sub(standalone, REDACTED, text)
        return text


class TokenProvider(abc.ABC):
    """A token credential that remembers every token it hands out, so that ``redact`` can scrub it from text."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        self.redactor = redactor or Redactor()

    @abc.abstractmethod
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """Return a bearer token for ``scopes``; raise CredentialError when there is none."""

    def redact(self, text: str) -> str:
        """Remove every token this provider has handed out from ``text``."""
        return self.redactor(text)


def normalize_raw_token(raw: str) -> str:
    """Strip whitespace and a leading ``Bearer`` (followed by whitespace, or alone) from a pasted token."""
    token = raw.strip()
    prefix = _BEARER_PREFIX.match(token)
    if prefix:
        token = token[prefix.end() :].strip()
    return token


class StaticTokenProvider(TokenProvider):
    """A token given up front, e.g. from ``DYNAMIC_SESSIONS_TOKEN``."""

    def __init__(self, raw_token: str, redactor: Redactor | None = None, *, source: str = TOKEN_ENV_VAR) -> None:
        super().__init__(redactor)
        # Remember the raw value too: if it is malformed, even the unnormalised text must never be shown.
        self.redactor.add(raw_token.strip())
        self._token = normalize_raw_token(raw_token)
        if not self._token:
            raise CredentialError(
                f"{source} is set but holds no token. Set it to the output of `{TOKEN_COMMAND}`, "
                "or unset it to use your Azure sign-in (`az login`)."
            )
        self.redactor.add(self._token)
        # Such values cannot go into an HTTP header; usually two values pasted together, or not a token.
        if not self._token.isprintable() or any(character.isspace() for character in self._token):
            raise CredentialError(
                f"{source} holds whitespace or control characters inside the token (value not shown). "
                f"Set it to exactly the output of `{TOKEN_COMMAND}`."
            )
        if not self._token.isascii():
            raise CredentialError(
                f"{source} holds characters that are not ASCII, so it is not an access token (value not shown). "
                f"Set it to exactly the output of `{TOKEN_COMMAND}`."
            )

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """Return the fixed token, whatever the scope."""
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, STATIC_TOKEN_EXPIRES_ON)


class AzureCredentialTokenProvider(TokenProvider):
    """Tokens from azure-identity's DefaultAzureCredential (or ``credential``), errors as one sentence."""

    def __init__(
        self, scope: str = DEFAULT_TOKEN_SCOPE, redactor: Redactor | None = None, *, credential: Any | None = None
    ) -> None:
        super().__init__(redactor)
        self.scope = scope
        self._credential = credential
        self._lock = threading.Lock()

    def _default_credential(self) -> Any:
        # Imported here: azure-identity takes a noticeable time to import and is not needed when
        # DYNAMIC_SESSIONS_TOKEN is set.
        from azure.identity import DefaultAzureCredential

        # Without a handler, azure-identity's warnings about each failed credential reach stderr as a
        # long multi-line dump; the single CredentialError below says what to do instead.
        logging.getLogger("azure").addHandler(logging.NullHandler())
        return DefaultAzureCredential()

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """A token for ``scopes`` (default: this provider's scope) from the Azure sign-in."""
        scopes = scopes or (self.scope,)
        with self._lock:
            if self._credential is None:
                self._credential = self._default_credential()
        try:
            access = self._credential.get_token(*scopes)
        except Exception as error:
            # The chained credential's message lists every source it tried over many lines;
            # the first line names the problem, the hint says how to fix it.
            first_line = self.redact(str(error)).strip().splitlines()[0:1]
            detail = f" ({first_line[0].rstrip('.')})" if first_line else ""
            raise CredentialError(
                f"No Azure credential could provide a token for scope {' '.join(scopes)}{detail}. {SIGN_IN_HINT}"
            ) from None
        self.redactor.add(access.token)
        from azure.core.credentials import AccessToken

        return AccessToken(access.token, int(access.expires_on))


def token_provider_from_env(
    scope: str = DEFAULT_TOKEN_SCOPE,
    env: Mapping[str, str] | None = None,
    redactor: Redactor | None = None,
) -> TokenProvider:
    """``DYNAMIC_SESSIONS_TOKEN`` when set, otherwise DefaultAzureCredential for ``scope``."""
    environ = os.environ if env is None else env
    raw = environ.get(TOKEN_ENV_VAR)
    if raw is not None:
        return StaticTokenProvider(raw, redactor)
    return AzureCredentialTokenProvider(scope, redactor)
