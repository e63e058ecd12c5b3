"""``python -m localpool``: start-up checks, the endpoint line, serving and a clean stop."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import tempfile
from pathlib import Path

import pytest
import requests

from localpool.constants import NODE_ENV_VAR
from localpool.process import local_pool_process
from smoke.protocol import HELLO_WORLD_CODE, HELLO_WORLD_STDOUT, LEGACY_STATUS_SUCCESS
from tests.support.localpool_helpers import (
    CLI_START_TIMEOUT_SECONDS,
    PoolClient,
    cli_env,
    cli_pool,
    new_identifier,
    process_alive,
    run_cli,
    stop_and_read_stderr,
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
    result = run_cli("--container-type", "CustomContainer")
    assert result.returncode == EXIT_UNUSABLE_SETUP
    assert "the local pool runs NodeLTS, PythonLTS, Shell" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_describes_the_options() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for option in ("--host", "--port", "--token", "--max-sessions", "--cooldown", "--container-type"):
        assert option in result.stdout
    assert "POOL_MANAGEMENT_ENDPOINT=" in result.stdout


def _children(pid: int) -> set[int]:
    """The host pids of a process's children (the CLI's sandboxes)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(child) for child in (task / "children").read_text().split())
    return found


def test_cli_prints_the_endpoint_serves_and_stops_cleanly() -> None:
    # Under the system's /tmp: pytest's own directories are private to their owner, and when the
    # tests run as root the sandbox's user (nobody) must pass through the pool's parents.
    tmp_path = Path(tempfile.mkdtemp())
    tmp_path.chmod(0o711)
    env = cli_env(TMPDIR=str(tmp_path))
    args = ("--quiet", "--token", "cli-token", "--max-sessions", "3", "--no-prewarm")
    with local_pool_process(*args, env=env, start_timeout=CLI_START_TIMEOUT_SECONDS) as running:
        assert running.first_line.startswith("POOL_MANAGEMENT_ENDPOINT=http://127.0.0.1:")
        client = PoolClient(running.endpoint, token="cli-token")
        identifier = new_identifier()
        reply = client.legacy(identifier, HELLO_WORLD_CODE["NodeLTS"])
        assert reply.status_code == requests.codes.ok
        assert reply.json()["properties"]["status"] == LEGACY_STATUS_SUCCESS
        assert reply.json()["properties"]["stdout"] == HELLO_WORLD_STDOUT
        client.run(identifier, "require('fs').writeFileSync('/mnt/data/mark.txt', 'x')")
        (mark,) = tmp_path.glob("localpool-*/session-*/mark.txt")
        workdir = mark.parent
        (sandbox_pid,) = _children(running.process.pid)
        assert PoolClient(running.endpoint, token="other").legacy(identifier, "1").status_code == 401
        client.close()

        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=CLI_START_TIMEOUT_SECONDS) == 0
        assert running.process.stdout is not None and running.process.stdout.read() == ""
        assert wait_until(lambda: not process_alive(sandbox_pid), timeout=5)
        assert not workdir.exists()
        assert not workdir.parent.exists()
    tmp_path.rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root server starts its sandboxes as nobody (CI runs as root)")
