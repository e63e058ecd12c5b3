"""Run the Pulumi program offline, under the Python SDK's mock engine, and record what it registers.

No Pulumi CLI, no provider plugin and no Azure credentials are needed: the mocks answer like Azure
does (resource ids, the pool management endpoint, getClientConfig), and a recording monitor keeps
each registration with its wire inputs, its parent and its options. The offline plan, the tests
and the policy checks all run the program through `run_program`.

The program runs through the SDK's public testing entry points (`pulumi.runtime.set_mocks`,
`set_all_config`, `pulumi.runtime.test`). What no public API gives — a registration's options and
the exported values — comes from one adapter, `RecordingMonitor` and `stack_outputs`, which
tests/test_program.py checks against the installed SDK.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import runpy
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

from components.azure import (
    LOCK_API_VERSION,
    MANAGEMENT_LOCK_TYPE,
    RESOURCE_GROUP_TYPE,
    ROLE_ASSIGNMENT_TYPE,
    SESSION_POOL_TYPE,
    resource_group_id,
    session_pool_id,
)
from components.settings import CONFIG_NAMESPACE, SettingsError
from offline.stack_file import StackFileError, read_stack_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_NAME = CONFIG_NAMESPACE

# The identity the offline engine pretends to deploy as. Obviously fake, and distinct from each
# other so that a test can tell which one ended up where.
OFFLINE_SUBSCRIPTION_ID = "00000000-0000-4000-8000-0000000000a1"
OFFLINE_TENANT_ID = "00000000-0000-4000-8000-0000000000b2"
OFFLINE_CLIENT_ID = "00000000-0000-4000-8000-0000000000c3"
OFFLINE_DEPLOYER_OBJECT_ID = "00000000-0000-4000-8000-0000000000d4"

GET_CLIENT_CONFIG = "azure-native:authorization:getClientConfig"
# The API version pulumi-azure-native 3.x sends for session pools.
SESSION_POOL_API_VERSION = "2025-02-02-preview"


class EngineError(Exception):
    """The offline engine cannot run this stack (e.g. a refused stack file or an encrypted value)."""


@dataclass(frozen=True)
class OfflineIdentity:
    """What getClientConfig answers under the offline engine."""

    subscription_id: str = OFFLINE_SUBSCRIPTION_ID
    tenant_id: str = OFFLINE_TENANT_ID
    client_id: str = OFFLINE_CLIENT_ID
    object_id: str = OFFLINE_DEPLOYER_OBJECT_ID


@dataclass(frozen=True)
class RegisteredResource:
    """One resource registration as the engine saw it."""

    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    parent: str
    protect: bool
    delete_before_replace: bool
    custom: bool
    id: str
    state: dict[str, Any]
    # The URNs each input waits for: what makes Pulumi create a pool before its role assignments.
    property_dependencies: dict[str, frozenset[str]] = field(default_factory=dict)
    # Every URN it waits for: through its inputs and through depends_on.
    dependencies: frozenset[str] = frozenset()


@dataclass
class ProgramRun:
    """The result of one offline run of the program."""

    stack: str
    resources: list[RegisteredResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    # What each component passed to register_outputs, by the component's URN.
    registered_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # What the program logged with pulumi.log.warn.
    warnings: list[str] = field(default_factory=list)
    # The token of every invoke it made (getClientConfig), in order.
    invokes: list[str] = field(default_factory=list)
    error: str | None = None

    def by_type(self, resource_type: str) -> list[RegisteredResource]:
        """Return the registrations of one resource type, in registration order."""
        return [resource for resource in self.resources if resource.type == resource_type]

    def one(self, resource_type: str) -> RegisteredResource:
        """Return the single registration of a type; fail loudly when there is not exactly one."""
        found = self.by_type(resource_type)
        if len(found) != 1:
            raise AssertionError(f"expected one {resource_type}, found {len(found)}")
        return found[0]


class AzureMocks(pulumi.runtime.Mocks):
    """Answers registrations and invokes the way Azure Resource Manager would."""

    def __init__(self, identity: OfflineIdentity, preview: bool = False) -> None:
        self.identity = identity
        self.preview = preview
        # The token of every invoke the program made, in order.
        self.invokes: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        inputs = dict(args.inputs)
        if not args.custom:
            return "", inputs  # a component: nothing in Azure answers for it
        if self.preview:
            # As on a first `pulumi preview`: nothing exists yet, so ids and read-only outputs
            # (the pool's id and endpoint) are unknown.
            return "", inputs
        subscription = self.identity.subscription_id
        if args.typ == RESOURCE_GROUP_TYPE:
            name = inputs["resourceGroupName"]
            return resource_group_id(subscription, name), {**inputs, "name": name}
        if args.typ == SESSION_POOL_TYPE:
            name = inputs["sessionPoolName"]
            pool_id = session_pool_id(subscription, inputs["resourceGroupName"], name)
            # The documented regional shape: https://<region>.dynamicsessions.io/subscriptions/.../sessionPools/<name>
            endpoint_path = pool_id.replace("/providers/Microsoft.App", "")
            endpoint = f"https://{inputs['location']}.dynamicsessions.io{endpoint_path}"
            state = {
                **inputs,
                "name": name,
                "type": "Microsoft.App/sessionPools",
                "poolManagementEndpoint": endpoint,
                "provisioningState": "Succeeded",
                "nodeCount": 0,
                "azureApiVersion": SESSION_POOL_API_VERSION,
            }
            return pool_id, state
        if args.typ == ROLE_ASSIGNMENT_TYPE:
            name = inputs["roleAssignmentName"]
            assignment_id = f"{inputs['scope']}/providers/Microsoft.Authorization/roleAssignments/{name}"
            return assignment_id, {**inputs, "name": name}
        if args.typ == MANAGEMENT_LOCK_TYPE:
            name = inputs["lockName"]
            group_id = resource_group_id(subscription, inputs["resourceGroupName"])
            state = {
                **inputs,
                "name": name,
                "type": "Microsoft.Authorization/locks",
                "azureApiVersion": LOCK_API_VERSION,
            }
            return f"{group_id}/providers/Microsoft.Authorization/locks/{name}", state
        raise EngineError(f"the offline engine does not know how Azure answers a {args.typ}")

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        self.invokes.append(args.token)
        if args.token == GET_CLIENT_CONFIG:
            return {
                "subscriptionId": self.identity.subscription_id,
                "tenantId": self.identity.tenant_id,
                "clientId": self.identity.client_id,
                "objectId": self.identity.object_id,
            }
        raise EngineError(f"the offline engine does not answer the invoke {args.token}")


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK adapter: a mock monitor that also keeps each registration's parent and options.

    `pulumi.runtime.set_mocks` accepts a monitor, but the SDK has no public hook that sees a
    registration's options (parent, protect, dependencies): this subclass reads them from the
    RegisterResource request, a protobuf message of Pulumi's engine protocol. tests/test_program.py
    checks the adapter against the installed SDK and names this class when it breaks.
    """

    def __init__(self, mocks: AzureMocks) -> None:
        super().__init__(mocks)
        self.registrations: list[RegisteredResource] = []
        self.registered_outputs: dict[str, dict[str, Any]] = {}

    def RegisterResourceOutputs(self, request: Any) -> Any:
        self.registered_outputs[request.urn] = rpc.deserialize_properties(request.outputs)
        return super().RegisterResourceOutputs(request)

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(
                RegisteredResource(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    inputs=rpc.deserialize_properties(request.object),
                    parent=request.parent,
                    protect=bool(request.protect),
                    delete_before_replace=bool(request.deleteBeforeReplace),
                    custom=bool(request.custom),
                    id=response.id,
                    state=rpc.deserialize_properties(response.object),
                    property_dependencies={
                        name: frozenset(dependencies.urns)
                        for name, dependencies in request.propertyDependencies.items()
                    },
                    dependencies=frozenset(request.dependencies),
                )
            )
        return response


