"""Linked records → the calls and events tables (pandas): columns, tasks, interrupt context.

The column contract is documented on :class:`ftracekit.Trace`. Linking itself is in
:mod:`ftracekit.calltree.link`.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd

from .._concurrent import background
from .._memory import release_memory as _release_memory
from ..read import (
    K_COMMENT, K_ENTRY, K_EXIT, K_IRQ_ENTER, K_IRQ_EXIT, K_LEAF, K_SWITCH, LineRecords, event_name,
)
from ._vectorised import _roots_and_interrupts
from .interrupts import fit_interrupts, irq_entry_functions
from .link import _CHUNK, link_records

__all__ = ["build_tables", "fill_tasks", "task_keys", "CALL_COLUMNS", "EVENT_COLUMNS", "STATUSES"]

STATUSES = ["complete", "no-exit", "no-entry"]

CALL_COLUMNS = ["func", "module", "pid", "comm", "cpu", "exit_cpu", "depth", "parent", "root",
                "start_s", "end_s", "duration_us", "self_us", "n_children", "status", "in_irq",
                "retval", "line", "args"]
EVENT_COLUMNS = ["line", "cpu", "pid", "comm", "ts_s", "event", "text", "call", "lat_flags"]

#: Display name of a call whose function the trace does not name (``func`` is NA): an exit


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


def _all_default(col: np.ndarray, value: Any) -> bool:
    """Whether a record column is a compact constant view (see
    :func:`ftracekit.read.records.concat_columns`) of ``value``, or empty."""
    return not len(col) or (col.strides[0] == 0 and bool(col[0] == value))


def _categorical(codes: np.ndarray, names: list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype(np.int32, copy=False), categories=pd.Index(names, dtype=object))


def _line_texts(lines: np.ndarray, texts: dict[int, str]) -> pd.Categorical:
    """The text of each line number in ``lines`` from a line → text table (categorical with
    object categories, NaN where the table has none): funcgraph-args texts of calls, latency
    flags of event lines.

    Categorical: most traces have no args (codes only, one byte per call) and in those that do,
    the same text repeats; :func:`ftracekit.net.values` parses each distinct text once.
    Column-wise (sorted keys + searchsorted): no per-line Python.
    """
    n = len(lines)
    if not texts:
        return pd.Categorical.from_codes(np.full(n, -1, dtype=np.int8),
                                         categories=pd.Index([], dtype=object))
    keys = np.fromiter(texts.keys(), dtype=np.int64, count=len(texts))
    vals = np.array(list(texts.values()), dtype=object)
    order = np.argsort(keys, kind="stable")
    keys, vals = keys[order], vals[order]
    codes_t, cats = pd.factorize(vals)
    pos = np.searchsorted(keys, lines)
    pos_c = np.minimum(pos, len(keys) - 1)
    hit = keys[pos_c] == lines
    codes = np.where(hit, codes_t[pos_c], -1).astype(np.int32)
    return pd.Categorical.from_codes(codes, categories=pd.Index(np.asarray(cats, dtype=object),
                                                                dtype=object))


def _event_names(texts: list[str]) -> pd.Categorical:
    """:func:`ftracekit.read.event_name` of every text, each distinct prefix checked once."""
    prefixes = [p[0] if p[1] else "" for p in map(_partition, texts)]
    codes, cats = pd.factorize(np.array(prefixes, dtype=object))
    names = [event_name(c + ": ") for c in cats]
    sorted_names = sorted(set(names))          # (categories sorted, as pd.Categorical does)
    at = {nm: i for i, nm in enumerate(sorted_names)}
    code_of = np.array([at[nm] for nm in names] + [-1], dtype=np.int32)
    return pd.Categorical.from_codes(code_of[codes], categories=pd.Index(sorted_names))


def _partition(text: str) -> tuple[str, str, str]:
    return text.partition(": ")


def _summed_children(parent: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per call, the sum of ``weights`` (durations, NaN as 0) over its children."""
    has = parent >= 0
    return np.bincount(parent[has], weights=weights[has], minlength=len(parent))