def test_cli_explains_a_pool_directory_the_sandbox_cannot_reach(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    result = run_cli("--quiet", "--token", "t", env=cli_env(TMPDIR=str(private)))
    assert result.returncode == 2
    assert "cannot reach the pool's directory" in result.stderr and "chmod o+x" in result.stderr


def test_cli_without_a_token_prints_the_one_it_made_once() -> None:
    env = {key: value for key, value in os.environ.items() if key != "LOCALPOOL_TOKEN"}
    with local_pool_process("--quiet", env=env, start_timeout=CLI_START_TIMEOUT_SECONDS) as running:
        assert len(running.token) >= 32
        client = PoolClient(running.endpoint, token=running.token)
        assert client.legacy(new_identifier(), HELLO_WORLD_CODE["NodeLTS"]).status_code == requests.codes.ok
        assert PoolClient(running.endpoint, token="guess").legacy(new_identifier(), "1").status_code == 401
        client.close()
        stderr = stop_and_read_stderr(running)
        assert running.process.stdout is not None
        assert running.process.stdout.read() == ""
        assert running.token not in stderr


def test_cli_refuses_to_start_without_bubblewrap() -> None:
    node = shutil.which("node")
    assert node is not None
    env = {"PATH": "/nonexistent", "LOCALPOOL_NODE": node}
    result = run_cli("--quiet", env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "bubblewrap (bwrap) is not installed" in result.stderr and "apt-get install bubblewrap" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_refuses_a_non_loopback_address_without_a_token() -> None:
    env = {key: value for key, value in os.environ.items() if key != "LOCALPOOL_TOKEN"}
    result = run_cli("--host", "0.0.0.0", env=env)
    assert result.returncode == 2
    assert "needs an explicit token" in result.stderr


def test_no_sandbox_warns_at_every_start() -> None:
    with cli_pool("--token", "t", "--no-sandbox", "--no-prewarm") as running:
        client = PoolClient(running.endpoint, token="t")
        assert client.legacy(new_identifier(), HELLO_WORLD_CODE["NodeLTS"]).status_code == requests.codes.ok
        client.close()
        assert "WARNING: --no-sandbox" in stop_and_read_stderr(running)


def test_no_sandbox_says_python_code_has_the_pools_user_network_and_files() -> None:
    with cli_pool("--token", "t", "--no-sandbox", "--no-prewarm", "--container-type", "PythonLTS") as running:
        stderr = stop_and_read_stderr(running)
    uid = f"uid {os.geteuid()}"
    warning = next(line for line in stderr.splitlines() if "WARNING: --no-sandbox" in line)
    assert "PythonLTS" in warning and uid in warning and "network and its files" in warning
    assert "no isolation at all" in warning
    banner = next(line for line in stderr.splitlines() if "Ctrl-C stops" in line)
    assert "WITHOUT a sandbox" in banner and uid in banner
    # Without the sandbox the pool does not set up a network: naming a status would be a false claim.
    assert "Egress" not in banner


# The container type is matched case-insensitively; the warning names the type itself.
@pytest.mark.parametrize("named", [(), ("--container-type", "nodelts")])
def test_no_sandbox_says_node_keeps_only_its_permission_model(named: tuple[str, ...]) -> None:
    with cli_pool("--token", "t", "--no-sandbox", "--no-prewarm", *named) as running:
        stderr = stop_and_read_stderr(running)
    warning = next(line for line in stderr.splitlines() if "WARNING: --no-sandbox" in line)
    assert "only Node.js's permission model" in warning and "no isolation at all" not in warning
    assert "NodeLTS session code" in warning
    assert "Egress" not in next(line for line in stderr.splitlines() if "Ctrl-C stops" in line)


def test_ctrl_c_stops_the_cli() -> None:
    with cli_pool() as running:
        running.process.send_signal(signal.SIGINT)
        assert running.process.wait(timeout=CLI_START_TIMEOUT_SECONDS) == 0
        assert running.process.stderr is not None
        stderr = running.process.stderr.read()
        assert "stopped" in stderr and "Traceback" not in stderr


def test_the_start_up_line_says_the_seccomp_filter_is_on() -> None:
    with cli_pool("--token", "t", "--no-prewarm", "--container-type", "Shell") as running:
        stderr = stop_and_read_stderr(running)
    banner = next(line for line in stderr.splitlines() if "Ctrl-C stops" in line)
    assert "in bubblewrap sandboxes, seccomp filter on (libseccomp 2." in banner, banner
    assert "with network EgressDisabled" in banner


def _without_libseccomp(tmp_path: Path) -> dict[str, str]:
    """An environment whose pyseccomp fails as the real one does on a machine without libseccomp."""
    (tmp_path / "pyseccomp.py").write_text('raise RuntimeError("Unable to find libseccomp")\n', encoding="utf-8")
    return cli_env(PYTHONPATH=str(tmp_path))


def test_cli_refuses_to_start_when_the_seccomp_filter_cannot_be_built(tmp_path: Path) -> None:
    result = run_cli("--quiet", "--token", "t", env=_without_libseccomp(tmp_path))
    assert result.returncode == EXIT_UNUSABLE_SETUP
    assert result.stdout == ""
    line = _single_line(result.stderr)
    assert "the seccomp filter of every sandbox cannot be built (Unable to find libseccomp)" in line
    assert "apt-get install libseccomp2" in line and "Traceback" not in result.stderr


def test_no_sandbox_needs_no_libseccomp(tmp_path: Path) -> None:
    with local_pool_process(
        "--quiet", "--token", "t", "--no-sandbox", "--no-prewarm", env=_without_libseccomp(tmp_path)
    ) as running:
        client = PoolClient(running.endpoint, token="t")
        assert client.legacy(new_identifier(), HELLO_WORLD_CODE["NodeLTS"]).status_code == requests.codes.ok
        client.close()
        assert "WARNING: --no-sandbox" in stop_and_read_stderr(running)
