"""The GitHub Actions pipelines and scripts/destroy.sh, checked offline.

Every workflow validates against GitHub's workflow schema (check-jsonschema's vendored copy) and passes
zizmor's security audit (pinned actions, no persisted credentials, no template injection, ...); the rest
reads the YAML and checks the project's own rules: deploy order, smoke checks, OpenID Connect sign-in
with least permissions, no secret values, and the teardown guard rails.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.azure import SESSION_EXECUTOR_ROLE_ID
from localpool.constants import MIN_NODE_MAJOR
from tests.support.destroy_sandbox import DestroySandbox

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GITHUB_DIR = PROJECT_ROOT / ".github"
WORKFLOW_DIR = GITHUB_DIR / "workflows"
SETUP_ACTION = GITHUB_DIR / "actions" / "setup" / "action.yml"
DESTROY_SCRIPT = PROJECT_ROOT / "scripts" / "destroy.sh"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
ZIZMOR = Path(sys.executable).parent / "zizmor"
DEPENDABOT = GITHUB_DIR / "dependabot.yml"
# Our own files, referenced with GitHub's self-repository syntax (the revision the workflow came from).
SELF_REPOSITORY = "$/"

STACKS = ("dev", "prod")
# Node.js 20 reaches its end of life in April 2026; 24 is the LTS release line after it.
CURRENT_NODE_LTS = 24
ALLOWED_SECRETS = {"PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE"}
AZURE_ENV = ("ARM_CLIENT_ID", "ARM_TENANT_ID", "ARM_SUBSCRIPTION_ID")
# A remote action pinned to a commit, with the release it is in a comment (for people and Dependabot).
USES_LINE = re.compile(r"^\s*(?:- )?uses:\s*(\S+)(.*)$", re.MULTILINE)
PINNED_TO_A_COMMIT = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[^@]+)?@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"^\s+# v\d+\.\d+\.\d+\s*$")
DEPLOYER_CONFIG = re.compile(r"pulumi config set dynamic-sessions:deployerPrincipalType ServicePrincipal --stack (\S+)")
PULUMI_COMMAND = re.compile(r"\bpulumi (preview|up|destroy)\b")
STACK_ARG = re.compile(r"--stack[= ](\S+)")
SMOKE = re.compile(r"\.venv/bin/python -m smoke --stack (\S+)")

# Things shaped like credentials. GUIDs are reported unless they are the public role id.
GUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
SECRET_SHAPES = {
    "a password": re.compile(r"password\s*[:=]\s*\S", re.IGNORECASE),
    "a client secret": re.compile(r"client[-_]?secret\s*[:=]\s*\S", re.IGNORECASE),
    "an Azure credentials blob": re.compile(r"\bcreds\s*:", re.IGNORECASE),
    "a GitHub token": re.compile(r"\b(ghp|gho|ghs|ghu|github_pat)_[A-Za-z0-9_]{20,}"),
    "a Pulumi access token": re.compile(r"\bpul-[0-9a-f]{20,}"),
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "a storage account key": re.compile(r"AccountKey=", re.IGNORECASE),
    "a JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\."),
    "an Entra ID client secret": re.compile(r"\b[A-Za-z0-9_~.-]{3}8Q~[A-Za-z0-9_~.-]{31,34}\b"),
}
SECRET_REFERENCE = re.compile(r"\$\{\{\s*secrets\.([A-Za-z0-9_]+)\s*\}\}")
ANY_SECRETS_CONTEXT = re.compile(r"\bsecrets\.")
# Values from a person (workflow inputs, PR titles...) must reach scripts through env, not `${{ }}`.
UNTRUSTED_IN_RUN = re.compile(r"\$\{\{\s*(inputs\.|github\.event\.)")


# --- Loading ----------------------------------------------------------------------------------------


def load_yaml(path: Path) -> dict[str, Any]:
    """Parse a workflow; YAML 1.1 reads the key `on` as True, so put it back under "on"."""
    document = yaml.safe_load(path.read_text())
    if True in document:
        document["on"] = document.pop(True)
    return document


WORKFLOW_FILES = sorted(WORKFLOW_DIR.glob("*.yml"))
WORKFLOWS = {path.stem: load_yaml(path) for path in WORKFLOW_FILES}


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    on = workflow["on"]
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return on


def all_jobs() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name, workflow in WORKFLOWS.items():
        for job_id, job in workflow["jobs"].items():
            yield name, job_id, job


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def run_text(step: dict[str, Any]) -> str:
    return step.get("run", "") or ""


def uses(step: dict[str, Any]) -> str:
    return step.get("uses", "") or ""


def is_azure_login(step: dict[str, Any]) -> bool:
    return uses(step).startswith("azure/login@")


def pulumi_action_command(step: dict[str, Any]) -> str | None:
    if uses(step).startswith("pulumi/actions@"):
        return (step.get("with") or {}).get("command")
    return None


def resolve(value: str, job: dict[str, Any]) -> str:
    """Expand $STACK / ${{ env.STACK }} / ${{ matrix.stack }} references so stacks can be compared."""
    env = job.get("env") or {}
    value = value.strip("\"'")
    for name, bound in env.items():
        value = value.replace(f"${name}", str(bound)).replace(f"${{{{ env.{name} }}}}", str(bound))
    return value


def stack_of(step: dict[str, Any], job: dict[str, Any]) -> str | None:
    """The stack a pulumi/smoke step works on (resolved through the job's env), or None."""
    if pulumi_action_command(step):
        return resolve(str(step["with"]["stack-name"]), job)
    match = STACK_ARG.search(run_text(step))
    return resolve(match.group(1), job) if match else None


def pulumi_operations(job: dict[str, Any]) -> list[tuple[int, str, str]]:
    """(step index, command, stack) of every pulumi preview/up/destroy in a job."""
    found = []
    for index, step in enumerate(steps(job)):
        command = pulumi_action_command(step)
        match = PULUMI_COMMAND.search(run_text(step))
        if command:
            found.append((index, command, stack_of(step, job)))
        elif match:
            found.append((index, match.group(1), stack_of(step, job)))
    return found


def touches_azure(job: dict[str, Any]) -> bool:
    return any(is_azure_login(step) for step in steps(job)) or bool(pulumi_operations(job))


def destroy_runs_script(job: dict[str, Any]) -> bool:
    return any("scripts/destroy.sh" in run_text(step) and "--check" not in run_text(step) for step in steps(job))


def zizmor(*paths: Path) -> subprocess.CompletedProcess[str]:
    """zizmor's offline audits (regular persona); it exits non-zero when it has a finding."""
    return subprocess.run(
        [str(ZIZMOR), "--offline", "--no-progress", "--color", "never", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def check_schema(*paths: Path, schema: str = "vendor.github-workflows") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", schema, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- Schema ----------------------------------------------------------------------------------------


def test_every_workflow_validates_against_githubs_schema() -> None:
    result = check_schema(*WORKFLOW_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_setup_action_validates_against_githubs_action_schema() -> None:
    result = check_schema(SETUP_ACTION, schema="vendor.github-actions")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "name: Broken\non: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps: run the tests\n"
        "    permisions: write-all\n"
    )
    result = check_schema(broken)
    assert result.returncode != 0
    assert "broken.yml" in result.stdout + result.stderr


def test_the_dependabot_config_validates_and_covers_actions_and_pip() -> None:
    result = check_schema(DEPENDABOT, schema="vendor.dependabot")
    assert result.returncode == 0, result.stdout + result.stderr
    updates = yaml.safe_load(DEPENDABOT.read_text())["updates"]
    covered = {(update["package-ecosystem"], directory) for update in updates for directory in update["directories"]}
    # Every place that pins something: workflows, the composite action, both requirements files.
    assert {
        ("github-actions", "/"),
        ("github-actions", "/" + str(SETUP_ACTION.parent.relative_to(PROJECT_ROOT))),
        ("pip", "/"),
        ("pip", "/policy"),
    } <= covered


# --- Security audit (zizmor) ---------------------------------------------------------------------------


def test_zizmor_finds_nothing_in_the_pipelines() -> None:
    result = zizmor(GITHUB_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("step", "audit"),
    [
        ("- uses: actions/checkout@v4", "unpinned-uses"),
        ("- uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1", "artipacked"),
        ("- run: echo ${{ github.event.pull_request.title }}", "template-injection"),
    ],
)
def test_zizmor_catches_a_planted_mistake(tmp_path: Path, step: str, audit: str) -> None:
    planted = tmp_path / "planted.yml"
    planted.write_text(
        "name: Planted\non: pull_request\npermissions: {}\njobs:\n  build:\n    runs-on: ubuntu-latest\n"
        f"    permissions:\n      contents: read\n    steps:\n      {step}\n"
    )
    result = zizmor(planted)
    assert result.returncode != 0
    assert audit in result.stdout


def test_every_remote_action_is_pinned_to_a_commit_with_its_release_in_a_comment() -> None:
    pinned: dict[str, set[str]] = {}
    checked = 0
    for path in [*WORKFLOW_FILES, SETUP_ACTION]:
        for reference, comment in USES_LINE.findall(path.read_text()):
            checked += 1
            if reference.startswith(SELF_REPOSITORY):
                target = PROJECT_ROOT / reference.removeprefix(SELF_REPOSITORY)
                assert target.exists(), f"{path.name}: {reference} does not exist"
                continue
            assert PINNED_TO_A_COMMIT.match(reference), f"{path.name}: {reference} is not pinned to a commit"
            assert VERSION_COMMENT.match(comment), f"{path.name}: {reference} has no '# vX.Y.Z' comment"
            pinned.setdefault(reference, set()).add(comment.strip())
    assert checked
    # One commit is one release everywhere it is used.
    assert {reference: comments for reference, comments in pinned.items() if len(comments) > 1} == {}


# --- Triggers ----------------------------------------------------------------------------------------


def runs_on_push_to_main(workflow: dict[str, Any]) -> bool:
    push = triggers(workflow).get("push")
    return push is not None and "main" in ((push or {}).get("branches") or ["main"])


def test_every_pull_request_and_every_push_to_main_runs_the_tests_exactly_once() -> None:
    assert "pull_request" in triggers(WORKFLOWS["ci"])
    runs_of_ci = [name for name, workflow in WORKFLOWS.items() if name == "ci" and runs_on_push_to_main(workflow)]
    runs_of_ci += [
        f"{name}/{job_id}"
        for name, workflow in WORKFLOWS.items()
        if runs_on_push_to_main(workflow)
        for job_id, job in workflow["jobs"].items()
        if job.get("uses") == f"{SELF_REPOSITORY}.github/workflows/ci.yml"
    ]
    assert runs_of_ci == ["deploy/test"]


def test_preview_runs_on_pull_requests_only() -> None:
    assert set(triggers(WORKFLOWS["preview"])) == {"pull_request"}


def test_deploy_runs_on_pushes_to_main_and_by_hand() -> None:
    on = triggers(WORKFLOWS["deploy"])
    assert set(on) == {"push", "workflow_dispatch"}
    assert on["push"]["branches"] == ["main"]


def test_drift_runs_nightly_and_by_hand() -> None:
    on = triggers(WORKFLOWS["drift"])
    assert set(on) == {"schedule", "workflow_dispatch"}
    assert len(on["schedule"]) == 1 and len(on["schedule"][0]["cron"].split()) == 5


def test_destroy_runs_only_by_hand_with_stack_and_confirmation_inputs() -> None:
    on = triggers(WORKFLOWS["destroy"])
    assert set(on) == {"workflow_dispatch"}
    inputs = on["workflow_dispatch"]["inputs"]
    assert set(inputs) == {"stack", "confirm"}
    assert all(spec["required"] is True and spec["type"] == "string" for spec in inputs.values())


# --- Python, pip cache, Node, make test -------------------------------------------------------------


def setup_python_steps() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, _job_id, job in all_jobs():
        for step in steps(job):
            if uses(step).startswith("actions/setup-python@"):
                yield name, step
    for step in load_yaml(SETUP_ACTION)["runs"]["steps"]:
        if uses(step).startswith("actions/setup-python@"):
            yield "setup action", step


def test_every_python_setup_is_the_projects_minimum_python() -> None:
    target = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["target-version"]
    minimum = f"{target[2]}.{target[3:]}"  # "py311" -> "3.11"
    found = list(setup_python_steps())
    assert found
    for where, step in found:
        assert str(step["with"]["python-version"]) == minimum, where


def test_every_job_that_runs_python_sets_it_up() -> None:
    for name, job_id, job in all_jobs():
        if "uses" in job:  # a reusable workflow (ci.yml), checked on its own
            continue
        used = [uses(step) for step in steps(job)]
        needs_python = any("python -m" in run_text(step) or "make " in run_text(step) for step in steps(job))
        needs_python |= bool(pulumi_operations(job))
        if needs_python:
            assert any(u.startswith("actions/setup-python@") or u == "$/.github/actions/setup" for u in used), (
                f"{name}/{job_id}"
            )


def test_ci_tests_the_local_pool_on_the_oldest_supported_node_and_a_current_one() -> None:
    job = WORKFLOWS["ci"]["jobs"]["test"]
    node = next(step for step in steps(job) if uses(step).startswith("actions/setup-node@"))
    assert node["with"]["node-version"] == "${{ matrix.node }}"
    majors = [int(version) for version in job["strategy"]["matrix"]["node"]]
    assert min(majors) == MIN_NODE_MAJOR
    assert max(majors) >= CURRENT_NODE_LTS
    assert [run_text(step) for step in steps(job) if run_text(step)][-1] == "make test"


def test_the_setup_action_installs_requirements_and_the_pulumi_cli_of_the_same_version() -> None:
    action = load_yaml(SETUP_ACTION)
    action_steps = action["runs"]["steps"]
    assert any(run_text(step) == "make venv" for step in action_steps)
    pulumi_install = [step for step in action_steps if uses(step).startswith("pulumi/actions@")]
    assert len(pulumi_install) == 1 and "command" not in pulumi_install[0].get("with", {})
    requirements = (PROJECT_ROOT / "requirements.txt").read_text()
    assert f"pulumi=={action['inputs']['pulumi-version']['default']}" in requirements


# --- Deploy: order, smoke checks, environments, concurrency ---------------------------------------------


def test_deploy_runs_the_tests_first() -> None:
    jobs = WORKFLOWS["deploy"]["jobs"]
    assert jobs["test"]["uses"] == "$/.github/workflows/ci.yml"
    assert "workflow_call" in triggers(WORKFLOWS["ci"])
    assert jobs["deploy-dev"]["needs"] == "test"


@pytest.mark.parametrize("job_id", ["deploy-dev", "deploy-prod"])
def test_each_deploy_is_followed_by_a_smoke_check_of_the_same_stack(job_id: str) -> None:
    job = WORKFLOWS["deploy"]["jobs"][job_id]
    ups = [(index, stack) for index, command, stack in pulumi_operations(job) if command == "up"]
    assert len(ups) == 1
    up_index, up_stack = ups[0]
    assert job_id == f"deploy-{up_stack}"
    smokes = [(index, SMOKE.search(run_text(step))) for index, step in enumerate(steps(job))]
    smokes = [(index, match.group(1)) for index, match in smokes if match]
    assert smokes == [(len(steps(job)) - 1, up_stack)], "the smoke check is the last step and names the up's stack"
    smoke_index = smokes[0][0]
    # A fresh Azure sign-in between `pulumi up` and the smoke check: the OIDC sign-in is short-lived.
    assert any(is_azure_login(step) for step in steps(job)[up_index + 1 : smoke_index])
    # Nothing can swallow a failed smoke check.
    assert "continue-on-error" not in steps(job)[smoke_index]
    assert "|| true" not in run_text(steps(job)[smoke_index])


def test_every_pulumi_up_runs_the_policy_pack() -> None:
    for _name, _job_id, job in all_jobs():
        for index, command, _stack in pulumi_operations(job):
            if command == "up":
                assert "--policy-pack policy" in run_text(steps(job)[index])


def test_prod_waits_for_dev_and_the_production_environment() -> None:
    prod = WORKFLOWS["deploy"]["jobs"]["deploy-prod"]
    assert prod["needs"] in ("deploy-dev", ["deploy-dev"])
    assert prod["environment"] == "production"


def test_one_deploy_per_stack_at_a_time_never_cancelled() -> None:
    groups = {}
    for stack in STACKS:
        concurrency = WORKFLOWS["deploy"]["jobs"][f"deploy-{stack}"]["concurrency"]
        assert concurrency["cancel-in-progress"] is False
        assert stack in concurrency["group"]
        groups[stack] = concurrency["group"]
    assert len(set(groups.values())) == len(STACKS)
    # Destroy shares the deploy's group, so a stack is never destroyed while it deploys.
    destroy_group = WORKFLOWS["destroy"]["jobs"]["destroy"]["concurrency"]
    assert destroy_group["cancel-in-progress"] is False
    for stack in STACKS:
        assert destroy_group["group"].replace("${{ inputs.stack }}", stack) == groups[stack]


# --- Preview and drift ---------------------------------------------------------------------------------


def test_preview_covers_every_stack_with_the_policy_pack_and_a_pr_comment() -> None:
    job = WORKFLOWS["preview"]["jobs"]["preview"]
    assert job["strategy"]["matrix"]["stack"] == list(STACKS)
    assert job["strategy"]["fail-fast"] is False
    [preview] = [step for step in steps(job) if pulumi_action_command(step) == "preview"]
    assert preview["with"]["stack-name"] == "${{ matrix.stack }}"
    assert preview["with"]["policyPacks"] == "policy"
    assert preview["with"]["comment-on-pr"] is True


def test_drift_refreshes_and_expects_no_changes_for_every_stack() -> None:
    job = WORKFLOWS["drift"]["jobs"]["drift"]
    assert job["strategy"]["matrix"]["stack"] == list(STACKS)
    assert job["strategy"]["fail-fast"] is False
    [(index, command, stack)] = pulumi_operations(job)
    assert command == "preview" and stack == "${{ matrix.stack }}"
    arguments = shlex.split(run_text(steps(job)[index]))
    assert {"--refresh", "--expect-no-changes"} <= set(arguments)
    assert "continue-on-error" not in steps(job)[index]


# --- Sign-in, permissions, secrets ----------------------------------------------------------------------


def test_pipelines_deploy_as_a_service_principal_before_any_preview_or_up() -> None:
    checked = 0
    for name, job_id, job in all_jobs():
        for index, command, stack in pulumi_operations(job):
            if command not in ("preview", "up"):
                continue
            earlier = [DEPLOYER_CONFIG.search(run_text(step)) for step in steps(job)[:index]]
            configured = {resolve(match.group(1), job) for match in earlier if match}
            assert stack in configured, f"{name}/{job_id}: deployerPrincipalType not set before pulumi {command}"
            checked += 1
    assert checked == 4  # preview and drift (one job each, over the matrix), up dev, up prod


def test_every_job_that_touches_azure_signs_in_with_openid_connect() -> None:
    for name, job_id, job in all_jobs():
        if not touches_azure(job):
            continue
        where = f"{name}/{job_id}"
        assert job["permissions"].get("id-token") == "write", where
        env = job["env"]
        assert env["ARM_USE_OIDC"] == "true", where
        for key in AZURE_ENV:
            assert env[key].startswith("${{ vars."), f"{where}: {key} must come from a variable"
        logins = [step for step in steps(job) if is_azure_login(step)]
        assert logins, where
        for login in logins:
            # OpenID Connect: identifiers from variables, never a stored credential (creds, client-secret).
            assert {"client-id", "tenant-id", "subscription-id"} <= set(login["with"]), where
            assert all(value.startswith("${{ vars.") for value in login["with"].values()), where
        first_login = next(index for index, step in enumerate(steps(job)) if is_azure_login(step))
        first_pulumi = min((index for index, _c, _s in pulumi_operations(job)), default=len(steps(job)))
        assert first_login < first_pulumi, where


def test_the_pulumi_backend_comes_from_a_variable() -> None:
    for name, job_id, job in all_jobs():
        if touches_azure(job):
            assert job["env"]["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}", f"{name}/{job_id}"


def test_permissions_start_empty_and_jobs_widen_only_what_they_need() -> None:
    for name, workflow in WORKFLOWS.items():
        assert workflow["permissions"] == {}, name
    for name, job_id, job in all_jobs():
        where = f"{name}/{job_id}"
        permissions = job["permissions"]
        assert isinstance(permissions, dict), f"{where}: permissions must be listed, not read-all/write-all"
        comments = any((step.get("with") or {}).get("comment-on-pr") is True for step in steps(job))
        allowed = {"contents": "read"}
        if touches_azure(job):
            allowed["id-token"] = "write"
        if comments:
            allowed["pull-requests"] = "write"
        assert permissions == allowed, where


def scanned_files() -> list[Path]:
    files = [*GITHUB_DIR.rglob("*.yml"), *GITHUB_DIR.rglob("*.yaml"), DESTROY_SCRIPT]
    files += [
        path for path in (PROJECT_ROOT / "policy").rglob("*") if path.is_file() and "__pycache__" not in path.parts
    ]
    return sorted(files)


def readme_pipeline_sections() -> str:
    """The pipeline and teardown docs (the settings docs show example object ids on purpose)."""
    return "".join((PROJECT_ROOT / "docs" / name).read_text() for name in ("pipelines.md", "teardown.md"))


def secret_findings(text: str) -> list[str]:
    """Name everything in `text` that looks like a credential value."""
    found = [f"a GUID {guid}" for guid in GUID.findall(text) if guid.lower() != SESSION_EXECUTOR_ROLE_ID]
    found += [label for label, pattern in SECRET_SHAPES.items() if pattern.search(text)]
    return found


def test_no_file_holds_anything_shaped_like_a_secret() -> None:
    for path in scanned_files():
        assert secret_findings(path.read_text()) == [], path.relative_to(PROJECT_ROOT)
    assert secret_findings(readme_pipeline_sections()) == []


@pytest.mark.parametrize(
    "planted",
    [
        "ARM_CLIENT_ID: 3f2b8c1e-6d4a-4e7b-9a5c-1d2e3f4a5b6c",
        "password: hunter2",
        "client-secret: abc",
        "token: ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "PULUMI_ACCESS_TOKEN: pul-0123456789abcdef0123456789abcdef01234567",
        "creds: ${{ secrets.AZURE_CREDENTIALS }}",
        "-----BEGIN RSA PRIVATE KEY-----",
        "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=abc==",
        "secret: abc8Q~abcdefghijklmnopqrstuvwxyz0123456",
    ],
)
def test_the_secret_scan_catches_planted_values(planted: str) -> None:
    assert secret_findings(planted)


def test_only_the_pulumi_secrets_are_referenced_and_only_by_name() -> None:
    for path in [*WORKFLOW_FILES, SETUP_ACTION]:
        text = path.read_text()
        assert set(SECRET_REFERENCE.findall(text)) <= ALLOWED_SECRETS, path.name
        assert len(ANY_SECRETS_CONTEXT.findall(text)) == len(SECRET_REFERENCE.findall(text)), path.name
    assert "secrets." not in WORKFLOW_DIR.joinpath("ci.yml").read_text()


def test_untrusted_values_never_reach_a_script_directly() -> None:
    for name, job_id, job in all_jobs():
        for step in steps(job):
            assert not UNTRUSTED_IN_RUN.search(run_text(step)), f"{name}/{job_id}: {step.get('name')}"


def test_every_job_has_a_timeout() -> None:
    for name, job_id, job in all_jobs():
        if "uses" not in job:
            assert isinstance(job.get("timeout-minutes"), int), f"{name}/{job_id}"


# --- Destroy workflow -------------------------------------------------------------------------------------


def destroy_job() -> dict[str, Any]:
    return WORKFLOWS["destroy"]["jobs"]["destroy"]


def step_named(job: dict[str, Any], fragment: str) -> tuple[int, dict[str, Any]]:
    [found] = [(index, step) for index, step in enumerate(steps(job)) if fragment in step.get("name", "")]
    return found


def run_step(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-c", script],
        env={"PATH": os.environ["PATH"], **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_destroy_compares_the_confirmation_with_the_stack_first() -> None:
    job = destroy_job()
    assert job["env"]["STACK"] == "${{ inputs.stack }}"
    assert job["env"]["CONFIRM"] == "${{ inputs.confirm }}"
    index, step = step_named(job, "confirmation repeats the stack name")
    assert index < min(i for i, s in enumerate(steps(job)) if is_azure_login(s))
    script = run_text(step)
    mismatch = run_step(script, {"STACK": "dev", "CONFIRM": "prod"}, PROJECT_ROOT)
    assert mismatch.returncode != 0
    assert "does not repeat the stack name" in mismatch.stdout
    assert run_step(script, {"STACK": "dev", "CONFIRM": "dev"}, PROJECT_ROOT).returncode == 0


def test_destroy_runs_only_from_main() -> None:
    _index, step = step_named(destroy_job(), "dispatched from main")
    assert run_step(run_text(step), {"GITHUB_REF": "refs/heads/feature"}, PROJECT_ROOT).returncode != 0
    assert run_step(run_text(step), {"GITHUB_REF": "refs/heads/main"}, PROJECT_ROOT).returncode == 0


def test_destroy_refuses_a_protected_stack_before_signing_in() -> None:
    job = destroy_job()
    check_index, check = step_named(job, "Refuse a protected stack")
    assert run_text(check) == "bash scripts/destroy.sh --check"
    first_login = min(i for i, s in enumerate(steps(job)) if is_azure_login(s))
    destroy_index = next(i for i, s in enumerate(steps(job)) if run_text(s) == "bash scripts/destroy.sh")
    assert check_index < first_login < destroy_index
    # The shipped prod stack is refused by that very step.
    refused = run_step(run_text(check), {"STACK": "prod"}, PROJECT_ROOT)
    assert refused.returncode == 1
    assert "docs/teardown.md" in refused.stderr
    assert run_step(run_text(check), {"STACK": "dev"}, PROJECT_ROOT).returncode == 0


@pytest.mark.parametrize(
    ("stack", "environment"), [("prod", "production"), ("acme/Prod-eu", "production"), ("dev", "dev")]
)
def test_destroy_runs_in_the_environment_of_the_stack_it_deletes(tmp_path: Path, stack: str, environment: str) -> None:
    """A production stack is destroyed in `production`, whose required reviewers approve before sign-in."""
    workflow = WORKFLOWS["destroy"]["jobs"]
    assert destroy_job()["needs"] == "environment"
    assert destroy_job()["environment"] == "${{ needs.environment.outputs.name }}"
    assert workflow["environment"]["outputs"]["name"] == "${{ steps.choose.outputs.name }}"
    [choose] = [step for step in steps(workflow["environment"]) if step.get("id") == "choose"]
    output = tmp_path / "github-output"
    result = run_step(run_text(choose), {"STACK": stack, "GITHUB_OUTPUT": str(output)}, PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    assert output.read_text() == f"name={environment}\n"
    # The deploy workflow's jobs run in those very environments.
    deploy_environments = {job.get("environment") for job in WORKFLOWS["deploy"]["jobs"].values()}
    assert environment in deploy_environments


def test_only_the_destroy_workflow_destroys() -> None:
    for name, job_id, job in all_jobs():
        if name != "destroy":
            assert not destroy_runs_script(job), f"{name}/{job_id}"
            assert all(command != "destroy" for _i, command, _s in pulumi_operations(job)), f"{name}/{job_id}"


# --- scripts/destroy.sh with a fake pulumi ---------------------------------------------------------------


@pytest.fixture
def sandbox(tmp_path: Path) -> DestroySandbox:
    box = DestroySandbox(tmp_path)
    box.stack_file("dev", None)
    return box


def test_destroy_script_is_strict_bash() -> None:
    text = DESTROY_SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert os.access(DESTROY_SCRIPT, os.X_OK)
    assert subprocess.run(["bash", "-n", str(DESTROY_SCRIPT)], check=False).returncode == 0
    assert "--remove" not in text.split("set -euo pipefail", 1)[1]


def test_refuses_without_a_stack(sandbox: DestroySandbox) -> None:
    result = sandbox.run(CONFIRM="dev")
    assert result.returncode == 2
    assert "STACK is not set" in result.stderr
    assert sandbox.pulumi_args() is None


def test_refuses_a_stack_name_that_is_not_one(sandbox: DestroySandbox) -> None:
    result = sandbox.run(STACK="dev; rm -rf /", CONFIRM="dev; rm -rf /")
    assert result.returncode == 2
    assert sandbox.pulumi_args() is None


def test_refuses_a_mismatched_confirmation(sandbox: DestroySandbox) -> None:
    result = sandbox.run(STACK="dev", CONFIRM="prod")
    assert result.returncode == 1
    assert "CONFIRM='prod' does not repeat STACK='dev'" in result.stderr
    assert "nothing was destroyed" in result.stderr
    assert sandbox.pulumi_args() is None


def test_refuses_without_confirmation_when_nobody_can_type_it(sandbox: DestroySandbox) -> None:
    result = sandbox.run(STACK="dev")
    assert result.returncode == 1
    assert "set CONFIRM=dev" in result.stderr
    assert sandbox.pulumi_args() is None


def test_destroys_when_confirmed(sandbox: DestroySandbox) -> None:
    result = sandbox.run(STACK="dev", CONFIRM="dev")
    assert result.returncode == 0, result.stderr
    assert sandbox.pulumi_args() == ["destroy", "--stack", "dev", "--yes", "--non-interactive"]


def test_passes_extra_flags_through(sandbox: DestroySandbox) -> None:
    result = sandbox.run("--remove", STACK="dev", CONFIRM="dev")
    assert result.returncode == 0, result.stderr
    assert sandbox.pulumi_args() == ["destroy", "--stack", "dev", "--yes", "--non-interactive", "--remove"]


def test_asks_at_a_terminal_and_lets_pulumi_show_the_plan(sandbox: DestroySandbox) -> None:
    returncode, err = sandbox.run_at_terminal("dev", STACK="dev")
    assert returncode == 0, err
    assert "Type the stack name to confirm" in err
    assert sandbox.pulumi_args() == ["destroy", "--stack", "dev"]


def test_a_wrong_answer_at_the_terminal_is_refused(sandbox: DestroySandbox) -> None:
    returncode, err = sandbox.run_at_terminal("prod", STACK="dev")
    assert returncode == 1
    assert "does not repeat the stack name 'dev'" in err
    assert sandbox.pulumi_args() is None


@pytest.mark.parametrize("protect", ["true", '"true"', "True"])
def test_refuses_a_stack_whose_config_protects_it_and_says_how_to_lift_it(
    sandbox: DestroySandbox, protect: str
) -> None:
    sandbox.stack_file("staging", protect)
    result = sandbox.run(STACK="staging", CONFIRM="staging")
    assert result.returncode == 1
    assert "Pulumi.staging.yaml sets dynamic-sessions:protect: true" in result.stderr
    assert 'follow "Tearing down a protected or locked stack" in docs/teardown.md' in result.stderr
    assert sandbox.pulumi_args() is None


@pytest.mark.parametrize("protect", [None, "false"])
def test_production_counts_as_protected_unless_its_config_lifts_it(
    sandbox: DestroySandbox, protect: str | None
) -> None:
    sandbox.stack_file("prod", protect)
    result = sandbox.run(STACK="prod", CONFIRM="prod")
    if protect == "false":
        assert result.returncode == 0, result.stderr
        assert sandbox.pulumi_args() == ["destroy", "--stack", "prod", "--yes", "--non-interactive"]
    else:
        assert result.returncode == 1
        assert "is a production stack" in result.stderr
        assert sandbox.pulumi_args() is None


def test_an_org_qualified_stack_reads_its_short_stack_file(sandbox: DestroySandbox) -> None:
    sandbox.stack_file("qa", "true")
    result = sandbox.run(STACK="acme/qa", CONFIRM="acme/qa")
    assert result.returncode == 1
    assert "Pulumi.qa.yaml" in result.stderr


def test_an_unreadable_protect_value_is_refused(sandbox: DestroySandbox) -> None:
    sandbox.stack_file("qa", "maybe")
    result = sandbox.run(STACK="qa", CONFIRM="qa")
    assert result.returncode == 1
    assert "dynamic-sessions:protect = 'maybe': expected true or false" in result.stderr


def test_check_only_never_runs_pulumi(sandbox: DestroySandbox) -> None:
    result = sandbox.run("--check", STACK="dev")
    assert result.returncode == 0
    assert sandbox.pulumi_args() is None


def test_the_shipped_prod_stack_is_refused() -> None:
    result = subprocess.run(
        ["bash", str(DESTROY_SCRIPT), "--check"],
        env={"PATH": os.environ["PATH"], "STACK": "prod"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "nothing was destroyed" in result.stderr


def test_drift_never_runs_while_the_same_stack_deploys() -> None:
    drift = WORKFLOWS["drift"]["jobs"]["drift"]["concurrency"]
    deploy = WORKFLOWS["deploy"]["jobs"]["deploy-dev"]["concurrency"]
    assert drift["cancel-in-progress"] is False
    assert drift["group"].replace("${{ matrix.stack }}", "dev") == deploy["group"]


def test_deploy_jobs_ship_only_main() -> None:
    for stack in STACKS:
        assert WORKFLOWS["deploy"]["jobs"][f"deploy-{stack}"]["if"] == "github.ref == 'refs/heads/main'"
