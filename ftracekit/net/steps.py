"""Steps: every appearance of an skb in a trace — calls with an ``skb=`` argument
(funcgraph-args) and events with ``skbaddr=`` — in one table sorted by (address, time), with
the context each ran in and its **generation** (see :mod:`ftracekit.net.packets` for the
rules). The text columns are categoricals."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from ..errors import FtracekitError
from ._columns import (as_cat, cat, codes_cats, factorized, none_cat, sparse_cat)
from .values import (fixed_hex_after, hex_to_u64, named_pointer, rx_extract, to_arrow,
                     word_after)

if TYPE_CHECKING:  # pragma: no cover
    from ..trace import Trace

__all__ = ["steps", "generations", "generations_sequential", "NoPacketsError", "FREE_FUNCS",
           "DROP_FUNCS", "FREE_EVENTS", "DROP_EVENTS", "SOFTIRQ_FUNCS", "RX_SOFTIRQ_FUNCS"]

#: Functions that free the skb they are given (``consume`` and drop paths alike).
FREE_FUNCS = frozenset({
    "kfree_skbmem", "__kfree_skb", "kfree_skb", "kfree_skb_reason", "sk_skb_reason_drop",
    "napi_consume_skb", "consume_skb", "__consume_stateless_skb", "skb_attempt_defer_free",
    "kfree_skb_list_reason", "__napi_kfree_skb", "dev_kfree_skb_any_reason",
    "dev_kfree_skb_irq_reason", "kfree_skb_partial"})
#: Freeing functions that are drops (they take a drop ``reason``).
DROP_FUNCS = frozenset({"kfree_skb", "kfree_skb_reason", "sk_skb_reason_drop",
                        "kfree_skb_list_reason", "dev_kfree_skb_any_reason",
                        "dev_kfree_skb_irq_reason"})
FREE_EVENTS = frozenset({"kfree_skb", "consume_skb"})
DROP_EVENTS = frozenset({"kfree_skb"})
#: A call below one of these ran in softirq context.
SOFTIRQ_FUNCS = frozenset({"handle_softirqs", "__do_softirq", "do_softirq", "net_rx_action",
                           "net_tx_action", "__napi_poll", "do_softirq_own_stack"})
#: The receive path below NET_RX: these run from the softirq (net_rx_action → a NAPI poll or
#: the backlog) whichever task it interrupted, so a call of one — typically a graph root such
#: as ip_rcv, whose softirq ancestors were not traced — is in softirq context even when the
#: line names a user task (loopback traffic is received in the sender's task, at its
#: local_bh_enable). (Not tcp_v4_do_rcv: it also runs from a socket's backlog in the task.)
RX_SOFTIRQ_FUNCS = frozenset({
    "process_backlog", "__netif_receive_skb", "__netif_receive_skb_one_core",
    "__netif_receive_skb_core", "__netif_receive_skb_list_core", "netif_receive_skb_list_internal",
    "napi_gro_receive", "gro_normal_list", "ip_rcv", "ip_list_rcv", "ipv6_rcv", "ipv6_list_rcv",
    "udp_rcv", "__udp4_lib_rcv", "udpv6_rcv", "__udp6_lib_rcv", "tcp_v4_rcv", "tcp_v6_rcv",
    "icmp_rcv", "icmpv6_rcv", "arp_rcv"})
_KERNEL_MIN = np.uint64(0xFF00000000000000)   # kernel addresses (x86-64 with 5-level paging: 0xff11…)
_HASH_MAX = np.uint64(0xFFFFFFFF)             # %p hashes keep 32 bits



class NoPacketsError(FtracekitError):
    """The trace holds no skb addresses (no funcgraph-args with skb, no skbaddr= events)."""



# ---------------------------------------------------------------------------------------------

def _task_columns(rows: pd.DataFrame, take: np.ndarray) -> dict[str, Any]:
    """The steps' ``line``, ``cpu``, ``pid`` and ``comm`` (categorical) at positions ``take``
    of the calls or the events table (both have them)."""
    comm = as_cat(rows["comm"])
    return {"line": rows["line"].to_numpy()[take].astype(np.int64),
            "cpu": rows["cpu"].to_numpy()[take].astype(np.int64),
            "pid": rows["pid"].to_numpy()[take].astype(np.int64),
            "comm": cat(np.asarray(comm.codes)[take], comm.categories)}


_CTX = np.array(["task", "softirq", "irq"], dtype=object)
_TASK, _SOFTIRQ, _IRQ = 0, 1, 2


def _event_steps(ev: pd.DataFrame) -> dict[str, Any] | None:
    if not len(ev):
        return None
    event = ev["event"]
    if not isinstance(event.dtype, pd.CategoricalDtype):
        event = event.astype("category")
    codes = event.cat.codes.to_numpy()
    cat_names = event.cat.categories.to_numpy(dtype=object)
    text = ev["text"]
    # events whose format has skbaddr (decided per event name, on its first text)
    with_skb = np.zeros(len(cat_names) + 1, dtype=bool)
    present = np.bincount(codes.astype(np.int64) + 1, minlength=len(cat_names) + 1)[1:]
    for c in np.flatnonzero(present):            # (one pass per event name: a handful)
        with_skb[c] = "skbaddr=" in str(text.iat[int(np.argmax(codes == c))])
    rows = np.flatnonzero(with_skb[codes])
    if not len(rows):
        return None
    ta_all = to_arrow(text)
    if ta_all is not None:
        t_all = _LazyText(ta_all, rows)
        # %p prints 16 digits: read them from the Arrow buffer (a regex only for the rest)
        key, keep = fixed_hex_after(ta_all, "skbaddr=", rows)
        rest = np.flatnonzero(~keep)
        if len(rest):
            addr = rx_extract(_series(t_all.iloc[rest]), r"\bskbaddr=(?:0x)?([0-9a-fA-F]{1,16})\b")
            key[rest] = hex_to_u64(addr)
            keep[rest] = addr.notna().to_numpy(dtype=bool)
    else:                                       # pragma: no cover - without pyarrow
        t_all = pd.Series(text.to_numpy(dtype=object)[rows], dtype=object)
        addr = rx_extract(t_all, r"\bskbaddr=(?:0x)?([0-9a-fA-F]{1,16})\b")
        keep = addr.notna().to_numpy(dtype=bool)
        key = hex_to_u64(addr)
    ok = keep & (key != 0)
    sel = np.flatnonzero(ok)
    take = rows[sel]
    t = t_all.iloc[sel]
    n = len(sel)
    nm_codes = codes[take]
    names = pd.Index(cat_names, dtype=object)
    is_free = names.isin(FREE_EVENTS)[nm_codes]
    is_drop = names.isin(DROP_EVENTS)[nm_codes]
    drops = np.flatnonzero(is_drop)
    reason = location = none_cat(n)
    if len(drops):                  # (few rows: the drops)
        td = _series(t.iloc[drops])
        reason = sparse_cat(n, drops, rx_extract(td, r"reason: (\w+)").to_numpy(dtype=object))
        location = sparse_cat(n, drops,
                               rx_extract(td, r"location=(\S+)").to_numpy(dtype=object))
    ctx_flag = np.zeros(n, dtype=np.uint8)          # the lat flags' context letter (0: none)
    if "lat_flags" in ev:
        fl = ev["lat_flags"]
        if isinstance(fl.dtype, pd.CategoricalDtype) and len(fl.cat.categories):
            per_cat = np.array([ord(str(f)[2:3] or "\0") for f in fl.cat.categories] + [0],
                               dtype=np.uint8)
            ctx_flag = per_cat[fl.cat.codes.to_numpy()[take]]   # (code −1 → the last: 0)
    if ta_all is not None:
        dev = cat(*word_after(ta_all, "dev=", take))
    else:                                       # pragma: no cover - without pyarrow
        dev = factorized(rx_extract(t, r"(?:^|\s)dev=(\S+)").to_numpy(dtype=object))
    ts = ev["ts_s"].to_numpy(dtype=float)[take]
    return {
        "key": key[sel],
        "ts_s": ts,
        "end_s": ts.copy(),
        **_task_columns(ev, take),
        "is_call": np.zeros(n, dtype=bool),
        "name": cat(nm_codes, cat_names),
        "dev": dev,
        "call": ev["call"].to_numpy(dtype=np.int64)[take],
        "duration_us": np.full(n, np.nan),
        "is_free": is_free,
        "is_drop": is_drop,
        "reason": reason,
        "location": location,
        "ctx_flag": ctx_flag,
    }



class _LazyText:
    """Event texts held as an Arrow array; ``.iloc[rows]`` gives an object Series (only ever
    asked for small subsets: the drops, the rare texts a fixed-width read cannot take)."""

    def __init__(self, arr, rows: np.ndarray | None = None) -> None:
        self.arr = arr
        self.rows = rows

    def __len__(self) -> int:
        return len(self.arr) if self.rows is None else len(self.rows)

    @property
    def iloc(self) -> "_LazyText":
        return self

    def __getitem__(self, rows: np.ndarray) -> "_LazyText | pd.Series":
        rows = np.asarray(rows)
        base = rows if self.rows is None else self.rows[rows]
        return _LazyText(self.arr, base)

    def series(self) -> pd.Series:
        import pyarrow as pa
        sub = self.arr if self.rows is None else self.arr.take(pa.array(self.rows))
        return pd.Series(sub.to_numpy(zero_copy_only=False), dtype=object)


def _series(t: "_LazyText | pd.Series") -> pd.Series:
    return t.series() if isinstance(t, _LazyText) else t


_SKB_ARG = r"(?:^|, )\w*skb\w*=0x([0-9a-fA-F]{1,16})(?:,|$)"


def _arg_skb_keys(cats: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """Per distinct args text: the pointer of its first argument named ``*skb*`` (``0x%lx``)
    and whether there is one — column-wise for the common ``skb=0x<16 digits>``, the regex
    only for the rest."""
    ta = to_arrow(pd.Series(cats, copy=False))
    if ta is None:                              # pragma: no cover - without pyarrow
        val = rx_extract(pd.Series(cats.to_numpy(dtype=object)), _SKB_ARG)
        return hex_to_u64(val), val.notna().to_numpy(dtype=bool)
    key, state = named_pointer(ta, "skb")
    found = state == 1
    rest = np.flatnonzero(state < 0)
    if len(rest):
        import pyarrow as pa

        val = rx_extract(None, _SKB_ARG, arrow=ta.take(pa.array(rest)))
        key[rest] = hex_to_u64(val)
        found[rest] = val.notna().to_numpy(dtype=bool)
    return key, found


def _drop_reasons(cats: pd.Index, cc: np.ndarray, is_drop: np.ndarray) -> pd.Categorical:
    """``reason=`` (its number, as text) of the args of the drop calls (missing elsewhere): the
    regex runs over the distinct args texts of the drops only."""
    drops = np.flatnonzero(is_drop)
    if not len(drops):
        return none_cat(len(cc))
    used, inv = np.unique(cc[drops], return_inverse=True)
    got = rx_extract(pd.Series(np.asarray(cats[used], dtype=object), dtype=object),
                     r"(?:^|, )reason=(\d+)").to_numpy(dtype=object, na_value=None)
    return sparse_cat(len(cc), drops, got[inv.reshape(-1)])


def _call_steps(calls: pd.DataFrame) -> dict[str, Any] | None:
    args = calls["args"]
    if not isinstance(args.dtype, pd.CategoricalDtype):
        args = args.astype("category")
    cats = args.cat.categories
    if not len(cats):
        return None
    ckey, cfound = _arg_skb_keys(cats)
    cok = cfound & (ckey >= _KERNEL_MIN)
    codes = args.cat.codes.to_numpy()
    has = codes >= 0
    good = np.zeros(len(codes), dtype=bool)
    good[has] = cok[codes[has]]
    sel = np.flatnonzero(good)
    if not len(sel):
        return None
    cc = codes[sel]
    func = as_cat(calls["func"])
    f_codes = np.asarray(func.codes)[sel]
    f_cats = pd.Index(np.asarray(func.categories, dtype=object), dtype=object)
    fc = np.maximum(f_codes, 0)
    is_free = f_cats.isin(FREE_FUNCS)[fc] & (f_codes >= 0)
    is_drop = f_cats.isin(DROP_FUNCS)[fc] & (f_codes >= 0)
    n = len(sel)
    return {
        "key": ckey[cc],
        "ts_s": calls["start_s"].to_numpy(dtype=float)[sel],
        "end_s": calls["end_s"].to_numpy(dtype=float)[sel],
        **_task_columns(calls, sel),
        "is_call": np.ones(n, dtype=bool),
        "name": cat(f_codes, f_cats),
        "dev": none_cat(n),
        "call": calls.index.to_numpy(dtype=np.int64)[sel],
        "duration_us": calls["duration_us"].to_numpy(dtype=float)[sel],
        "is_free": is_free,
        "is_drop": is_drop,
        "reason": _drop_reasons(cats, cc, is_drop),
        "location": none_cat(n),
        "ctx_flag": np.zeros(n, dtype=np.uint8),
    }


def _concat(parts: list[dict[str, Any]], order: np.ndarray) -> dict[str, Any]:
    """The parts' columns one after the other, taken in ``order`` (categoricals over the union
    of their categories)."""
    out = {}
    for name, first in parts[0].items():
        cols = [p[name] for p in parts]
        if isinstance(first, pd.Categorical):
            cat = union_categoricals(cols, ignore_order=True) if len(cols) > 1 else first
            out[name] = pd.Categorical.from_codes(np.asarray(cat.codes)[order], dtype=cat.dtype)
        else:
            out[name] = (np.concatenate(cols) if len(cols) > 1 else first)[order]
    return out


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


def _task_names(comm: pd.Categorical, pid: np.ndarray) -> pd.Categorical:
    """``comm-pid`` per step, formatted once per distinct task (None where the pid is < 0)."""
    c_codes = np.asarray(comm.codes).astype(np.int64)
    # (comm code, pid) packed in one integer: one hashing pass
    codes, _u = pd.factorize((c_codes << 32) | (pid.astype(np.int64) & 0xFFFFFFFF))
    _u, first = np.unique(codes, return_index=True)
    cats = np.append(np.asarray(comm.categories, dtype=object), None)
    names = [f"{c if isinstance(c, str) else '?'}-{p}" if p >= 0 else None
             for c, p in zip(cats[c_codes[first]], pid[first])]
    # distinct names (two codes may format alike); missing → −1
    remap, uniq = pd.factorize(pd.Series(names, dtype=object), use_na_sentinel=True)
    return cat(remap[codes], np.asarray(uniq, dtype=object))


def _key_time_order(key: np.ndarray, ts: np.ndarray, line: np.ndarray) -> np.ndarray:
    """The permutation sorting by (key, ts, line); one stable sort on the key when the rows
    already come in (ts, line) order (a trace's own order, as the events usually are)."""
    if len(key) > 1:
        dt = np.diff(ts)
        if (dt >= 0).all() and ((dt > 0) | (np.diff(line) > 0)).all():
            return np.argsort(key, kind="stable")
    return np.lexsort((line, ts, key))


def steps(trace: "Trace") -> pd.DataFrame:
    """Every appearance of an skb in the trace, with its generation, sorted by (key, gen, time).

    Columns: ``key`` (uint64 address or hash; :func:`skb_text` prints it), ``gen``, ``ts_s`` (s; a
    call's start), ``end_s`` (s; a call's end, an event's time), ``line``, ``cpu``, ``pid``,
    ``comm``, ``task`` (``comm-pid``), ``context`` (``task``/``softirq``/``irq``), ``kind``
    (``call``/``event``), ``name``, ``dev``, ``call`` (−1: an event outside any call),
    ``duration_us``, ``is_free``, ``is_drop``, ``reason``, ``location``. The text columns are
    categoricals. Cached on the trace.
    """
    cached = trace.__dict__.get("_packet_steps")
    if cached is not None:
        return cached
    parts = [p for p in (_call_steps(trace.calls), _event_steps(trace.events)) if p is not None]
    if not parts:
        raise NoPacketsError(
            "this trace has no skb addresses: no funcgraph-args with skb= and no events with "
            "skbaddr= (record them with `ftracekit record --packets`)")
    raw_calls = any(bool(p["is_call"].any()) for p in parts)
    ev_keys = np.concatenate([p["key"][~p["is_call"]] for p in parts])
    if raw_calls and len(ev_keys) and (ev_keys <= _HASH_MAX).any():
        warnings.warn("skbaddr= of the events is hashed (options/hash-ptr was 1 when the trace "
                      "was read), so events cannot be joined with the skb= pointers of calls; "
                      "record with `ftracekit record --packets` (it sets hash-ptr 0)",
                      stacklevel=3)
    # sort by (key, time, line); the table is built once at the end, without consolidating
    # its columns into blocks (that copies every column of millions of rows)
    key = np.concatenate([p["key"] for p in parts])
    ts = np.concatenate([p["ts_s"] for p in parts])
    line = np.concatenate([p["line"] for p in parts])
    order = _key_time_order(key, np.nan_to_num(ts, nan=np.inf), line)
    st = _concat(parts, order)
    calls = trace.calls
    # context: softirq/irq of the call (events: of their flags, else of the call they fired in)
    is_call = st["is_call"]
    owner = st["call"]
    has_owner = owner >= 0
    ctx = np.zeros(len(owner), dtype=np.int8)
    end_s = st["end_s"].copy()                 # (the steps keep their own end)
    if has_owner.any() and len(calls):
        ids = owner[has_owner]
        soft = _softirq_below(calls, ids)
        pos = calls.index.get_indexer(ids)
        irq = np.where(pos >= 0, calls["in_irq"].to_numpy()[np.maximum(pos, 0)], False)
        ctx[has_owner] = np.where(soft, _SOFTIRQ, np.where(irq, _IRQ, _TASK))
        # an event free's window is the call it fired in
        end_of = np.where(pos >= 0, calls["end_s"].to_numpy(dtype=float)[np.maximum(pos, 0)],
                          np.nan)
        ev_own = has_owner & ~is_call
        end_s[ev_own] = end_of[~is_call[has_owner]]
    # The idle task and ksoftirqd do network work only in softirq (or irq) context; a graph
    # root such as ip_rcv has no recorded softirq ancestor to tell.
    c_codes, c_cats = codes_cats(st["comm"])
    ksoft = np.array([isinstance(c, str) and c.startswith("ksoftir") for c in c_cats] + [False],
                     dtype=bool)                   # (per distinct comm; code −1 → the last)
    pid = st["pid"]
    soft_task = (pid == 0) | ksoft[c_codes]
    ctx[(ctx == _TASK) & soft_task] = _SOFTIRQ
    flag = st.pop("ctx_flag")
    ctx[flag == ord("s")] = _SOFTIRQ
    ctx[(flag == ord("h")) | (flag == ord("H"))] = _IRQ
    is_free = st["is_free"]
    free_end = np.where(is_free, end_s, -np.inf)
    free_end[is_free & ~is_call & ~has_owner] = -np.inf
    # calls whose exit was not seen: their free lasts to the end of the trace
    free_end[is_free & is_call & np.isnan(end_s)] = np.inf
    key = st["key"]
    st["gen"] = generations(key, st["ts_s"], pid, is_free, free_end)
    st["context"] = cat(ctx, _CTX)
    st["free_end"] = free_end
    st["kind"] = cat(is_call.astype(np.int8), ["event", "call"])
    st["task"] = _task_names(st["comm"], pid)
    table = pd.DataFrame(st, copy=False)
    trace.__dict__["_packet_steps"] = table
    return table


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


