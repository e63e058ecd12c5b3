"""The README and docs/ stay true: their links resolve, the commands they show exist and run as
written, CI runs the README's test command, and every setting and output is documented."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from components.settings import SETTINGS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
README = PROJECT_ROOT / "README.md"
DOCUMENTS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]

CODE_BLOCK = re.compile(r"^```([a-z]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#+ (.+)$", re.MULTILINE)
MAKE_TARGET = re.compile(r"(?:^|[\s;(&|])make ([a-z][a-z-]*)")
MAKEFILE_TARGET = re.compile(r"^([a-z][a-z-]*):", re.MULTILINE)
PROJECT_MODULE = re.compile(r"(\S*)python -m (smoke|localpool|offline\.[a-z]+)\b([^\n#|]*)")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z-]*)")
PROJECT_PATH = re.compile(
    r"(?<![\w/.$-])((?:\.github|\.ci|scripts|bench|tests|components|smoke|localpool|offline|policy|docs)/[\w./*-]*)"
)


def code_of(path: Path) -> str:
    """Everything shown as code in a Markdown file: fenced blocks and inline spans."""
    text = path.read_text()
    blocks = [body for _language, body in CODE_BLOCK.findall(text)]
    prose = CODE_BLOCK.sub("", text)
    return "\n".join([*blocks, *CODE_SPAN.findall(prose)])


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def names(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(PROJECT_ROOT)) for path in paths]


@pytest.mark.parametrize("document", DOCUMENTS, ids=names(DOCUMENTS))
def test_every_internal_link_resolves(document: Path) -> None:
    checked = 0
    for target in LINK.findall(document.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        path_part, _, anchor = target.partition("#")
        linked = (document.parent / path_part).resolve() if path_part else document
        assert linked.exists(), f"{document.name}: link to {target}: {path_part} does not exist"
        if anchor:
            anchors = {slug(heading) for heading in HEADING.findall(linked.read_text())}
            assert anchor in anchors, f"{document.name}: link to {target}: no heading with that anchor"
        checked += 1
    if document.name == "README.md":
        assert checked >= len(DOCUMENTS) - 1, "the README links to every page in docs/"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    for page in DOCUMENTS[1:]:
        assert f"(docs/{page.name})" in readme, f"docs/{page.name} is not linked from the README"


@pytest.mark.parametrize("document", DOCUMENTS, ids=names(DOCUMENTS))
def test_every_make_target_shown_exists(document: Path) -> None:
    targets = set(MAKEFILE_TARGET.findall((PROJECT_ROOT / "Makefile").read_text()))
    for target in MAKE_TARGET.findall(code_of(document)):
        assert target in targets, f"{document.name} shows `make {target}`, which the Makefile does not have"


@pytest.mark.parametrize("document", DOCUMENTS, ids=names(DOCUMENTS))
def test_every_project_path_shown_exists(document: Path) -> None:
    for shown in PROJECT_PATH.findall(code_of(document)):
        path = shown.rstrip(".")
        found = any(PROJECT_ROOT.glob(path)) if "*" in path else (PROJECT_ROOT / path).exists()
        assert found, f"{document.name} shows {path}, which does not exist"


@functools.cache
def module_help(module: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"python -m {module} --help: {result.stderr}"
    return result.stdout


@pytest.mark.parametrize("document", DOCUMENTS, ids=names(DOCUMENTS))
def test_project_commands_use_the_virtualenv_and_only_existing_flags(document: Path) -> None:
    helps: dict[str, str] = {}
    for prefix, module, arguments in PROJECT_MODULE.findall(code_of(document)):
        # The system Python lacks the requirements: only .venv's runs these as written.
        assert prefix.endswith(".venv/bin/"), f"{document.name}: `{prefix}python -m {module}` needs .venv/bin/python"
        assert (PROJECT_ROOT / ".venv" / "bin" / "python").exists()
        if module not in helps:
            helps[module] = module_help(module)
        for flag in FLAG.findall(arguments):
            assert flag in helps[module], f"{document.name}: `python -m {module} {flag}`: no such option"


def test_ci_runs_the_readmes_test_command(tmp_path: Path) -> None:
    """Run .ci/run with a `make` that only records its arguments: CI must run what the README tells a newcomer."""
    record = tmp_path / "make-args"
    fake = tmp_path / "make"
    fake.write_text(f'#!/bin/sh\nprintf "%s " "$@" > "{record}"\n')
    fake.chmod(0o755)
    result = subprocess.run(
        ["bash", str(PROJECT_ROOT / ".ci" / "run")],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    command = f"make {record.read_text().strip()}"
    readme_commands = {
        line.split("#")[0].strip()
        for _language, body in CODE_BLOCK.findall(README.read_text())
        for line in body.splitlines()
    }
    assert command in readme_commands, f".ci/run runs `{command}`, which the README never tells anyone to run"


def settings_doc() -> str:
    return (PROJECT_ROOT / "docs" / "settings.md").read_text()


def test_every_setting_is_in_the_settings_table() -> None:
    text = settings_doc()
    for spec in SETTINGS:
        assert f"| `{spec.key}` |" in text, spec.key


def test_every_output_is_in_the_outputs_table(stack_runs: dict) -> None:
    text = settings_doc()
    outputs = set(stack_runs["dev"].outputs)
    assert outputs
    for name in outputs:
        assert f"| `{name}` |" in text, name
