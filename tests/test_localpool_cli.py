"""``python -m localpool``: start-up checks, the endpoint line, serving and a clean stop."""

from __future__ import annotations

import signal
import stat
from pathlib import Path

import requests

from localpool.constants import NODE_ENV_VAR
from smoke.protocol import HELLO_WORLD_CODE, HELLO_WORLD_STDOUT, LEGACY_STATUS_SUCCESS
from tests.support.localpool_helpers import (
    CLI_START_TIMEOUT_SECONDS,
    PoolClient,
    cli_env,
    cli_pool,
    new_identifier,
    process_alive,
    run_cli,
    wait_until,
)

EXIT_UNUSABLE_SETUP = 2


def _single_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {text!r}"
    return lines[0]


def test_missing_node_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    missing = tmp_path / "no-node-here"
    result = run_cli(env=cli_env(**{NODE_ENV_VAR: str(missing)}))
    assert result.returncode == EXIT_UNUSABLE_SETUP
    assert result.stdout == ""
    line = _single_line(result.stderr)
    assert line.startswith("localpool: Node.js was not found")
    assert str(missing) in line
    assert "install Node.js 20 or newer" in line
    assert "Traceback" not in result.stderr


def test_node_too_old_exits_2(tmp_path: Path) -> None:
    old_node = tmp_path / "node"
    old_node.write_text("#!/bin/sh\necho v18.19.0\n", encoding="utf-8")
    old_node.chmod(old_node.stat().st_mode | stat.S_IXUSR)
    result = run_cli(env=cli_env(**{NODE_ENV_VAR: str(old_node)}))
    assert result.returncode == EXIT_UNUSABLE_SETUP
    line = _single_line(result.stderr)
    assert "Node.js v18.19.0" in line and "too old" in line and "permission model" in line


def test_other_container_types_are_refused_at_start_up() -> None:
    result = run_cli("--container-type", "PythonLTS")
    assert result.returncode == EXIT_UNUSABLE_SETUP
    assert "the local pool runs NodeLTS only" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_describes_the_options() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for option in ("--host", "--port", "--token", "--max-sessions", "--cooldown", "--container-type"):
        assert option in result.stdout
    assert "POOL_MANAGEMENT_ENDPOINT=" in result.stdout


def test_cli_prints_the_endpoint_serves_and_stops_cleanly() -> None:
    with cli_pool("--token", "cli-token", "--max-sessions", "3") as running:
        assert running.first_line.startswith("POOL_MANAGEMENT_ENDPOINT=http://127.0.0.1:")
        client = PoolClient(running.endpoint, token="cli-token")
        identifier = new_identifier()
        reply = client.legacy(identifier, HELLO_WORLD_CODE["NodeLTS"])
        assert reply.status_code == requests.codes.ok
        assert reply.json()["properties"]["status"] == LEGACY_STATUS_SUCCESS
        assert reply.json()["properties"]["stdout"] == HELLO_WORLD_STDOUT
        facts = client.run(identifier, "process.pid + ' ' + process.cwd()")["result"]["executionResult"]
        pid_text, workdir = facts.split(" ", 1)
        assert process_alive(int(pid_text)) and Path(workdir).is_dir()
        assert PoolClient(running.endpoint, token="other").legacy(identifier, "1").status_code == 403
        client.close()

        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=CLI_START_TIMEOUT_SECONDS) == 0
        assert running.process.stdout is not None and running.process.stdout.read() == ""
        assert wait_until(lambda: not process_alive(int(pid_text)), timeout=5)
        assert not Path(workdir).exists()
        assert not Path(workdir).parent.exists()


def test_ctrl_c_stops_the_cli() -> None:
    with cli_pool() as running:
        running.process.send_signal(signal.SIGINT)
        assert running.process.wait(timeout=CLI_START_TIMEOUT_SECONDS) == 0
        assert running.process.stderr is not None
        stderr = running.process.stderr.read()
        assert "stopped" in stderr and "Traceback" not in stderr
