"""`python -m cnnkit COMMAND ...`: see cnnkit.cli."""
import sys

from .cli import main

sys.exit(main())
