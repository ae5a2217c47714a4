"""Command-line front end: ``ftracekit`` / ``python -m ftracekit`` (see :mod:`.main`)."""

from .main import main

__all__ = ["main"]
