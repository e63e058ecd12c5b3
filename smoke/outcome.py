"""Exit codes of the smoke check and the outcome each API-version check can end in.

This is the one definition of the exit codes: ``python -m smoke --help`` prints EXIT_CODE_MEANINGS,
and the documentation (docs/smoke.md) points here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class ExitCode(enum.IntEnum):
    """Process exit codes of ``python -m smoke`` (meanings in EXIT_CODE_MEANINGS)."""

    PASSED = 0
    EXECUTION_FAILED = 1
    USAGE = 2
    UNAUTHORIZED = 3
    UNREACHABLE = 4
    INTERRUPTED = 130  # the shell convention 128 + SIGINT


EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.PASSED: "hello-world ran and printed exactly hello-world on every API version checked",
    ExitCode.EXECUTION_FAILED: (
        "the pool answered, but the execution failed (status not Success/Succeeded, another HTTP 4xx, "
        "a body that is not the API's JSON) or printed something else"
    ),
    ExitCode.USAGE: (
        "usage or configuration error: no endpoint, bad URL or proxy setting, no credential, bad --identifier, "
        "bad flag, --timeout under 0.5 s"
    ),
    ExitCode.UNAUTHORIZED: (
        "still HTTP 401/403 when the deadline passed: the role assignment has not reached the data plane yet, "
        "or the token or identity is wrong (the verdict quotes the pool's error)"
    ),
    ExitCode.UNREACHABLE: (
        "no usable answer by the deadline: network errors, timeouts, HTTP 5xx, 404, 408, 429, an execution "
        "still running"
    ),
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C) before a verdict; the verdict line (or JSON object) says so",
}


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


# With several API versions the worst outcome decides; the order in exit codes, for --help.
WORST_FIRST = " > ".join(str(int(outcome.exit_code)) for outcome in reversed(_SEVERITY_ORDER))
