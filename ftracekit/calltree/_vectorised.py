"""Vectorised building blocks of the call tree (numpy, no per-record Python).

* Nearest-smaller-depth look-ups over the call records of all tasks: the vectorised linker
  (:mod:`ftracekit.calltree.link`) asks, for each record, for the previous or next record of
  the same task with a smaller depth — the innermost open call, or the exit that closes a
  scope. :class:`_LevelIndex` answers these with one sorted search per depth level; pointer
  jumping (``*_jump``) is the fallback for pathological depth sequences.
* Grouping records by task (:func:`_group_by_task`, a radix sort on dense task ids).
* Roots and inherited interrupt context of every call (:func:`_roots_and_interrupts`).
"""

from __future__ import annotations

import numpy as np

from .. import _native
from ..read import K_COMMENT, K_ENTRY, K_EXIT, K_LEAF


def _prev_smaller(D: np.ndarray, first: np.ndarray, at: np.ndarray | None = None) -> np.ndarray:
    """For each position (or the positions ``at``), the previous position (same task) with a
    strictly smaller depth, or -1.

    Equivalent to a stack scan; computed in O(n) by :func:`_level_search` (pointer jumping,
    :func:`_prev_smaller_jump`, for pathological depth sequences).
    """
    m = len(D)
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    D = D.astype(np.int32, copy=False)
    # An up-step into k (D[k-1] < D[k]) starts, for every level in (D[k-1], D[k]], the run of
    # positions at depth ≥ that level containing k: pse(i) = (last such k ≤ i at level D[i]) - 1.
    # Only positions after a down-step need the search: after an up-step it is i - 1, and a
    # position at the depth of its predecessor shares the predecessor's answer.
    step = np.zeros(m, dtype=np.int8)
    step[1:] = D[1:] > D[:-1]            # sign of the step (bool temporaries: no int32
    step[1:] -= D[1:] < D[:-1]           # difference array)
    step[first] = 2
    ev = np.flatnonzero(step == 1)
    down = np.flatnonzero(step == -1)
    k = _level_search(D, first, ev, D[ev - 1], D[ev], down, D[down], forward=False)
    if k is None:
        out = _prev_smaller_jump(D, first)
        return out if at is None else out[at]
    it = np.int32 if m < 2**31 else np.int64
    res = np.full(m, -1, dtype=it)
    res[ev] = ev - 1
    res[down] = np.where(k >= 0, k - 1, -1)
    del k, ev, down
    head = np.where(step == 0, 0, np.arange(m, dtype=it))
    del step
    np.maximum.accumulate(head, out=head)
    res = res[head]
    return res if at is None else res[at]


def _next_smaller(D: np.ndarray, last: np.ndarray, strict: bool,
                  at: np.ndarray | None = None) -> np.ndarray:
    """For each position (or the positions ``at``), the next position (same task) with depth
    < ``D[i]`` (``strict``) or ≤ ``D[i]`` (not strict), or -1. O(n) like :func:`_prev_smaller`."""
    m = len(D)
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    D = D.astype(np.int32, copy=False)
    first = np.empty(m, dtype=bool)
    first[0] = True
    first[1:] = last[:-1]
    qp = np.arange(m) if at is None else at
    ev = np.flatnonzero(~last[:-1] & (D[1:] < D[:-1]))
    # A down-step after k (D[k+1] < D[k]) ends, for every level in (D[k+1], D[k]], the run at
    # depth ≥ that level containing k: ns(i) = (first such k ≥ i at level D[i]) + 1; not strict
    # is the same at level D[i] + 1, or simply i + 1 when D[i+1] ≤ D[i].
    if strict:
        k = _level_search(D, first, ev, D[ev + 1], D[ev], qp, D[qp], forward=True)
        if k is None:
            out = _next_smaller_jump(D, last, strict)
            return out if at is None else out[at]
        return np.where(k >= 0, k + 1, -1)
    nxt = np.minimum(qp + 1, m - 1)
    step = ~last[qp] & (D[nxt] <= D[qp])
    out = np.where(step, qp + 1, -1)
    rest = np.flatnonzero(~step)
    k = _level_search(D, first, ev, D[ev + 1], D[ev], qp[rest], D[qp[rest]] + 1, forward=True)
    if k is None:
        full = _next_smaller_jump(D, last, strict)
        return full if at is None else full[at]
    out[rest] = np.where(k >= 0, k + 1, -1)
    return out


