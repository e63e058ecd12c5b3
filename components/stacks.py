"""Which stacks count as production: one definition for the policy pack and scripts/destroy.sh.

Standard library only, and runnable as a script, because scripts/destroy.sh asks it before any
virtualenv exists (the Destroy workflow refuses a protected stack before it sets anything up):

    python3 components/stacks.py production-prefix    # prints: prod
"""

from __future__ import annotations

import sys

# A stack is a production stack when its name starts with this (prod, prod-eu, production...),
# compared without regard to case.
PRODUCTION_STACK_PREFIX = "prod"


def is_production_stack(stack: str) -> bool:
    """Tell whether a stack is a production stack (its name starts with 'prod', any case)."""
    return stack.lower().startswith(PRODUCTION_STACK_PREFIX)


if __name__ == "__main__":
    if sys.argv[1:] != ["production-prefix"]:
        sys.exit("usage: python3 components/stacks.py production-prefix")
    print(PRODUCTION_STACK_PREFIX)
