"""Line records → the calls and events tables (pandas). Pure; no I/O.

How lines become calls
----------------------
Call stacks are kept **per task** (a task may be switched out mid-call and resume on another
CPU). The task of a line is its pid (proc column / trace-cmd); without funcgraph-proc it is the
task the last task-switch block on that CPU switched to (for lines before the first switch
block of a CPU: the task that block switched away from). pid 0 (``<idle>``) and unknown tasks
are kept apart per CPU.

Within one task, in line order (``d`` = depth of the line):

* entry / leaf at depth ``d``: open calls at depth ≥ ``d`` are closed without an exit
  (``no-exit``); the new call's parent is the open call on top of the stack (if any); an entry
  is then pushed, a leaf is complete at once.
* exit at depth ``d``: open calls deeper than ``d`` are closed (``no-exit``); if the top is at
  depth ``d`` and, when the exit names its function, has that function, it is completed by
  this exit; otherwise the top at depth ``d`` (if any) is closed as ``no-exit`` and the exit is
  a call of its own (``no-entry``: wrapped buffer, trace started mid-call, ``tracing_thresh``)
  whose parent is the new top of the stack.
* calls still without a parent get, in a backward pass (the same algorithm run from the end,
  where ``no-entry`` exits open scopes), the innermost ``no-entry`` call that closes around
  them — so ``tracing_thresh`` traces and the start of wrapped buffers still form trees.
* an event/comment line belongs to the innermost call open in its task at that point (found
  the same two ways).

A parent is shallower than its child, usually by one level. A call more than one level below
the innermost open call is an interrupt that hit between a function's entry and the recording
of that function's entry event (the kernel pushes the return frame first): its lines come
before the entry line, which is printed late, one level up. On kernels that take the call time
before the interrupt (6.1) the late entry's duration includes the interrupt; on later ones it
does not. So such calls are adopted by the late entry printed right after them (the next line
at a smaller depth, if it is an entry one level up) when that entry's duration can contain
them, else they stay children of the interrupted call. Either way they and their descendants
get ``in_irq``, and an adopting entry's ``start_s`` is moved back to its first child's.

The vectorised implementation (:func:`link_records`) answers these with nearest-smaller-depth
look-ups by pointer jumping; :func:`_link_sequential` is the stack algorithm itself, kept as
the definition and checked against the vectorised one in the tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._concurrent import background
from .._memory import release_memory as _release_memory
from ..read.lineparse import event_name
from ..read.records import (
    K_COMMENT, K_ENTRY, K_EXIT, K_IRQ_ENTER, K_IRQ_EXIT, K_LEAF, K_SWITCH, LineRecords,
)

__all__ = ["build_tables", "CALL_COLUMNS", "EVENT_COLUMNS", "STATUSES", "UNKNOWN_FUNC",
           "frame_names", "link_records"]

STATUSES = ["complete", "no-exit", "no-entry"]

CALL_COLUMNS = ["func", "module", "pid", "comm", "cpu", "exit_cpu", "depth", "parent", "root",
                "start_s", "end_s", "duration_us", "self_us", "n_children", "status", "in_irq",
                "retval", "line"]
EVENT_COLUMNS = ["line", "cpu", "pid", "comm", "ts_s", "event", "text", "call"]

#: Display name of a call whose function the trace does not name (``func`` is NA): an exit
#: line ``}`` without ``/* name */`` and no entry to pair it with.
UNKNOWN_FUNC = "[unknown]"


def frame_names(calls: pd.DataFrame, *, module: bool = True) -> np.ndarray:
    """Display name of each row of a calls table (object array): ``func``, or
    :data:`UNKNOWN_FUNC` where it is NA, plus `` [module]`` where ``module`` is set."""
    names = calls["func"].astype(object).to_numpy(dtype=object)
    names = np.where(pd.isna(names), UNKNOWN_FUNC, names).astype(object)
    if module and "module" in calls and calls["module"].notna().any():
        m = calls["module"].astype(object).to_numpy(dtype=object)
        has = pd.notna(m)
        names[has] = names[has] + " [" + m[has].astype(str) + "]"
    return names


# ---------------------------------------------------------------------------------------------
# Tasks

def fill_tasks(recs: LineRecords) -> tuple[np.ndarray, np.ndarray]:
    """pid and comm code of every record, filling unknown ones from task-switch blocks."""
    cols = recs.cols
    pid = cols["pid"]
    comm = cols["comm"]
    kind = cols["kind"]
    cpu = cols["cpu"]
    unknown = (pid < 0) & (kind != K_SWITCH)
    if not unknown.any() or not recs.switches:
        # Nothing to fill: the columns themselves (no copies; may be read-only views).
        return pid.astype(np.int32, copy=False), comm.astype(np.int32, copy=False)
    pid = pid.astype(np.int32, copy=True)
    comm = comm.astype(np.int32, copy=True)
    sw_idx = np.flatnonzero(kind == K_SWITCH)
    comm_codes: dict[str, int] = {name: i for i, name in enumerate(recs.comms)}
    lines = cols["line"]
    from_pid = np.array([recs.switches[int(lines[i])][1] for i in sw_idx], dtype=np.int32)

    def from_comm(i: int) -> int:
        """Code of the comm a switch block switched away from. Only the comm switched *to* is
        interned by the parser; a task seen only before the first switch on its CPU would
        get no comm at all, so its name is added to ``recs.comms`` here."""
        name = recs.switches[int(lines[sw_idx[i]])][0]
        code = comm_codes.get(name)
        if code is None:
            code = comm_codes[name] = len(recs.comms)
            recs.comms.append(name)
        return code

    for c in np.unique(cpu[unknown]):
        on_cpu = sw_idx[cpu[sw_idx] == c]
        if not len(on_cpu):
            continue
        sel = np.flatnonzero(unknown & (cpu == c))
        k = np.searchsorted(on_cpu, sel) - 1
        after = k >= 0
        pid[sel[after]] = pid[on_cpu[k[after]]]
        comm[sel[after]] = comm[on_cpu[k[after]]]
        before = ~after
        if before.any():
            first = np.flatnonzero(sw_idx == on_cpu[0])[0]
            pid[sel[before]] = from_pid[first]
            comm[sel[before]] = from_comm(first)
    return pid, comm


def task_keys(pid: np.ndarray, cpu: np.ndarray) -> np.ndarray:
    """One integer key per task: the pid, or a negative per-CPU key for pid 0 / unknown
    (int32 for int32 pids — half the memory of int64 at 10^7 records — else int64)."""
    dt = np.int32 if pid.dtype.itemsize <= 4 else np.int64
    key = pid.astype(dt)
    per_cpu = pid <= 0
    key[per_cpu] = -(1 + 2 * (cpu[per_cpu].astype(dt) + 1) + (pid[per_cpu] < 0))
    return key


# ---------------------------------------------------------------------------------------------
# Linking records into calls

class Links:
    """Result of linking, indexed by record: see :func:`link_records`."""

    __slots__ = ("is_start", "exit_of", "parent", "owner", "n_tasks", "interrupt", "by_task")

    def __init__(self, n: int, comments: bool = True):
        idx = np.int32 if n < 2**31 else np.int64        # record indices
        self.is_start = np.zeros(n, dtype=bool)      # record starts a call
        self.exit_of = np.full(n, -1, dtype=idx)     # entry record → its exit record
        self.parent = np.full(n, -1, dtype=idx)      # start record → parent's start record
        # comment record → innermost call's start (without comments: a read-only view of -1,
        # which touches no memory)
        self.owner = (np.full(n, -1, dtype=idx) if comments
                      else np.broadcast_to(np.array(-1, dtype=idx), (n,)))
        self.n_tasks = 0                             # tasks with call records
        # start record of a call that interrupted another: it sits more than one level below
        # the innermost open call, or before a late entry line that adopted it
        self.interrupt = np.zeros(n, dtype=bool)
        # (internal) the call records sorted by task, line order within a task, when known
        self.by_task: np.ndarray | None = None


def _names_ok(func: np.ndarray, module: np.ndarray, e, x) -> Any:
    """Whether exit record(s) ``x`` may close entry record(s) ``e`` (a bare ``}`` always may)."""
    fx = func[x]
    mx = module[x]
    return (fx < 0) | ((func[e] == fx) & ((mx < 0) | (module[e] == mx)))


def _link_sequential(idx: np.ndarray, kind: np.ndarray, depth: np.ndarray, func: np.ndarray,
                     module: np.ndarray, out: Links, dur: np.ndarray | None = None) -> None:
    """The defining stack algorithm (module docstring) for the records ``idx`` of one task."""
    is_start, exit_of, parent, owner = out.is_start, out.exit_of, out.parent, out.owner
    kinds = kind[idx].tolist()
    depths = depth[idx].tolist()
    funcs = func[idx].tolist()
    mods = module[idx].tolist()
    durs = dur[idx].tolist() if dur is not None else None
    ridx = idx.tolist()
    n = len(ridx)
    start = [False] * n
    par = [-1] * n      # positions within idx
    own = [-1] * n
    ex = [-1] * n
    # Next record (not a comment) of smaller depth, for the late-entry rule.
    nxt_smaller = [-1] * n
    mono: list[int] = []
    for p in range(n - 1, -1, -1):
        if kinds[p] == K_COMMENT:
            continue
        d = depths[p]
        while mono and depths[mono[-1]] >= d:
            mono.pop()
        nxt_smaller[p] = mono[-1] if mono else -1
        mono.append(p)

    stack: list[int] = []
    for p in range(n):
        k = kinds[p]
        if k == K_COMMENT:
            own[p] = stack[-1] if stack else -1
            continue
        d = depths[p]
        if k == K_EXIT:
            while stack and depths[stack[-1]] > d:
                stack.pop()
            if stack and depths[stack[-1]] == d:
                e = stack.pop()
                fx = funcs[p]
                if fx < 0 or (funcs[e] == fx and (mods[p] < 0 or mods[e] == mods[p])):
                    ex[e] = p
                    continue
            start[p] = True
            if stack:
                par[p] = stack[-1]
        else:
            while stack and depths[stack[-1]] >= d:
                stack.pop()
            start[p] = True
            if stack:
                par[p] = stack[-1]
            if k == K_ENTRY:
                stack.append(p)
    # Late entry lines (see module docstring): calls more than one level below their parent
    # move to the entry printed right after them, if its duration can contain them.
    intr = [False] * n
    for p in range(n):
        if start[p] and kinds[p] != K_COMMENT and par[p] >= 0 and depths[par[p]] < depths[p] - 1:
            intr[p] = True
    if durs is not None:
        claims: dict[int, list[int]] = {}
        for p in range(n):
            if not start[p] or kinds[p] == K_COMMENT:
                continue
            d = depths[p]
            if d > 0 and (par[p] < 0 or depths[par[p]] < d - 1):
                q = nxt_smaller[p]
                if q >= 0 and kinds[q] == K_ENTRY and depths[q] == d - 1 and ex[q] >= 0:
                    claims.setdefault(q, []).append(p)
        def call_dur(p: int) -> float:
            """Duration of the call started at ``p`` (0 when unknown)."""
            x = ex[p] if kinds[p] == K_ENTRY else p
            v = durs[x] if x >= 0 else float("nan")
            return v if v == v else 0.0

        for q, ps in claims.items():
            own_dur = durs[ex[q]]
            inside = sum(call_dur(p) for p in ps)
            if own_dur == own_dur and own_dur >= inside:
                for p in ps:
                    par[p] = q
                    intr[p] = True
    rstack: list[int] = []
    for p in range(n - 1, -1, -1):
        k = kinds[p]
        if k == K_COMMENT:
            if own[p] < 0 and rstack:
                own[p] = rstack[-1]
            continue
        d = depths[p]
        while rstack and depths[rstack[-1]] >= d:
            rstack.pop()
        if start[p] and par[p] < 0 and rstack:
            par[p] = rstack[-1]
        if k == K_EXIT and start[p]:
            rstack.append(p)
    for p in range(n):
        r = ridx[p]
        if kinds[p] == K_COMMENT:
            if own[p] >= 0:
                owner[r] = ridx[own[p]]
            continue
        if start[p]:
            is_start[r] = True
            if par[p] >= 0:
                parent[r] = ridx[par[p]]
            if intr[p]:
                out.interrupt[r] = True
        if ex[p] >= 0:
            exit_of[r] = ridx[ex[p]]


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


def link_records(kind: np.ndarray, depth: np.ndarray, func: np.ndarray, module: np.ndarray,
                 task: np.ndarray, *, force_sequential: bool = False,
                 dur: np.ndarray | None = None) -> Links:
    """Link records into calls (see module docstring). Arrays are per record, in line order.

    The stack algorithm (vectorised, or sequential with ``force_sequential``), then the
    pairing of late exit lines (:func:`_pair_late_exits`), shared by both.
    """
    out = _link_stacks(kind, depth, func, module, task, force_sequential=force_sequential,
                       dur=dur)
    _pair_late_exits(out, kind, depth, func, module, task)
    out.by_task = None
    return out


_LATE_EXIT_SCAN = 10000



def _pair_late_exits(out: Links, kind: np.ndarray, depth: np.ndarray, func: np.ndarray,
                     module: np.ndarray, task: np.ndarray) -> None:
    """Exit lines printed late: an interrupt that hit after a function returned but before its
    exit event was recorded prints its calls at the function's own depth, right after the
    entry line; the stack algorithm then closes the function without an exit when the
    interrupt's first call arrives, and its exit (usually named, ``} /* func */``) comes
    after the interrupt as an exit without an entry. Such a pair — an exit without entry at
    depth ``d``, and the latest entry without exit at depth ``d`` before it with nothing
    shallower in between and no other exit without entry at ``d`` — is one complete call;
    the calls at depth ``d`` in between are marked as interrupts."""
    X = np.flatnonzero(out.is_start & (kind == K_EXIT))
    if not len(X):
        return
    open_ent = out.is_start & (kind == K_ENTRY) & (out.exit_of < 0)
    if not open_ent.any():
        return
    if out.by_task is not None:        # (already sorted by the stack algorithm)
        order = out.by_task
    else:
        rel = np.flatnonzero((kind == K_ENTRY) | (kind == K_LEAF) | (kind == K_EXIT))
        order = rel[_stable_argsort(task[rel])]
        del rel
    # Position of each exit in ``order`` (records of a task are in line order there); only
    # windows before those positions are looked at, so nothing else is gathered.
    pos = np.empty(len(kind), dtype=np.int32 if len(kind) < 2**31 else np.int64)
    pos[order] = np.arange(len(order), dtype=pos.dtype)
    pos_x = pos[X]
    del pos
    pairs: list[tuple[int, int, np.ndarray]] = []
    paired = set()
    for x, i in zip(X.tolist(), pos_x.tolist()):
        d = int(depth[x])
        t = task[x]
        lo = max(0, i - _LATE_EXIT_SCAN + 1)
        # Walk back from i - 1 (in growing windows: scans usually stop at once) while in the
        # same task at depth ≥ d; the first record at depth d that is an open entry or an
        # exit without entry decides; entries/leaves at d before it are the interrupt.
        span = 64
        while True:
            a = max(lo, i - span)
            recs = order[a:i][::-1]
            Dw = depth[recs]
            stop = np.flatnonzero((task[recs] != t) | (Dw < d))
            if len(stop) or a == lo:
                n_ok = int(stop[0]) if len(stop) else i - a
                break
            span *= 16
        at_d = recs[:n_ok][Dw[:n_ok] == d]
        if not len(at_d):
            continue
        is_open = open_ent[at_d]
        is_orphan = out.is_start[at_d] & (kind[at_d] == K_EXIT)
        dec = np.flatnonzero(is_open | is_orphan)
        if not len(dec) or not is_open[dec[0]]:
            continue
        e = int(at_d[dec[0]])
        if e in paired or not bool(_names_ok(func, module, e, x)):
            continue
        before = at_d[: dec[0]]
        pairs.append((e, x, before[kind[before] != K_EXIT]))
        paired.add(e)
    if not pairs:
        return
    moved = np.zeros(len(kind), dtype=bool)
    remap = {}
    for e, x, between in pairs:
        out.exit_of[e] = x
        out.is_start[x] = False
        out.parent[x] = -1
        out.interrupt[between] = True
        moved[x] = True
        remap[x] = e
    for arr in (out.parent, out.owner):       # calls/events that hung under the exit
        if not arr.flags.writeable:
            continue                           # (owner without comments: all -1)
        sel = np.flatnonzero(moved[np.maximum(arr, 0)] & (arr >= 0))
        arr[sel] = [remap[int(v)] for v in arr[sel]]


def _link_stacks(kind: np.ndarray, depth: np.ndarray, func: np.ndarray, module: np.ndarray,
                 task: np.ndarray, *, force_sequential: bool = False,
                 dur: np.ndarray | None = None) -> Links:
    """The stack algorithm for :func:`link_records`.

    The vectorised algorithm computes, per task, the stack algorithm's answers with
    nearest-smaller-depth look-ups: an entry is closed by the next record at depth ≤ its own
    (its exit if that is an exit at the same depth with a matching name); the parent of a call
    is the innermost open entry when it starts, i.e. the "top of stack" after the previous
    record of smaller depth; the backward pass mirrors this with the next record of smaller
    depth. ``force_sequential`` runs the defining Python stack algorithm instead (for tests).
    """
    n = len(kind)
    if force_sequential:
        out = Links(n)
        relevant = np.flatnonzero((kind == K_ENTRY) | (kind == K_LEAF) | (kind == K_EXIT)
                                  | (kind == K_COMMENT))
        if not len(relevant):
            return out
        order = relevant[_stable_argsort(task[relevant])]
        del relevant
        T_all = task[order]
        out.n_tasks = _count_distinct(T_all[kind[order] != K_COMMENT])
        bounds = np.concatenate(([0], np.flatnonzero(np.diff(T_all)) + 1, [len(order)]))
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            _link_sequential(order[lo:hi], kind, depth, func, module, out, dur)
        return out

    # Records of each task together, in line order within a task; T: which task (equal values
    # for the same task).
    # (the result arrays are allocated and filled on a second core meanwhile: at 10^7 records
    # that is ~100 MB of memory touched for the first time)
    has_comments = bool((kind == K_COMMENT).any())
    links_job = background(Links, n, has_comments, size=n)
    order, T_all = _group_by_task(kind, task)
    if not len(order):
        return links_job.result()
    is_call = kind[order] != K_COMMENT
    out = links_job.result()
    del links_job
    calls = order[is_call] if has_comments else order
    out.by_task = calls
    if not has_comments:
        del order
    m = len(calls)
    T = T_all[is_call] if has_comments else T_all
    K = kind[calls]
    D = np.empty(m, dtype=np.int32)
    for lo in range(0, m, _CHUNK):     # (no full-size int16 copy)
        D[lo:lo + _CHUNK] = depth[calls[lo:lo + _CHUNK]]
    if m:
        new_task = np.empty(m, dtype=bool)
        new_task[0] = True
        np.not_equal(T[1:], T[:-1], out=new_task[1:])
        end_task = np.empty(m, dtype=bool)
        end_task[-1] = True
        end_task[:-1] = new_task[1:]
    else:
        new_task = end_task = np.zeros(0, dtype=bool)
    out.n_tasks = int(new_task.sum())
    task_of_calls = T if has_comments else None
    if has_comments:
        Tc = T_all[~is_call]
    del T, T_all, task   # (the caller may pass a temporary: it is freed here)

    # (the forward-parent search needs only D and the task starts: on a second core meanwhile)
    pse_job = background(_prev_smaller, D, new_task, size=m)

    # Entries and their exits.
    ent = np.flatnonzero(K == K_ENTRY)
    x = _next_smaller(D, end_task, strict=False, at=ent)
    ok = x >= 0
    xv = np.where(ok, x, 0)
    ok &= (K[xv] == K_EXIT) & (D[xv] == D[ent])
    ok &= _names_ok(func, module, calls[ent], calls[xv])
    ent_m, exit_m = ent[ok], xv[ok]
    del ent, x, ok, xv
    out.exit_of[calls[ent_m]] = calls[exit_m]
    start = np.ones(m, dtype=bool)
    start[exit_m] = False
    out.is_start[calls[start]] = True
    call_start = np.arange(m, dtype=np.int32 if m < 2**31 else np.int64)  # exit → its entry
    call_start[exit_m] = ent_m
    del ent_m, exit_m

    # Forward parent: top of stack after the previous record of smaller depth.
    pse = pse_job.result()
    del pse_job
    is_entry = K == K_ENTRY
    hop = pse[call_start]                # from a non-entry record to the next candidate down
    fwd = _resolve(pse, hop, is_entry)   # per record: innermost open entry when it starts
    del pse, hop

    # Backward parent: the no-entry exit that closes around, for calls without a forward one.
    orphan_exit = (K == K_EXIT) & start
    have_orphans = bool(orphan_exit.any())
    ns_cache: list[np.ndarray] = []

    def bwd_at(sel: np.ndarray) -> np.ndarray:
        """The backward parent of the positions ``sel`` (only needed where there is no forward
        one; -1 everywhere when no exit is a call of its own)."""
        if not have_orphans or not len(sel):
            return np.full(len(sel), -1, dtype=np.int64)
        if not ns_cache:
            ns_cache.append(_NextSmaller(D, end_task))
        ns = ns_cache[0]
        return _resolve_with(ns(sel), ns, orphan_exit)

    parent = np.where(start, fwd, -1)
    # Late entry lines: a call more than one level below the innermost open call belongs to
    # the entry one level up that is printed right after its block (an interrupt that hit
    # between a function's entry and the recording of its entry event).
    gap = np.flatnonzero(start & ((fwd < 0) | (D[np.maximum(fwd, 0)] < D - 1)) & (D > 0))
    intr_pos = gap[fwd[gap] >= 0]
    if len(gap) and dur is not None:
        if not ns_cache:
            ns_cache.append(_NextSmaller(D, end_task))
        nsg = ns_cache[0](gap)                   # (only the gap positions are searched)
        nsv = np.maximum(nsg, 0)
        cand = (nsg >= 0) & (K[nsv] == K_ENTRY) & (D[nsv] == D[gap] - 1)
        gap, nsg = gap[cand], nsg[cand]
        if len(gap):
            # The entry must be complete and last at least as long as the calls it adopts.
            # (exit records from out.exit_of, which holds the pairs found above)
            g_rec = np.where(K[gap] == K_ENTRY, out.exit_of[calls[gap]], calls[gap])
            g_dur = np.where(g_rec >= 0, dur[np.maximum(g_rec, 0)], np.nan)
            uq, inv = np.unique(nsg, return_inverse=True)
            inside = np.bincount(inv, weights=np.nan_to_num(g_dur), minlength=len(uq))
            ex_u = out.exit_of[calls[uq]]
            own = np.where(ex_u >= 0, dur[np.maximum(ex_u, 0)], np.nan)
            ok_u = (ex_u >= 0) & (own >= inside)
            adopt = ok_u[inv]
            parent[gap[adopt]] = nsg[adopt]
            intr_pos = np.union1d(intr_pos, gap[adopt])
            del g_rec, g_dur, uq, inv, inside, ex_u, own, ok_u, adopt
        del nsg, nsv, cand
    del gap
    out.interrupt[calls[intr_pos]] = True
    del intr_pos
    need = np.flatnonzero(start & (parent < 0))
    parent[need] = bwd_at(need)
    del need
    for lo in range(0, m, _CHUNK):     # in pieces: bounded temporaries
        par = parent[lo:lo + _CHUNK]
        has = par >= 0
        out.parent[calls[lo:lo + _CHUNK][has]] = calls[par[has]]
    del parent

    # Comments: innermost call open in their task at that point.
    if has_comments:
        ncall_before = np.cumsum(is_call) - 1          # index in call-space of last call <= here
        cpos = np.flatnonzero(~is_call)
        q = ncall_before[cpos]                          # last call record before the comment
        T = task_of_calls
        qv = np.maximum(q, 0)
        has_prev = (q >= 0) & (m > 0)
        if m:
            has_prev &= T[np.minimum(qv, m - 1)] == Tc
        nq = q + 1
        has_next = nq < m
        nqv = np.minimum(nq, max(m - 1, 0))
        if m:
            has_next &= T[nqv] == Tc
        own = np.full(len(cpos), -1, dtype=np.int64)
        if m:
            f_owner = np.where(is_entry[qv], qv, fwd[call_start[qv]])
            own = np.where(has_prev, f_owner, -1)
            b_owner = np.where(orphan_exit[nqv], nqv, bwd_at(nqv))
            need = (own < 0) & has_next
            own = np.where(need, b_owner, own)
        good = own >= 0
        crec = order[cpos]
        out.owner[crec[good]] = calls[call_start[own[good]]]
    return out


# ---------------------------------------------------------------------------------------------
# Tables

def _in_irq(kind: np.ndarray, cpu: np.ndarray) -> np.ndarray:
    """Whether each record lies inside an irq block (``==========>`` … ``<==========``)."""
    n = len(kind)
    irq = np.flatnonzero((kind == K_IRQ_ENTER) | (kind == K_IRQ_EXIT))
    if not len(irq):
        return np.zeros(n, dtype=bool)
    state_after = np.zeros(len(irq), dtype=bool)
    level: dict[int, int] = {}
    for j, (k, c) in enumerate(zip(kind[irq].tolist(), cpu[irq].tolist())):
        lv = level.get(c, 0)
        lv = lv + 1 if k == K_IRQ_ENTER else max(lv - 1, 0)
        level[c] = lv
        state_after[j] = lv > 0
    out = np.zeros(n, dtype=bool)
    for c in np.unique(cpu[irq]):
        on = irq[cpu[irq] == c]
        st = state_after[cpu[irq] == c]
        sel = np.flatnonzero(cpu == c)
        k = np.searchsorted(on, sel) - 1
        good = k >= 0
        out[sel[good]] = st[k[good]]
    return out


_CHUNK = 1 << 18


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


def _roots_and_interrupts(parent: np.ndarray, depth: np.ndarray, flag: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Per call: its outermost ancestor (itself without a parent), and whether it or an
    ancestor is flagged. A parent is shallower than its child, so going down the depths each
    call's parent is final when the call is reached: one pass after a radix sort by depth
    (pointer jumping if that order did not hold)."""
    n = len(parent)
    has = parent >= 0
    flag = flag.copy()
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


