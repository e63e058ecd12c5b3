"""Bearer tokens for the data plane, and the redaction that keeps them out of every output.

The providers are azure-core token credentials (``get_token(*scopes) -> AccessToken``): azure-core's
BearerTokenCredentialPolicy caches their tokens and asks again shortly before one expires.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping
from typing import Any

from smoke.protocol import DEFAULT_TOKEN_SCOPE, TOKEN_AUDIENCE
from smoke.settings import CredentialError

# azure-core's BearerTokenCredentialPolicy asks for a new token when the one it holds expires within this.
TOKEN_REFRESH_MARGIN_SECONDS = 300

TOKEN_ENV_VAR = "DYNAMIC_SESSIONS_TOKEN"  # noqa: S105 - the variable's name, not a secret
REDACTED = "[REDACTED]"
# Secrets shorter than this (only ever test values; real tokens run to ~1500 characters) are
# redacted only where they stand alone, so that a token like "x" does not mangle every word.
MIN_SUBSTRING_SECRET_CHARS = 8
_STANDS_ALONE = r"(?<![A-Za-z0-9._~+/=-]){}(?![A-Za-z0-9._~+/=-])"  # not inside a run of token characters
# A token given up front never expires as far as the check knows; the pool says when it has.
STATIC_TOKEN_EXPIRES_ON = 2**62
TOKEN_COMMAND = f"az account get-access-token --resource {TOKEN_AUDIENCE} --query accessToken -o tsv"
SIGN_IN_HINT = (
    "Sign in with `az login` (or provide a managed identity / AZURE_CLIENT_ID, AZURE_TENANT_ID and "
    f"AZURE_CLIENT_SECRET), or set {TOKEN_ENV_VAR} to the output of `{TOKEN_COMMAND}`."
)


class Redactor:
    """Remembers every secret handed out and replaces it with ``[REDACTED]`` in any text."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()

    def add(self, secret: str) -> None:
        """Remember ``secret`` so that later text containing it is scrubbed."""
        if secret:
            self.secrets.add(secret)

    def __call__(self, text: str) -> str:
        """``text`` with every remembered secret replaced (longest first, so none leaks partly).

        For text that came from the server or a credential: a short secret is scrubbed wherever it
        stands alone, even where it could be an ordinary word.
        """
        text = self.unambiguous(text)
        for secret in sorted(self.secrets, key=len, reverse=True):
            if len(secret) < MIN_SUBSTRING_SECRET_CHARS:
                text = re.sub(_STANDS_ALONE.format(re.escape(secret)), REDACTED, text)
        return text

    def unambiguous(self, text: str) -> str:
        """``text`` with only the secrets long enough to be unambiguous replaced: the last pass over a
        whole line, whose own words (a hint saying "wrong token") must survive a token like ``wrong``."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            if len(secret) >= MIN_SUBSTRING_SECRET_CHARS:
                text = text.replace(secret, REDACTED)
        return text


def normalize_raw_token(raw: str) -> str:
    """Strip whitespace and a leading ``Bearer`` (followed by whitespace, or alone) from a pasted token."""
    return re.sub(r"^bearer(?:\s+|$)", "", raw.strip(), flags=re.IGNORECASE).strip()


class TokenProvider:
    """An azure-core token credential that remembers every token it hands out, so ``redact`` can scrub it."""

    redactor: Redactor

    def redact(self, text: str) -> str:
        """Remove every token this provider has handed out from ``text`` (text from the server)."""
        return self.redactor(text)

    def redact_line(self, text: str) -> str:
        """Remove the unambiguous tokens from a line the check wrote itself (server text in it is already scrubbed)."""
        return self.redactor.unambiguous(text)


class StaticTokenProvider(TokenProvider):
    """A token given up front, e.g. from ``DYNAMIC_SESSIONS_TOKEN``."""

    def __init__(self, raw_token: str, redactor: Redactor | None = None, *, source: str = TOKEN_ENV_VAR) -> None:
        self.redactor = redact = redactor or Redactor()
        redact.add(raw_token.strip())  # a malformed value must never be shown either
        self._token = normalize_raw_token(raw_token)
        redact.add(self._token)
        if not self._token:
            raise CredentialError(
                f"{source} is set but holds no token. Set it to the output of `{TOKEN_COMMAND}`, "
                "or unset it to use your Azure sign-in (`az login`)."
            )
        # Such values cannot go into an HTTP header: usually two values pasted together, or not a token.
        if not (self._token.isascii() and self._token.isprintable()) or re.search(r"\s", self._token):
            raise CredentialError(
                f"{source} holds whitespace, control or non-ASCII characters, so it is not an access token "
                f"(value not shown). Set it to exactly the output of `{TOKEN_COMMAND}`."
            )

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        """The fixed token (an azure-core AccessToken), whatever the scope."""
        from azure.core.credentials import AccessToken  # azure-core loads only when a token is handed out

        return AccessToken(self._token, STATIC_TOKEN_EXPIRES_ON)


class AzureCredentialTokenProvider(TokenProvider):
    """Tokens from azure-identity's DefaultAzureCredential (or ``credential``); failures as one sentence."""

    def __init__(
        self, scope: str = DEFAULT_TOKEN_SCOPE, redactor: Redactor | None = None, *, credential: Any | None = None
    ) -> None:
        self.redactor = redactor or Redactor()
        self.scope = scope
        self._credential = credential
        # The last token and its scopes: the check's own first request to the credential (which fails
        # early when there is none) then also serves the pipeline's first request (az CLI runs once).
        self._last: tuple[tuple[str, ...], Any] | None = None

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        """A token for ``scopes`` (default: this provider's scope) from the Azure sign-in; the last one
        again while it has more than azure-core's refresh margin (five minutes) left."""
        scopes = scopes or (self.scope,)
        last = self._last
        if last is not None and last[0] == scopes and last[1].expires_on - time.time() > TOKEN_REFRESH_MARGIN_SECONDS:
            return last[1]
        if self._credential is None:
            from azure.identity import DefaultAzureCredential  # slow to import; not needed with a static token

            # Otherwise every failed credential in the chain logs a multi-line warning to stderr.
            logging.getLogger("azure").addHandler(logging.NullHandler())
            self._credential = DefaultAzureCredential()
        try:
            access = self._credential.get_token(*scopes)
        except Exception as error:
            # The chained credential lists every source it tried; the first line names the problem.
            first_line = (self.redact(str(error)).strip().splitlines() or [""])[0].rstrip(".")
            detail = f" ({first_line})" if first_line else ""
            raise CredentialError(
                f"No Azure credential could provide a token for scope {' '.join(scopes)}{detail}. {SIGN_IN_HINT}"
            ) from None
        self.redactor.add(access.token)
        self._last = (scopes, access)
        return access


def token_provider_from_env(
    scope: str = DEFAULT_TOKEN_SCOPE, env: Mapping[str, str] | None = None, redactor: Redactor | None = None
) -> TokenProvider:
    """``DYNAMIC_SESSIONS_TOKEN`` when set, otherwise DefaultAzureCredential for ``scope``."""
    raw = (os.environ if env is None else env).get(TOKEN_ENV_VAR)
    return AzureCredentialTokenProvider(scope, redactor) if raw is None else StaticTokenProvider(raw, redactor)
