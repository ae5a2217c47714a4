"""``python -m ftracekit`` → :func:`ftracekit.cli.main`."""

import sys

from .cli import main

sys.exit(main())