def _all_default(col: np.ndarray, value: Any) -> bool:
    """Whether a record column is a compact constant view (see
    :func:`ftracekit.records.concat_columns`) of ``value``, or empty."""
    return not len(col) or (col.strides[0] == 0 and bool(col[0] == value))


def _categorical(codes: np.ndarray, names: list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype(np.int32, copy=False), categories=pd.Index(names, dtype=object))


def build_tables(recs: LineRecords, *, force_sequential: bool = False, consume: bool = False
                 ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The calls table, the events table and linking statistics from parsed records.

    See :class:`ftracekit.Trace` for the columns and their units. ``consume``: release the
    record columns as soon as they are no longer needed (``recs.cols`` is emptied), which
    keeps the peak memory of :func:`ftracekit.load` low.
    """
    cols = recs.cols
    take = cols.pop if consume else cols.get
    kind = cols["kind"]
    pid, comm = fill_tasks(recs)
    if consume:
        cols.pop("pid")
        cols.pop("comm")
    links = link_records(kind, cols["depth"], cols["func"], cols["module"],
                         task_keys(pid, cols["cpu"]), force_sequential=force_sequential,
                         dur=cols["dur"])
    # (no malloc_trim between the phases: the freed pages are reused at once by the next
    # phase, and giving them back only makes it fault them in again; measured no higher peak)

    S = np.flatnonzero(links.is_start)
    n_calls = len(S)
    n_tasks = links.n_tasks
    links.is_start = None  # type: ignore[assignment]
    # record → call number; only read at call starts (parents, owners), so not filled
    call_id = np.empty(len(kind), dtype=np.int32 if n_calls < 2**31 else np.int64)
    for lo in range(0, n_calls, _CHUNK):    # (in pieces: no full-size arange)
        hi = min(lo + _CHUNK, n_calls)
        call_id[S[lo:hi]] = np.arange(lo, hi, dtype=call_id.dtype)

    # Events first (they need a few record columns that are released below).
    C = np.flatnonzero(kind == K_COMMENT)
    lines_c = cols["line"][C]
    texts = [recs.comments.get(int(ln), "") for ln in lines_c]
    owner = links.owner[C]
    links.owner = None  # type: ignore[assignment]
    events = pd.DataFrame({
        "line": lines_c,
        "cpu": cols["cpu"][C],
        "pid": pid[C],
        "comm": _categorical(comm[C], recs.comms),
        "ts_s": cols["ts"][C],
        "event": pd.Categorical([event_name(t) for t in texts]),
        "text": pd.array(texts, dtype=object),
        "call": np.where(owner >= 0, call_id[np.maximum(owner, 0)], -1).astype(np.int64),
    })
    del C, lines_c, texts, owner

    # Parents first: the roots and the interrupt context (a pass down the depths) are then
    # worked out on a second core while the other columns are gathered.
    # (in pieces: the only full-size arrays are the results)
    parent = np.empty(n_calls, dtype=np.int64)
    has_parent = np.empty(n_calls, dtype=bool)
    for lo in range(0, n_calls, _CHUNK):
        hi = min(lo + _CHUNK, n_calls)
        p_rec = links.parent[S[lo:hi]]
        has = p_rec >= 0
        has_parent[lo:hi] = has
        np.maximum(p_rec, 0, out=p_rec)
        p_call = call_id[p_rec]
        p_call[~has] = -1
        parent[lo:hi] = p_call
    links.parent = None  # type: ignore[assignment]
    del call_id
    interrupted = links.interrupt[S]
    links.interrupt = None  # type: ignore[assignment]
    depth_c = take("depth")[S]
    # Root (the outermost ancestor) and interrupt context (calls that interrupted another, seen
    # from their depth, and everything below them ran in interrupt context even where the
    # text has no irq arrows).
    roots_job = background(_roots_and_interrupts, parent, depth_c, interrupted, size=n_calls)
    del interrupted

    # Call columns, each record column released after its last use.
    data: dict[str, Any] = {}
    data["func"] = _categorical(take("func")[S], recs.funcs)
    data["module"] = _categorical(take("module")[S], recs.modules)
    data["depth"] = depth_c
    del depth_c
    data["line"] = take("line")[S]
    data["pid"] = pid[S]
    data["comm"] = _categorical(comm[S], recs.comms)
    del pid, comm
    k_s = kind[S]
    xr = links.exit_of[S]          # the exit record of each call (its own record if not an entry)
    links.exit_of = None  # type: ignore[assignment]
    own_exit = k_s != K_ENTRY
    xr[own_exit] = S[own_exit]
    del own_exit
    has_exit = xr >= 0
    xr[~has_exit] = 0
    cpu = take("cpu")
    data["cpu"] = cpu[S]
    # (in place where possible: at 10^7 calls every temporary is 80 MB of fresh memory)
    exit_cpu = cpu[xr].astype(np.int16, copy=False)
    exit_cpu[~has_exit] = -1
    data["exit_cpu"] = exit_cpu
    data["in_irq"] = _in_irq(kind, cpu)[S]
    del cpu, exit_cpu
    status = (~has_exit).astype(np.int8)          # 0 complete, 1 no-exit, 2 no-entry
    is_exit = k_s == K_EXIT
    status[is_exit] = 2
    data["status"] = pd.Categorical.from_codes(status, categories=STATUSES)
    dur = take("dur")[xr]
    dur[~has_exit] = np.nan
    d6 = dur * 1e-6
    ts = take("ts")
    # A leaf or an exit without entry is its own exit record (xr = S): ts[xr] is its ts.
    start_s = ts[S]
    end_s = ts[xr]
    np.subtract(start_s, d6, out=start_s, where=is_exit)
    end_s[~has_exit] = np.nan
    np.add(end_s, d6, out=end_s, where=k_s == K_LEAF)
    del ts, k_s, is_exit
    # The exit line of a complete call may lack a timestamp the entry had (mixed layouts).
    fix = np.isnan(end_s) & has_exit
    end_s[fix] = start_s[fix] + d6[fix]
    del fix, d6
    rv, hr = take("retval"), take("has_ret")
    if _all_default(hr, False):
        # no return values: zeros from calloc, never touched
        retval = pd.arrays.IntegerArray(np.zeros(n_calls, dtype=np.int64),
                                        np.ones(n_calls, dtype=bool))
    else:
        has_ret = has_exit & hr[xr]
        retval = pd.arrays.IntegerArray(np.where(has_ret, rv[xr], 0), ~has_ret)
        del has_ret
    del rv, hr, xr, has_exit
    del S
    # Children: counts and summed durations.
    pidx = parent[has_parent]
    n_children = np.bincount(pidx, minlength=n_calls).astype(np.int32)
    child_sum = np.bincount(pidx, weights=np.nan_to_num(dur[has_parent]), minlength=n_calls)
    del pidx
    self_us = dur - child_sum
    del child_sum
    del has_parent
    root, interrupted = roots_job.result()
    del roots_job
    data["in_irq"] = data["in_irq"] | interrupted
    del interrupted
    # An entry line recorded late (an interrupt hit between the call and its entry event) is
    # printed after the interrupt's calls, which it adopted: it began no later than they did.
    line = data["line"]
    to, value = [], []             # (all read before any is moved, in pieces)
    for lo in range(0, n_calls, _CHUNK):
        sub = np.flatnonzero(parent[lo:lo + _CHUNK] >= 0)
        sub += lo
        p_sub = parent[sub]
        keep = (line[p_sub] > line[sub]) & (status[p_sub] != 2)
        if keep.any():
            to.append(p_sub[keep])
            value.append(start_s[sub[keep]])
    if to:
        np.fmin.at(start_s, np.concatenate(to), np.concatenate(value))
    del line, to, value
    data.update(parent=parent, root=root, start_s=start_s, end_s=end_s, duration_us=dur,
                self_us=self_us, n_children=n_children, retval=retval)
    del parent, root, start_s, end_s, dur, self_us, n_children, retval
    calls = pd.DataFrame({name: data.pop(name) for name in CALL_COLUMNS},
                         copy=False)   # fresh arrays: no copies, no consolidation
    calls.index.name = "call"
    if consume:
        cols.clear()
    _release_memory()
    stats = {
        "calls": n_calls,
        "complete": int((status == 0).sum()),
        "no_exit": int((status == 1).sum()),
        "no_entry": int((status == 2).sum()),
        "tasks": n_tasks,
    }
    return calls, events, stats
