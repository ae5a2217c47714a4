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
  (``no-exit``); the new call's parent is the open call on top of the stack if that is at depth
  ``d − 1``; an entry is then pushed, a leaf is complete at once.
* exit at depth ``d``: open calls deeper than ``d`` are closed (``no-exit``); if the top is at
  depth ``d`` (and, when the exit names its function, has that function) it is completed by
  this exit; otherwise the exit is a call of its own (``no-entry``: wrapped buffer, trace
  started mid-call, ``tracing_thresh``), whose parent is found like an entry's.
* calls still without a parent at depth ``d > 0`` get, in a backward pass, the ``no-entry``
  call at depth ``d − 1`` that closes around them (so ``tracing_thresh`` traces and the
  leading part of wrapped buffers still form trees).
* an event/comment line belongs to the innermost call open in its task at that point.

A parent is always exactly one level up: ``depth(parent) == depth − 1``.

Most tasks in real traces are *regular* (every step between consecutive lines is one a
well-formed function_graph output can take); those are resolved with vectorised numpy
look-ups. Tasks with irregular steps (lost events, thresholds, mangled input) go through the
sequential stack algorithm above, which defines the semantics; the tests check both agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .lineparse import event_name
from .records import (
    K_COMMENT, K_ENTRY, K_EXIT, K_IRQ_ENTER, K_IRQ_EXIT, K_LEAF, K_SWITCH, LineRecords,
)

__all__ = ["build_tables", "CALL_COLUMNS", "EVENT_COLUMNS", "STATUSES", "link_records"]

STATUSES = ["complete", "no-exit", "no-entry"]

CALL_COLUMNS = ["func", "module", "pid", "comm", "cpu", "exit_cpu", "depth", "parent", "root",
                "start_s", "end_s", "duration_us", "self_us", "n_children", "status", "in_irq",
                "retval", "line"]
EVENT_COLUMNS = ["line", "cpu", "pid", "comm", "ts_s", "event", "text", "call"]


# ---------------------------------------------------------------------------------------------
# Tasks

def fill_tasks(recs: LineRecords) -> tuple[np.ndarray, np.ndarray]:
    """pid and comm code of every record, filling unknown ones from task-switch blocks."""
    cols = recs.cols
    pid = cols["pid"].astype(np.int32, copy=True)
    comm = cols["comm"].astype(np.int32, copy=True)
    kind = cols["kind"]
    cpu = cols["cpu"]
    unknown = (pid < 0) & (kind != K_SWITCH)
    if not unknown.any() or not recs.switches:
        return pid, comm
    sw_idx = np.flatnonzero(kind == K_SWITCH)
    comm_codes: dict[str, int] = {name: i for i, name in enumerate(recs.comms)}
    lines = cols["line"]
    from_pid = np.array([recs.switches[int(lines[i])][1] for i in sw_idx], dtype=np.int32)
    from_comm = np.array([comm_codes.get(recs.switches[int(lines[i])][0], -1) for i in sw_idx],
                         dtype=np.int32)
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
        first = np.flatnonzero(sw_idx == on_cpu[0])[0]
        pid[sel[before]] = from_pid[first]
        comm[sel[before]] = from_comm[first]
    return pid, comm


def task_keys(pid: np.ndarray, cpu: np.ndarray) -> np.ndarray:
    """One int64 key per task: the pid, or a negative per-CPU key for pid 0 / unknown."""
    key = pid.astype(np.int64)
    per_cpu = pid <= 0
    key[per_cpu] = -(1 + 2 * (cpu[per_cpu].astype(np.int64) + 1) + (pid[per_cpu] < 0))
    return key


# ---------------------------------------------------------------------------------------------
# Linking records into calls

class Links:
    """Result of linking, indexed by record: see :func:`link_records`."""

    __slots__ = ("is_start", "exit_of", "parent", "owner")

    def __init__(self, n: int):
        self.is_start = np.zeros(n, dtype=bool)      # record starts a call
        self.exit_of = np.full(n, -1, dtype=np.int64)  # entry record → its exit record
        self.parent = np.full(n, -1, dtype=np.int64)   # start record → parent's start record
        self.owner = np.full(n, -1, dtype=np.int64)    # comment record → innermost call's start


def _names_ok(func: np.ndarray, module: np.ndarray, e, x) -> Any:
    """Whether exit record(s) ``x`` may close entry record(s) ``e`` (a bare ``}`` always may)."""
    fx = func[x]
    mx = module[x]
    return (fx < 0) | ((func[e] == fx) & ((mx < 0) | (module[e] == mx)))


