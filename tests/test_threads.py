"""Helper threads: page prefaulting (MADV_POPULATE_WRITE) and background computations.

These use the real kernel interface of the machine running the tests (no mocks): a buffer is
faulted in while its owner writes into it, and the results of a load are the same with and
without helper threads.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import ftracekit
from ftracekit import _concurrent, _memory
from ftracekit.read.records import ColumnBuilder

HERE = os.path.dirname(__file__)


def _resident_bytes(a: np.ndarray) -> int:
    """Resident bytes of the mappings holding ``a`` (from /proc/self/smaps; numpy's huge-page
    advice splits an array's mapping in several)."""
    lo_a, hi_a = a.ctypes.data, a.ctypes.data + a.nbytes
    total = 0
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo < hi_a and hi > lo_a
            elif inside and head == "Rss:":
                total += int(line.split()[1]) * 1024
    return total


needs_populate = pytest.mark.skipif(not _memory.Prefaulter.available(),
                                    reason="no MADV_POPULATE_WRITE or a single CPU")


@needs_populate
def test_prefaulter_makes_pages_resident_without_touching_contents():
    import mmap

    n = 8 << 20                              # 64 MB of float64 in a mapping of its own (not
    a = np.frombuffer(mmap.mmap(-1, n * 8), dtype=np.float64)   # freed memory malloc reuses)
    b = np.frombuffer(mmap.mmap(-1, n * 2), dtype=np.int16)
    before = _resident_bytes(a)
    a[:1000] = 7.0                           # the owner's writes survive the prefault
    p = _memory.Prefaulter([a, b], limit=n, front=lambda: 0, step_bytes=1 << 20,
                           ahead_bytes=a.nbytes + b.nbytes).start()
    p._thread.join()                         # (runs to the end: nothing is left to wait for)
    p.stop()
    assert p.done == n
    assert (a[:1000] == 7.0).all()
    assert _resident_bytes(a) >= before + a.nbytes - (4 << 20)


@needs_populate
def test_prefaulter_races_safely_with_the_writer():
    n = 4 << 20
    a = np.empty(n, dtype=np.int64)
    written = [0]
    p = _memory.Prefaulter([a], limit=n, front=lambda: written[0], step_bytes=1 << 16).start()
    step = 1 << 16
    for lo in range(0, n, step):
        a[lo:lo + step] = np.arange(lo, lo + step)
        written[0] = lo + step
    p.stop()
    assert np.array_equal(a, np.arange(n))


def test_prefaulter_is_a_no_op_with_one_thread(monkeypatch):
    monkeypatch.setenv("FTRACEKIT_THREADS", "1")
    assert _memory.usable_cpus() == 1
    assert not _memory.Prefaulter.available()
    a = np.zeros(1 << 20)
    p = _memory.Prefaulter([a], limit=len(a), front=lambda: 0).start()
    assert p._thread is None
    p.stop()
    assert p.done == 0


def test_column_builder_with_prefault_grows_and_keeps_values():
    b = ColumnBuilder(1024, prefault=1024)
    cols = {name: np.zeros(3000, dtype=dt) for name, dt in ftracekit.read.records.COLUMNS.items()}
    cols["line"] = np.arange(3000, dtype=np.int64)
    b.append(cols)                           # beyond the capacity: the helper is stopped first
    b.append(cols)
    out = b.columns()
    assert len(out["line"]) == 6000
    assert np.array_equal(out["line"][3000:], np.arange(3000))
    assert b._prefault is None


def test_background_runs_on_a_thread_and_returns_or_raises(monkeypatch):
    monkeypatch.delenv("FTRACEKIT_THREADS", raising=False)
    seen = []

    def work(x):
        seen.append(threading.current_thread().name)
        return x * 2

    r = _concurrent.background(work, 21, size=_concurrent.MIN_PARALLEL)
    assert r.result() == 42
    if _memory.usable_cpus() >= 2:
        assert seen == ["ftracekit-worker"]

    def fail():
        raise ValueError("boom")

    r = _concurrent.background(fail, size=_concurrent.MIN_PARALLEL)
    with pytest.raises(ValueError, match="boom"):
        r.result()
    # small work or FTRACEKIT_THREADS=1: on the calling thread
    seen.clear()
    assert _concurrent.background(work, 1, size=10).result() == 2
    monkeypatch.setenv("FTRACEKIT_THREADS", "1")
    assert _concurrent.background(work, 2, size=1 << 30).result() == 4
    assert seen == [threading.current_thread().name] * 2


def test_load_is_the_same_with_and_without_helper_threads(monkeypatch, tmp_path):
    """A real 6.1 trace, repeated to > 2^20 records (so every helper thread is used): the
    tables are identical with FTRACEKIT_THREADS=1 and with threads."""
    import lzma
    src = os.path.join(HERE, os.pardir, "bench", "data", "fg_100k.txt.xz")
    with lzma.open(src) as f:
        text = f.read()
    body = b"".join(ln for ln in text.splitlines(keepends=True) if not ln.startswith(b"#"))
    big = tmp_path / "big.txt"
    big.write_bytes(text + body * 11)
    monkeypatch.setenv("FTRACEKIT_THREADS", "1")
    one = ftracekit.load(str(big))
    monkeypatch.delenv("FTRACEKIT_THREADS")
    two = ftracekit.load(str(big))
    assert one.meta["lines"] > _concurrent.MIN_PARALLEL
    assert one.calls.equals(two.calls)
    assert one.events.equals(two.events)
