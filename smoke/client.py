"""The data-plane client: one method per API call over azure-core's pipeline.

The policies do the cross-cutting work, as in Azure's own data-plane clients:
``BearerTokenCredentialPolicy`` (token caching and refresh), ``RetryPolicy`` (which answers to
retry, backoff, Retry-After, overall timeout), ``UserAgentPolicy``; ``RequestsTransport`` sends.
Redirects are not followed (no RedirectPolicy): a token must not travel on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import azure.core
import requests
from azure.core import PipelineClient
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    HTTPPolicy,
    RetryPolicy,
    SansIOHTTPPolicy,
    UserAgentPolicy,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest, HttpResponse

from smoke._version import __version__
from smoke.auth import TokenProvider
from smoke.endpoint import HTTP, PoolEndpoint
from smoke.protocol import (
    API_2024_02,
    API_2024_10,
    CODE_EXECUTE_PATH,
    DEFAULT_EXECUTION_TIMEOUT_SECONDS,
    DEFAULT_TOKEN_SCOPE,
    EXECUTIONS_PATH,
    FILE_FORM_FIELD,
    FILES_API_VERSION,
    FILES_PATH,
)

USER_AGENT = (
    f"dynamic-sessions-smoke/{__version__} python-requests/{requests.__version__} azure-core/{azure.core.__version__}"
)


class SessionPoolClient:
    """A pool management endpoint's data plane; each method sends one request through the pipeline.

    Methods return the HttpResponse whatever its status once the retry policy is done with it;
    azure-core's ``AzureError`` subclasses mean no answer arrived. ``retry_policy`` defaults to
    azure-core's RetryPolicy; ``per_attempt_policies`` run on every attempt, after it.
    """

    def __init__(
        self,
        endpoint: PoolEndpoint,
        credential: TokenProvider,
        *,
        scope: str = DEFAULT_TOKEN_SCOPE,
        retry_policy: HTTPPolicy | None = None,
        per_attempt_policies: Sequence[SansIOHTTPPolicy] = (),
        transport: RequestsTransport | None = None,
    ) -> None:
        self.endpoint = endpoint
        policies = [
            HeadersPolicy({"Accept": "application/json"}),
            UserAgentPolicy(base_user_agent=USER_AGENT),
            retry_policy or RetryPolicy(),
            *per_attempt_policies,
            BearerTokenCredentialPolicy(credential, scope),
        ]
        self._client = PipelineClient(endpoint.url, policies=policies, transport=transport or RequestsTransport())
        # The bearer policy refuses plain http; the endpoint allows it only for loopback hosts (the local pool).
        self._options: dict[str, Any] = {"enforce_https": False} if endpoint.scheme == HTTP else {}

    def close(self) -> None:
        """Close the transport's connections."""
        self._client.close()

    def __enter__(self) -> SessionPoolClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def execute_code_legacy(self, code: str, identifier: str, **options: Any) -> HttpResponse:
        """2024-02-02-preview: ``POST {endpoint}/code/execute`` with a synchronous inline execution."""
        body = {"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": code}}
        url = self.endpoint.join(CODE_EXECUTE_PATH, {"api-version": API_2024_02, "identifier": identifier})
        return self.send("POST", url, body, **options)

    def start_execution(
        self,
        code: str,
        identifier: str,
        *,
        api_version: str = API_2024_10,
        execution_timeout_seconds: int = DEFAULT_EXECUTION_TIMEOUT_SECONDS,
        **options: Any,
    ) -> HttpResponse:
        """2024-10-02-preview and later: ``POST {endpoint}/executions`` (answered 200 or 202)."""
        body = {
            "code": code,
            "codeInputType": "Inline",
            "executionType": "Synchronous",
            "timeoutInSeconds": execution_timeout_seconds,
        }
        url = self.endpoint.join(EXECUTIONS_PATH, {"api-version": api_version, "identifier": identifier})
        return self.send("POST", url, body, **options)

    def get_execution(
        self, execution_id: str, identifier: str, *, api_version: str = API_2024_10, **options: Any
    ) -> HttpResponse:
        """``GET {endpoint}/executions/{id}``: the state of an execution that was still running."""
        path = f"{EXECUTIONS_PATH}/{quote(execution_id, safe='')}"
        url = self.endpoint.join(path, {"api-version": api_version, "identifier": identifier})
        return self.send("GET", url, **options)

    def upload_file(self, name: str, content: bytes, identifier: str, **options: Any) -> HttpResponse:
        """``POST {endpoint}/files``: one multipart part named ``file`` into the session's /mnt/data."""
        files = {FILE_FORM_FIELD: (name, content, "application/octet-stream")}
        return self.send("POST", self._files_url("", identifier), files=files, **options)

    def list_files(self, identifier: str, **options: Any) -> HttpResponse:
        """``GET {endpoint}/files``: the session's files, ``{"value": [{"name", "sizeInBytes", ...}]}``."""
        return self.send("GET", self._files_url("", identifier), **options)

    def get_file_content(self, name: str, identifier: str, **options: Any) -> HttpResponse:
        """``GET {endpoint}/files/{name}/content``: the file's bytes."""
        return self.send("GET", self._files_url(f"/{quote(name, safe='')}/content", identifier), **options)

    def delete_file(self, name: str, identifier: str, **options: Any) -> HttpResponse:
        """``DELETE {endpoint}/files/{name}`` (answered 204)."""
        return self.send("DELETE", self._files_url(f"/{quote(name, safe='')}", identifier), **options)

    def _files_url(self, suffix: str, identifier: str) -> str:
        return self.endpoint.join(FILES_PATH + suffix, {"api-version": FILES_API_VERSION, "identifier": identifier})

    def send(self, method: str, url: str, body: Any = None, *, files: Any = None, **options: Any) -> HttpResponse:
        """Send one request (``url`` absolute, on this endpoint) through the pipeline; the body is read in full."""
        request = HttpRequest(method, url, json=body, files=files)
        return self._client.send_request(request, **self._options, **options)
