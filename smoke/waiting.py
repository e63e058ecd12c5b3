"""Waiting within one deadline: azure-core's RetryPolicy on the smoke check's schedule, saying why it waits.

azure-core does the retrying (which answers to retry, Retry-After, counting); this module sets the
schedule, keeps every wait inside the overall deadline, counts attempts and fits their timeouts to it,
and turns an answer or an error into the words a person reads on a progress line or in the verdict.
"""

from __future__ import annotations

import random
import re
import ssl
from collections.abc import Callable
from typing import Any, Protocol

from azure.core.exceptions import (
    HttpResponseError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import RetryPolicy, SansIOHTTPPolicy
from azure.core.rest import HttpResponse

from smoke.settings import CA_FILE_ENV_VAR, MIN_ATTEMPT_SECONDS, ConfigurationError

# Backoff for "not yet" answers: it starts near 1 s and grows gently (x1.25), so the first seconds after
# access arrives are sampled densely, and reaches the 15 s cap after about a minute.
BACKOFF_INITIAL_SECONDS = 1.0
BACKOFF_FACTOR = 1.25
BACKOFF_CAP_SECONDS = 15.0
# Each delay is scaled by a random factor in [1 - JITTER, 1 + JITTER] so parallel checks spread out.
BACKOFF_JITTER_FRACTION = 0.1
# A server's Retry-After of 0 must not turn the wait into a tight loop.
MIN_RETRY_DELAY_SECONDS = 0.5
# The deadline, not a count, ends the waiting; this only bounds the loop should the clock stand still.
MAX_RETRIES = 10_000
# Waited out: 401/403 while a role assignment propagates, 404 while a new pool starts, 408, 429, every 5xx.
WAITED_OUT_STATUSES = frozenset({401, 403, 404, 408, 429, *range(500, 600)})
# RetryPolicy retries no POST by default; the check's POSTs (hello-world, a small upload) are safe to repeat.
RETRIED_METHODS = frozenset({"GET", "POST", "DELETE"})
# Connecting takes well under a second; waiting longer only hides an unreachable host.
CONNECT_TIMEOUT_SECONDS = 10.0
EXCERPT_CHARS = 200
# What a "not yet" status most likely means right after a deploy.
STATUS_HINTS: dict[int, str] = {
    401: "token not accepted yet: role assignment not propagated, or wrong token audience?",
    403: "role assignment not propagated yet?",
    404: "pool not ready yet, or wrong endpoint?",
    429: "rate limited",
}
WRONG_IDENTITY_NOTE = "A wrong token or identity is answered the same way"
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_ERRNO_REASON = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")
# requests' errors for a request that cannot even be built: retrying cannot help (a configuration error).
_UNSENDABLE_ERRORS = ("InvalidURL", "InvalidHeader", "InvalidProxyURL", "MissingSchema", "InvalidSchema")


class Clock(Protocol):
    """What the waiting needs from time (the ``time`` module is one); tests pass a fake one."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds``."""
        ...


class Deadline:
    """A fixed point in time, ``seconds`` after creation, that no wait may cross."""

    def __init__(self, seconds: float, clock: Clock) -> None:
        self.clock = clock
        self.seconds = seconds
        self.ends_at = clock.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.ends_at - self.clock.monotonic())


