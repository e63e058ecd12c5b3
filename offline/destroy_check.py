"""May this stack be torn down? The check scripts/destroy.sh runs before it asks for confirmation.

It reads Pulumi.<stack>.yaml exactly as the offline plan does (offline.stack_file: every spelling
the Pulumi CLI accepts, e.g. `"dynamic-sessions:lock": CanNotDelete` or
`dynamic-sessions:config:lock`) and validates `protect` and `lock` with the program's own rules
(components.settings), so the script never reads YAML itself:

    python -m offline.destroy_check <stack>    # exit 0: may be destroyed; 1: refused; 2: not a stack name

A stack is refused when its file sets `protect: true` or a lock, and a production stack (see
components/stacks.py) unless its file sets `protect: false` explicitly. A stack with no file has
the defaults (not protected, no lock). The way to lift the protection is in docs/teardown.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from components.settings import CONFIG_NAMESPACE, SettingsError, parse_settings
from components.stacks import EXIT_USAGE, PRODUCTION_STACK_PREFIX, is_production_stack, short_stack_name
from offline.stack_file import StackFileError, read_stack_config

PROJECT_DIR = Path(__file__).resolve().parent.parent
EXIT_REFUSED = 1
# The settings that guard a stack; the others do not matter to a teardown.
GUARDS = ("protect", "lock")
# The steps are written once, in the docs; the refusal points there.
TEARDOWN_DOC = "docs/teardown.md"
TEARDOWN_SECTION = "Tearing down a protected or locked stack"
HOW_TO_LIFT = f'To tear it down on purpose, follow "{TEARDOWN_SECTION}" in {TEARDOWN_DOC}.'


def refusal(stack: str, project_dir: Path = PROJECT_DIR) -> str | None:
    """Why `stack` may not be destroyed (sentences for a person), or None when it may."""
    short = short_stack_name(stack)
    file_name = f"Pulumi.{short}.yaml"
    try:
        raw = read_stack_config(short, project_dir, GUARDS) if (project_dir / file_name).is_file() else {}
        guards = parse_settings(raw, project=CONFIG_NAMESPACE, stack=short)  # only GUARDS were read
    except StackFileError as error:
        return f"{error} Fix it before tearing '{stack}' down."
    except SettingsError as error:
        return f"{file_name}: {' '.join(error.problems)} Fix it before tearing '{stack}' down."
    if guards.protect:
        why = f"stack '{stack}' is protected: {file_name} sets {CONFIG_NAMESPACE}:protect: true."
    elif guards.lock is not None:
        why = f"stack '{stack}' is locked: {file_name} sets {CONFIG_NAMESPACE}:lock: {guards.lock}."
    elif is_production_stack(short) and raw.get("protect") is None:
        why = (
            f"stack '{stack}' is a production stack (its name starts with '{PRODUCTION_STACK_PREFIX}'), which "
            f"counts as protected unless {file_name} sets {CONFIG_NAMESPACE}:protect: false."
        )
    else:
        return None
    return f"{why} {HOW_TO_LIFT}"


def main(argv: list[str] | None = None) -> int:
    """Print why the stack may not be destroyed and return 1, or return 0; 2 for a bad name."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m offline.destroy_check <stack>", file=sys.stderr)
        return EXIT_USAGE
    try:
        why = refusal(args[0])
    except ValueError as error:  # not a stack name
        print(f"destroy: {error}", file=sys.stderr)
        return EXIT_USAGE
    if why is None:
        return 0
    print(f"destroy: {why}", file=sys.stderr)
    return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
