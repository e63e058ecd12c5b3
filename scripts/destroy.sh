#!/usr/bin/env bash
# Tear one stack down with `pulumi destroy`, after a typed confirmation of its name.
#
# Usage:
#   STACK=<stack> [CONFIRM=<stack>] scripts/destroy.sh [--check] [more `pulumi destroy` flags]
#
#   STACK    the stack to destroy, e.g. dev (or org/dev with Pulumi Cloud). Required.
#   CONFIRM  must repeat STACK. Required when standard input is not a terminal (CI); at a
#            terminal the script asks for the stack name instead, and `pulumi destroy` then
#            shows what it will delete and asks once more.
#   --check  only check that STACK may be destroyed (named, not protected, not locked); change nothing.
#
# Protected and locked stacks are refused: a stack whose Pulumi.<stack>.yaml sets
# dynamic-sessions:protect: true or a dynamic-sessions:lock other than none, and a production
# stack (its name starts with the prefix components/stacks.py defines) unless its file
# explicitly sets protect: false. Pulumi itself also refuses to delete protected resources. A
# lock is no obstacle to `pulumi destroy` itself (the lock depends on everything it guards, so
# Pulumi deletes it first): refusing here is what makes lifting it a reviewed change.
# The stack itself is kept (no --remove): its history stays until `pulumi stack rm <stack>`.
#
# Exit status: 0 destroyed (or --check passed), 1 refused or pulumi failed, 2 usage error.
set -euo pipefail

readonly CONFIG_NAMESPACE="dynamic-sessions"
readonly STACK_NAME_PATTERN='^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*){0,2}$'
readonly EXIT_REFUSED=1
readonly EXIT_USAGE=2

PROJECT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly PROJECT_DIR

refuse() {
    echo "destroy: $1" >&2
    echo "destroy: nothing was destroyed." >&2
    exit "$EXIT_REFUSED"
}

usage_error() {
    echo "destroy: $1" >&2
    echo "usage: STACK=<stack> [CONFIRM=<stack>] scripts/destroy.sh [--check] [pulumi destroy flags]" >&2
    echo "   or: make destroy STACK=<stack> [CONFIRM=<stack>]" >&2
    exit "$EXIT_USAGE"
}

# Print the value of dynamic-sessions:<key> in a stack file, unquoted ("" if unset).
stack_setting() {
    local file="$1" key="$2"
    [ -f "$file" ] || return 0
    sed -nE "s/^[[:space:]]*${CONFIG_NAMESPACE}:${key}:[[:space:]]*['\"]?([^'\"#[:space:]]*)['\"]?[[:space:]]*(#.*)?\$/\\1/p" \
        "$file" | tail -n 1
}

# The production prefix is defined once, in components/stacks.py (standard library only, so any
# python3 runs it, before a virtualenv exists).
production_prefix() {
    python3 "$PROJECT_DIR/components/stacks.py" production-prefix 2>/dev/null ||
        refuse "cannot tell whether '$STACK' is a production stack: 'python3 components/stacks.py production-prefix' failed; install Python 3 and run this from a clone of the project."
}

how_to_lift_protection() {
    local stack="$1" file="$2"
    cat >&2 <<EOF
To tear it down deliberately:
  1. In a reviewed pull request, set '${CONFIG_NAMESPACE}:protect: false' in ${file}, and
     '${CONFIG_NAMESPACE}:lock: none' if it sets a lock.
  2. Take the protection off the deployed resources: 'pulumi state unprotect --all --stack ${stack}'
     (or 'pulumi up --stack ${stack}' with the new settings; the deploy pipeline will not do this for a
     production stack, because the policy pack requires production resources to be protected and locked).
  3. Run this again: make destroy STACK=${stack} CONFIRM=${stack}, or the Destroy workflow. The
     management lock needs no step of its own: 'pulumi destroy' deletes it before what it guards.
EOF
}

check_only=false
if [ "${1:-}" = "--check" ]; then
    check_only=true
    shift
fi

STACK="${STACK:-}"
[ -n "$STACK" ] || usage_error "STACK is not set; name the stack to destroy, e.g. STACK=dev."
[[ "$STACK" =~ $STACK_NAME_PATTERN ]] ||
    usage_error "STACK='$STACK' is not a stack name (letters, digits, '.', '_', '-', optionally org/ or org/project/)."

short_name="${STACK##*/}"
stack_file="Pulumi.${short_name}.yaml"
protect="$(stack_setting "$PROJECT_DIR/$stack_file" protect | tr '[:upper:]' '[:lower:]')"
lock="$(stack_setting "$PROJECT_DIR/$stack_file" lock)"

case "$protect" in
    true)
        echo "destroy: stack '$STACK' is protected: $stack_file sets ${CONFIG_NAMESPACE}:protect: true." >&2
        how_to_lift_protection "$STACK" "$stack_file"
        refuse "refused to destroy the protected stack '$STACK'."
        ;;
    false | "") ;;
    *)
        refuse "$stack_file sets ${CONFIG_NAMESPACE}:protect to '$protect', which is neither true nor false; fix it before tearing '$STACK' down."
        ;;
esac

case "$lock" in
    none | "") ;;
    CanNotDelete | ReadOnly)
        echo "destroy: stack '$STACK' is locked: $stack_file sets ${CONFIG_NAMESPACE}:lock: $lock." >&2
        how_to_lift_protection "$STACK" "$stack_file"
        refuse "refused to destroy the locked stack '$STACK'."
        ;;
    *)
        refuse "$stack_file sets ${CONFIG_NAMESPACE}:lock to '$lock', which is not none, CanNotDelete or ReadOnly; fix it before tearing '$STACK' down."
        ;;
esac

production_prefix="$(production_prefix)"
if [[ "${short_name,,}" == "$production_prefix"* ]] && [ "$protect" != "false" ]; then
    echo "destroy: stack '$STACK' is a production stack (its name starts with '$production_prefix'), which counts as protected unless $stack_file sets ${CONFIG_NAMESPACE}:protect: false." >&2
    how_to_lift_protection "$STACK" "$stack_file"
    refuse "refused to destroy the production stack '$STACK'."
fi

if [ "$check_only" = true ]; then
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
