"""Entry point of ``python -m smoke``."""

from smoke.cli import main

raise SystemExit(main())
