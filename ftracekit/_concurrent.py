"""Running an independent, numpy-heavy computation on a second core.

Big numpy operations (gathers, sorts, searches, ufuncs over millions of items) release the GIL,
so two of them on two threads run in parallel, page faults included. :func:`background` starts
``fn(*args)`` on a helper thread when the work is big enough and a second CPU is usable, and
otherwise runs it at once on the calling thread; either way ``.result()`` returns its value
(or raises its exception). Used by :mod:`ftracekit.calltree` for searches that do not depend
on each other.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from ._memory import usable_cpus

__all__ = ["background", "MIN_PARALLEL"]

#: Items below which a computation is not worth a thread (thread start + GIL hand-offs).
MIN_PARALLEL = 1 << 20


class _Result:
    """The value or exception of a call, with the interface of a future."""

    def __init__(self) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def run(self, fn: Callable[..., Any], args: tuple) -> None:
        try:
            self.value = fn(*args)
        except BaseException as err:  # (re-raised by result())
            self.error = err

    def result(self) -> Any:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.error is not None:
            raise self.error
        return self.value


def background(fn: Callable[..., Any], *args: Any, size: int) -> _Result:
    """``fn(*args)``, on a helper thread if ``size`` (items processed) ≥ :data:`MIN_PARALLEL`
    and two CPUs are usable, else now. ``fn`` must not touch what the caller changes meanwhile."""
    res = _Result()
    if size >= MIN_PARALLEL and usable_cpus() >= 2:
        res.thread = threading.Thread(target=res.run, args=(fn, args), daemon=True,
                                      name="ftracekit-worker")
        res.thread.start()
    else:
        res.run(fn, args)
    return res
