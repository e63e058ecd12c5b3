"""The offline demo: the two tutorials end to end on this machine, no Azure and no Pulumi CLI.

    python -m offline.demo [--stack dev] [--container-type NodeLTS|PythonLTS|Shell]

1. renders the stack under the mock engine (what `pulumi up` would create);
2. starts the local pool, sized like the stack's pool (max sessions, cooldown, network), of the
   stack's containerType (or the one --container-type names), with a random token;
3. sends that type's hello-world (`console.log("hello-world")`, `print("hello-world")`,
   `echo hello-world`) the way both tutorials do and prints the answers;
4. runs the smoke check CLI against the pool, as the deploy pipeline does after `pulumi up`;
5. stops the pool.

Exit code: the smoke check's (0 when hello-world ran on both API versions); 2 when the stack's
settings are rejected, the container type is not one the local pool runs, or its runtime
(Node.js, Python, bash) or bubblewrap is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Sequence

from components.azure import SESSION_POOL_TYPE
from localpool import LocalPool, RuntimeUnavailableError, UnsupportedContainerTypeError, check_container_type
from localpool.sandbox import SandboxUnavailableError
from offline.engine import ProgramRun
from offline.plan import EXIT_CONFIG_ERROR, ordered, run_or_explain
from smoke import PoolEndpoint, SessionPoolClient, StaticTokenProvider, new_identifier
from smoke.protocol import API_2024_02, API_2024_10, HELLO_WORLD_CODE

# The local pool answers in milliseconds; this only bounds a demo that went wrong.
REQUEST_TIMEOUT_SECONDS = 30.0
SMOKE_TIMEOUT_SECONDS = 60


def step(number: int, title: str) -> None:
    print(f"\n== {number}. {title}", flush=True)


def render_stack(stack: str) -> ProgramRun | None:
    """Step 1: the stack under the mock engine; None (with the reason on stderr) when rejected."""
    run = run_or_explain(stack, prefix="demo")
    if run is None:
        return None
    for resource in ordered(run.resources):
        print(f"  + {resource.type}  {resource.name}")
    print(f"  poolManagementEndpoint (in Azure): {run.outputs['poolManagementEndpoint']}")
    return run


def show_tutorial_calls(endpoint: str, token: str, code: str) -> None:
    """Step 3: one hello-world per API generation, printed like the tutorials' curl output."""
    identifier = new_identifier()
    client = SessionPoolClient(PoolEndpoint.parse(endpoint), StaticTokenProvider(token))
    with client:
        calls = (
            (API_2024_02, "/code/execute", client.execute_code_legacy),
            (API_2024_10, "/executions", client.start_execution),
        )
        for api_version, path, send in calls:
            print(f"  POST $SESSION_POOL_MANAGEMENT_ENDPOINT{path}?api-version={api_version}&identifier={identifier}")
            print(f"       code: {code}")
            reply = send(code, identifier, timeout=REQUEST_TIMEOUT_SECONDS)
            try:
                body = json.dumps(json.loads(reply.text()), indent=2)
            except ValueError:
                body = reply.text()
            print(f"  HTTP {reply.status_code}")
            print("\n".join(f"  {line}" for line in body.splitlines()))


def run_smoke_cli(endpoint: str, token: str, container_type: str) -> int:
    """Step 4: the smoke check exactly as a pipeline runs it (token from the environment)."""
    command = [sys.executable, "-m", "smoke", "--endpoint", endpoint, "--timeout", str(SMOKE_TIMEOUT_SECONDS)]
    command += ["--container-type", container_type]
    print(f"  $ python -m smoke --endpoint {endpoint} --container-type {container_type}")
    environment = {**os.environ, "DYNAMIC_SESSIONS_TOKEN": token}
    return subprocess.run(command, env=environment, check=False).returncode  # noqa: S603 - fixed argv, this interpreter


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m offline.demo`."""
    parser = argparse.ArgumentParser(prog="python -m offline.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev", help="stack to render and mirror (default: dev)")
    parser.add_argument(
        "--container-type",
        default=None,
        help="run the local pool as this container type instead of the stack's (NodeLTS, PythonLTS, Shell)",
    )
    args = parser.parse_args(argv)

    step(1, f"Render stack '{args.stack}' offline (mock engine; nothing is deployed)")
    run = render_stack(args.stack)
    if run is None:
        return EXIT_CONFIG_ERROR
    pool_inputs = run.one(SESSION_POOL_TYPE).inputs
    try:
        container_type = check_container_type(args.container_type or pool_inputs["containerType"]).value
    except UnsupportedContainerTypeError as error:
        print(f"demo: {error}", file=sys.stderr)
        return EXIT_CONFIG_ERROR

    max_sessions = int(pool_inputs["scaleConfiguration"]["maxConcurrentSessions"])
    cooldown = int(pool_inputs["dynamicPoolConfiguration"]["lifecycleConfiguration"]["cooldownPeriodInSeconds"])
    # The stack's network setting, mirrored by the local pool's sandboxes.
    network_status = pool_inputs["sessionNetworkConfiguration"]["status"]
    step(
        2,
        f"Start the local pool ({container_type}, {max_sessions} sessions, cooldown {cooldown} s, {network_status})",
    )
    # A fresh random token: the pool requires it, and it is never printed.
    token = secrets.token_urlsafe(32)
    try:
        pool = LocalPool(
            token=token,
            max_sessions=max_sessions,
            cooldown_seconds=cooldown,
            network_status=network_status,
            container_type=container_type,
        )
    except (RuntimeUnavailableError, SandboxUnavailableError) as error:
        print(f"demo: {error}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    with pool:
        print(f"  POOL_MANAGEMENT_ENDPOINT={pool.endpoint}")
        step(3, "Run hello-world as the tutorials do (both API generations)")
        show_tutorial_calls(pool.endpoint, token, HELLO_WORLD_CODE[container_type])
        step(4, "Smoke check, as the pipeline runs it after `pulumi up`")
        exit_code = run_smoke_cli(pool.endpoint, token, container_type)
    step(5, "Stopped the local pool")
    print(f"\ndemo: {'PASS' if exit_code == 0 else 'FAIL'} (smoke check exit code {exit_code})")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
