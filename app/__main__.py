"""`python -m app ...`: the command-line interface without the GUI launcher."""

import sys

from app.cli.main import main

sys.exit(main(sys.argv[1:]))
