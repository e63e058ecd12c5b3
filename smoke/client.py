"""A small data-plane client: one method per API call, one HTTP request each, no retrying here."""

from __future__ import annotations

import json
import re
import reprlib
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import requests
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import DecodeError, LocationValueError, ProtocolError, ReadTimeoutError
from urllib3.exceptions import SSLError as Urllib3SSLError

from smoke._version import __version__
from smoke.auth import TokenProvider
from smoke.endpoint import PoolEndpoint
from smoke.errors import ConfigurationError, SmokeError
from smoke.protocol import (
    API_2024_02,
    API_2024_10,
    CODE_EXECUTE_PATH,
    DEFAULT_EXECUTION_TIMEOUT_SECONDS,
    EXECUTIONS_PATH,
)

USER_AGENT = f"dynamic-sessions-smoke/{__version__} python-requests/{requests.__version__}"
# Connecting should take well under a second; waiting longer only hides an unreachable host.
CONNECT_TIMEOUT_SECONDS = 10.0
# How much of a response body an error message quotes.
BODY_EXCERPT_CHARS = 200
# The API's answers are a few kilobytes (each output stream is capped at 4096 characters); anything
# far larger is not an answer to hello-world, and is not read into memory in full.
MAX_BODY_BYTES = 1024 * 1024
READ_CHUNK_BYTES = 64 * 1024
DEFAULT_CHARSET = "utf-8"
# How deep and wide a JSON value of the wrong type is shown in a message ({"a": [1, ...]}).
_VALUE_REPR = reprlib.Repr()
_VALUE_REPR.maxlevel = 3
_VALUE_REPR.maxstring = BODY_EXCERPT_CHARS
_VALUE_REPR.maxother = BODY_EXCERPT_CHARS
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_ERRNO_REASON = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


class TransportError(SmokeError):
    """The request got no HTTP answer: connection failed, or no response within the read timeout."""


class MalformedResponseError(SmokeError):
    """The answer is not the JSON object the API documents (an HTML page, truncated JSON, ...)."""


# requests' errors that mean the request could not even be built: the URL, a header or the proxy
# setting is unusable. Retrying cannot help; they are configuration errors (exit 2).
_UNSENDABLE_ERRORS: tuple[type[Exception], ...] = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidHeader,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.URLRequired,
    LocationValueError,  # urllib3: e.g. a host label longer than 63 characters
    UnicodeError,  # a header value that cannot be encoded
)


def one_line(text: str, limit: int = BODY_EXCERPT_CHARS) -> str:
    """``text`` with every run of whitespace (newlines included) as one space, cut to ``limit`` characters."""
    collapsed = " ".join(text.split())
    return collapsed if len(collapsed) <= limit else collapsed[: limit - 1] + "…"


def _keep(text: str) -> str:
    return text


def describe_value(value: object) -> str:
    """A JSON value for a message: strings as they are, anything else as a short, depth-limited repr."""
    return value if isinstance(value, str) else _VALUE_REPR.repr(value)


def parse_json(text: str) -> tuple[bool, Any]:
    """``(True, value)`` for valid JSON, ``(False, None)`` otherwise (also for nesting too deep to parse)."""
    try:
        return True, json.loads(text)
    except (ValueError, RecursionError):
        return False, None


def redact_json(value: Any, redact: Callable[[str], str]) -> Any:
    """Pass every string in a parsed JSON value (keys included) through ``redact``, in place, without recursion.

    A token the server echoed \\u-escaped only appears once the JSON is parsed; scrubbing it here, before
    any message quotes or cuts the value, keeps even part of it out of every output.
    """
    if isinstance(value, str):
        return redact(value)
    pending: list[Any] = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            items = list(node.items())
            node.clear()
            for key, item in items:
                node[redact(key)] = redact(item) if isinstance(item, str) else item
                if isinstance(item, dict | list):
                    pending.append(item)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                if isinstance(item, str):
                    node[index] = redact(item)
                elif isinstance(item, dict | list):
                    pending.append(item)
    return value


def _decode(content: bytes, charset: str | None) -> str:
    """The body as text in its declared charset; UTF-8 when none is declared or it is unknown or unusable."""
    if charset:
        try:
            return content.decode(charset, errors="replace")
        except (LookupError, ValueError, TypeError):  # "bogus-enc", "rot13", "idna" with errors="replace"
            pass
    return content.decode(DEFAULT_CHARSET, errors="replace")


