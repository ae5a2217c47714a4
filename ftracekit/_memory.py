"""Process memory: returning freed memory to the OS, and faulting in buffers ahead of use.

numpy frees its large temporaries with ``free()``; glibc keeps much of that memory in its
heaps (the mmap threshold grows with the sizes freed, and worker threads get heaps of their
own), so the resident size after parsing stays far above what is live. ``malloc_trim(0)``
gives the free pages back. It is called at the end of the parse (the scanning threads' heaps)
and at the end of the table building, not in between: memory freed by one phase is reused at
once by the next, and giving it back would only make the next phase fault it in again.

The first write to a page of a fresh buffer costs a page fault and the zeroing of the page
(on a VM whose host backs guest memory lazily, much more: ~2.7 ms per MB measured on this
project's VM against ~0.05 ms to rewrite a resident MB). :class:`Prefaulter` pays that cost
for preallocated buffers on a helper thread, with ``madvise(MADV_POPULATE_WRITE)`` (Linux
5.14+), while the parsing thread works: the pages become resident without their contents
being touched, so it is safe while the owner writes into the same buffers. Elsewhere (older
kernels, not glibc, one CPU) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import mmap
import os
import threading
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["release_memory", "reuse_freed_memory", "mapped_empty", "Prefaulter", "usable_cpus"]

_MADV_POPULATE_WRITE = 23
_PAGE = 4096


def _libc() -> Any:
    try:
        name = ctypes.util.find_library("c")
        return ctypes.CDLL(name, use_errno=True) if name else None
    except Exception:  # pragma: no cover - unusual platforms
        return None


_LIBC = _libc()


def _find(name: str, argtypes: list, restype: Any) -> Any:
    fn = getattr(_LIBC, name, None) if _LIBC is not None else None
    if fn is not None:
        fn.argtypes = argtypes
        fn.restype = restype
    return fn


_TRIM = [_find("malloc_trim", [ctypes.c_size_t], ctypes.c_int)]          # glibc only
# (a ctypes call releases the GIL: the helper thread faults pages in while Python runs)
_MADVISE = [_find("madvise", [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int)]


def release_memory() -> None:
    """``malloc_trim(0)`` where available (glibc), else nothing."""
    fn = _TRIM[0]
    if fn is None:
        return
    try:
        fn(0)
    except Exception:  # pragma: no cover
        _TRIM[0] = None


#: glibc's ceiling for its dynamic mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX).
_MMAP_THRESHOLD_MAX = 32 << 20


def reuse_freed_memory(warm_bytes: int = 0) -> None:
    """Let glibc keep freed blocks of up to ~32 MB in its heap for reuse (glibc only), and
    fault in ``warm_bytes`` of it on a helper thread for the temporaries to come.

    glibc serves a block above its *mmap threshold* (128 KB at the start) with a fresh
    mapping and unmaps it when freed; it raises the threshold to the size of such a freed
    block (up to 32 MB, and the heap's trim threshold to twice that), and only then are
    blocks that size reused. A loop that allocates and frees the same few-MB temporaries
    thus pays fresh memory at every round until the threshold has caught up, and again
    whenever the heap is trimmed. Allocating and freeing (untouched: no page is faulted in)
    one block just under the ceiling raises it at once, as an earlier large array would have,
    without setting it (``mallopt`` would turn the dynamic adjustment off for the process).
    The ``warm_bytes`` are a block allocated next and freed at once (the top of the heap,
    kept), whose pages the helper faults in with ``MADV_POPULATE_WRITE`` (which writes
    nothing: safe while the main thread reuses the memory). :func:`release_memory` gives the
    freed memory back at the end.
    """
    if _TRIM[0] is None:
        return
    np.empty(_MMAP_THRESHOLD_MAX - (64 << 10), dtype=np.uint8)
    if warm_bytes <= 0 or _MADVISE[0] is None or usable_cpus() < 2:
        return
    block = np.empty(warm_bytes, dtype=np.uint8)
    addr = block.ctypes.data
    del block
    threading.Thread(target=_populate_range, args=(addr, warm_bytes), daemon=True,
                     name="ftracekit-warm").start()


def _populate_range(addr: int, nbytes: int, step: int = 1 << 20) -> None:
    for lo in range(0, nbytes, step):
        if not _populate(addr + lo, min(step, nbytes - lo)):
            return


def mapped_empty(n: int, dtype: Any) -> np.ndarray:
    """An uninitialised 1-d array of ``n`` items in an anonymous memory mapping of its own,
    not in glibc's heap: a long-lived array allocated between the rounds of a loop does not
    take the heap memory the loop's temporaries freed (and would otherwise find again,
    already faulted in). The mapping goes when the array does."""
    dt = np.dtype(dtype)
    return np.frombuffer(mmap.mmap(-1, max(n * dt.itemsize, 1)), dtype=dt, count=n)


def usable_cpus() -> int:
    """CPUs this process may run on, at most ``FTRACEKIT_THREADS`` (``1``: no helper threads)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover
        n = os.cpu_count() or 1
    limit = os.environ.get("FTRACEKIT_THREADS", "")
    if limit.isdigit() and int(limit) >= 1:
        n = min(n, int(limit))
    return n