def _level_search(D: np.ndarray, first: np.ndarray, ev: np.ndarray, ev_lo: np.ndarray,
                  ev_hi: np.ndarray, qp: np.ndarray, ql: np.ndarray, forward: bool):
    """Events at positions ``ev`` (ascending, at most one per position) cover the levels
    ``(ev_lo, ev_hi]``. For each query (position ``qp[j]``, level ``ql[j]``): the last event at
    or before the position (``forward=False``) or the first at or after it (``forward=True``)
    covering the level, in the same task (tasks are the runs started by ``first``); its
    position, or -1. None when :class:`_LevelIndex` cannot be built (pointer jumping then)."""
    if not len(qp):
        return np.zeros(0, dtype=np.int64)
    index = _LevelIndex.build(D, first, ev, ev_lo, ev_hi)
    return None if index is None else index.query(qp, ql, forward)


_QUERY_CHUNK = 1 << 20


class _LevelIndex:
    """Events sorted by (level, task, position) — a stable radix sort by (level, task), as they
    come in position order; a query is a binary search for its (level, task, position)."""

    __slots__ = ("key", "pos", "tstart", "lo", "n_tasks", "stride")

    @classmethod
    def build(cls, D: np.ndarray, first: np.ndarray, ev: np.ndarray, ev_lo: np.ndarray,
              ev_hi: np.ndarray) -> "_LevelIndex | None":
        m = len(D)
        s = (ev_hi - ev_lo).astype(np.int64)
        E = int(s.sum())
        if E > 8 * m + 4096:
            return None               # huge depth jumps: too many events
        self = cls()
        self.tstart = np.flatnonzero(first)
        self.n_tasks = len(self.tstart)
        self.stride = m + 1
        self.lo = int(D.min()) if m else 0
        hi = int(D.max()) + 1 if m else 1
        if E:
            self.lo = min(self.lo, int(ev_lo.min()) + 1)
            hi = max(hi, int(ev_hi.max()))
        n_groups = (hi - self.lo + 2) * self.n_tasks
        if n_groups >= 1 << 32 or n_groups * self.stride >= 1 << 62:
            return None
        if E == len(ev):
            e_pos = ev.astype(np.int64, copy=False)
            e_lev = ev_hi.astype(np.int64)
        else:
            ramp = np.arange(E, dtype=np.int64) - np.repeat(np.cumsum(s) - s, s)
            e_pos = np.repeat(ev, s).astype(np.int64)
            e_lev = np.repeat(ev_lo.astype(np.int64) + 1, s) + ramp
            del ramp
        g = (e_lev - self.lo) * self.n_tasks + (np.searchsorted(self.tstart, e_pos, "right") - 1)
        del e_lev
        kdt = np.uint16 if n_groups < 1 << 16 else np.uint32      # uint16 sorts by radix
        o = np.argsort(g.astype(kdt), kind="stable")
        self.pos = e_pos[o]
        self.key = g[o] * self.stride + self.pos                  # ascending
        return self

    def query(self, qp: np.ndarray, ql: np.ndarray, forward: bool) -> np.ndarray:
        E = len(self.key)
        if not E or not len(qp):
            return np.full(len(qp), -1, dtype=np.int64)
        if len(qp) <= _QUERY_CHUNK:
            return self._query(qp, ql, forward)
        # in pieces: the temporaries (eight int64 arrays per query) stay small
        out = np.empty(len(qp), dtype=np.int64)
        for lo in range(0, len(qp), _QUERY_CHUNK):
            hi = lo + _QUERY_CHUNK
            out[lo:hi] = self._query(qp[lo:hi], ql[lo:hi], forward)
        return out

    def _query(self, qp: np.ndarray, ql: np.ndarray, forward: bool) -> np.ndarray:
        E = len(self.key)
        tid = np.searchsorted(self.tstart, qp, side="right") - 1
        gq = (ql.astype(np.int64) - self.lo) * self.n_tasks + tid
        bad = (gq < 0)                 # a level below every event: none
        kq = gq * self.stride + qp
        if forward:
            j = np.searchsorted(self.key, kq, side="left")
            jv = np.minimum(j, E - 1)
            hit = j < E
        else:
            j = np.searchsorted(self.key, kq, side="right") - 1
            jv = np.maximum(j, 0)
            hit = j >= 0
        kj = self.key[jv]
        g0 = kq - qp                   # = gq * stride: the key's group is gq (no division)
        hit &= (kj >= g0) & (kj < g0 + self.stride) & ~bad
        return np.where(hit, self.pos[jv], -1)


