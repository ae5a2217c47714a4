"""Steps: every appearance of an skb in a trace — calls with an ``skb=`` argument
(funcgraph-args) and events with ``skbaddr=`` — sorted by (address, time), with the context
each ran in and its **generation** (see :mod:`ftracekit.net.packets` for the rules).

Built in two levels so that million-step traces stay cheap. :func:`step_index` (cached on the
trace) holds only what every packet view needs — the sorted addresses and times, the
generations and where each step comes from (a :class:`~._scan.Part` and a position in it) —
and reads the other columns from the calls and events tables at the steps it is asked for,
a bounded chunk at a time. :func:`steps` (the whole table) and the journey of one packet are
built from it on demand; :func:`ftracekit.net.packets.packets` reduces it chunk by chunk.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import pandas as pd

from ._columns import cat
from ._scan import Part, call_part, event_part
from ._skb import (DROP_EVENTS, DROP_FUNCS, FREE_EVENTS, FREE_FUNCS, RX_SOFTIRQ_FUNCS,
                   SOFTIRQ_FUNCS, NoPacketsError, _HASH_MAX, _KERNEL_MIN)

if TYPE_CHECKING:  # pragma: no cover
    from ..trace import Trace

__all__ = ["steps", "step_index", "StepIndex", "generations", "generations_sequential",
           "NoPacketsError", "FREE_FUNCS", "DROP_FUNCS", "FREE_EVENTS", "DROP_EVENTS",
           "SOFTIRQ_FUNCS", "RX_SOFTIRQ_FUNCS", "_HASH_MAX", "_KERNEL_MIN"]

_CTX = np.array(["task", "softirq", "irq"], dtype=object)
_TASK, _SOFTIRQ, _IRQ = 0, 1, 2
#: Steps per chunk of the chunked passes (their temporaries stay a few MB each).
CHUNK = 1 << 20


def _union(cat_lists: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The categories of several parts in one list (the first part's, then the new ones of the
    next, in order) and, per part, its codes' positions in that list (a last −1 for code −1)."""
    out: list[Any] = []
    at: dict[Any, int] = {}
    maps = []
    for cats in cat_lists:
        m = np.empty(len(cats) + 1, dtype=np.int32)
        for i, c in enumerate(cats):
            m[i] = at.setdefault(c, len(out))
            if m[i] == len(out):
                out.append(c)
        m[-1] = -1
        maps.append(m)
    return np.array(out, dtype=object), maps


