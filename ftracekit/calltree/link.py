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


import numpy as np

from .._concurrent import background
from ..read import K_COMMENT, K_ENTRY, K_EXIT, K_LEAF
from ._vectorised import (
    _count_distinct, _group_by_task, _NextSmaller, _next_smaller, _prev_smaller, _resolve,
    _resolve_with, _stable_argsort,
)
from .sequential import Links, _link_sequential, _names_ok

__all__ = ["link_records", "Links"]

_CHUNK = 1 << 18


def link_records(kind: np.ndarray, depth: np.ndarray, func: np.ndarray, module: np.ndarray,
                 task: np.ndarray, *, force_sequential: bool = False,
                 dur: np.ndarray | None = None, joined: np.ndarray | None = None) -> Links:
    """Link records into calls (see module docstring). Arrays are per record, in line order.

    The stack algorithm (vectorised, or sequential with ``force_sequential``), then the
    pairing of late exit lines (:func:`_pair_late_exits`), shared by both. ``joined`` (bool
    per record, binary input): the leaf records that stand for an entry event and its exit
    event (:mod:`ftracekit.read._pairs`); they link as the two records would, and count as
    two in the late-exit search window.
    """
    out = _link_stacks(kind, depth, func, module, task, force_sequential=force_sequential,
                       dur=dur)
    _pair_late_exits(out, kind, depth, func, module, task, dur, joined)
    out.by_task = None
    return out


_LATE_EXIT_SCAN = 10000



def _pair_late_exits(out: Links, kind: np.ndarray, depth: np.ndarray, func: np.ndarray,
                     module: np.ndarray, task: np.ndarray, dur: np.ndarray | None = None,
                     joined: np.ndarray | None = None) -> None:
    """Exit lines printed late: an interrupt that hit after a function returned but before its
    exit event was recorded prints its calls at the function's own depth, right after the
    entry line; the stack algorithm then closes the function without an exit when the
    interrupt's first call arrives, and its exit (usually named, ``} /* func */``) comes
    after the interrupt as an exit without an entry. Such a pair — an exit without entry at
    depth ``d``, and the latest entry without exit at depth ``d`` before it with nothing
    shallower in between and no other exit without entry at ``d`` — is one complete call;
    the calls at depth ``d`` in between are marked as interrupts. When the exit's duration
    covers them (6.1 takes the return time after the interrupt: ``} /* __rcu_read_unlock */``
    of 6 ms around a timer interrupt), they ran inside the call's measured time and become its
    children; otherwise they stay beside it."""
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
    # The window is _LATE_EXIT_SCAN records back; a joined leaf counts as the two records it
    # stands for (``first``: the position of each record's first one among them).
    first = None
    if joined is not None and joined.any():
        w = joined[order].astype(np.int64)
        w += 1
        first = np.cumsum(w)
        first -= w
        del w
    pairs: list[tuple[int, int, np.ndarray]] = []
    paired = set()
    for x, i in zip(X.tolist(), pos_x.tolist()):
        d = int(depth[x])
        t = task[x]
        lo = max(0, i - _LATE_EXIT_SCAN + 1) if first is None else \
            int(np.searchsorted(first, first[i] - _LATE_EXIT_SCAN + 1))
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
        if dur is not None and len(between):
            b_rec = np.where(kind[between] == K_ENTRY, out.exit_of[between], between)
            inside = float(np.nansum(np.where(b_rec >= 0, dur[np.maximum(b_rec, 0)], np.nan)))
            if dur[x] == dur[x] and dur[x] >= inside:
                out.parent[between] = e
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
        cand = ((nsg >= 0) & ((K[nsv] == K_ENTRY) | (K[nsv] == K_LEAF))
                & (D[nsv] == D[gap] - 1))
        gap, nsg = gap[cand], nsg[cand]
        if len(gap):
            # The late entry (or leaf) must be complete and last at least as long as the calls
            # it adopts. (exit records from out.exit_of, which holds the pairs found above)
            g_rec = np.where(K[gap] == K_ENTRY, out.exit_of[calls[gap]], calls[gap])
            g_dur = np.where(g_rec >= 0, dur[np.maximum(g_rec, 0)], np.nan)
            uq, inv = np.unique(nsg, return_inverse=True)
            inside = np.bincount(inv, weights=np.nan_to_num(g_dur), minlength=len(uq))
            ex_u = np.where(K[uq] == K_LEAF, calls[uq], out.exit_of[calls[uq]])
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


