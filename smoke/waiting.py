"""Waiting within one deadline: an injectable clock, and azure-core's RetryPolicy tuned to wait out a fresh pool.

The retrying itself (which answers to retry, Retry-After, counting attempts) is azure-core's
``RetryPolicy``; this module only sets its schedule, keeps each wait inside the smoke check's
overall deadline, and says in one progress line per wait what it is waiting for.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, Protocol

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import RetryPolicy, SansIOHTTPPolicy

from smoke.settings import MIN_ATTEMPT_SECONDS

# Backoff for "not yet" answers (401/403 while a role assignment propagates, 404 while the pool
# starts, 5xx, network errors). It starts near 1 s and grows gently (x1.25) so that the first
# seconds after access arrives are sampled densely (a 3 s propagation is noticed within ~1 s);
# it reaches the 15 s cap after about a minute, where a minutes-long wait costs a few requests a minute.
BACKOFF_INITIAL_SECONDS = 1.0
BACKOFF_FACTOR = 1.25
BACKOFF_CAP_SECONDS = 15.0
# Each delay is scaled by a random factor in [1 - JITTER, 1 + JITTER] so parallel pipelines spread out.
BACKOFF_JITTER_FRACTION = 0.1
# A server's Retry-After of 0 must not turn the wait into a tight loop.
MIN_RETRY_DELAY_SECONDS = 0.5
# The deadline, not a count, ends the waiting; this only bounds the loop should the clock stand still.
MAX_RETRIES = 10_000
# Statuses waited out on top of RetryPolicy's own (408, 429, 500, 502-504): 401/403 while a role
# assignment propagates, 404 while a new pool starts, and every other 5xx.
WAITED_OUT_STATUSES = frozenset({401, 403, 404, *range(500, 600)})
# RetryPolicy retries no POST by default; the smoke check's POSTs (hello-world, a small upload) are safe to repeat.
RETRIED_METHODS = frozenset({"GET", "POST", "DELETE"})
# Connecting should take well under a second; waiting longer only hides an unreachable host.
CONNECT_TIMEOUT_SECONDS = 10.0


class Clock(Protocol):
    """What the waiting needs from time; tests pass a fake one to check schedules instantly."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds``."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        """time.monotonic()."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """time.sleep(), ignoring non-positive durations."""
        if seconds > 0:
            time.sleep(seconds)


class Deadline:
    """A fixed point in time, ``seconds`` after creation, that no wait may cross."""

    def __init__(self, seconds: float, clock: Clock) -> None:
        self.clock = clock
        self.seconds = seconds
        self.ends_at = clock.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.ends_at - self.clock.monotonic())


class Watch:
    """What one check (an API version's hello-world, or the file round trip) has seen; the policies fill it in."""

    def __init__(self, label: str, deadline: Deadline, request_timeout: float) -> None:
        self.label = label
        self.deadline = deadline
        self.request_timeout = request_timeout
        self.attempts = 0
        self.http_status: int | None = None
        self.read_timeout = request_timeout
        # When the first request that got a 2xx answer was sent: latency is measured from there,
        # so waits for propagation are not counted, but polls of a running execution are.
        self.got_through_at: float | None = None
        self.attempt_started_at = 0.0


class AttemptPolicy(SansIOHTTPPolicy):
    """Runs once per attempt (after the RetryPolicy): counts it, fits its timeouts into the deadline."""

    def __init__(self, watch: Callable[[], Watch]) -> None:
        self._watch = watch

    def on_request(self, request: PipelineRequest) -> None:
        watch = self._watch()
        watch.attempts += 1
        watch.attempt_started_at = watch.deadline.clock.monotonic()
        # Cut to the time left, but never to nothing: the first request is always sent.
        watch.read_timeout = min(watch.request_timeout, max(watch.deadline.remaining(), MIN_ATTEMPT_SECONDS))
        request.context.options["read_timeout"] = watch.read_timeout
        request.context.options["connection_timeout"] = min(CONNECT_TIMEOUT_SECONDS, watch.read_timeout)

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:
        watch = self._watch()
        watch.http_status = response.http_response.status_code
        if 200 <= watch.http_status < 300 and watch.got_through_at is None:
            watch.got_through_at = watch.attempt_started_at


class StopWaiting(Exception):
    """Raised from a wait that cannot happen: the deadline, or a Retry-After longer than the time left."""

    def __init__(self, reason: str, response: PipelineResponse | None, *, asked_too_long: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.response = response
        self.asked_too_long = asked_too_long


class WaitingRetryPolicy(RetryPolicy):
    """azure-core's RetryPolicy on the smoke check's schedule, every wait inside the deadline and reported.

    ``describe(response, error)`` turns what came back into the reason shown on the progress line.
    """

    def __init__(
        self,
        watch: Callable[[], Watch],
        describe: Callable[[PipelineResponse | None, BaseException | None], str],
        progress: Callable[[str], None],
    ) -> None:
        super().__init__(
            retry_total=MAX_RETRIES,
            retry_connect=MAX_RETRIES,
            retry_read=MAX_RETRIES,
            retry_status=MAX_RETRIES,
            retry_backoff_factor=BACKOFF_INITIAL_SECONDS,
            retry_backoff_max=BACKOFF_CAP_SECONDS,
            retry_on_status_codes=WAITED_OUT_STATUSES,
        )
        self._watch = watch
        self._describe = describe
        self.progress = progress
        # Jitter is not security-sensitive; a plain PRNG is what it needs.
        self.rng = random.Random()  # noqa: S311

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        """RetryPolicy's settings, with the execution POST retried like a GET."""
        options.setdefault("retry_on_methods", RETRIED_METHODS)
        return super().configure_retries(options)

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        """initial, initial*factor, ... up to the cap, each scaled by the jitter (RetryPolicy's doubles from 0)."""
        step = max(0, len(settings["history"]) - 1)
        nominal = min(settings["max_backoff"], settings["backoff"] * BACKOFF_FACTOR**step)
        scale = 1.0 + self.rng.uniform(-BACKOFF_JITTER_FRACTION, BACKOFF_JITTER_FRACTION)
        return min(settings["max_backoff"], nominal * scale)

    def sleep(self, settings: dict[str, Any], transport: Any, response: PipelineResponse | None = None) -> None:
        """Wait before the next attempt: Retry-After or the backoff, cut to fit an attempt before the deadline."""
        watch = self._watch()
        error = None if response is not None else settings["history"][-1].error
        reason = self._describe(response, error)
        remaining = watch.deadline.remaining()
        retry_after = self.retry_after(response)
        if retry_after is not None and retry_after > remaining - MIN_ATTEMPT_SECONDS:
            raise StopWaiting(
                f"{reason}: the server asked to wait {retry_after:.1f} s but only {remaining:.1f} s were left "
                f"before the {watch.deadline.seconds:g} s deadline",
                response,
                asked_too_long=True,
            )
        usable = remaining - MIN_ATTEMPT_SECONDS
        if usable <= 0:
            raise StopWaiting(reason, response)
        wanted = self.get_backoff_time(settings) if retry_after is None else max(retry_after, MIN_RETRY_DELAY_SECONDS)
        delay = min(wanted, usable)
        self.progress(
            f"{watch.label} attempt {watch.attempts}: {reason}; next try in {delay:.1f} s "
            f"({remaining:.1f} s left before the deadline)"
        )
        watch.deadline.clock.sleep(delay)

    def retry_after(self, response: PipelineResponse | None) -> float | None:
        """The answer's Retry-After (or retry-after-ms) in seconds; None when absent or unreadable."""
        if response is None:
            return None
        try:
            return self.get_retry_after(response)
        except (ValueError, OverflowError):  # neither seconds nor an HTTP date
            return None

    def parse_header(self, value: str | None) -> float | None:
        """A Retry-After header value in seconds; None when absent or unreadable."""
        try:
            return self.parse_retry_after(value) if value else None
        except (ValueError, OverflowError):
            return None
