"""The README stays true: its first commands, and every setting and output it must document."""

from __future__ import annotations

import re
from pathlib import Path

from components.settings import SETTINGS

OUTPUTS = (
    "resourceGroupName",
    "sessionPoolName",
    "sessionPoolId",
    "poolManagementEndpoint",
    "location",
    "containerType",
    "networkStatus",
    "executorPrincipalIds",
)


def readme(project_root: Path) -> str:
    return (project_root / "README.md").read_text()


def settings_doc(project_root: Path) -> str:
    return (project_root / "docs" / "settings.md").read_text()


def test_first_commands_are_the_demo_and_the_tests(project_root: Path) -> None:
    first_block = re.search(r"```sh\n(.*?)```", readme(project_root), re.DOTALL)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command(project_root: Path) -> None:
    script = (project_root / ".ci" / "run").read_text()
    assert "make test" in script.splitlines()[-1]


def test_every_setting_is_in_the_settings_table(project_root: Path) -> None:
    text = settings_doc(project_root)
    for spec in SETTINGS:
        assert f"| `{spec.key}` |" in text, spec.key


def test_every_output_is_in_the_outputs_table(project_root: Path, stack_runs: dict) -> None:
    text = settings_doc(project_root)
    assert set(stack_runs["dev"].outputs) == set(OUTPUTS)
    for name in OUTPUTS:
        assert f"| `{name}` |" in text, name
