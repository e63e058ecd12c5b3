"""The Makefile as a person uses it: `make help`, `make plan JSON=...`, `make destroy` without Pulumi,
`make test` without Node.js, and the first `make` saying what it installs. Each runs the real `make`."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from localpool.constants import MIN_NODE_MAJOR

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAKEFILE = PROJECT_ROOT / "Makefile"
PREREQUISITES = PROJECT_ROOT / "scripts" / "check-prerequisites.sh"


def make(*args: str, cwd: Path = PROJECT_ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=cwd,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def path_without(tmp_path: Path, *missing: str) -> str:
    """A PATH holding every command of this machine's PATH except `missing`."""
    farm = tmp_path / f"bin-without-{'-'.join(missing)}"
    farm.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = farm / entry.name
            if entry.name not in missing and not target.exists() and os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    return str(farm)


def phony_targets() -> list[str]:
    match = re.search(r"^\.PHONY:(.*)$", MAKEFILE.read_text(), re.MULTILINE)
    assert match is not None
    return match.group(1).split()


# --- make help -----------------------------------------------------------------------------------------


def test_help_lists_every_target_with_what_it_does() -> None:
    result = make("help")
    assert result.returncode == 0, result.stderr
    listed = dict(re.findall(r"^\s+make (\S+)\s+(\S.*)$", result.stdout, re.MULTILINE))
    assert len(phony_targets()) > 5
    for target in phony_targets():
        assert listed.get(target), f"make help does not list '{target}' (give it a '## ' comment)"


# --- make plan JSON=... --------------------------------------------------------------------------------


