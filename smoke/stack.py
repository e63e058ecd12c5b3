"""Read the pool's endpoint and container type from a Pulumi stack's outputs (``pulumi stack output``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import NamedTuple

from smoke.settings import ConfigurationError

ENDPOINT_OUTPUT = "poolManagementEndpoint"
CONTAINER_TYPE_OUTPUT = "containerType"
# Reading outputs needs the state backend; two minutes is generous even for a remote backend.
STACK_OUTPUT_TIMEOUT_SECONDS = 120.0


class StackOutputs(NamedTuple):
    """The stack outputs the smoke check uses."""

    stack: str
    pool_management_endpoint: str
    container_type: str | None


def read_stack_outputs(stack: str, *, timeout: float = STACK_OUTPUT_TIMEOUT_SECONDS) -> StackOutputs:
    """Run ``pulumi stack output --json --stack <stack>``; ConfigurationError saying what to fix on any problem."""
    executable = shutil.which("pulumi")
    if executable is None:
        raise ConfigurationError(
            f"--stack {stack} needs the Pulumi CLI, but `pulumi` is not on PATH. Install it "
            "(https://www.pulumi.com/docs/install/), or pass --endpoint URL, or set POOL_MANAGEMENT_ENDPOINT."
        )
    command = f"`pulumi stack output --json --stack {stack}`"
    try:
        completed = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [executable, "stack", "output", "--json", "--stack", stack],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConfigurationError(
            f"{command} did not finish within {timeout:g} s; check the Pulumi backend login (`pulumi whoami`), "
            "or pass --endpoint URL."
        ) from None
    except OSError as error:
        raise ConfigurationError(f"Could not run {executable!r} ({error.strerror}); pass --endpoint URL.") from None
    if completed.returncode != 0:
        stderr_tail = " ".join(completed.stderr.strip().splitlines()[-5:])
        raise ConfigurationError(
            f"{command} failed with exit code {completed.returncode}: {stderr_tail or 'no error message'}. "
            "Check the stack name (`pulumi stack ls`) and backend login."
        )
    try:
        outputs = json.loads(completed.stdout)
    except ValueError:
        outputs = None
    if not isinstance(outputs, dict):
        raise ConfigurationError(f"{command} did not print a JSON object (got {completed.stdout.strip()[:100]!r}).")
    endpoint, container_type = outputs.get(ENDPOINT_OUTPUT), outputs.get(CONTAINER_TYPE_OUTPUT)
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise ConfigurationError(
            f"Stack {stack!r} has no usable output {ENDPOINT_OUTPUT!r} (outputs present: "
            f"{', '.join(sorted(outputs)) or 'none'}). Deploy the stack first (`pulumi up`), or pass --endpoint URL."
        )
    return StackOutputs(stack, endpoint.strip(), container_type if isinstance(container_type, str) else None)
