"""The localpool distribution (issue 14, part 1): the wheel built from pyproject.toml, installed into a new
virtualenv outside the checkout, gives the `localpool` command and the pytest plugin, and works from there."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import select
import socket
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from packaging.requirements import Requirement

import localpool
from localpool.__main__ import build_parser
from localpool.constants import ENDPOINT_LINE_PREFIX, TOKEN_LINE_PREFIX
from tests.support.localpool_helpers import CLI_START_TIMEOUT_SECONDS, new_identifier

pytest_plugins = ("pytester",)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
# Building fetches the pinned backend and installing fetches the dependencies from the package index.
INSTALL_TIMEOUT_SECONDS = 300
RUN_TIMEOUT_SECONDS = 120
# The module names of the standard library and of the plugin's host (pytest is there whenever the plugin runs).
NOT_DEPENDENCIES = {*sys.stdlib_module_names, "localpool", "pytest"}
HELLO_WORLD = {
    "NodeLTS": "console.log('hello-world')",
    "PythonLTS": "print('hello-world')",
    "Shell": "echo hello-world",
}


def _pinned(name: str) -> str:
    """requirements.txt's line for a distribution."""
    for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines():
        if Requirement(line).name == name:
            return line
    raise AssertionError(f"requirements.txt does not pin {name}")


def _outside_env() -> dict[str, str]:
    """The environment of a command run outside the checkout: nothing points back at it."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "LOCALPOOL_TOKEN")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=_outside_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_SECONDS,
        check=False,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from pyproject.toml (with the backend pyproject.toml pins), once per module."""
    out = tmp_path_factory.mktemp("wheel")
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", out, PROJECT_ROOT, cwd=out)
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("*.whl")
    return path


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A new virtualenv outside the checkout with the wheel (its dependencies from the index) and pytest."""
    home = tmp_path_factory.mktemp("venv") / "env"
    created = _run(sys.executable, "-m", "venv", home, cwd=home.parent)
    assert created.returncode == 0, created.stderr
    installed = _run(home / "bin" / "python", "-m", "pip", "install", wheel, _pinned("pytest"), cwd=home.parent)
    assert installed.returncode == 0, installed.stderr
    return home


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory outside the checkout."""
    assert not tmp_path.is_relative_to(PROJECT_ROOT)
    return tmp_path


def test_the_wheel_holds_only_the_localpool_package_with_its_runner_files(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"localpool", f"localpool-{localpool.__version__}.dist-info"}
    shipped = {name.removeprefix("localpool/") for name in names if name.startswith("localpool/")}
    in_checkout = {path.name for path in (PROJECT_ROOT / "localpool").iterdir() if path.is_file()}
    assert shipped == in_checkout
    assert {"runner.js", "runner.py", "pytest_plugin.py"} <= shipped


def test_the_wheel_declares_the_command_the_plugin_and_the_one_version(wheel: Path) -> None:
    assert wheel.name == f"localpool-{localpool.__version__}-py3-none-any.whl"
    assert localpool.__version__ == "0.1.0"
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read(f"localpool-{localpool.__version__}.dist-info/entry_points.txt").decode()
    assert "[console_scripts]\nlocalpool = localpool.__main__:console" in entry_points
    assert "[pytest11]\nlocalpool = localpool.pytest_plugin" in entry_points


def _third_party_imports() -> set[str]:
    """The top-level modules that localpool/ imports from outside the standard library."""
    found: set[str] = set()
    for path in (PROJECT_ROOT / "localpool").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - NOT_DEPENDENCIES


def test_the_dependencies_are_what_localpool_imports_and_requirements_pins_them() -> None:
    declared = [Requirement(line) for line in PYPROJECT["project"]["dependencies"]]
    distributions = importlib.metadata.packages_distributions()
    imported = {name for module in _third_party_imports() for name in distributions[module]}
    assert {requirement.name for requirement in declared} == imported
    for requirement in declared:
        pinned = Requirement(_pinned(requirement.name))
        (version,) = [spec.version for spec in pinned.specifier]
        assert requirement.specifier.contains(version), f"requirements.txt's {pinned} is outside {requirement}"


def test_the_installed_command_has_todays_flags_and_its_version(venv: Path, elsewhere: Path) -> None:
    shown = _run(venv / "bin" / "localpool", "--help", cwd=elsewhere)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == build_parser(prog="localpool").format_help()
    assert shown.stdout.startswith("usage: localpool ")
    version = _run(venv / "bin" / "localpool", "--version", cwd=elsewhere)
    assert (version.returncode, version.stdout) == (0, f"localpool {localpool.__version__}\n")
    located = _run(venv / "bin" / "python", "-c", "import localpool; print(localpool.__file__)", cwd=elsewhere)
    assert Path(located.stdout.strip()).is_relative_to(venv)


@contextmanager
def _installed_pool(venv: Path, cwd: Path, *args: str) -> Iterator[tuple[str, str]]:
    """Start the installed `localpool ARGS` in cwd; yield the endpoint and token from its two stdout lines."""
    process = subprocess.Popen(
        [str(venv / "bin" / "localpool"), "--quiet", *args],
        cwd=cwd,
        env=_outside_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], CLI_START_TIMEOUT_SECONDS)
        first = process.stdout.readline() if ready else ""
        assert first.startswith(ENDPOINT_LINE_PREFIX), process.stderr.read() if process.stderr else first
        second = process.stdout.readline()
        assert second.startswith(TOKEN_LINE_PREFIX)
        yield first.strip().removeprefix(ENDPOINT_LINE_PREFIX), second.strip().removeprefix(TOKEN_LINE_PREFIX)
    finally:
        process.terminate()
        process.wait(timeout=RUN_TIMEOUT_SECONDS)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("container_type", sorted(HELLO_WORLD))
