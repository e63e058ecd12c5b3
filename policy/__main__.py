"""What the Pulumi CLI runs for `--policy-pack policy`: build the pack and serve it.

Constructing PolicyPack starts the analyzer's gRPC server and blocks until the CLI is done, so
this file does nothing else; the policies are in guardrails.py, where tests import them. The CLI
runs this file from policy/, so the project root goes on sys.path first: the policies import
the project's limits from components/azure.py, which must stay the one place they are written.
"""

import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from pulumi_policy import PolicyPack  # noqa: E402  (needs the project root on sys.path)

from policy.guardrails import PACK_NAME, POLICIES  # noqa: E402

PolicyPack(name=PACK_NAME, policies=POLICIES)