class HttpReply(NamedTuple):
    """One HTTP answer, reduced to what the smoke check looks at."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive (requests' CaseInsensitiveDict)
    text: str
    url: str
    # Scrubs the token from every string parsed out of the body (the text itself is scrubbed already).
    redact: Callable[[str], str] = _keep
    # Why the body could not be read in full (too large, undecodable Content-Encoding), or None.
    body_problem: str | None = None

    def looks_like_html(self) -> bool:
        """True for an HTML page (a gateway or proxy error page rather than an API answer)."""
        content_type = self.headers.get("Content-Type", "").lower()
        return "html" in content_type or self.text.lstrip()[:1] == "<"

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; MalformedResponseError (with a short excerpt) when it is anything else."""
        if self.body_problem:
            raise MalformedResponseError(self.body_problem)
        if self.looks_like_html():
            raise MalformedResponseError(f"the body is an HTML page, not JSON: {self.describe_body()}")
        valid, body = parse_json(self.text)
        if not valid:
            raise MalformedResponseError(f"the body is not valid JSON: {self.describe_body()}")
        body = redact_json(body, self.redact)
        if not isinstance(body, dict):
            raise MalformedResponseError(f"the body is JSON but not an object: {self.describe_body()}")
        return body

    def describe_body(self) -> str:
        """One line about the body for error messages: Azure error code and message, HTML title, or excerpt."""
        if self.body_problem:
            return self.body_problem
        if not self.text.strip():
            error_code = self.headers.get("x-ms-error-code")
            return f"empty body (x-ms-error-code: {error_code})" if error_code else "empty body"
        if self.looks_like_html():
            title = _HTML_TITLE.search(self.text)
            label = one_line(title.group(1)) if title and title.group(1).strip() else one_line(self.text)
            return f"HTML page {label!r}"
        valid, body = parse_json(self.text)
        if not valid:
            return repr(one_line(self.text))
        body = redact_json(body, self.redact)
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and (error.get("code") or error.get("message")):
            code, message = describe_value(error.get("code", "Error")), describe_value(error.get("message", ""))
            return one_line(f"{code}: {message}".strip().rstrip(":"))
        return one_line(self.text)


class _BearerAuth(requests.auth.AuthBase):
    """Adds the bearer token when the request is sent (so a refreshed token is picked up)."""

    def __init__(self, token_provider: TokenProvider) -> None:
        self._token_provider = token_provider

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token_provider.get_token()}"
        return request


def _transport_reason(error: requests.RequestException) -> str:
    """A short cause for a failed request, instead of urllib3's nested exception text."""
    found = _ERRNO_REASON.search(str(error))
    return found.group(1).strip() if found else type(error).__name__