class _WarningsTo(logging.Handler):
    """Keeps the message of every warning logged to it."""

    def __init__(self, warnings: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.warnings = warnings

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.WARNING:
            self.warnings.append(record.getMessage())


def stack_outputs() -> dict[str, Any]:
    """The SDK adapter's other half: the outputs `pulumi.export` put on the root stack resource.

    Under mocks there is no engine to receive them; the Stack resource keeps them in `outputs`.
    """
    outputs = getattr(pulumi.runtime.get_root_resource(), "outputs", None)
    if not isinstance(outputs, dict):
        raise EngineError(
            "The installed Pulumi SDK no longer keeps exported "
            "values in the root Stack resource's `outputs`; update offline/engine.py's stack_outputs for this SDK."
        )
    return outputs


def load_stack_config(stack: str, project_dir: Path = PROJECT_ROOT) -> dict[str, Any]:
    """Read a stack file's project settings, keyed without the namespace; EngineError if it is refused."""
    try:
        return read_stack_config(stack, project_dir)
    except StackFileError as error:
        raise EngineError(str(error)) from None


def as_cli_value(key: str, value: Any) -> str:
    """Serialize a YAML config value the way the Pulumi CLI hands it to a program."""
    if isinstance(value, dict) and "secure" in value:
        raise EngineError(f"{key} is an encrypted secret, which the offline engine cannot decrypt")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def run_program(
    stack: str,
    config: Mapping[str, Any] | None = None,
    *,
    preview: bool = False,
    identity: OfflineIdentity | None = None,
    project_dir: Path = PROJECT_ROOT,
) -> ProgramRun:
    """Run __main__.py for a stack under the mock engine.

    `config` replaces the stack file's settings (keys without the project's namespace, or fully
    qualified `<namespace>:<name>` keys); by default the stack's Pulumi.<stack>.yaml is read. A
    settings error is returned in `error`, not raised.
    """
    values = dict(load_stack_config(stack, project_dir) if config is None else config)
    program_file = project_dir / "__main__.py"
    if not program_file.is_file():
        raise EngineError(
            f"there is no Pulumi program {program_file} (give the folder with Pulumi.yaml and __main__.py)"
        )
    cli_config = {
        key if ":" in key else f"{CONFIG_NAMESPACE}:{key}": as_cli_value(key, value) for key, value in values.items()
    }
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))

    def body() -> dict[str, Any]:
        runpy.run_path(str(program_file), run_name="__main__")
        return stack_outputs()

    return run_offline(body, stack, cli_config, preview=preview, identity=identity)