def _populate(addr: int, nbytes: int) -> bool:
    """Fault in the whole pages of ``[addr, addr + nbytes)`` for writing; False if the kernel
    cannot (then the caller stops trying)."""
    fn = _MADVISE[0]
    lo = -(-addr // _PAGE) * _PAGE
    hi = (addr + nbytes) // _PAGE * _PAGE
    if fn is None or hi <= lo:
        return fn is not None
    return fn(lo, hi - lo, _MADV_POPULATE_WRITE) == 0


class Prefaulter:
    """Faults in rows ``[front(), limit)`` of equally long 1-d arrays on a helper thread.

    The rows are done in steps of about ``step_bytes`` (all arrays at once, so each array's
    resident front advances with the row index its writer is at), at most ``ahead_bytes``
    ahead of ``front()`` (the writer's position); rows below it are skipped. :meth:`stop` must
    be called before the arrays are resized or freed. Nothing happens where the kernel lacks ``MADV_POPULATE_WRITE``, the platform is
    not glibc/Linux, or only one CPU is usable.
    """

    def __init__(self, arrays: Sequence[np.ndarray], limit: int, front: Callable[[], int],
                 step_bytes: int = 4 << 20, ahead_bytes: int = 16 << 20) -> None:
        self.arrays = [a for a in arrays if a.ndim == 1 and a.flags.c_contiguous and a.size]
        self.limit = min([limit] + [len(a) for a in self.arrays])
        self.front = front
        row_bytes = sum(a.itemsize for a in self.arrays) or 1
        self.step = max(step_bytes // row_bytes, 1024)
        # at most this many rows resident ahead of the writer (the peak memory of the parse
        # is not raised by pages needed only later)
        self.ahead = max(ahead_bytes // row_bytes, 2 * self.step)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.done = 0              # rows faulted in so far (for tests and benchmarks)

    @staticmethod
    def available() -> bool:
        return _MADVISE[0] is not None and usable_cpus() >= 2

    def start(self) -> "Prefaulter":
        if self.arrays and self.limit > 0 and self.available():
            self._thread = threading.Thread(target=self._run, name="ftracekit-prefault",
                                            daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        pos = 0
        while pos < self.limit and not self._stop.is_set():
            front = min(self.front(), self.limit)
            pos = max(pos, front)
            if pos - front >= self.ahead:
                self._stop.wait(0.002)      # far enough ahead: let the writer catch up
                continue
            hi = min(pos + self.step, self.limit)
            if hi <= pos:
                break
            for a in self.arrays:
                isz = a.itemsize
                if not _populate(a.ctypes.data + pos * isz, (hi - pos) * isz):
                    if ctypes.get_errno() == errno.EINVAL:
                        _MADVISE[0] = None   # (before Linux 5.14: never try again)
                    return
            self.done = hi
            pos = hi

    def stop(self) -> None:
        """Stop after the current step and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
