"""Exit codes of the smoke check (their one definition: ``--help`` prints them, docs/smoke.md points here)."""

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
        "bad flag, --timeout under 0.5 s, an endpoint whose TLS certificate is not trusted (stopped at once)"
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
    """How one check ended, declared best to worst: the worst of several decides.

    The most specific blocking cause wins: configuration, then authorization (so that a version skipped
    because an earlier one spent the deadline on 403 does not hide the cause), then no usable answer.
    """

    PASSED = "passed"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    UNAUTHORIZED = "unauthorized"
    CONFIGURATION = "configuration"

    @property
    def exit_code(self) -> ExitCode:
        """The process exit code this outcome maps to."""
        return _EXIT_CODES[self]


_EXIT_CODES = dict(
    zip(
        Outcome,
        [ExitCode.PASSED, ExitCode.EXECUTION_FAILED, ExitCode.UNREACHABLE, ExitCode.UNAUTHORIZED, ExitCode.USAGE],
        strict=True,
    )
)


def worst_outcome(outcomes: Iterable[Outcome]) -> Outcome:
    """The most severe outcome; an empty collection counts as unreachable (nothing was checked)."""
    return max(outcomes, key=list(Outcome).index, default=Outcome.UNREACHABLE)


# The order in exit codes, for --help.
WORST_FIRST = " > ".join(str(int(outcome.exit_code)) for outcome in reversed(Outcome))
