"""Exit codes of the smoke check and the outcome each API-version check can end in."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class ExitCode(enum.IntEnum):
    """Process exit codes of ``python -m smoke``."""

    PASSED = 0
    # The pool answered, but the execution failed or printed something other than hello-world.
    EXECUTION_FAILED = 1
    # Usage or configuration error: no endpoint, bad URL, no credential, bad identifier, bad flag.
    USAGE = 2
    # Still 401/403 when the deadline passed: the role assignment has not reached the data plane.
    UNAUTHORIZED = 3
    # No usable answer by the deadline: network errors, timeouts, 5xx, 404, 429, an execution still running.
    UNREACHABLE = 4
    # Interrupted (Ctrl-C / SIGINT) before a verdict: the shell convention 128 + SIGINT.
    INTERRUPTED = 130


class Outcome(enum.Enum):
    """How one API-version check ended; ``severity`` orders them when several are combined."""

    PASSED = "passed"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    UNAUTHORIZED = "unauthorized"
    CONFIGURATION = "configuration"

    @property
    def exit_code(self) -> ExitCode:
        """The process exit code this outcome maps to."""
        return _EXIT_CODES[self]

    @property
    def severity(self) -> int:
        """Rank used to pick the worst outcome: higher is worse."""
        return _SEVERITY_ORDER.index(self)


_EXIT_CODES: dict[Outcome, ExitCode] = {
    Outcome.PASSED: ExitCode.PASSED,
    Outcome.FAILED: ExitCode.EXECUTION_FAILED,
    Outcome.CONFIGURATION: ExitCode.USAGE,
    Outcome.UNAUTHORIZED: ExitCode.UNAUTHORIZED,
    Outcome.UNREACHABLE: ExitCode.UNREACHABLE,
}

# Best to worst. The most specific blocking cause wins: a configuration problem, then missing
# authorization (a precise, fixable cause), then no usable answer at all, then a wrong execution.
# Authorization ranks above reachability so that a version skipped because an earlier one spent
# the whole deadline on 403 (reported as unreachable) does not hide the real cause.
_SEVERITY_ORDER: tuple[Outcome, ...] = (
    Outcome.PASSED,
    Outcome.FAILED,
    Outcome.UNREACHABLE,
    Outcome.UNAUTHORIZED,
    Outcome.CONFIGURATION,
)


def worst_outcome(outcomes: Iterable[Outcome]) -> Outcome:
    """Return the most severe outcome; an empty collection counts as unreachable (nothing was checked)."""
    return max(outcomes, key=lambda outcome: outcome.severity, default=Outcome.UNREACHABLE)
