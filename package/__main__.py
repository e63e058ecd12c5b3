"""The provider plugin of the component package `dynamic-sessions`: hosts CodeInterpreterPool over Pulumi's
provider protocol, its schema derived from the component's code, and prints its port as the CLI expects."""

import sys
from pathlib import Path

# The component is the repository's own components/ (one copy, the one the stacks use): this folder is
# run as `python <this folder> <engine address>`, so its parent is put first on the import path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.package import serve

if __name__ == "__main__":
    serve(sys.argv[1:])
