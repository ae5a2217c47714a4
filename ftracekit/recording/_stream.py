"""Streaming ``trace_pipe`` to a file while recording, and holding signals off while
tracefs is restored."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from typing import TYPE_CHECKING, Any, Iterator


if TYPE_CHECKING:  # pragma: no cover
    pass

_POLL_MS = 100            # how often the pipe reader wakes when the kernel does not wake it
_READ_CHUNK = 1 << 16


@contextlib.contextmanager
def _signals_deferred(reraise: bool = False) -> Iterator[list[int]]:
    """Hold SIGINT/SIGTERM off while restoring tracefs (a second Ctrl-C must not leave it
    half-restored). The signals that arrived are in the yielded list; with ``reraise`` they
    become a KeyboardInterrupt afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    pending: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: pending.append(signum))
           for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield pending
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if pending and reraise:
        raise KeyboardInterrupt


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# ------------------------------------------------------------------------------ pipe reader
class PollingReader(threading.Thread):
    """A thread that reads a non-blocking tracefs file whenever it has data (``drain``, in
    the subclass) until stopped; an error ends up in ``error`` for the caller to raise."""

    def __init__(self, name: str, fd: int):
        super().__init__(name=name, daemon=True)
        self.fd = fd
        self.bytes = 0
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def drain(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        try:
            while not self._stop_event.is_set():
                poller.poll(_POLL_MS)
                self.drain()
        except BaseException as err:  # surfaced by stop()
            self.error = err


class _PipeReader(PollingReader):
    """Copies ``trace_pipe`` into the output file while recording, so the ring buffer is
    consumed as it fills instead of wrapping."""

    def __init__(self, fd: int, out: Any):
        super().__init__("ftracekit-trace-pipe", fd)
        self.out = out
        self.lines = 0

    def drain(self) -> None:
        """Read everything available now."""
        while True:
            try:
                chunk = os.read(self.fd, _READ_CHUNK)
            except BlockingIOError:
                return
            if not chunk:
                return
            self.out.write(chunk)
            self.lines += chunk.count(b"\n")
            self.bytes += len(chunk)

    def stop(self) -> None:
        """Stop the thread, then read what is left (call after tracing_on=0)."""
        self._stop_event.set()
        self.join()
        if self.error is None:
            self.drain()