def _link_sequential(idx: np.ndarray, kind: np.ndarray, depth: np.ndarray, func: np.ndarray,
                     module: np.ndarray, out: Links) -> None:
    """The defining stack algorithm (module docstring) for the records ``idx`` of one task."""
    is_start, exit_of, parent, owner = out.is_start, out.exit_of, out.parent, out.owner
    kinds = kind[idx].tolist()
    depths = depth[idx].tolist()
    funcs = func[idx].tolist()
    mods = module[idx].tolist()
    ridx = idx.tolist()
    n = len(ridx)
    start = [False] * n
    par = [-1] * n      # positions within idx
    own = [-1] * n
    ex = [-1] * n
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
            if stack and depths[stack[-1]] == d - 1:
                par[p] = stack[-1]
        else:
            while stack and depths[stack[-1]] >= d:
                stack.pop()
            start[p] = True
            if stack and depths[stack[-1]] == d - 1:
                par[p] = stack[-1]
            if k == K_ENTRY:
                stack.append(p)
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
        if start[p] and par[p] < 0 and rstack and depths[rstack[-1]] == d - 1:
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
        if ex[p] >= 0:
            exit_of[r] = ridx[ex[p]]


def _regular_steps(K: np.ndarray, D: np.ndarray, same_task: np.ndarray) -> np.ndarray:
    """For consecutive call records of one task: is the step one well-formed output can take?"""
    pk, nk = K[:-1], K[1:]
    pd_, nd = D[:-1].astype(np.int32), D[1:].astype(np.int32)
    n_call = nk != K_EXIT
    ok = np.where(pk == K_ENTRY,
                  np.where(n_call, nd == pd_ + 1, nd == pd_),
                  np.where(n_call, nd == pd_, nd == pd_ - 1))
    return ok | ~same_task


def link_records(kind: np.ndarray, depth: np.ndarray, func: np.ndarray, module: np.ndarray,
                 task: np.ndarray, *, force_sequential: bool = False) -> Links:
    """Link records into calls (see module docstring). Arrays are per record, in line order."""
    n = len(kind)
    out = Links(n)
    relevant = np.flatnonzero((kind == K_ENTRY) | (kind == K_LEAF) | (kind == K_EXIT)
                              | (kind == K_COMMENT))
    if not len(relevant):
        return out
    # Records of each task together, in line order.
    order = relevant[np.argsort(task[relevant], kind="stable")]
    T_all = task[order]
    is_call = kind[order] != K_COMMENT
    calls = order[is_call]
    T = T_all[is_call]
    K = kind[calls]
    D = depth[calls].astype(np.int64)
    bounds = np.flatnonzero(np.diff(T)) + 1 if len(T) else np.array([], dtype=np.int64)
    if force_sequential:
        irregular_tasks = np.unique(T_all)
    else:
        same = np.ones(max(len(T) - 1, 0), dtype=bool)
        same[bounds - 1] = False
        ok = _regular_steps(K, D, same) if len(T) > 1 else np.ones(0, dtype=bool)
        bad = (~ok) | (D[1:] < 0) if len(T) > 1 else np.zeros(0, dtype=bool)
        irregular_tasks = np.unique(T[1:][bad])
        if len(D) and D[0] < 0:
            irregular_tasks = np.union1d(irregular_tasks, T[:1])
    reg_mask_calls = ~np.isin(T, irregular_tasks)
    if reg_mask_calls.any():
        bad_names = _link_regular(calls[reg_mask_calls], T[reg_mask_calls], K[reg_mask_calls],
                                  D[reg_mask_calls], kind, func, module, out)
        if len(bad_names):
            irregular_tasks = np.union1d(irregular_tasks, bad_names)
            # Undo what the vectorised pass wrote for those tasks; they are redone below.
            redo = calls[np.isin(T, bad_names)]
            out.is_start[redo] = False
            out.exit_of[redo] = -1
            out.parent[redo] = -1
    # Comments of regular tasks.
    comments = order[~is_call]
    if len(comments):
        Tc = T_all[~is_call]
        reg_c = ~np.isin(Tc, irregular_tasks)
        if reg_c.any():
            _owners_regular(comments[reg_c], Tc[reg_c], calls, T, kind, out)
    # ``order`` is sorted by task key (stable, so line order within a task).
    for t in irregular_tasks:
        lo = np.searchsorted(T_all, t, side="left")
        hi = np.searchsorted(T_all, t, side="right")
        _link_sequential(order[lo:hi], kind, depth, func, module, out)
    return out


