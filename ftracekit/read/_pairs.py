"""Funcgraph entry and exit events of one call that follow each other in their task → one record.

``trace-cmd report`` prints a function that called nothing traced as one leaf line; the ring
buffer holds it as two events, an entry and an exit. Most calls of a function_graph trace are
such leaves, so joining the two events into one leaf record before linking (``kind`` =
``K_LEAF``, the exit's duration and return value, and the exit event's time in the record
column ``end_ts``) leaves ~40 % fewer records for the linker and the record columns, with the
same calls table: the linker pairs an entry with the next record of its task when that is an
exit at the same depth with the same function, and a leaf record links as that pair would
(:mod:`ftracekit.calltree.link`; the tests compare the tables with and without joining).

An entry event ``e`` is joined with event ``e + 1`` (stream order: the events of one CPU in
time order) when that is an exit of the same function address at the same depth and pid on the
same CPU, and no other event of the same task (the pid, or the CPU for pid 0, as
:func:`ftracekit.calltree.task_keys`) lies between them in time order.
"""

from __future__ import annotations

import numpy as np

from .. import _native
from .records import K_ENTRY, K_EXIT

__all__ = ["joinable_entries", "join_mask", "adjacent_pairs", "cpu_ends"]

#: Events of the time order grouped by task at a time (see :func:`joinable_entries`).
_PIECE = 1 << 18
_INDEX_PIECE = 1 << 16


def adjacent_pairs(kind: np.ndarray, pid: np.ndarray, depth: np.ndarray, func: np.ndarray
                   ) -> np.ndarray:
    """Per event (bool, stream order): it is an entry and the next event is an exit of the
    same function address (``func``, int32 code), depth and pid. The last event: False."""
    n = len(kind)
    out = np.zeros(n, dtype=bool)
    if n < 2:
        return out
    c = out[:-1]
    np.equal(kind[:-1], K_ENTRY, out=c)
    c &= kind[1:] == K_EXIT
    c &= pid[:-1] == pid[1:]
    c &= depth[:-1] == depth[1:]
    c &= func[:-1] == func[1:]
    return out


def cpu_ends(segments: list[tuple[int, int]], n: int) -> np.ndarray | None:
    """The end of each CPU's range (int64) when the ``[lo, hi)`` ``segments`` follow each
    other from 0 to ``n``, the layout of a decoded stream; else None."""
    if not segments or [lo for lo, _ in segments] != [0] + [hi for _, hi in segments[:-1]] \
            or segments[-1][1] != n:
        return None
    return np.array([hi for _, hi in segments], dtype=np.int64)


def join_mask(order: np.ndarray, kind: np.ndarray, pid: np.ndarray, depth: np.ndarray,
              func: np.ndarray, segments: list[tuple[int, int]]) -> np.ndarray:
    """Per event (uint8, stream order): 1 for the entries :func:`joinable_entries` gives."""
    n = len(kind)
    his = cpu_ends(segments, n) if _native.ENABLED and n else None
    if his is not None:
        # (compiled: one pass over the time order, the same result; pids of 2^23 and more,
        # not from a kernel, are left to the numpy form)
        ok = np.zeros(n, dtype=np.uint8)
        try:
            _native.native.joinable(order, kind, pid, depth, func, his, _PIECE, ok)
        except ValueError:
            pass
        else:
            return ok
    ok = np.zeros(n, dtype=np.uint8)
    ok[_joinable(order, kind, pid, depth, func, segments)] = 1
    return ok