def run_offline(
    body: Callable[[], Mapping[str, Any]],
    stack: str,
    config: Mapping[str, str] | None = None,
    *,
    preview: bool = False,
    identity: OfflineIdentity | None = None,
) -> ProgramRun:
    """Run `body` as a Pulumi program of this project under the mock engine; it returns the values to
    resolve as the run's outputs (a program: its exports). A RunError or a SettingsError it raises is
    returned in `error`."""
    mocks = AzureMocks(identity or OfflineIdentity(), preview=preview)
    monitor = RecordingMonitor(mocks)
    run = ProgramRun(stack=stack)
    # The mock engine hands the program's log messages to a logger: a private one per run (not
    # registered with logging, so nothing else sees it) keeps this run's warnings.
    logger = logging.Logger(f"{__name__}.run")
    logger.addHandler(_WarningsTo(run.warnings))

    @pulumi.runtime.test
    def program() -> pulumi.Output[list[Any]]:
        exported = body()
        # An output unknown under preview stays None: its apply never runs.
        run.outputs = dict.fromkeys(exported)
        resolved = [
            pulumi.Output.from_input(value).apply(functools.partial(run.outputs.__setitem__, name))
            for name, value in exported.items()
        ]
        return pulumi.Output.all(*resolved)

    def execute() -> None:
        # The SDK keeps its settings, config and root stack in context variables: a fresh
        # context per run keeps runs independent of each other.
        pulumi.runtime.set_mocks(
            mocks, project=PROJECT_NAME, stack=stack, preview=preview, logger=logger, monitor=monitor
        )
        pulumi.runtime.set_all_config(dict(config or {}))
        try:
            program()
        except (pulumi.RunError, SettingsError) as error:
            run.error = str(error)
            run.outputs = {}

    contextvars.Context().run(execute)
    run.resources = list(monitor.registrations)
    run.registered_outputs = dict(monitor.registered_outputs)
    run.invokes = list(mocks.invokes)
    return run
