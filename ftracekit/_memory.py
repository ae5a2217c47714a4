"""Returning freed memory to the operating system.

numpy frees its large temporaries with ``free()``; glibc keeps much of that memory in its
heaps (the mmap threshold grows with the sizes freed, and worker threads get heaps of their
own), so the resident size after parsing stays far above what is live. ``malloc_trim(0)``
gives the free pages back. It is called between the big phases of :func:`ftracekit.load`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

__all__ = ["release_memory"]


def _find_malloc_trim() -> Any:
    try:
        name = ctypes.util.find_library("c")
        if not name:
            return None
        fn = getattr(ctypes.CDLL(name), "malloc_trim", None)   # glibc only
        if fn is not None:
            fn.argtypes = [ctypes.c_size_t]
            fn.restype = ctypes.c_int
        return fn
    except Exception:  # pragma: no cover - unusual platforms
        return None


_TRIM = [_find_malloc_trim()]


def release_memory() -> None:
    """``malloc_trim(0)`` where available (glibc), else nothing."""
    fn = _TRIM[0]
    if fn is None:
        return
    try:
        fn(0)
    except Exception:  # pragma: no cover
        _TRIM[0] = None
