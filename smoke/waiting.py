"""Time: an injectable clock, the overall deadline, jittered exponential backoff and Retry-After."""

from __future__ import annotations

import math
import random
import time
from email.utils import parsedate_to_datetime
from typing import Protocol

# Backoff for "not yet" answers (401/403 while a role assignment propagates, 404 while the pool
# starts, 5xx, network errors). It starts near 1 s and grows gently (x1.25) so that the first
# seconds after access arrives are sampled densely (a 3 s propagation is noticed within ~1 s);
# it reaches the 15 s cap after about a minute, where a minutes-long wait costs a few requests a minute.
BACKOFF_INITIAL_SECONDS = 1.0
BACKOFF_FACTOR = 1.25
BACKOFF_CAP_SECONDS = 15.0
# Each delay is scaled by a random factor in [1 - JITTER, 1 + JITTER] so parallel pipelines spread out.
BACKOFF_JITTER_FRACTION = 0.1
# A server's Retry-After beyond this (a day) is cut to it: longer than any sensible deadline anyway,
# and it keeps messages readable when a server sends a far-future date.
MAX_RETRY_AFTER_SECONDS = 86_400.0


class Clock(Protocol):
    """What the waiting code needs from time; tests pass a fake one to check schedules instantly."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds``."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch, to interpret HTTP dates in Retry-After."""
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

    def wall(self) -> float:
        """time.time()."""
        return time.time()


class Deadline:
    """A fixed point in time, ``seconds`` after creation, that no wait may cross."""

    def __init__(self, seconds: float, clock: Clock) -> None:
        self.clock = clock
        self.seconds = seconds
        self.started_at = clock.monotonic()
        self.ends_at = self.started_at + seconds

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.ends_at - self.clock.monotonic())

    def elapsed(self) -> float:
        """Seconds since the deadline was set."""
        return self.clock.monotonic() - self.started_at


class Backoff:
    """Jittered exponential delays: initial, initial*factor, ... up to cap, each scaled by the jitter."""

    def __init__(
        self,
        initial: float = BACKOFF_INITIAL_SECONDS,
        factor: float = BACKOFF_FACTOR,
        cap: float = BACKOFF_CAP_SECONDS,
        jitter: float = BACKOFF_JITTER_FRACTION,
        rng: random.Random | None = None,
    ) -> None:
        self.initial = initial
        self.factor = factor
        self.cap = cap
        self.jitter = jitter
        # Jitter is not security-sensitive; a plain PRNG is what it needs.
        self._rng = rng or random.Random()  # noqa: S311
        self._step = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call moves one step up the curve."""
        nominal = min(self.cap, self.initial * self.factor**self._step)
        self._step += 1
        scale = 1.0 + self._rng.uniform(-self.jitter, self.jitter)
        return min(self.cap, nominal * scale)


def parse_retry_after(value: str | None, now_wall: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or invalid.

    Negative values and past dates mean "now" (0); NaN, infinities and unparseable text are invalid;
    anything beyond MAX_RETRY_AFTER_SECONDS (a far-future date) is cut to it, which outlasts any deadline.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):  # OverflowError: an absurd hour or day
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive result means the zone was omitted
            return None
        seconds = when.timestamp() - now_wall
    if not math.isfinite(seconds):  # "nan", "inf", "1e400"
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)
