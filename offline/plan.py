"""Offline plan: what `pulumi up` would create for a stack, without the Pulumi CLI or Azure.

    python -m offline.plan --stack dev [--json]

Runs the program under the mock engine and prints each resource with its type, name and the
settings that matter, then the stack outputs. Exit codes: 0 rendered; 2 the stack's settings were
rejected, or the stack name or its file is one the Pulumi CLI would refuse (the message names
the file, the line and the fix).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from components.azure import (
    MANAGEMENT_LOCK_TYPE,
    RESOURCE_GROUP_TYPE,
    ROLE_ASSIGNMENT_TYPE,
    SESSION_EXECUTOR_ROLE_ID,
    SESSION_EXECUTOR_ROLE_NAME,
    SESSION_POOL_TYPE,
)
from components.session_pool import COMPONENT_TYPE
from offline.engine import (
    OFFLINE_DEPLOYER_OBJECT_ID,
    OFFLINE_SUBSCRIPTION_ID,
    PROJECT_NAME,
    PROJECT_ROOT,
    EngineError,
    ProgramRun,
    RegisteredResource,
    run_program,
)

EXIT_OK = 0
EXIT_CONFIG_ERROR = 2

# Registration order is asynchronous; print in dependency order, siblings by name, so that two
# plans of the same stack are identical and diff cleanly.
_TYPE_ORDER = (COMPONENT_TYPE, RESOURCE_GROUP_TYPE, SESSION_POOL_TYPE, ROLE_ASSIGNMENT_TYPE, MANAGEMENT_LOCK_TYPE)


def ordered(resources: Sequence[RegisteredResource]) -> list[RegisteredResource]:
    """Resources in a stable order: component, resource group, pool, role assignments by name, lock."""

    def rank(resource: RegisteredResource) -> tuple[int, str]:
        known = resource.type in _TYPE_ORDER
        return (_TYPE_ORDER.index(resource.type) if known else len(_TYPE_ORDER), resource.name)

    return sorted(resources, key=rank)


def _plain(value: Any) -> Any:
    """Undo the mock engine's wire encoding: whole floats back to integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield (dotted wire path, leaf value) pairs; tags stay one line."""
    if isinstance(value, dict) and prefix != "tags":
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix, value


def _describe(path: str, value: Any) -> str:
    if path == "tags" and isinstance(value, dict):
        return ", ".join(f"{key}={item}" for key, item in value.items())
    if path == "roleDefinitionId" and str(value).endswith(SESSION_EXECUTOR_ROLE_ID):
        return f"{value}  ({SESSION_EXECUTOR_ROLE_NAME})"
    return json.dumps(value) if not isinstance(value, str) else value


def resource_record(resource: RegisteredResource) -> dict[str, Any]:
    """The JSON form of one registration."""
    return {
        "type": resource.type,
        "name": resource.name,
        "parent": resource.parent,
        "protect": resource.protect,
        "deleteBeforeReplace": resource.delete_before_replace,
        "inputs": _plain(resource.inputs),
    }


def plan_document(run: ProgramRun) -> dict[str, Any]:
    """The JSON form of a whole plan."""
    return {
        "project": PROJECT_NAME,
        "stack": run.stack,
        "engine": "pulumi mocks (offline)",
        "subscriptionId": OFFLINE_SUBSCRIPTION_ID,
        "deployerObjectId": OFFLINE_DEPLOYER_OBJECT_ID,
        "resources": [resource_record(resource) for resource in ordered(run.resources)],
        "outputs": _plain(run.outputs),
    }


def render_text(run: ProgramRun) -> str:
    """A person's view of the plan: resources indented under their parent, then the outputs."""
    lines = [
        f"Offline plan for stack '{run.stack}' of project '{PROJECT_NAME}' (mock engine: nothing is deployed).",
        f"Placeholder identity: subscription {OFFLINE_SUBSCRIPTION_ID}, deployer {OFFLINE_DEPLOYER_OBJECT_ID}.",
        "",
    ]
    parents = {resource.urn for resource in run.resources}
    for resource in ordered(run.resources):
        indent = "    " if resource.parent in parents else ""
        suffix = "  [protected]" if resource.protect else ""
        lines.append(f"{indent}+ {resource.type}  {resource.name}{suffix}")
        pairs = list(_flatten(_plain(resource.inputs)))
        width = max((len(path) for path, _ in pairs), default=0)
        lines += [f"{indent}      {path.ljust(width)}  {_describe(path, value)}" for path, value in pairs]
    lines += ["", f"{len(run.resources)} resources to create.", "", "Outputs:"]
    width = max((len(name) for name in run.outputs), default=0)
    for name, value in run.outputs.items():
        shown = json.dumps(_plain(value)) if not isinstance(value, str) else value
        lines.append(f"    {name.ljust(width)}  {shown}")
    return "\n".join(lines)


def run_or_explain(stack: str, project_dir: Path = PROJECT_ROOT, prefix: str = "offline plan") -> ProgramRun | None:
    """Run the program for a stack; on a rejected or unreadable stack print why to stderr and return None."""
    try:
        run = run_program(stack, project_dir=project_dir)
    except EngineError as error:
        print(f"{prefix}: {error}", file=sys.stderr)
        return None
    if run.error:
        print(run.error, file=sys.stderr)
        return None
    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m offline.plan`."""
    parser = argparse.ArgumentParser(prog="python -m offline.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev", help="stack name; reads Pulumi.<stack>.yaml (default: dev)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=PROJECT_ROOT,
        help="folder with Pulumi.yaml, __main__.py and the stack files (default: this project)",
    )
    args = parser.parse_args(argv)
    run = run_or_explain(args.stack, args.project_dir)
    if run is None:
        return EXIT_CONFIG_ERROR
    print(json.dumps(plan_document(run), indent=2) if args.json else render_text(run))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