class StepIndex:
    """The steps of a trace sorted by (address, time, line), and their generations.

    ``key`` (uint64, sorted), ``ts`` (s; a call's start, NaN where not seen), ``gen`` (int32),
    and where each step comes from: ``pos`` (its position in its part; int32 for one part)
    and ``part`` (int8 index into ``parts``; None when there is one part). ``names``, ``devs``, ``comms``:
    the text columns' categories over all parts; :meth:`take` reads any part column at a
    range of steps.
    """

    def __init__(self, trace: "Trace", parts: list[Part]) -> None:
        self.calls = trace.calls
        self.parts = parts
        self.names, name_maps = _union([p.name_cats for p in parts])
        self.devs, dev_maps = _union([p.dev_cats for p in parts])
        self.comms, comm_maps = _union([p.comm_cats for p in parts])
        for p, nm, dm, cm in zip(parts, name_maps, dev_maps, comm_maps):
            p.name_g, p.dev_g, p.comm_g = nm, dm, cm
        self._tasks: dict[int, int] = {}               # (comm code << 32 | pid) → task code
        self._task_at: dict[str, int] = {}
        self.task_names: list[str] = []
        self.part: np.ndarray | None = None
        if len(parts) == 1:
            p0 = parts[0]
            order = self._single_order(p0)
            self.key = p0.key[order]
            self.ts = np.empty(len(order))
            for lo in range(0, len(order), CHUNK):       # (no copy in the part's order)
                self.ts[lo:lo + CHUNK] = p0.ts[p0.rows[order[lo:lo + CHUNK]]]
            self.pos = order.astype(np.int32) if len(order) < 2**31 - 1 else order
            if not p0.is_call:
                p0.key = None        # (sorted in self.key; only calls' keys are read again)
        else:
            key = np.concatenate([p.key for p in parts])
            ts = np.concatenate([p.ts[p.rows] for p in parts])
            order = _by_key_time(key, ts, np.concatenate([p.line[p.rows] for p in parts]))
            self.key = key[order]
            self.ts = ts[order]
            del key, ts
            offs = np.cumsum([0] + [len(p) for p in parts])
            self.part = (np.searchsorted(offs[1:], order, side="right")).astype(np.int8)
            self.pos = order - offs[self.part]
        del order
        self.gen = np.empty(len(self.key), dtype=np.int32)
        for lo, hi in self.chunks():
            self.gen[lo:hi] = generations(self.key[lo:hi], self.ts[lo:hi], self.pid(lo, hi),
                                          *self.frees(lo, hi))

    def __len__(self) -> int:
        return len(self.key)

    @staticmethod
    def _single_order(p: Part) -> np.ndarray:
        """The permutation sorting one part's steps by (key, ts, line): one stable sort on the
        key when the steps already come in (ts, line) order (a trace's own order, as events
        usually are; checked a chunk at a time)."""
        n = len(p)
        nan_last = bool(np.isnan(p.ts[p.rows]).any()) if p.is_call else False
        if not nan_last:
            ordered = True
            for lo in range(0, max(n - 1, 0), CHUNK):
                hi = min(lo + CHUNK, n - 1)                 # pairs (i, i + 1), i in [lo, hi)
                t = p.ts[p.rows[lo:hi + 1]]
                dt = t[1:] - t[:-1]
                tie = lo + np.flatnonzero(dt == 0)
                if (dt < 0).any() or (len(tie) and (p.line[p.rows[tie + 1]]
                                                    <= p.line[p.rows[tie]]).any()):
                    ordered = False
                    break
            if ordered:
                return np.argsort(p.key, kind="stable")
        return _by_key_time(p.key, p.ts[p.rows], p.line[p.rows])

    # -- reading columns at steps ----------------------------------------------------------

    def chunks(self, size: int = CHUNK) -> Iterator[tuple[int, int]]:
        """Ranges ``[lo, hi)`` of about ``size`` steps that never split an address."""
        key, n, lo = self.key, len(self.key), 0
        while lo < n:
            hi = lo + size
            if hi >= n:
                hi = n
            else:
                hi = int(np.searchsorted(key, key[hi], side="left"))
                if hi <= lo:
                    hi = int(np.searchsorted(key, key[lo], side="right"))
            yield lo, hi
            lo = hi

    def take(self, get: Callable[[Part, np.ndarray], np.ndarray], lo: int | np.ndarray,
             hi: int | None = None) -> np.ndarray:
        """``get(part, positions)`` for the steps ``[lo, hi)`` (or at the step indices
        ``lo``), in step order."""
        sel = slice(lo, hi) if hi is not None else np.asarray(lo, dtype=np.int64)
        pos = self.pos[sel]
        if self.part is None:
            return get(self.parts[0], pos)
        pp = self.part[sel]
        got = [(m, get(p, pos[m])) for i, p in enumerate(self.parts) if (m := pp == i).any()]
        if not got:
            return get(self.parts[0], pos)
        out = np.empty(len(pos), dtype=np.result_type(*[v for _m, v in got]))
        for m, v in got:
            out[m] = v
        return out

    # (each reads the steps [lo, hi), or at the step indices lo when hi is None)

    def name_codes(self, lo: Any, hi: int | None = None) -> np.ndarray:
        """Codes into ``names`` (int32; −1: none)."""
        return self.take(lambda p, i: p.name_g[p.name_codes[i]], lo, hi)

    def dev_codes(self, lo: Any, hi: int | None = None) -> np.ndarray:
        """Codes into ``devs`` (int32; −1: none)."""
        return self.take(lambda p, i: p.dev_g[p.dev_codes[i]] if p.dev_codes is not None
                         else np.full(len(i), -1, dtype=np.int32), lo, hi)

    def comm_codes(self, lo: Any, hi: int | None = None) -> np.ndarray:
        """Codes into ``comms`` (−1: none)."""
        return self.take(lambda p, i: p.comm_g[p.comm_codes[p.rows[i]]], lo, hi)

    def pid(self, lo: Any, hi: int | None = None) -> np.ndarray:
        return self.take(lambda p, i: p.pid[p.rows[i]].astype(np.int64), lo, hi)

    def is_call(self, lo: Any, hi: int | None = None) -> np.ndarray:
        return self.take(lambda p, i: np.full(len(i), p.is_call), lo, hi)

    def is_free(self, lo: Any, hi: int | None = None) -> np.ndarray:
        return self.take(lambda p, i: p.free_of[p.name_codes[i]], lo, hi)

    def is_drop(self, lo: Any, hi: int | None = None) -> np.ndarray:
        return self.take(lambda p, i: p.drop_of[p.name_codes[i]], lo, hi)

    def end_s(self, lo: Any, hi: int | None = None) -> np.ndarray:
        """A call's end, an event's time (s)."""
        return self.take(lambda p, i: (p.end if p.is_call else p.ts)[p.rows[i]], lo, hi)

    def cpu(self, lo: Any, hi: int | None = None) -> np.ndarray:
        return self.take(lambda p, i: p.cpu[p.rows[i]].astype(np.int64), lo, hi)

    def call(self, lo: Any, hi: int | None = None) -> np.ndarray:
        """The call id: a call's own, an event's enclosing call (−1: outside any)."""
        return self.take(lambda p, i: p.call[p.rows[i]], lo, hi)

    def drop_values(self, which: str, lo: Any, hi: int | None = None) -> np.ndarray:
        """``reason`` or ``location`` of the steps (None where not a drop or not printed)."""
        return self.take(lambda p, i: p.at_drops(i, getattr(p, which)), lo, hi)

    def task_codes(self, lo: int, hi: int) -> np.ndarray:
        """Codes into :attr:`task_names` (``comm-pid``; −1 where the pid is < 0), the names
        made once per distinct task as the chunks meet them."""
        packed = (self.comm_codes(lo, hi).astype(np.int64) << 32) | \
            (self.pid(lo, hi) & 0xFFFFFFFF)
        inv, uniq = pd.factorize(packed)
        comms = np.append(self.comms, None)              # (code −1 → the last)
        codes = np.empty(len(uniq), dtype=np.int64)
        for j, u in enumerate(uniq.tolist()):
            c = self._tasks.get(u)
            if c is None:
                comm, pid = comms[u >> 32], np.int32(np.uint32(u & 0xFFFFFFFF))
                name = f"{comm if isinstance(comm, str) else '?'}-{pid}" if pid >= 0 else None
                if name is None:
                    c = -1
                else:
                    c = self._task_at.setdefault(name, len(self.task_names))
                    if c == len(self.task_names):
                        self.task_names.append(name)
                self._tasks[u] = c
            codes[j] = c
        return codes[inv]

    def frees(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """``(is_free, free_end)`` of the steps ``[lo, hi)``: whether each frees its address and
        how long the free holds it (s): a call free to the call's end (∞ where its exit was
        not seen), an event free to the end of the call it fired in (−∞ outside any call: it
        ends at once; −∞ too for the steps that free nothing)."""
        is_free = self.is_free(lo, hi)
        free_end = np.full(hi - lo, -np.inf)
        fr = lo + np.flatnonzero(is_free)
        if not len(fr):
            return is_free, free_end
        is_call = self.is_call(fr)
        end = self.end_s(fr)
        owner = self.call(fr)
        ev_own = ~is_call & (owner >= 0)
        if ev_own.any():
            pos = self.calls.index.get_indexer(owner[ev_own])
            end[ev_own] = np.where(pos >= 0, self.calls["end_s"].to_numpy(dtype=float)[
                np.maximum(pos, 0)], np.nan) if len(self.calls) else np.nan
        end[~is_call & (owner < 0)] = -np.inf
        end[is_call & np.isnan(end)] = np.inf
        free_end[fr - lo] = end
        return is_free, free_end


def step_index(trace: "Trace") -> StepIndex:
    """The :class:`StepIndex` of a trace (built once, cached on it)."""
    cached = trace.__dict__.get("_step_index")
    if cached is not None:
        return cached
    parts = [p for p in (call_part(trace.calls), event_part(trace.events)) if p is not None]
    if not parts:
        raise NoPacketsError(
            "this trace has no skb addresses: no funcgraph-args with skb= and no events with "
            "skbaddr= (record them with `ftracekit record --packets`)")
    calls_p = [p for p in parts if p.is_call]
    ev_p = [p for p in parts if not p.is_call]
    if calls_p and ev_p and (ev_p[0].key <= _HASH_MAX).any():
        warnings.warn("skbaddr= of the events is hashed (options/hash-ptr was 1 when the trace "
                      "was read), so events cannot be joined with the skb= pointers of calls; "
                      "record with `ftracekit record --packets` (it sets hash-ptr 0)",
                      stacklevel=4)
    idx = StepIndex(trace, parts)
    trace.__dict__["_step_index"] = idx
    return idx


def _by_key_time(key: np.ndarray, ts: np.ndarray, line: np.ndarray) -> np.ndarray:
    """The permutation sorting by (key, ts, line), steps without a time last."""
    return np.lexsort((line, np.nan_to_num(ts, nan=np.inf), key))


# ---------------------------------------------------------------------------------------------
# Whole rows

def step_rows(idx: StepIndex, lo: int, hi: int) -> pd.DataFrame:
    """The steps ``[lo, hi)`` of an index with all their columns (see :func:`steps`)."""
    n = hi - lo
    calls = idx.calls
    is_call = idx.is_call(lo, hi)
    owner = idx.call(lo, hi)
    has_owner = owner >= 0
    # context: softirq/irq of the call (events: of their flags, else of the call they fired in)
    ctx = np.zeros(n, dtype=np.int8)
    if has_owner.any() and len(calls):
        ids = owner[has_owner]
        soft = _softirq_below(calls, ids)
        pos = calls.index.get_indexer(ids)
        irq = np.where(pos >= 0, calls["in_irq"].to_numpy()[np.maximum(pos, 0)], False)
        ctx[has_owner] = np.where(soft, _SOFTIRQ, np.where(irq, _IRQ, _TASK))
    # The idle task and ksoftirqd do network work only in softirq (or irq) context; a graph
    # root such as ip_rcv has no recorded softirq ancestor to tell.
    comm = idx.comm_codes(lo, hi)
    pid = idx.pid(lo, hi)
    ksoft = np.array([isinstance(c, str) and c.startswith("ksoftir") for c in idx.comms]
                     + [False], dtype=bool)              # (code −1 → the last)
    ctx[(ctx == _TASK) & ((pid == 0) | ksoft[comm])] = _SOFTIRQ
    flag = idx.take(lambda p, i: p.flag[1][p.flag[0][p.rows[i]]] if p.flag is not None
                    else np.zeros(len(i), dtype=np.uint8), lo, hi)
    ctx[flag == ord("s")] = _SOFTIRQ
    ctx[(flag == ord("h")) | (flag == ord("H"))] = _IRQ
    is_free, free_end = idx.frees(lo, hi)
    task = idx.task_codes(lo, hi)
    reason = idx.drop_values("reason", lo, hi)
    location = idx.drop_values("location", lo, hi)
    table = pd.DataFrame({
        "key": idx.key[lo:hi],
        "ts_s": idx.ts[lo:hi],
        "end_s": idx.end_s(lo, hi),
        "line": idx.take(lambda p, i: p.line[p.rows[i]].astype(np.int64), lo, hi),
        "cpu": idx.cpu(lo, hi),
        "pid": pid,
        "comm": cat(comm, idx.comms),
        "is_call": is_call,
        "name": cat(idx.name_codes(lo, hi), idx.names),
        "dev": cat(idx.dev_codes(lo, hi), idx.devs),
        "call": owner,
        "duration_us": idx.take(lambda p, i: p.duration[p.rows[i]] if p.is_call
                                else np.full(len(i), np.nan), lo, hi),
        "is_free": is_free,
        "is_drop": idx.is_drop(lo, hi),
        "reason": _factor(reason),
        "location": _factor(location),
        "gen": idx.gen[lo:hi].astype(np.int64),
        "context": cat(ctx, _CTX),
        "free_end": free_end,
        "kind": cat(is_call.astype(np.int8), ["event", "call"]),
        "task": cat(task, idx.task_names),
    }, copy=False)
    return table


def _factor(values: np.ndarray) -> pd.Categorical:
    codes, uniq = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    return cat(codes, np.asarray(uniq, dtype=object))


def steps(trace: "Trace") -> pd.DataFrame:
    """Every appearance of an skb in the trace, with its generation, sorted by (key, gen, time).

    Columns: ``key`` (uint64 address or hash; :func:`skb_text` prints it), ``ts_s`` (s; a call's
    start), ``end_s`` (s; a call's end, an event's time), ``line``, ``cpu``, ``pid``, ``comm``,
    ``is_call``, ``name``, ``dev``, ``call`` (−1: an event outside any call), ``duration_us``,
    ``is_free``, ``is_drop``, ``reason``, ``location``, ``gen``, ``context``
    (``task``/``softirq``/``irq``), ``free_end`` (s; how long a free holds its address),
    ``kind`` (``call``/``event``), ``task`` (``comm-pid``). The text columns are categoricals.
    Cached on the trace.
    """
    cached = trace.__dict__.get("_packet_steps")
    if cached is not None:
        return cached
    idx = step_index(trace)
    table = step_rows(idx, 0, len(idx))
    trace.__dict__["_packet_steps"] = table
    return table


# ---------------------------------------------------------------------------------------------
# Context

def _softirq_below(calls: pd.DataFrame, ids: np.ndarray) -> np.ndarray:
    """Whether each call of ``ids`` is, or runs below, a softirq entry function."""
    func = calls["func"]
    cats = func.cat.categories.to_numpy(dtype=object)
    soft_cat = pd.Series(cats).isin(SOFTIRQ_FUNCS | RX_SOFTIRQ_FUNCS).to_numpy()
    codes = func.cat.codes.to_numpy()
    is_soft = np.zeros(len(calls) + 1, dtype=bool)          # [-1] (the last) = no call
    is_soft[:-1] = np.where(codes >= 0, soft_cat[np.maximum(codes, 0)], False)
    parent = calls["parent"].to_numpy()
    index = calls.index
    pos = index.get_indexer(ids)
    out = is_soft[pos]
    live = pos >= 0
    for _ in range(4096):                                  # (at most the deepest chain)
        if not live.any():
            break
        nxt = np.full(len(pos), -1)
        nxt[live] = index.get_indexer(parent[pos[live]])
        pos = nxt
        live = pos >= 0
        out |= is_soft[pos] & live
    return out


# ---------------------------------------------------------------------------------------------
# Generations

def generations(key: np.ndarray, ts: np.ndarray, pid: np.ndarray, is_free: np.ndarray,
                free_end: np.ndarray) -> np.ndarray:
    """Generation number (0, 1, …) of each step; the steps sorted by (key, time).

    Vectorised form of :func:`generations_sequential` (the definition).
    """
    n = len(key)
    if not n:
        return np.zeros(0, dtype=np.int64)
    idx = np.arange(n)
    grp_start = np.r_[True, key[1:] != key[:-1]]
    g_first = np.maximum.accumulate(np.where(grp_start, idx, 0))
    last_free = np.maximum.accumulate(np.where(is_free, idx, -1))
    lf = np.r_[-1, last_free[:-1]]                        # latest free strictly before i
    lf[lf < g_first] = -1
    # the largest free end of the latest free's task so far (one task's calls nest, so a
    # free of the same task still running holds the window open); no frees between lf and i
    # (only the frees themselves matter: the running max over the frees of one (key, task))
    fr = np.flatnonzero(is_free)
    # (key, task) as one integer: the key's run number (the steps are sorted by key) and pid
    run = np.cumsum(grp_start) - 1
    task = (run[fr] << 32) | (pid[fr].astype(np.int64) & 0xFFFFFFFF)
    w_free = pd.Series(free_end[fr]).groupby(task, sort=False).cummax().to_numpy()
    nth_free = np.cumsum(is_free) - 1                  # at a free: its rank among the frees
    has = lf >= 0
    lfp = np.maximum(lf, 0)
    w = w_free[nth_free[lfp]] if len(fr) else np.full(n, -np.inf)
    with np.errstate(invalid="ignore"):
        inside = has & (pid == pid[lfp]) & (ts <= w)
    outside = has & ~inside
    prev_out = np.r_[False, outside[:-1]]
    boundary = outside & (~prev_out | (lf == idx - 1))
    cs = np.cumsum(boundary)
    return cs - cs[g_first]


def generations_sequential(key: np.ndarray, ts: np.ndarray, pid: np.ndarray,
                           is_free: np.ndarray, free_end: np.ndarray) -> np.ndarray:
    """The definition of generations, one step at a time (steps sorted by (key, time)).

    A step after a free is *inside* it when it is in the task of the latest free and not later
    than the largest end of that task's frees of this address so far (a task's calls nest: a
    free still running holds the window open); the first step outside starts the next
    generation.
    """
    out = np.zeros(len(key), dtype=np.int64)
    g, last_free, prev_out = 0, -1, False
    wmax: dict[int, float] = {}
    for i in range(len(key)):
        if i == 0 or key[i] != key[i - 1]:
            g, last_free, prev_out = 0, -1, False
            wmax = {}
        else:
            out_i = False
            if last_free >= 0:
                p = pid[last_free]
                inside = pid[i] == p and ts[i] <= wmax[p]
                out_i = not inside
                if out_i and (not prev_out or last_free == i - 1):
                    g += 1
            prev_out = out_i
        out[i] = g
        if is_free[i]:
            last_free = i
            wmax[pid[i]] = max(wmax.get(pid[i], -np.inf), free_end[i])
    return out


