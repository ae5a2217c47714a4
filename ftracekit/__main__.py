"""``python -m ftracekit`` → :func:`ftracekit.cli.main`."""

import sys

from .cli.main import main

sys.exit(main())
