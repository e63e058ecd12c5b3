#!/usr/bin/env bash
# Tear one stack down with `pulumi destroy`, after a typed confirmation of its name.
#
# Usage:
#   STACK=<stack> [CONFIRM=<stack>] scripts/destroy.sh [--check | --preflight] [more `pulumi destroy` flags]
#
#   STACK    the stack to destroy, e.g. dev (or org/dev with Pulumi Cloud). Required.
#   CONFIRM  must repeat STACK. Required when standard input is not a terminal (CI); at a
#            terminal the script asks for the stack name instead, and `pulumi destroy` then
#            shows what it will delete and asks once more.
#   --check  only check that STACK may be destroyed (named, not protected, not locked); change nothing.
#   --preflight  only the checks that need no virtualenv: STACK is a stack name, the Pulumi CLI is
#            installed (`make destroy` runs these before it installs anything).
#
# Whether a stack is protected or locked is decided in Python (offline/destroy_check.py), which
# reads Pulumi.<stack>.yaml as the offline plan does and validates protect and lock with the
# program's own rules; this script runs it with the project's .venv. How to lift the protection
# on purpose: docs/teardown.md. A lock is no obstacle to `pulumi destroy` itself (the lock
# depends on everything it guards, so Pulumi deletes it first): refusing here is what makes
# lifting it a reviewed change.
# The stack itself is kept (no --remove): its history stays until `pulumi stack rm <stack>`.
#
# Exit status: 0 destroyed (or a check passed), 1 refused or pulumi failed, 2 usage error.
set -euo pipefail

readonly EXIT_REFUSED=1

PROJECT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly PROJECT_DIR

refuse() {
    echo "destroy: $1" >&2
    echo "destroy: nothing was destroyed." >&2
    exit "$EXIT_REFUSED"
}

mode=destroy
case "${1:-}" in
    --check | --preflight)
        mode="${1#--}"
        shift
        ;;
esac

STACK="${STACK:-}"
# Standard library only: this runs before any virtualenv exists. Exit 2 with one sentence.
python3 "$PROJECT_DIR/components/stacks.py" check-name "$STACK"

if [ "$mode" = preflight ]; then
    exec bash "$PROJECT_DIR/scripts/require-pulumi.sh" "make destroy"
fi

python="$PROJECT_DIR/.venv/bin/python"
[ -x "$python" ] ||
    refuse "$python is missing, and the stack's protection is read with it; run 'make venv' first (or 'make destroy', which does)."
status=0
(cd "$PROJECT_DIR" && "$python" -m offline.destroy_check "$STACK") || status=$?
if [ "$status" -ne 0 ]; then
    echo "destroy: nothing was destroyed." >&2
    exit "$status"
fi

if [ "$mode" = check ]; then
    echo "destroy: stack '$STACK' is neither protected nor locked; it may be destroyed once the confirmation matches."
    exit 0
fi

interactive=false
if [ -t 0 ]; then
    interactive=true
fi

if [ -n "${CONFIRM:-}" ]; then
    [ "$CONFIRM" = "$STACK" ] ||
        refuse "CONFIRM='$CONFIRM' does not repeat STACK='$STACK'; set CONFIRM to exactly the stack name."
elif [ "$interactive" = true ]; then
    echo "This deletes every resource of stack '$STACK': its resource group, session pool, role assignments and any management lock." >&2
    printf "Type the stack name to confirm: " >&2
    answer=""
    read -r answer || true
    [ "$answer" = "$STACK" ] || refuse "the confirmation '$answer' does not repeat the stack name '$STACK'."
else
    refuse "no terminal to ask for confirmation; set CONFIRM=$STACK to confirm that stack '$STACK' should be destroyed."
fi

cd "$PROJECT_DIR"
if [ "$interactive" = true ]; then
    # At a terminal, pulumi shows what it will delete and asks once more.
    exec pulumi destroy --stack "$STACK" "$@"
fi
exec pulumi destroy --stack "$STACK" --yes --non-interactive "$@"