def _prev_smaller_jump(D: np.ndarray, first: np.ndarray) -> np.ndarray:
    """:func:`_prev_smaller` by pointer jumping: ``cand`` starts at the predecessor and jumps to
    the candidate of any candidate that is not smaller. Invariant: everything strictly between
    ``cand[i]`` and ``i`` is at depth ≥ ``D[i]``. Converges in about log(run length) rounds.
    """
    m = len(D)
    cand = np.arange(-1, m - 1, dtype=np.int64)
    cand[first] = -1
    active = np.flatnonzero(cand >= 0)
    while active.size:
        c = cand[active]
        jump = D[c] >= D[active]
        active = active[jump]
        cand[active] = cand[c[jump]]
        active = active[cand[active] >= 0]
    return cand


def _next_smaller_jump(D: np.ndarray, last: np.ndarray, strict: bool) -> np.ndarray:
    """:func:`_next_smaller` by pointer jumping (see :func:`_prev_smaller_jump`)."""
    m = len(D)
    cand = np.arange(1, m + 1, dtype=np.int64)
    cand[last] = -1
    active = np.flatnonzero(cand >= 0)
    while active.size:
        c = cand[active]
        jump = (D[c] >= D[active]) if strict else (D[c] > D[active])
        active = active[jump]
        cand[active] = cand[c[jump]]
        active = active[cand[active] >= 0]
    return cand


class _NextSmaller:
    """``_next_smaller(D, last, strict=True)`` computed on demand for given positions (the
    event index is built once): only the positions actually needed are searched."""

    def __init__(self, D: np.ndarray, last: np.ndarray) -> None:
        self.D = D.astype(np.int32, copy=False)
        self.last = last
        first = np.empty(len(D), dtype=bool)
        if len(D):
            first[0] = True
            first[1:] = last[:-1]
        ev = np.flatnonzero(~last[:-1] & (self.D[1:] < self.D[:-1]))
        self.index = _LevelIndex.build(self.D, first, ev, self.D[ev + 1], self.D[ev])
        self.full: np.ndarray | None = None

    def __call__(self, pos: np.ndarray) -> np.ndarray:
        if self.index is None:
            if self.full is None:
                self.full = _next_smaller_jump(self.D, self.last, True)
            return self.full[pos]
        k = self.index.query(pos, self.D[pos], forward=True)
        return np.where(k >= 0, k + 1, -1)


def _resolve_with(first_hop: np.ndarray, hop, done: np.ndarray) -> np.ndarray:
    """:func:`_resolve` with ``hop`` a function of positions (searched on demand)."""
    x = first_hop.copy()
    not_done = ~done
    active = np.flatnonzero((x >= 0) & not_done[np.maximum(x, 0)])
    while active.size:
        xa = hop(x[active])
        x[active] = xa
        active = active[(xa >= 0) & not_done[np.maximum(xa, 0)]]
    return x


def _resolve(first_hop: np.ndarray, hop: np.ndarray, done: np.ndarray) -> np.ndarray:
    """Follow ``x → hop[x]`` from ``first_hop`` until ``done[x]`` or -1 (chains are short:
    depth strictly decreases along them)."""
    x = first_hop.copy()
    not_done = ~done
    active = np.flatnonzero((x >= 0) & not_done[x])   # (x = -1 reads the last item: masked)
    while active.size:
        xa = hop[x[active]]
        x[active] = xa
        active = active[(xa >= 0) & not_done[xa]]
    return x


