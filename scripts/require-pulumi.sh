#!/usr/bin/env bash
# Stop with one sentence when the Pulumi CLI is missing, before a command asks anything of anyone.
#   scripts/require-pulumi.sh "<what needs it>"
set -euo pipefail

if ! command -v pulumi >/dev/null 2>&1; then
    echo "${1:-This} needs the Pulumi CLI, which is not on PATH: install it (https://www.pulumi.com/docs/install/, e.g. 'curl -fsSL https://get.pulumi.com | sh'), then run it again; nothing was changed." >&2
    exit 2
fi