class SessionPoolClient:
    """Holds the endpoint, the token provider and an HTTP session; each method sends exactly one request.

    Methods return the HttpReply whatever its status (the caller decides what to retry) and raise
    TransportError when no answer arrived. Redirects are not followed: a token must not travel on.
    """

    def __init__(
        self,
        endpoint: PoolEndpoint,
        token_provider: TokenProvider,
        *,
        session: requests.Session | None = None,
        user_agent: str = USER_AGENT,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        self.endpoint = endpoint
        self.token_provider = token_provider
        # A session handed in belongs to the caller, who closes it; only our own is closed here.
        self._owns_session = session is None
        self.session = session or requests.Session()
        self.user_agent = user_agent
        self.connect_timeout = connect_timeout
        self._auth = _BearerAuth(token_provider)

    def close(self) -> None:
        """Close the HTTP session's connections, unless the caller supplied the session."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> SessionPoolClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def execute_code_legacy(self, code: str, identifier: str, *, timeout: float) -> HttpReply:
        """2024-02-02-preview: ``POST {endpoint}/code/execute`` with a synchronous inline execution."""
        body = {"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": code}}
        url = self.endpoint.join(CODE_EXECUTE_PATH, {"api-version": API_2024_02, "identifier": identifier})
        return self._send("POST", url, timeout, body)

    def start_execution(
        self,
        code: str,
        identifier: str,
        *,
        timeout: float,
        api_version: str = API_2024_10,
        execution_timeout_seconds: int = DEFAULT_EXECUTION_TIMEOUT_SECONDS,
    ) -> HttpReply:
        """2024-10-02-preview and later: ``POST {endpoint}/executions`` (answered 200 or 202)."""
        body = {
            "code": code,
            "codeInputType": "Inline",
            "executionType": "Synchronous",
            "timeoutInSeconds": execution_timeout_seconds,
        }
        url = self.endpoint.join(EXECUTIONS_PATH, {"api-version": api_version, "identifier": identifier})
        return self._send("POST", url, timeout, body)

    def get_execution(
        self, execution_id: str, identifier: str, *, timeout: float, api_version: str = API_2024_10
    ) -> HttpReply:
        """``GET {endpoint}/executions/{id}``: the state of an execution that was still running."""
        path = f"{EXECUTIONS_PATH}/{requests.utils.quote(execution_id, safe='')}"
        url = self.endpoint.join(path, {"api-version": api_version, "identifier": identifier})
        return self._send("GET", url, timeout)

    def get_operation(self, url: str, *, timeout: float) -> HttpReply:
        """``GET`` an Operation-Location URL; refuses any URL outside the endpoint's origin.

        The URL comes from the server: when it cannot even be requested, that is a malformed answer
        (MalformedResponseError), not a configuration error.
        """
        if not self.endpoint.same_origin(url):
            raise SmokeError(
                f"Refusing to send the token to {url!r}: it is not on the pool endpoint's host {self.endpoint.origin}."
            )
        try:
            return self._send("GET", url, timeout)
        except ConfigurationError as error:
            raise MalformedResponseError(f"its Operation-Location {url!r} cannot be requested: {error}") from None

    def _send(self, method: str, url: str, timeout: float, body: dict[str, Any] | None = None) -> HttpReply:
        redact = self.token_provider.redact
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                url,
                json=body,
                auth=self._auth,
                headers={"User-Agent": self.user_agent, "Accept": "application/json"},
                timeout=(min(self.connect_timeout, timeout), timeout),
                allow_redirects=False,
                stream=True,  # read below, up to MAX_BODY_BYTES
            )
            try:
                content, body_problem = _read_body(response, started + timeout)
            finally:
                response.close()
        except requests.Timeout as error:
            phase = "connecting" if isinstance(error, requests.ConnectTimeout) else "reading the answer"
            raise TransportError(f"no answer within {timeout:.1f} s ({phase} timed out)") from None
        except requests.exceptions.InvalidProxyURL:
            raise ConfigurationError(
                "The proxy URL in HTTPS_PROXY / HTTP_PROXY / ALL_PROXY is not valid; fix or unset it."
            ) from None
        except _UNSENDABLE_ERRORS as error:
            # Redacted before it is cut short: requests quotes a rejected header value, token included.
            raise ConfigurationError(
                f"The request to {self.endpoint.origin} could not be sent ({type(error).__name__}: "
                f"{one_line(redact(str(error)))}); check the endpoint URL, the token and any proxy settings"
            ) from None
        except requests.ConnectionError as error:
            if "timed out" in str(error).lower():  # a timeout while the request itself was being sent
                raise TransportError(f"no answer within {timeout:.1f} s (reading the answer timed out)") from None
            raise TransportError(
                redact(f"could not connect to {self.endpoint.origin} ({_transport_reason(error)})")
            ) from None
        except requests.RequestException as error:
            raise TransportError(redact(f"request failed ({_transport_reason(error)})")) from None
        return HttpReply(
            status_code=response.status_code,
            # Scrubbed at the source: a server that echoes the Authorization header must not leak it.
            headers=CaseInsensitiveDict({name: redact(value) for name, value in response.headers.items()}),
            # JSON is UTF-8 unless a charset says otherwise; decoding directly skips charset guessing.
            text=redact(_decode(content, response.encoding)),
            url=url,
            redact=redact,
            body_problem=body_problem,
        )


def _read_body(response: requests.Response, read_by: float) -> tuple[bytes, str | None]:
    """The body, at most MAX_BODY_BYTES of it, and why it is incomplete (None when it is complete).

    Reads whatever has arrived (``read1``) rather than waiting for full chunks, and gives up once
    ``read_by`` (a time.monotonic() instant: the request's start plus its timeout) has passed: a server
    that drips its body a byte at a time within every read timeout cannot hold the check past its
    deadline by more than one read timeout. urllib3's errors are translated as requests' iter_content
    would translate them, so the caller handles one family of exceptions.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := response.raw.read1(READ_CHUNK_BYTES, decode_content=True):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return b"".join(chunks)[:MAX_BODY_BYTES], (
                    f"the body is larger than {MAX_BODY_BYTES} bytes, far more than any answer of the API"
                )
            if time.monotonic() > read_by:
                raise TransportError(
                    f"no complete answer in time: the body was still arriving after {size} bytes "
                    f"(reading the answer timed out)"
                )
    except DecodeError:
        encoding = response.headers.get("Content-Encoding", "")
        return b"", f"the body could not be decoded (Content-Encoding {one_line(encoding)!r})"
    except ReadTimeoutError as error:
        raise requests.exceptions.ReadTimeout(error) from None
    except Urllib3SSLError as error:
        raise requests.exceptions.SSLError(error) from None
    except ProtocolError as error:
        raise requests.exceptions.ChunkedEncodingError(error) from None
    return b"".join(chunks), None
