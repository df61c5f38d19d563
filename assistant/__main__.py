"""`python -m assistant`: the command line (assistant/cli.py)."""

import sys

from .cli import main

if __name__ == "__main__":  # imported (not run), it does nothing
    sys.exit(main())
