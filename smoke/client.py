"""The data-plane client: one method per API call over azure-core's pipeline, as Azure's own clients are built.

``BearerTokenCredentialPolicy`` caches and refreshes the token, ``RetryPolicy`` (or the smoke check's
subclass) retries, ``UserAgentPolicy`` names the client, ``RequestsTransport`` sends. There is no
RedirectPolicy: a redirect is answered as it is, so the token never travels on.
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

from smoke import __version__, protocol
from smoke.auth import TokenProvider
from smoke.endpoint import PoolEndpoint

USER_AGENT = (
    f"dynamic-sessions-smoke/{__version__} python-requests/{requests.__version__} azure-core/{azure.core.__version__}"
)


class SessionPoolClient:
    """A pool's data plane; each method sends one request and returns the answer whatever its status.

    azure-core's ``AzureError`` subclasses mean no answer arrived. ``per_attempt_policies`` run on
    every attempt, after ``retry_policy`` (default: azure-core's RetryPolicy).
    """

    def __init__(
        self,
        endpoint: PoolEndpoint,
        credential: TokenProvider,
        *,
        scope: str = protocol.DEFAULT_TOKEN_SCOPE,
        retry_policy: HTTPPolicy | None = None,
        per_attempt_policies: Sequence[SansIOHTTPPolicy] = (),
        transport: RequestsTransport | None = None,
        ca_file: str | None = None,
    ) -> None:
        """ca_file: the certificates to trust instead of the default ones (e.g. the local pool's --tls)."""
        self.endpoint = endpoint
        policies = [
            HeadersPolicy({"Accept": "application/json"}),
            UserAgentPolicy(base_user_agent=USER_AGENT),
            retry_policy or RetryPolicy(),
            *per_attempt_policies,
            BearerTokenCredentialPolicy(credential, scope),
        ]
        self._client = PipelineClient(endpoint.url, policies=policies, transport=transport or RequestsTransport())
        # The bearer policy refuses plain http; PoolEndpoint allows it for loopback hosts only (the local pool).
        self._options: dict[str, Any] = {"enforce_https": endpoint.scheme != "http"}
        if ca_file is not None:
            self._options["connection_verify"] = ca_file

    def __enter__(self) -> SessionPoolClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._client.close()

    def execute_code_legacy(self, code: str, identifier: str, **options: Any) -> HttpResponse:
        """2024-02-02-preview: ``POST {endpoint}/code/execute``, a synchronous inline execution."""
        body = {"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": code}}
        return self.send(
            "POST", self.url(protocol.CODE_EXECUTE_PATH, protocol.API_2024_02, identifier), body, **options
        )

    def start_execution(
        self, code: str, identifier: str, *, api_version: str = protocol.API_2024_10, **options: Any
    ) -> HttpResponse:
        """2024-10-02-preview and later: ``POST {endpoint}/executions`` (answered 200 or 202)."""
        body = {
            "code": code,
            "codeInputType": "Inline",
            "executionType": "Synchronous",
            "timeoutInSeconds": protocol.DEFAULT_EXECUTION_TIMEOUT_SECONDS,
        }
        return self.send("POST", self.url(protocol.EXECUTIONS_PATH, api_version, identifier), body, **options)

    def get_execution(
        self, execution_id: str, identifier: str, *, api_version: str = protocol.API_2024_10, **options: Any
    ) -> HttpResponse:
        """``GET {endpoint}/executions/{id}``: the state of an execution that was still running."""
        path = f"{protocol.EXECUTIONS_PATH}/{quote(execution_id, safe='')}"
        return self.send("GET", self.url(path, api_version, identifier), **options)

    def upload_file(self, name: str, content: bytes, identifier: str, **options: Any) -> HttpResponse:
        """``POST {endpoint}/files``: one multipart part named ``file`` into the session's /mnt/data."""
        files = {protocol.FILE_FORM_FIELD: (name, content, "application/octet-stream")}
        return self.send(
            "POST", self.url(protocol.FILES_PATH, protocol.FILES_API_VERSION, identifier), files=files, **options
        )

    def list_files(self, identifier: str, **options: Any) -> HttpResponse:
        """``GET {endpoint}/files``: ``{"value": [{"name", "sizeInBytes", ...}]}``."""
        return self.send("GET", self.url(protocol.FILES_PATH, protocol.FILES_API_VERSION, identifier), **options)

    def get_file_content(self, name: str, identifier: str, **options: Any) -> HttpResponse:
        """``GET {endpoint}/files/{name}/content``: the file's bytes."""
        path = f"{protocol.FILES_PATH}/{quote(name, safe='')}/content"
        return self.send("GET", self.url(path, protocol.FILES_API_VERSION, identifier), **options)

    def delete_file(self, name: str, identifier: str, **options: Any) -> HttpResponse:
        """``DELETE {endpoint}/files/{name}`` (answered 204)."""
        path = f"{protocol.FILES_PATH}/{quote(name, safe='')}"
        return self.send("DELETE", self.url(path, protocol.FILES_API_VERSION, identifier), **options)

    def url(self, path: str, api_version: str, identifier: str) -> str:
        """The URL of an API ``path`` below the endpoint, with its api-version and session identifier."""
        return self.endpoint.join(path, {"api-version": api_version, "identifier": identifier})

    def send(self, method: str, url: str, body: Any = None, *, files: Any = None, **options: Any) -> HttpResponse:
        """Send one request (``url`` on this endpoint) through the pipeline; the body is read in full."""
        return self._client.send_request(HttpRequest(method, url, json=body, files=files), **self._options, **options)
