"""``python -m sam_widget.batch`` = the ``sam-widget`` command."""

import sys

from .cli import main

sys.exit(main())