def joinable_entries(order: np.ndarray, kind: np.ndarray, pid: np.ndarray, depth: np.ndarray,
                     func: np.ndarray, segments: list[tuple[int, int]]) -> np.ndarray:
    """Stream indices ``e`` (ascending, int64) of the entry events to join with event ``e + 1``.

    ``order``: the stream index of each event in time order (a stable sort by time); ``kind``
    (int8 ``K_*``), ``pid`` (int32), ``depth`` (int16) and ``func`` (int32 address code) are
    per event in stream order; ``segments``: the ``[lo, hi)`` stream range of each CPU.

    The time order is taken in pieces of :data:`_PIECE` events, each grouped by task (a radix
    sort of dense task ids): a pair inside a piece is next to each other in its task there
    exactly when it is in the whole trace (what lies between them in time lies in the piece
    too). A pair across two pieces is not joined (it links alike either way): no temporary is
    as long as the trace, which on this project's VM is what costs (fresh memory).
    """
    if _native.ENABLED:
        return np.flatnonzero(join_mask(order, kind, pid, depth, func, segments))
    return _joinable(order, kind, pid, depth, func, segments)


def _joinable(order: np.ndarray, kind: np.ndarray, pid: np.ndarray, depth: np.ndarray,
              func: np.ndarray, segments: list[tuple[int, int]]) -> np.ndarray:
    """:func:`joinable_entries` in numpy (its definition)."""
    n = len(kind)
    cand = adjacent_pairs(kind, pid, depth, func)
    for _, hi in segments:              # (not across the end of a CPU's stream)
        if 0 < hi <= n:
            cand[hi - 1] = False
    if not cand.any():
        return np.zeros(0, dtype=np.int64)
    tid = _task_ids(pid, segments)
    ok = np.zeros(n, dtype=bool)
    for lo in range(0, n, _PIECE):
        sub = order[lo:lo + _PIECE]
        ev = sub[np.argsort(tid[sub], kind="stable")]    # by task, in time order within one
        a = ev[:-1]
        hit = cand[a]
        hit &= ev[1:] == a + 1          # e + 1 comes next in its task
        ok[a[hit]] = True
    return np.flatnonzero(ok)


def _task_ids(pid: np.ndarray, segments: list[tuple[int, int]]) -> np.ndarray:
    """A dense task id per event, equal for the events of one task: the pid, or the CPU for
    pid 0 and for negative pids (uint16 when there are fewer than 65536 tasks: a stable
    argsort of them is a radix sort)."""
    n_seg = len(segments)
    lo_p, hi_p = (int(pid.min()), int(pid.max())) if len(pid) else (0, 0)
    if lo_p < 0 or hi_p >= 1 << 23:        # (not from a kernel: pid_max ≤ 2^22)
        key = pid.astype(np.int64)
        for slot, (lo, hi) in enumerate(segments):
            seg, own = key[lo:hi], pid[lo:hi]
            seg[own == 0] = -(2 * slot + 1)
            seg[own < 0] = -(2 * slot + 2)
        return np.unique(key, return_inverse=True)[1].reshape(-1)
    seen = np.zeros(hi_p + 1, dtype=bool)
    idx = np.empty(min(len(pid), _INDEX_PIECE), dtype=np.intp)
    for lo in range(0, len(pid), _INDEX_PIECE):
        # (an int32 index is ~3x slower to scatter by than an intp one: converted piece by
        # piece into a buffer that stays in the cache)
        part = idx[:min(_INDEX_PIECE, len(pid) - lo)]
        np.copyto(part, pid[lo:lo + _INDEX_PIECE])
        seen[part] = True
    seen[0] = False
    distinct = np.flatnonzero(seen)
    del seen, idx
    n_ids = len(distinct) + n_seg
    dt = np.uint16 if n_ids < 1 << 16 else np.int64
    table = np.zeros(hi_p + 1, dtype=dt)
    table[distinct] = np.arange(len(distinct), dtype=dt)
    if cpu_ends(segments, len(pid)) is not None:
        # pid 0: one task per CPU, the id in the table's slot 0 while that CPU's part is read
        tid = np.empty(len(pid), dtype=dt)
        for slot, (lo, hi) in enumerate(segments):
            table[0] = len(distinct) + slot
            table.take(pid[lo:hi], out=tid[lo:hi])
        return tid
    tid = table[pid]
    for slot, (lo, hi) in enumerate(segments):     # pid 0: one task per CPU
        seg = tid[lo:hi]
        seg[pid[lo:hi] == 0] = len(distinct) + slot
    return tid