def test_the_installed_command_runs_a_pool_of_each_type(venv: Path, elsewhere: Path, container_type: str) -> None:
    with _installed_pool(venv, elsewhere, "--container-type", container_type) as (endpoint, token):
        answer = requests.post(
            f"{endpoint}/code/execute",
            params={"api-version": "2024-02-02-preview", "identifier": new_identifier()},
            headers={"Authorization": f"Bearer {token}"},
            json={
                "properties": {
                    "codeInputType": "inline",
                    "executionType": "synchronous",
                    "code": HELLO_WORLD[container_type],
                }
            },
            timeout=RUN_TIMEOUT_SECONDS,
        )
    assert answer.status_code == requests.codes.ok, answer.text
    assert answer.json()["properties"]["stdout"] == "hello-world\n"
    assert answer.json()["properties"]["status"] == "Success"


# The small test project that uses the installed plugin: the session's pool with options from its conftest.py,
# more pools from the factory, each test writing the endpoints it used (the outer test checks they stopped).
PROJECT_CONFTEST = """
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from localpool.pytest_plugin import LocalPoolOptions


@pytest.fixture(scope="session")
def local_pool_options():
    return LocalPoolOptions(container_type="PythonLTS", tls=True, disk_mb=20)


def pytest_sessionfinish(session):
    # After the session's fixtures are torn down, before the interpreter exits: which pools still listen?
    listening = []
    for endpoint in set(Path("endpoints.txt").read_text().split()):
        with socket.socket() as probe:
            if probe.connect_ex((urlsplit(endpoint).hostname, urlsplit(endpoint).port)) == 0:
                listening.append(endpoint)
    Path("still-listening.txt").write_text("\\n".join(listening))
"""

PROJECT_TESTS = '''
import json
import ssl
import urllib.error
import urllib.request
import uuid
from pathlib import Path


def execute(pool, code, identifier=None):
    """POST /code/execute; returns (HTTP status, answer)."""
    identifier = identifier or f"t-{uuid.uuid4()}"
    url = f"{pool.endpoint}/code/execute?api-version=2024-02-02-preview&identifier={identifier}"
    body = {"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": code}}
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Authorization": f"Bearer {pool.token}", "Content-Type": "application/json"}
    )
    context = ssl.create_default_context(cafile=pool.cert_path) if pool.cert_path else None
    Path("endpoints.txt").open("a").write(pool.endpoint + "\\n")
    try:
        with urllib.request.urlopen(request, context=context) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, None


def test_the_session_pool_has_the_conftests_options(local_pool):
    assert local_pool.endpoint.startswith("https://") and local_pool.cert_path.is_file()
    status, answer = execute(local_pool, "import sys; print('hello-world', sys.version_info >= (3, 10))")
    assert status == 200 and answer["properties"]["stdout"] == "hello-world True\\n"


def test_every_test_shares_the_session_pool(local_pool):
    assert execute(local_pool, "print(1 + 1)")[1]["properties"]["stdout"] == "2\\n"


def test_the_factory_starts_more_pools_with_their_own_limits(local_pool, local_pool_factory):
    shell = local_pool_factory(container_type="Shell", max_sessions=1, token="a-test-token")
    assert shell.endpoint.startswith("http://") and shell.endpoint != local_pool.endpoint
    assert (shell.token, shell.cert_path) == ("a-test-token", None)
    status, answer = execute(shell, "echo hello-world")
    assert status == 200 and answer["properties"]["stdout"] == "hello-world\\n"
    assert execute(shell, "echo a second session")[0] == 404  # max_sessions=1
'''

FAILING_PROJECT_TESTS = """
def test_needs_a_pool(local_pool):
    pass
"""


def _refuses_connections(endpoint: str) -> bool:
    parts = urlsplit(endpoint)
    with socket.socket() as probe:
        return probe.connect_ex((parts.hostname, parts.port)) != 0


def test_a_project_gets_pools_from_the_installed_plugin(pytester: pytest.Pytester, venv: Path) -> None:
    pytester.makeconftest(PROJECT_CONFTEST)
    pytester.makepyfile(test_tool=PROJECT_TESTS)
    result = pytester.run(venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", timeout=300)
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=3)
    endpoints = set((pytester.path / "endpoints.txt").read_text().split())
    assert len(endpoints) == 2  # the session's pool (shared by two tests) and the factory's
    assert (pytester.path / "still-listening.txt").read_text() == "", "a pool outlived its session"
    assert all(_refuses_connections(endpoint) for endpoint in endpoints)


def test_a_pool_that_cannot_start_fails_the_test_with_the_pools_sentence(
    pytester: pytest.Pytester, venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_bwrap = pytester.mkdir("no-bwrap")
    (no_bwrap / "node").symlink_to(Path(subprocess.check_output(["which", "node"], text=True).strip()))
    monkeypatch.setenv("PATH", str(no_bwrap))
    pool_said = _run(venv / "bin" / "localpool", cwd=pytester.path, env={**_outside_env(), "PATH": str(no_bwrap)})
    assert pool_said.returncode == 2
    (sentence,) = pool_said.stderr.strip().splitlines()
    assert "bubblewrap" in sentence
    pytester.makepyfile(test_needs_pool=FAILING_PROJECT_TESTS)
    result = pytester.run(venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(errors=1)
    expected = f"the local pool did not start: {sentence.removeprefix('localpool: ')}"
    assert expected in result.stdout.lines
    assert "Traceback" not in result.stdout.str() and "During handling" not in result.stdout.str()