def _link_regular(rec: np.ndarray, T: np.ndarray, K: np.ndarray, D: np.ndarray,
                  kind: np.ndarray, func: np.ndarray, module: np.ndarray, out: Links) -> np.ndarray:
    """Vectorised linking of regular tasks. Returns the task keys whose exit names disagree."""
    m = len(rec)
    s = np.arange(m, dtype=np.int64)
    # Dense task ids so the group key stays small.
    _, Tid = np.unique(T, return_inverse=True)
    Tid = Tid.astype(np.int64)
    width = int(D.max()) + 2 if m else 2
    G = Tid * width + (D + 1)
    o = np.argsort(G, kind="stable")         # grouped by (task, depth), line order within
    Go = G[o]
    key = Go * (m + 1) + s[o]                # sorted ascending
    # Next record at the same depth in the same task.
    nxt = np.full(m, -1, dtype=np.int64)
    same_next = Go[1:] == Go[:-1]
    nxt[o[:-1][same_next]] = o[1:][same_next]
    is_entry = K == K_ENTRY
    ent = np.flatnonzero(is_entry)
    nx = nxt[ent]
    has = nx >= 0
    matched_e = ent[has]
    matched_x = nx[has]
    # In a regular task the next record at an entry's depth is always its exit.
    ok_names = _names_ok(func, module, rec[matched_e], rec[matched_x])
    bad = ~ok_names
    bad_tasks = np.unique(T[matched_e[bad]]) if bad.any() else np.array([], dtype=T.dtype)
    exit_matched = np.zeros(m, dtype=bool)
    exit_matched[matched_x] = True
    start = (K != K_EXIT) | ~exit_matched
    out.exit_of[rec[matched_e]] = rec[matched_x]
    out.is_start[rec[start]] = True
    # Forward parent: the last record one level up before it, if that is an entry.
    st = np.flatnonzero(start & (D > 0))
    if len(st):
        gup = Tid[st] * width + D[st]      # group (task, depth - 1)
        q = gup * (m + 1) + s[st]
        p = np.searchsorted(key, q, side="left") - 1
        valid = p >= 0
        pv = np.where(valid, p, 0)
        valid &= Go[pv] == gup
        cand = o[pv]
        fwd = valid & (K[cand] == K_ENTRY)
        out.parent[rec[st[fwd]]] = rec[cand[fwd]]
        # Backward parent: the next record one level up after it, if that is a no-entry exit.
        rest = st[~fwd]
        if len(rest):
            gup = Tid[rest] * width + D[rest]
            q = gup * (m + 1) + s[rest]
            p = np.searchsorted(key, q, side="right")
            valid = p < m
            pv = np.where(valid, p, 0)
            valid &= Go[pv] == gup
            cand = o[pv]
            back = valid & (K[cand] == K_EXIT) & start[cand]
            out.parent[rec[rest[back]]] = rec[cand[back]]
    return bad_tasks


def _owners_regular(crec: np.ndarray, Tc: np.ndarray, calls: np.ndarray, T: np.ndarray,
                    kind: np.ndarray, out: Links) -> None:
    """Innermost open call of each comment record (regular tasks)."""
    # Position of each comment among its task's call records: last call record before it.
    ckey_calls = np.lexsort((calls, T))
    Ts = T[ckey_calls]
    Rs = calls[ckey_calls]
    # Search by (task, record index).
    tk = np.unique(np.concatenate([Ts, Tc]), return_inverse=True)[1]
    tk_calls = tk[: len(Ts)].astype(np.int64)
    tk_com = tk[len(Ts):].astype(np.int64)
    big = int(max(Rs.max() if len(Rs) else 0, crec.max()) + 1)
    key = tk_calls * big + Rs
    qk = tk_com * big + crec
    p = np.searchsorted(key, qk) - 1
    has_prev = (p >= 0)
    pv = np.where(has_prev, p, 0)
    has_prev &= tk_calls[pv] == tk_com
    prev = Rs[pv]
    pk = kind[prev]
    # Forward owner: prev itself if an entry; else the parent of prev's call.
    prev_call = np.where((pk == K_EXIT) & ~out.is_start[prev], -1, prev)
    # For a matched exit, the call is its entry: find it through exit_of.
    matched_exit = has_prev & (pk == K_EXIT) & ~out.is_start[prev]
    if matched_exit.any():
        entries = np.flatnonzero(out.exit_of >= 0)
        ex_to_entry = dict(zip(out.exit_of[entries].tolist(), entries.tolist()))
        prev_call[matched_exit] = [ex_to_entry[int(x)] for x in prev[matched_exit]]
    fwd_owner = np.where(pk == K_ENTRY, prev, out.parent[np.maximum(prev_call, 0)])
    fwd_owner = np.where(has_prev, fwd_owner, -1)
    # Backward owner when nothing is open going forward.
    nxt_p = p + 1
    has_next = nxt_p < len(Rs)
    nv = np.where(has_next, nxt_p, 0)
    has_next &= tk_calls[nv] == tk_com
    nxt = Rs[nv]
    nk = kind[nxt]
    back_owner = np.where((nk == K_EXIT) & out.is_start[nxt], nxt, out.parent[nxt])
    back_owner = np.where(has_next, back_owner, -1)
    out.owner[crec] = np.where(fwd_owner >= 0, fwd_owner, back_owner)


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


