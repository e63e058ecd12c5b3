#!/usr/bin/env bash
# What `make test` and `make demo` need from the machine, checked before anything else runs, so a
# missing tool is one paragraph naming it and how to install it rather than a hundred failed tests.
#   PYTHON=python3 LOCALPOOL_NODE=node scripts/check-prerequisites.sh
# Exit status: 0 all present, 1 something is missing (each missing thing named once on stderr).
set -euo pipefail
cd "$(dirname "$0")/.."

MIN_NODE_MAJOR=20   # localpool/constants.py MIN_NODE_MAJOR (tests/test_make.py keeps them equal)
MIN_PYTHON="3.11"   # pyproject.toml's target-version
missing=()

# Python matters only until .venv exists: after that every command uses .venv/bin/python.
if [ ! -x .venv/bin/python ]; then
    python="${PYTHON:-python3}"
    if ! command -v "$python" >/dev/null 2>&1; then
        missing+=("Python ${MIN_PYTHON} or newer ('$python' is not on PATH): install it (e.g. 'apt-get install python3 python3-venv'), or name one with 'make PYTHON=/path/to/python3.11 ...'.")
    elif ! "$python" -c "import sys; sys.exit(sys.version_info < (${MIN_PYTHON/./, }))" 2>/dev/null; then
        missing+=("Python ${MIN_PYTHON} or newer ('$python' is $("$python" -c 'import platform; print(platform.python_version())')): install a newer one, or name it with 'make PYTHON=/path/to/python3.11 ...'.")
    elif ! "$python" -c "import ensurepip, venv" 2>/dev/null; then
        missing+=("Python's venv module ('$python' cannot create .venv): install it, e.g. 'apt-get install python3-venv'.")
    fi
fi

# The local pool (make demo, and the tests that run JavaScript) runs Node.js.
node="${LOCALPOOL_NODE:-node}"
if ! command -v "$node" >/dev/null 2>&1; then
    missing+=("Node.js ${MIN_NODE_MAJOR} or newer ('$node' was not found; the local pool runs JavaScript with it): install it from https://nodejs.org/en/download (a distribution's own nodejs package may be older than ${MIN_NODE_MAJOR}), or point LOCALPOOL_NODE at a node binary.")
else
    version="$("$node" -p 'process.versions.node' 2>/dev/null || echo unknown)"
    if ! [[ "$version" =~ ^[0-9]+\. ]] || [ "${version%%.*}" -lt "$MIN_NODE_MAJOR" ]; then
        missing+=("Node.js ${MIN_NODE_MAJOR} or newer ('$node' is version $version): install a newer one from https://nodejs.org/en/download, or point LOCALPOOL_NODE at one.")
    fi
fi

if [ "${#missing[@]}" -gt 0 ]; then
    echo "make: this machine is missing what the project needs; nothing was run:" >&2
    for item in "${missing[@]}"; do
        echo "  - $item" >&2
    done
    exit 1
fi

# The local pool's sandbox (bubblewrap): the script installs it when it can, else says how.
bash scripts/ensure-bwrap.sh