def test_plan_with_json_1_prints_only_json_on_stdout() -> None:
    result = make("plan", "JSON=1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["stack"] == "dev"


def test_plan_json_pipes_into_json_tool() -> None:
    result = subprocess.run(
        "make --no-print-directory plan JSON=1 | .venv/bin/python -m json.tool",
        shell=True,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["stack"] == "dev"


@pytest.mark.parametrize("args", [(), ("JSON=0",), ("JSON=",)])
def test_plan_without_json_1_prints_text(args: tuple[str, ...]) -> None:
    result = make("plan", *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Offline plan for stack 'dev'")
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)


def test_a_json_value_other_than_0_or_1_is_refused_by_name() -> None:
    result = make("plan", "JSON=yes")
    assert result.returncode != 0
    assert "JSON must be 1 (JSON) or 0 (text), not 'yes'" in result.stderr
    assert result.stdout == ""


def test_a_stack_name_is_never_spliced_into_a_shell_command(tmp_path: Path) -> None:
    marker = tmp_path / "injected"
    make("plan", f"STACK=dev; touch {marker}")
    make("destroy", f"STACK=dev'; touch {marker}; '")
    assert not marker.exists()


# --- make destroy ----------------------------------------------------------------------------------------


def run_at_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `make` with a terminal as standard input (so a confirmation question would be asked)."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            ["make", "--no-print-directory", *args],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output, _ = process.communicate(timeout=60)
    finally:
        os.close(controller)
        os.close(terminal)
    return process.returncode, output


def test_destroy_without_the_pulumi_cli_stops_before_asking_with_one_sentence(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": path_without(tmp_path, "pulumi")}
    env.pop("CONFIRM", None)
    returncode, output = run_at_terminal(["destroy", "STACK=dev"], env)
    assert returncode != 0
    assert "make destroy needs the Pulumi CLI" in output
    assert "https://www.pulumi.com/docs/install/" in output
    assert "Type the stack name" not in output
    assert "pulumi: not found" not in output


def fresh_copy(tmp_path: Path) -> Path:
    """The project's files as a fresh clone has them: no .venv (a `make` that needs one would install it)."""
    clone = tmp_path / "clone"
    shutil.copytree(
        PROJECT_ROOT,
        clone,
        ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", ".pytest_cache", "node_modules"),
    )
    return clone


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "STACK is not set"),
        (("STACK=../etc",), "'../etc' is not a stack name"),
        (("STACK=dev",), "make destroy needs the Pulumi CLI"),
    ],
    ids=["no-stack", "not-a-stack-name", "no-pulumi-cli"],
)
def test_destroy_checks_the_cheap_things_before_installing_anything(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    clone = fresh_copy(tmp_path)
    env = {"PATH": path_without(tmp_path, "pulumi"), "STACK": ""}
    result = make("destroy", *args, cwd=clone, PYTHON="false", **env)
    assert result.returncode != 0
    assert message in result.stderr
    assert "installing requirements.txt" not in result.stderr
    assert not (clone / ".venv").exists()


def test_destroy_with_the_pulumi_cli_runs_it_after_the_confirmation(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    fake = bin_dir / "pulumi"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{calls}"\n')
    fake.chmod(0o755)
    result = make("destroy", "STACK=dev", "CONFIRM=dev", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert result.returncode == 0, result.stderr
    assert calls.read_text().split() == ["destroy", "--stack", "dev", "--yes", "--non-interactive"]


# --- Prerequisites: Node.js first ------------------------------------------------------------------------


def test_make_test_without_node_says_so_once_first_and_runs_nothing(tmp_path: Path) -> None:
    # PY=false: were the check ever to let `make test` through, it fails at once instead of running
    # this test suite inside itself.
    result = make("test", "PY=false", PATH=path_without(tmp_path, "node"))
    assert result.returncode != 0
    assert result.stderr.count("Node.js 20 or newer") == 1
    assert "https://nodejs.org/en/download" in result.stderr
    # Nothing ran after the check: no lint, no tests.
    assert "ruff" not in result.stdout + result.stderr
    assert "pytest" not in result.stdout + result.stderr
    assert result.stderr.startswith("make: this machine is missing what the project needs")


def test_make_demo_checks_for_node_too(tmp_path: Path) -> None:
    result = make("demo", LOCALPOOL_NODE=str(tmp_path / "no-node-here"))
    assert result.returncode != 0
    assert "Node.js 20 or newer" in result.stderr
    assert "LOCALPOOL_NODE" in result.stderr


def test_a_node_older_than_20_is_named_with_its_version(tmp_path: Path) -> None:
    old = tmp_path / "node"
    old.write_text("#!/bin/sh\necho 18.19.0\n")
    old.chmod(0o755)
    result = make("prerequisites", LOCALPOOL_NODE=str(old))
    assert result.returncode != 0
    assert "is version 18.19.0" in result.stderr


def test_the_prerequisites_ask_for_the_node_the_local_pool_needs() -> None:
    """The script stands alone (it runs before any Python), so its copy of the minimum is checked here."""
    assert f"MIN_NODE_MAJOR={MIN_NODE_MAJOR} " in PREREQUISITES.read_text()


def prerequisites_copy(tmp_path: Path, ensure_bwrap: str = "exit 0\n") -> Path:
    """scripts/check-prerequisites.sh in an empty project (it works from its parent directory), beside a
    stand-in for scripts/ensure-bwrap.sh that runs `ensure_bwrap`."""
    (tmp_path / "scripts").mkdir(parents=True)
    shutil.copy2(PREREQUISITES, tmp_path / "scripts" / PREREQUISITES.name)
    (tmp_path / "scripts" / "ensure-bwrap.sh").write_text(ensure_bwrap)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    python = tmp_path / ".venv" / "bin" / "python"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    return tmp_path / "scripts" / PREREQUISITES.name


def run_script(script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60, check=False)


def test_the_sandbox_check_stops_the_prerequisites_when_it_fails(tmp_path: Path) -> None:
    assert run_script(prerequisites_copy(tmp_path / "ok")).returncode == 0
    missing = "echo 'bubblewrap is missing: apt-get install bubblewrap' >&2\nexit 1\n"
    result = run_script(prerequisites_copy(tmp_path / "missing", missing))
    assert result.returncode == 1
    assert "apt-get install bubblewrap" in result.stderr


# --- The first make says what it installs -----------------------------------------------------------------


def test_the_first_make_says_what_it_is_installing_on_stderr(tmp_path: Path) -> None:
    shutil.copy2(MAKEFILE, tmp_path / "Makefile")
    (tmp_path / "requirements.txt").write_text("")
    # A stand-in for `python3 -m venv .venv` whose python accepts `-m pip install ...`.
    fake_python = tmp_path / "python3"
    fake_python.write_text(
        '#!/bin/sh\nmkdir -p "$3/bin"\nprintf "#!/bin/sh\\n" > "$3/bin/python"\nchmod +x "$3/bin/python"\n'
    )
    fake_python.chmod(0o755)
    result = make("venv", f"PYTHON={fake_python}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "creating .venv and installing requirements.txt (about 2 minutes, once)" in result.stderr
    assert result.stdout == ""
    again = make("venv", f"PYTHON={fake_python}", cwd=tmp_path)
    assert "installing" not in again.stdout + again.stderr
