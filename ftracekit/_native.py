"""The compiled helpers (``ftracekit/_cext.c``), when the C extension was built at install.

Each has a numpy definition beside it that gives the same result (``read/_pages.py`` and
``read._decode._Decoder.block`` for the page walk, ``read._pairs.joinable_entries`` for the
choice of entries to join with their exits, in ``read._decode`` the time order, the joining
and the leaves' end times, ``calltree._vectorised._roots_and_interrupts`` for the roots);
:data:`ENABLED` switches them off (tests compare both).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ENABLED", "native"]

native: Any
try:
    native = importlib.import_module("._cext", __package__)
except ImportError:                                          # pragma: no cover
    native = None

#: Whether the compiled helpers are used (the record kinds they write are checked against
#: ``read.records`` where that is imported: :mod:`ftracekit.read._decode`).
ENABLED = native is not None