def _stable_argsort(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys, kind="stable")``, by radix sort on dense ids when there are few
    distinct keys spread over a small range (task keys: pids and small negative numbers)."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = int(keys.min()), int(keys.max())
    if lo == hi:
        return np.arange(n, dtype=np.int64)
    if hi - lo < 1 << 23:
        off = keys - lo
        seen = np.zeros(hi - lo + 1, dtype=bool)
        seen[off] = True
        distinct = np.flatnonzero(seen)
        del seen
        if len(distinct) < 1 << 16:
            table = np.zeros(hi - lo + 1, dtype=np.uint16)
            table[distinct] = np.arange(len(distinct), dtype=np.uint16)
            return np.argsort(table[off], kind="stable")
    return np.argsort(keys, kind="stable")


def _group_by_task(kind: np.ndarray, task: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The call and comment records sorted by task (stable: line order within a task), and a
    task id of each of them (equal ids = same task).

    With few tasks in a small key range (the usual case) the records get dense uint16 task
    ids, the other records an id after all of them, and one stable (radix) sort of all records
    does the selection and the grouping at once: no index array of the relevant records, no
    int64 copies of the keys (at 10^7 records each such array is 80 MB of memory touched for
    the first time, which is what costs most on a VM that backs memory lazily).
    """
    relevant = (kind == K_ENTRY) | (kind == K_LEAF) | (kind == K_EXIT) | (kind == K_COMMENT)
    n = len(kind)
    n_rel = int(np.count_nonzero(relevant))
    if n_rel and n < 2**31:
        lo, hi = int(task.min()), int(task.max())
        if hi - lo < 1 << 23:
            off = np.empty(n, dtype=np.int32)
            np.subtract(task, lo, out=off, casting="unsafe")
            seen = np.zeros(hi - lo + 1, dtype=bool)
            seen[off] = True
            distinct = np.flatnonzero(seen)
            del seen
            if len(distinct) < (1 << 16) - 1:
                table = np.zeros(hi - lo + 1, dtype=np.uint16)
                table[distinct] = np.arange(len(distinct), dtype=np.uint16)
                tid = table[off]
                del off, table
                tid[~relevant] = len(distinct)        # sorted after every task
                order = np.argsort(tid, kind="stable")[:n_rel]
                return order, tid[order]
            del off
    rel = np.flatnonzero(relevant)
    order = rel[_stable_argsort(task[rel])]
    return order, task[order]


def _count_distinct(keys: np.ndarray) -> int:
    """Number of distinct values of an integer array (a bitmap when the range is small)."""
    if not len(keys):
        return 0
    lo, hi = int(keys.min()), int(keys.max())
    if hi - lo < 1 << 26:
        seen = np.zeros(hi - lo + 1, dtype=bool)
        seen[keys - lo] = True
        return int(np.count_nonzero(seen))
    return int(len(np.unique(keys)))


def _roots_and_interrupts(parent: np.ndarray, depth: np.ndarray, flag_in: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Per call: its outermost ancestor (itself without a parent), and whether it or an
    ancestor is flagged. A parent is shallower than its child, so going down the depths each
    call's parent is final when the call is reached: one pass after a radix sort by depth
    (pointer jumping if that order did not hold)."""
    n = len(parent)
    flag = flag_in.copy()
    if _native.ENABLED and parent.dtype == np.int64 and flag.dtype == np.bool_:
        # (compiled: each chain walked up to the first call done; the same result)
        root = np.empty(n, dtype=np.int64)
        if _native.native.roots(np.ascontiguousarray(parent), root, flag.view(np.uint8)):
            return root, flag
        flag[:] = flag_in
    has = parent >= 0
    any_flag = bool(flag.any())
    if (depth[parent[has]] < depth[has]).all():
        root = np.arange(n)
        by_depth = np.argsort(depth, kind="stable")
        d_sorted = depth[by_depth]
        cuts = np.flatnonzero(d_sorted[1:] != d_sorted[:-1]) + 1
        del d_sorted
        for grp in np.split(by_depth, cuts):
            p = parent[grp]
            h = p >= 0
            if not h.any():
                continue
            g, ph = grp[h], p[h]
            root[g] = root[ph]
            if any_flag:
                flag[g] |= flag[ph]
        return root, flag
    root = np.where(has, parent, np.arange(n))
    while True:
        nr = root[root]
        if np.array_equal(nr, root):
            break
        root = nr
    if any_flag:
        up = parent.copy()
        while True:
            act = np.flatnonzero(up >= 0)
            if not len(act):
                break
            flag[act] |= flag[up[act]]
            up[act] = up[up[act]]
    return root, flag