def one_line(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` with every run of whitespace as one space, cut to ``limit`` characters."""
    return excerpt(" ".join(text.split()), limit)


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def looks_like_html(response: HttpResponse, text: str) -> bool:
    """True for an HTML page (a proxy's or a sign-in page) instead of the API's JSON."""
    return "html" in response.headers.get("Content-Type", "").lower() or text.lstrip()[:1] == "<"


def describe_body(response: HttpResponse, redact: Callable[[str], str]) -> str:
    """One line about a body: the service's error code and message, an HTML page's title, or an excerpt.

    Tokens are scrubbed before anything is cut short, so not even part of one shows.
    """
    text = redact(response.text())
    if not text.strip():
        error_code = response.headers.get("x-ms-error-code")
        return f"empty body (x-ms-error-code: {error_code})" if error_code else "empty body"
    if looks_like_html(response, text):
        title = _HTML_TITLE.search(text)
        return f"HTML page {one_line(title.group(1) if title and title.group(1).strip() else text)!r}"
    error = HttpResponseError(response=response).error  # azure-core parses {"error": {"code", "message"}}
    if error is not None and (error.code or error.message):
        return one_line(redact(f"{error.code}: {error.message}".strip().rstrip(":")))
    return one_line(text)


def describe_answer(response: HttpResponse, redact: Callable[[str], str], retry_after: float | None = None) -> str:
    """Why an answer with a status outside 2xx is not (yet) usable."""
    status, hint = response.status_code, STATUS_HINTS.get(response.status_code)
    if status in (401, 403, 404):
        note = f". {WRONG_IDENTITY_NOTE}" if status != 404 else ""
        return f'HTTP {status} ({hint}): the pool says "{describe_body(response, redact)}"{note}'
    if status == 429:
        return f"HTTP 429 ({hint}{f'; Retry-After {retry_after:.1f} s' if retry_after is not None else ''})"
    if status >= 500:
        return f"HTTP {status} (server error: {describe_body(response, redact)})"
    location = response.headers.get("Location")
    detail = f"redirect to {excerpt(redact(location))!r}, not followed" if location else describe_body(response, redact)
    return f"HTTP {status} ({detail})"


def certificate_failure(error: BaseException | None) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind a transport error, if that is what it is.

    azure-core wraps requests' SSLError, which wraps urllib3's (in a MaxRetryError on some versions).
    """
    pending: list[object] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        pending += [getattr(current, "inner_exception", None), getattr(current, "reason", None), current.__cause__]
        pending += current.args
    return None


def stops_at_once(error: BaseException | None) -> bool:
    """True for a transport error that retrying cannot cure: an unsendable request, an untrusted certificate."""
    inner = getattr(error, "inner_exception", None) or error
    return type(inner).__name__ in _UNSENDABLE_ERRORS or certificate_failure(error) is not None


def describe_error(error: BaseException, watch: Watch) -> str:
    """Why a request got no answer; ConfigurationError when retrying cannot help (see stops_at_once)."""
    inner = getattr(error, "inner_exception", None) or error
    if type(inner).__name__ in _UNSENDABLE_ERRORS:
        raise ConfigurationError(
            f"The request to {watch.origin} could not be sent ({type(inner).__name__}: {one_line(str(inner))}); "
            "check the endpoint URL and any proxy settings (HTTPS_PROXY, HTTP_PROXY, NO_PROXY)."
        )
    untrusted = certificate_failure(error)
    if untrusted is not None:
        # A configuration problem, not a propagation delay: the same certificate is presented on every try.
        raise ConfigurationError(
            f"The TLS certificate of {watch.origin} is not trusted "
            f"({one_line(untrusted.verify_message or str(untrusted))}); for a local pool started with --tls, "
            f"set {CA_FILE_ENV_VAR} to the certificate path it printed, otherwise check the endpoint URL and the "
            f"CA bundle named by {CA_FILE_ENV_VAR} or REQUESTS_CA_BUNDLE."
        )
    if isinstance(error, ServiceResponseTimeoutError | ServiceRequestTimeoutError):
        phase = "connecting" if isinstance(error, ServiceRequestTimeoutError) else "reading the answer"
        return f"no answer within {watch.read_timeout:.1f} s ({phase} timed out)"
    found = _ERRNO_REASON.search(str(error))
    reason = found.group(1).strip() if found else type(inner).__name__
    if isinstance(error, ServiceRequestError):
        return f"could not connect to {watch.origin} ({reason})"
    return f"request failed ({reason})"


class Watch(SansIOHTTPPolicy):
    """Runs on every attempt (after the retry policy): counts it, fits its timeouts into the deadline and
    notes what came back. ``start(label)`` begins the next check with fresh counts."""

    def __init__(self, deadline: Deadline, request_timeout: float, origin: str) -> None:
        self.deadline, self.request_timeout, self.origin = deadline, request_timeout, origin
        self.start("")

    def start(self, label: str) -> None:
        """Begin a check (an API version's hello-world, or the file round trip)."""
        self.label = label
        self.attempts = 0
        self.http_status: int | None = None
        self.read_timeout = self.request_timeout
        # Latency counts from the first request that got a 2xx: propagation waits are left out, polls are not.
        self.got_through_at: float | None = None
        self.attempt_started_at = 0.0
        # Set when the waiting stopped before the deadline: the server asked to wait longer than the time left.
        self.stopped_early: str | None = None

    def on_request(self, request: PipelineRequest) -> None:
        self.attempts += 1
        self.attempt_started_at = self.deadline.clock.monotonic()
        # Cut to the time left, but never to nothing: the first request is always sent.
        self.read_timeout = min(self.request_timeout, max(self.deadline.remaining(), MIN_ATTEMPT_SECONDS))
        request.context.options["read_timeout"] = self.read_timeout
        request.context.options["connection_timeout"] = min(CONNECT_TIMEOUT_SECONDS, self.read_timeout)

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:
        self.http_status = response.http_response.status_code
        if 200 <= self.http_status < 300 and self.got_through_at is None:
            self.got_through_at = self.attempt_started_at


class WaitingRetryPolicy(RetryPolicy):
    """azure-core's RetryPolicy on the smoke check's schedule, every wait inside the deadline and reported."""

    def __init__(self, watch: Watch, redact: Callable[[str], str], progress: Callable[[str], None]) -> None:
        super().__init__(
            retry_total=MAX_RETRIES,
            retry_connect=MAX_RETRIES,
            retry_read=MAX_RETRIES,
            retry_status=MAX_RETRIES,
            retry_backoff_factor=BACKOFF_INITIAL_SECONDS,
            retry_backoff_max=BACKOFF_CAP_SECONDS,
            retry_on_status_codes=WAITED_OUT_STATUSES,
        )
        self.watch, self.redact, self.progress = watch, redact, progress
        self.rng = random.Random()  # noqa: S311 - jitter, not security

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        """RetryPolicy's settings, with the execution POST retried like a GET."""
        options.setdefault("retry_on_methods", RETRIED_METHODS)
        return super().configure_retries(options)

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        """initial, initial*factor, ... up to the cap, each jittered (RetryPolicy's own doubles from 0)."""
        nominal = settings["backoff"] * BACKOFF_FACTOR ** max(0, len(settings["history"]) - 1)
        scale = 1.0 + self.rng.uniform(-BACKOFF_JITTER_FRACTION, BACKOFF_JITTER_FRACTION)
        return min(settings["max_backoff"], nominal * scale)

    def increment(self, settings: dict[str, Any], response: Any = None, error: Exception | None = None) -> bool:
        """RetryPolicy's count, and no further try when the deadline (or a long Retry-After) leaves no time."""
        if stops_at_once(error) or not super().increment(settings, response, error):
            return False
        remaining = self.watch.deadline.remaining()
        retry_after = self.retry_after(response)
        if retry_after is not None and retry_after > remaining - MIN_ATTEMPT_SECONDS:
            self.watch.stopped_early = (
                f"the server asked to wait {retry_after:.1f} s but only {remaining:.1f} s were left "
                f"before the {self.watch.deadline.seconds:g} s deadline"
            )
            return False
        return remaining > MIN_ATTEMPT_SECONDS

    def sleep(self, settings: dict[str, Any], transport: Any, response: PipelineResponse | None = None) -> None:
        """Wait Retry-After or the backoff, cut so an attempt still fits, after one progress line saying why."""
        retry_after = self.retry_after(response)
        if response is None:
            reason = describe_error(settings["history"][-1].error, self.watch)
        else:
            reason = describe_answer(response.http_response, self.redact, retry_after)
        wanted = self.wanted_delay(retry_after, self.get_backoff_time(settings))
        self.pause(wanted, f"{self.watch.label} attempt {self.watch.attempts}: {reason}")

    @staticmethod
    def wanted_delay(retry_after: float | None, otherwise: float) -> float:
        """How long to wait before asking again: the server's Retry-After (at least MIN_RETRY_DELAY_SECONDS),
        else ``otherwise``."""
        return otherwise if retry_after is None else max(retry_after, MIN_RETRY_DELAY_SECONDS)

    def pause(self, wanted: float, why: str) -> None:
        """Sleep ``wanted`` cut so an attempt still fits before the deadline, after one progress line saying why."""
        remaining = self.watch.deadline.remaining()
        delay = min(wanted, remaining - MIN_ATTEMPT_SECONDS)
        self.progress(f"{why}; next try in {delay:.1f} s ({remaining:.1f} s left before the deadline)")
        self.watch.deadline.clock.sleep(max(0.0, delay))

    def retry_after(self, response: Any) -> float | None:
        """Retry-After (or retry-after-ms) of a pipeline response, or of an answer's headers, in seconds.

        None when absent, unreadable, or when there is no answer at all.
        """
        try:
            if isinstance(response, PipelineResponse):
                return self.get_retry_after(response)
            value = response.headers.get("Retry-After") if isinstance(response, HttpResponse) else None
            return self.parse_retry_after(value) if value else None
        except (ValueError, OverflowError):  # neither seconds nor an HTTP date
            return None
