"""The compiled helpers (``_cpages.c``), when the C extension was built at install.

Each has a numpy definition beside it that gives the same result (:mod:`._pages` and
:meth:`._decode._Decoder.block` for the page walk, :func:`._pairs.joinable_entries` for the
choice of entries to join with their exits, and in :mod:`._decode` the time order, the joining
and the leaves' end times); :data:`ENABLED` switches them off (tests compare both).
"""

from __future__ import annotations

from typing import Any

from .records import K_COMMENT, K_ENTRY, K_EXIT, K_LEAF

__all__ = ["ENABLED", "native"]

native: Any
try:
    from . import _cpages as native
except ImportError:                                          # pragma: no cover
    native = None
if native is not None and (native.K_ENTRY, native.K_EXIT, native.K_COMMENT, native.K_LEAF) != (
        K_ENTRY, K_EXIT, K_COMMENT, K_LEAF):                 # pragma: no cover
    native = None

#: Whether the compiled helpers are used.
ENABLED = native is not None
