"""Stack names: which stacks count as production, and which names are stack names at all.

Standard library only, and runnable as a script, because `make destroy` and scripts/destroy.sh
check the name they were given before a virtualenv exists (a newcomer is not made to wait for the
install only to hear that STACK is missing or not a stack name):

    python3 components/stacks.py check-name <stack>     # exit 2 with one sentence if it is not one
    python3 components/stacks.py environment <stack>    # the GitHub environment: production or dev
"""

from __future__ import annotations

import re
import sys

# A stack is a production stack when its name starts with this (prod, prod-eu, production...),
# compared without regard to case.
PRODUCTION_STACK_PREFIX = "prod"

# Stack names: 1-100 of letters, digits, `_`, `.`, `-` (validateStackName in the Pulumi CLI's
# backends). With Pulumi Cloud a stack may be named <org>/<stack> or <org>/<project>/<stack>.
STACK_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,100}")
# The <org> and <project> qualifiers start with a letter or digit (so never `..`).
QUALIFIER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
MAX_QUALIFIERS = 2
EXIT_USAGE = 2
# The GitHub environments the pipelines deploy and destroy in (.github/workflows/deploy.yml);
# `production` carries the required reviewers.
PRODUCTION_ENVIRONMENT = "production"
OTHER_ENVIRONMENT = "dev"


def is_production_stack(stack: str) -> bool:
    """Tell whether a stack is a production stack (its name starts with 'prod', any case)."""
    return stack.lower().startswith(PRODUCTION_STACK_PREFIX)


def stack_name_problem(stack: str) -> str | None:
    """Why `stack` is not a stack name (one sentence), or None when it is one."""
    if STACK_NAME_PATTERN.fullmatch(stack):
        return None
    return (
        f"{stack!r} is not a stack name: Pulumi allows 1 to 100 letters, digits, '_', '.' and '-' "
        "(no '/' or spaces); name a stack such as dev or prod."
    )


def short_stack_name(reference: str) -> str:
    """The stack's own name in `reference` (dev in acme/dev or acme/project/dev); ValueError if none.

    The short name is what names the stack's file, Pulumi.<stack>.yaml.
    """
    *qualifiers, name = reference.split("/")
    if (
        len(qualifiers) > MAX_QUALIFIERS
        or not all(QUALIFIER_PATTERN.fullmatch(part) for part in qualifiers)
        or not STACK_NAME_PATTERN.fullmatch(name)
    ):
        raise ValueError(
            f"{reference!r} is not a stack name: Pulumi allows 1 to 100 letters, digits, '_', '.' and '-', "
            "optionally after <org>/ or <org>/<project>/; name a stack such as dev or prod."
        )
    return name


def github_environment(stack: str) -> str:
    """The GitHub environment a pipeline touching `stack` runs in (acme/prod is a production stack)."""
    return PRODUCTION_ENVIRONMENT if is_production_stack(short_stack_name(stack)) else OTHER_ENVIRONMENT


def _check_name(argv: list[str]) -> int:
    stack = argv[0] if argv else ""
    if not stack:
        print("destroy: STACK is not set; name the stack to destroy, e.g. STACK=dev.", file=sys.stderr)
        return EXIT_USAGE
    try:
        short_stack_name(stack)
    except ValueError as error:
        print(f"destroy: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _environment(argv: list[str]) -> int:
    try:
        print(github_environment(argv[0] if argv else ""))
    except ValueError as error:
        print(f"destroy: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    commands = {"check-name": _check_name, "environment": _environment}
    if len(sys.argv) not in (2, 3) or sys.argv[1] not in commands:
        sys.exit("usage: python3 components/stacks.py check-name|environment <stack>")
    sys.exit(commands[sys.argv[1]](sys.argv[2:]))