def _categorical(codes: np.ndarray, names: list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype(np.int32, copy=False), categories=pd.Index(names, dtype=object))


def build_tables(recs: LineRecords, *, force_sequential: bool = False
                 ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The calls table, the events table and linking statistics from parsed records.

    See :class:`ftracekit.Trace` for the columns and their units.
    """
    cols = recs.cols
    kind = cols["kind"]
    cpu = cols["cpu"]
    depth = cols["depth"]
    func = cols["func"]
    module = cols["module"]
    pid, comm = fill_tasks(recs)
    task = task_keys(pid, cpu)
    links = link_records(kind, depth, func, module, task, force_sequential=force_sequential)

    S = np.flatnonzero(links.is_start)
    n_calls = len(S)
    call_id = np.full(len(kind), -1, dtype=np.int64)
    call_id[S] = np.arange(n_calls, dtype=np.int64)
    k_s = kind[S]
    exit_rec = np.where(k_s == K_ENTRY, links.exit_of[S], S)
    has_exit = exit_rec >= 0
    xr = np.where(has_exit, exit_rec, 0)
    status = np.where(k_s == K_EXIT, 2, np.where(has_exit, 0, 1)).astype(np.int8)
    dur = np.where(has_exit, cols["dur"][xr], np.nan)
    ts = cols["ts"]
    start_s = np.where(k_s == K_EXIT, ts[S] - dur * 1e-6, ts[S])
    end_s = np.where(k_s == K_ENTRY, np.where(has_exit, ts[xr], np.nan),
                     np.where(k_s == K_EXIT, ts[S], ts[S] + dur * 1e-6))
    # The exit line of a complete call may lack a timestamp the entry had (mixed layouts).
    fix = np.isnan(end_s) & has_exit
    end_s[fix] = start_s[fix] + dur[fix] * 1e-6
    parent_rec = links.parent[S]
    parent = np.where(parent_rec >= 0, call_id[np.maximum(parent_rec, 0)], -1)
    exit_cpu = np.where(has_exit, cpu[xr], -1).astype(np.int16)
    has_ret = has_exit & cols["has_ret"][xr]
    retval = pd.arrays.IntegerArray(np.where(has_ret, cols["retval"][xr], 0),
                                    ~has_ret)
    # Children: counts and summed durations.
    has_parent = parent >= 0
    pidx = parent[has_parent]
    n_children = np.bincount(pidx, minlength=n_calls).astype(np.int32)
    child_sum = np.bincount(pidx, weights=np.nan_to_num(dur[has_parent]), minlength=n_calls)
    self_us = dur - child_sum
    # Root: follow parents up (pointer jumping).
    root = np.where(has_parent, parent, np.arange(n_calls))
    while True:
        nr = root[root]
        if np.array_equal(nr, root):
            break
        root = nr
    in_irq = _in_irq(kind, cpu)[S]

    calls = pd.DataFrame({
        "func": _categorical(func[S], recs.funcs),
        "module": _categorical(module[S], recs.modules),
        "pid": pid[S],
        "comm": _categorical(comm[S], recs.comms),
        "cpu": cpu[S],
        "exit_cpu": exit_cpu,
        "depth": depth[S],
        "parent": parent,
        "root": root,
        "start_s": start_s,
        "end_s": end_s,
        "duration_us": dur,
        "self_us": self_us,
        "n_children": n_children,
        "status": pd.Categorical.from_codes(status, categories=STATUSES),
        "in_irq": in_irq,
        "retval": retval,
        "line": cols["line"][S],
    })
    calls.index.name = "call"

    C = np.flatnonzero(kind == K_COMMENT)
    lines_c = cols["line"][C]
    texts = [recs.comments.get(int(ln), "") for ln in lines_c]
    owner = links.owner[C]
    events = pd.DataFrame({
        "line": lines_c,
        "cpu": cpu[C],
        "pid": pid[C],
        "comm": _categorical(comm[C], recs.comms),
        "ts_s": ts[C],
        "event": pd.Categorical([event_name(t) for t in texts]),
        "text": pd.array(texts, dtype=object),
        "call": np.where(owner >= 0, call_id[np.maximum(owner, 0)], -1),
    })
    stats = {
        "calls": n_calls,
        "complete": int((status == 0).sum()),
        "no_exit": int((status == 1).sum()),
        "no_entry": int((status == 2).sum()),
        "tasks": int(len(np.unique(task[(kind == K_ENTRY) | (kind == K_LEAF) | (kind == K_EXIT)]))),
    }
    return calls, events, stats
