"""The engine's side of Pulumi's provider protocol, for driving the component package without the Pulumi CLI.

It does what the CLI does for a TypeScript or YAML program that creates a CodeInterpreterPool: start the
package's plugin (`python package <engine address>`, reading the port it prints), ask it for its schema, and
send Construct with a ResourceMonitor of its own, which records every registration and answers as Azure
would (offline.engine.AzureMocks: ids, the pool management endpoint, getClientConfig). The gRPC stubs are
the ones the `pulumi` package ships.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime import MockCallArgs, MockResourceArgs
from pulumi.runtime.proto import (
    engine_pb2_grpc,
    provider_pb2,
    provider_pb2_grpc,
    resource_pb2,
    resource_pb2_grpc,
)

from offline.engine import AzureMocks, OfflineIdentity

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIR = PROJECT_ROOT / "package"
COMPONENT_TOKEN = "dynamic-sessions:index:CodeInterpreterPool"
START_TIMEOUT_SECONDS = 60
CALL_TIMEOUT_SECONDS = 60
STACK_TYPE = "pulumi:pulumi:Stack"
SUPPORTED_FEATURES = frozenset({"secrets", "aliasSpecs", "deletedWith"})


def to_struct(values: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    return json.loads(json.dumps(dict(struct.items()), default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, struct_pb2.Struct):
        return dict(value.items())
    if isinstance(value, struct_pb2.ListValue):
        return list(value)
    raise TypeError(type(value))


@dataclass
class Registration:
    """One RegisterResource the plugin sent."""

    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    protect: bool


class Monitor(resource_pb2_grpc.ResourceMonitorServicer):
    """The engine's resource monitor: records registrations and invokes, answers as Azure would."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset("project", "stack")

    def reset(self, project: str, stack: str, identity: OfflineIdentity | None = None) -> None:
        """Start the records of a new deployment."""
        self.project, self.stack = project, stack
        self.mocks = AzureMocks(identity or OfflineIdentity())
        self.registrations: list[Registration] = []
        self.invokes: list[str] = []
        self.outputs: dict[str, dict[str, Any]] = {}

    def SupportsFeature(self, request: Any, context: Any) -> Any:
        # As the CLI's engine for these; values arrive resolved (no output values or resource references).
        return resource_pb2.SupportsFeatureResponse(hasSupport=request.id in SUPPORTED_FEATURES)

    def _urn(self, parent: str, type_: str, name: str) -> str:
        parent_type = parent.split("::")[2] if parent else STACK_TYPE
        if parent_type != STACK_TYPE:  # the root stack's children have their own type only
            type_ = f"{parent_type}${type_}"
        return f"urn:pulumi:{self.stack}::{self.project}::{type_}::{name}"

    def RegisterResource(self, request: Any, context: Any) -> Any:
        inputs = from_struct(request.object)
        urn = self._urn(request.parent, request.type, request.name)
        with self.lock:
            self.registrations.append(
                Registration(request.type, request.name, urn, request.parent, request.custom, inputs, request.protect)
            )
        args = MockResourceArgs(request.type, request.name, inputs, request.provider, "", request.custom)
        resource_id, state = self.mocks.new_resource(args)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id, object=to_struct(state))

    def RegisterResourceOutputs(self, request: Any, context: Any) -> Any:
        with self.lock:
            self.outputs[request.urn] = from_struct(request.outputs)
        return empty_pb2.Empty()

    def Invoke(self, request: Any, context: Any) -> Any:
        with self.lock:
            self.invokes.append(request.tok)
        answer = self.mocks.call(MockCallArgs(request.tok, from_struct(request.args), request.provider))
        return resource_pb2.ResourceInvokeResponse(**{"return": to_struct(answer)})


class Engine(engine_pb2_grpc.EngineServicer):
    """The engine service the plugin logs to."""

    def __init__(self) -> None:
        self.logs: list[str] = []

    def Log(self, request: Any, context: Any) -> Any:
        self.logs.append(request.message)
        return empty_pb2.Empty()


@contextmanager
def _server(add: Any, servicer: Any) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


@dataclass
class Plugin:
    """A running plugin and the engine's services around it."""

    provider: Any
    engine: Engine
    monitor: Monitor
    monitor_address: str

    def schema(self) -> dict[str, Any]:
        response = self.provider.GetSchema(provider_pb2.GetSchemaRequest(version=0), timeout=CALL_TIMEOUT_SECONDS)
        return json.loads(response.schema)

    def construct(
        self,
        name: str,
        inputs: dict[str, Any],
        *,
        project: str = "agents",
        stack: str = "staging",
        identity: OfflineIdentity | None = None,
        dry_run: bool = False,
    ) -> Any:
        """Send Construct as the CLI does for a program's `new CodeInterpreterPool(name, inputs)`; the
        monitor's records start afresh."""
        monitor = self.monitor
        monitor.reset(project, stack, identity)
        stack = f"{monitor.project}-{monitor.stack}"
        stack_urn = f"urn:pulumi:{monitor.stack}::{monitor.project}::{STACK_TYPE}::{stack}"
        request = provider_pb2.ConstructRequest(
            project=monitor.project,
            stack=monitor.stack,
            dryRun=dry_run,
            parallel=4,
            monitorEndpoint=self.monitor_address,
            type=COMPONENT_TOKEN,
            name=name,
            parent=stack_urn,
            inputs=to_struct(inputs),
        )
        return self.provider.Construct(request, timeout=CALL_TIMEOUT_SECONDS)


@contextmanager
def running_plugin() -> Iterator[Plugin]:
    """Start the package's plugin as the language host does (`python <plugin folder> <engine address>`)."""
    engine, monitor = Engine(), Monitor()
    with (
        _server(engine_pb2_grpc.add_EngineServicer_to_server, engine) as engine_address,
        _server(resource_pb2_grpc.add_ResourceMonitorServicer_to_server, monitor) as monitor_address,
    ):
        process = subprocess.Popen(
            [sys.executable, str(PLUGIN_DIR), engine_address],
            cwd=PLUGIN_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            port = _read_port(process)
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                plugin = Plugin(provider_pb2_grpc.ResourceProviderStub(channel), engine, monitor, monitor_address)
                yield plugin
        finally:
            process.terminate()
            process.wait(timeout=10)


def _read_port(process: subprocess.Popen[str]) -> int:
    """The port the plugin prints as its first stdout line (its stderr when it died instead)."""
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(process.stdout.readline() if process.stdout else ""))
    reader.start()
    reader.join(START_TIMEOUT_SECONDS)
    line = found[0].strip() if found else ""
    if not line.isdigit():
        process.kill()
        _, stderr = process.communicate(timeout=10)
        raise AssertionError(f"the plugin printed no port ({line!r}); its stderr:\n{stderr}")
    return int(line)