def build_tables(recs: LineRecords, *, force_sequential: bool = False, consume: bool = False,
                 exit_lines: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The calls table, the events table and linking statistics from parsed records.

    See :class:`ftracekit.Trace` for the columns and their units. ``consume``: release the
    record columns as soon as they are no longer needed (``recs.cols`` is emptied), which
    keeps the peak memory of :func:`ftracekit.load` low. ``exit_lines``: add
    ``stats["exit_line"]``, the line of each call's exit record (-1 without one; the streaming
    conversion of :mod:`ftracekit.dataset` uses it to find where a trace may be cut).
    """
    cols = recs.cols
    take = cols.pop if consume else cols.get
    kind = cols["kind"]
    pid, comm = fill_tasks(recs)
    if consume:
        cols.pop("pid")
        cols.pop("comm")
    ends = cols.get("end_ts")          # (binary input: entry/exit pairs joined into leaves)
    links = link_records(kind, cols["depth"], cols["func"], cols["module"],
                         task_keys(pid, cols["cpu"]), force_sequential=force_sequential,
                         dur=cols["dur"], joined=None if ends is None else ~np.isnan(ends))
    del ends
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
    texts = list(map(recs.comments.get, lines_c.tolist(), repeat("")))
    lat_flags = _line_texts(lines_c, recs.flags)
    if consume:
        # (their dicts cost more than the strings of an events-only trace: release them
        # before the text column is copied into the table)
        recs.comments, recs.flags = {}, {}
    owner = links.owner[C]
    links.owner = None  # type: ignore[assignment]
    events = pd.DataFrame({
        "line": lines_c,
        "cpu": cols["cpu"][C],
        "pid": pid[C],
        "comm": _categorical(comm[C], recs.comms),
        "ts_s": cols["ts"][C],
        "event": _event_names(texts),
        "text": pd.array(texts, dtype=object),
        "call": np.where(owner >= 0, call_id[np.maximum(owner, 0)], -1).astype(np.int64),
        "lat_flags": lat_flags,
    })
    del C, lines_c, texts, owner, lat_flags

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
    is_entry_fn = irq_entry_functions(recs.funcs)
    if is_entry_fn.any():
        codes = cols["func"][S]
        interrupted |= is_entry_fn[codes] & (codes >= 0)
        del codes
    depth_c = take("depth")[S]
    # Root (the outermost ancestor) and interrupt context (calls that interrupted another, seen
    # from their depth, or of the kernel's interrupt entry functions, and everything below
    # them ran in interrupt context even where the text has no irq arrows).
    roots_job = background(_roots_and_interrupts, parent, depth_c, interrupted, size=n_calls)
    del interrupted

    # Call columns, each record column released after its last use.
    data: dict[str, Any] = {}
    data["func"] = _categorical(take("func")[S], recs.funcs)
    data["module"] = _categorical(take("module")[S], recs.modules)
    data["depth"] = depth_c
    del depth_c
    rec_line = cols["line"] if exit_lines else None
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
    is_leaf = k_s == K_LEAF
    ends = take("end_ts", None)
    if ends is not None:
        # A leaf joined from an entry and an exit event (binary input) ends at its exit
        # event, as the pair did; a leaf line ends after its duration.
        ends = ends[S]
        joined = ~np.isnan(ends)
        end_s[joined] = ends[joined]
        is_leaf &= ~joined
        del ends, joined
    np.add(end_s, d6, out=end_s, where=is_leaf)
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
    exit_line = np.where(has_exit, rec_line[xr], -1) if rec_line is not None else None
    del rec_line
    del rv, hr, xr, has_exit
    del S, has_parent
    # An entry line recorded late (an interrupt hit between the call and its entry event) is
    # printed after the interrupt's calls, which it adopted: it began no later than they did
    # (a late leaf then ends its duration after that).
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
        late = np.unique(np.concatenate(to))
        np.fmin.at(start_s, np.concatenate(to), np.concatenate(value))
        late = late[is_leaf[late]]
        end_s[late] = start_s[late] + dur[late] * 1e-6
        del late
    del line, to, value, is_leaf
    root, interrupted = roots_job.result()
    del roots_job
    # Children's summed durations; interrupts go to the call whose measured time contains
    # them (see calltree.interrupts), which changes them only where a call moved.
    weights = np.nan_to_num(dur)
    child_sum = _summed_children(parent, weights)
    if fit_interrupts(parent, data["depth"], dur, start_s, end_s, interrupted, child_sum):
        root, interrupted = _roots_and_interrupts(parent, data["depth"], interrupted)
        child_sum = _summed_children(parent, weights)
    data["in_irq"] = data["in_irq"] | interrupted
    del interrupted, weights
    n_children = np.bincount(parent[parent >= 0], minlength=n_calls).astype(np.int32)
    self_us = dur - child_sum
    del child_sum
    data["args"] = _line_texts(data["line"], recs.args)
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
    if exit_line is not None:
        stats["exit_line"] = exit_line
    return calls, events, stats
