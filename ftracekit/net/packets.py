"""Packets: one skb followed across calls, tasks, CPUs and softirqs, split into generations.

Where an skb address appears (checked against kernel sources, 6.1–6.18):

* **funcgraph-args** (6.15+, BTF): ``netif_receive_skb(skb=0xff3c863e829a2800) {`` — ``0x%lx``,
  always the raw address. Any argument whose name contains ``skb`` (``skb``, ``skb_in``,
  ``in_skb``, ``nskb``) and holds a kernel address counts.
* **trace events** with ``skbaddr=`` (``net:net_dev_queue``, ``net:net_dev_start_xmit``,
  ``net:netif_receive_skb``, ``skb:kfree_skb``, ``skb:consume_skb``, ``qdisc:qdisc_dequeue``, …):
  ``%p``, printed when the text is read — the raw address while ``options/hash-ptr`` is 0, else
  a per-boot hash with the top 32 bits zero. Hashes chain events with each other but can never
  join funcgraph-args pointers; mixing both warns.

**Generations.** The slab and the per-CPU NAPI cache hand a freed address to the next packet
within microseconds, so an address is one packet only between frees. A *free step* is a
``kfree_skb``/``consume_skb`` event or a call of a freeing function (:data:`FREE_FUNCS`) with
that skb. The steps of an address (in time order) after a free stay in the same generation
while they are *inside* the free — same task, not later than the end of the free call (an event
free: of the call it fired in; an event outside any call ends at once); the first step outside
starts the next generation (a free still running in the same task, e.g. ``sk_skb_reason_drop``
around ``kfree_skbmem``, keeps the window open). :func:`generations` is the vectorised rule, and
:func:`generations_sequential` its plain definition (a test checks that both agree).

**Clones.** ``skb_clone`` (and the ``*_copy`` family) return a new address; where the call's
return value is printed (funcgraph-retval), the first generation of that address after the
call is linked to its source (``clone_of``).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import FtracekitError, _suggest
from .values import fixed_hex_after, hex_to_u64, rx_extract, to_arrow, word_after

if TYPE_CHECKING:  # pragma: no cover
    from ..trace import Trace

__all__ = ["steps", "packets", "journey", "generations", "generations_sequential",
           "NoPacketsError", "UnknownPacketError", "PACKET_COLUMNS", "JOURNEY_COLUMNS",
           "FREE_FUNCS", "DROP_FUNCS", "parse_skb"]

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
CLONE_FUNCS = frozenset({"skb_clone", "skb_copy", "pskb_copy", "__pskb_copy_fclone",
                         "skb_copy_expand", "skb_clone_sk"})

PACKET_COLUMNS = ["skb", "gen", "first_s", "last_s", "span_us", "n_steps", "first", "last",
                  "devs", "cpus", "tasks", "dropped", "reason", "drop_location", "max_gap_us",
                  "gap_after", "gap_before", "clone_of"]
JOURNEY_COLUMNS = ["gen", "ts_s", "cpu", "task", "context", "kind", "name", "dev", "call",
                   "duration_us", "gap_us"]

_KERNEL_MIN = np.uint64(0xFF00000000000000)   # kernel addresses (x86-64 with 5-level paging: 0xff11…)
_HASH_MAX = np.uint64(0xFFFFFFFF)             # %p hashes keep 32 bits


class NoPacketsError(FtracekitError):
    """The trace holds no skb addresses (no funcgraph-args with skb, no skbaddr= events)."""


class UnknownPacketError(FtracekitError):
    """An skb address that does not occur in the trace; ``suggestions`` holds close ones."""

    def __init__(self, skb: str, known: list[str]):
        self.skb = skb
        self.suggestions = _suggest(skb, known)
        if not self.suggestions:
            # addresses differ in their last digits; closeness by prefix is what helps
            want = skb.lower().removeprefix("0x")
            self.suggestions = sorted(known, key=lambda k: -_common_prefix(k.removeprefix("0x"),
                                                                           want))[:3]
        msg = f"no skb {skb!r} in this trace"
        if self.suggestions:
            msg += "; closest: " + ", ".join(self.suggestions)
        super().__init__(msg)


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def parse_skb(skb: str | int) -> int:
    """An skb as the user gives it — ``0xffff…`` (args), ``ffff…`` (raw ``%p``), a hash
    ``000000003f864397`` — → its 64-bit value."""
    if isinstance(skb, (int, np.integer)):
        return int(skb)
    s = str(skb).strip().lower().removeprefix("0x")
    try:
        return int(s, 16)
    except ValueError:
        raise FtracekitError(f"{skb!r} is not an skb address (hex, as the trace prints it: "
                             "0xffff… or the 16 digits of skbaddr=)") from None


_HEXDIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLE_SHIFTS = np.arange(60, -1, -4, dtype=np.uint64)


def skb_text(keys: np.ndarray) -> np.ndarray:
    """The address as printed: raw addresses ``0x…`` (16 digits), hashes their 16 digits.
    Each distinct key is formatted once, column-wise (runs of a sorted column need no sort)."""
    keys = np.asarray(keys, dtype=np.uint64)
    if len(keys) and (keys[1:] >= keys[:-1]).all():
        change = np.r_[True, keys[1:] != keys[:-1]]
        uniq, inv = keys[change], np.cumsum(change) - 1
    else:
        uniq, inv = np.unique(keys, return_inverse=True)
    chars = _HEXDIGITS[((uniq[:, None] >> _NIBBLE_SHIFTS[None, :]) & np.uint64(15)).astype(np.intp)]
    txt = np.ascontiguousarray(chars).view("S16").ravel().astype("U18")
    raw = uniq > _HASH_MAX
    txt[raw] = np.char.add("0x", txt[raw])
    return txt.astype(object)[inv]


# ---------------------------------------------------------------------------------------------
# Steps: every appearance of an skb, in calls and events

def _combine(*cols: np.ndarray) -> np.ndarray:
    """One dense code per distinct row of the given columns (hashing, no tuples, no sort)."""
    h = np.zeros(len(cols[0]), dtype=np.int64)
    for c in cols:
        cc, uniq = pd.factorize(c)
        h = pd.factorize(h * (len(uniq) + 1) + (cc.astype(np.int64) + 1))[0].astype(np.int64)
    return h


def _obj(a: np.ndarray) -> pd.Series:
    """An object column as is (pandas 3 would infer its str dtype: a copy of every string)."""
    return pd.Series(np.asarray(a, dtype=object), dtype=object)


def _task_columns(rows: pd.DataFrame) -> dict[str, Any]:
    """The steps' ``line``, ``cpu``, ``pid`` and ``comm`` from rows of the calls or the
    events table (both have them)."""
    return {"line": rows["line"].to_numpy(dtype=np.int64),
            "cpu": rows["cpu"].to_numpy(dtype=np.int64),
            "pid": rows["pid"].to_numpy(dtype=np.int64),
            "comm": _obj(rows["comm"].astype(object).to_numpy())}


def _event_steps(ev: pd.DataFrame) -> pd.DataFrame:
    if not len(ev):
        return pd.DataFrame()
    event = ev["event"]
    if not isinstance(event.dtype, pd.CategoricalDtype):
        event = event.astype("category")
    codes = event.cat.codes.to_numpy()
    cat_names = event.cat.categories.to_numpy(dtype=object)
    text = ev["text"]
    # events whose format has skbaddr (decided per event name, on its first text)
    _u, first = np.unique(codes, return_index=True)
    with_skb = np.zeros(len(cat_names) + 1, dtype=bool)
    for i in first:
        with_skb[codes[i]] = "skbaddr=" in str(text.iat[i])
    rows = np.flatnonzero(with_skb[codes])
    if not len(rows):
        return pd.DataFrame()
    ta_all = to_arrow(text)
    if ta_all is not None:
        ta_all = ta_all.take(rows)
        t_all = _LazyText(ta_all)
    else:                                       # pragma: no cover - without pyarrow
        t_all = pd.Series(text.to_numpy(dtype=object)[rows], dtype=object)
    if ta_all is not None:
        # %p prints 16 digits: read them from the Arrow buffer (a regex only for the rest)
        key, keep = fixed_hex_after(ta_all, "skbaddr=")
        rest = np.flatnonzero(~keep)
        if len(rest):
            addr = rx_extract(_series(t_all.iloc[rest]), r"\bskbaddr=(?:0x)?([0-9a-fA-F]{1,16})\b")
            key[rest] = hex_to_u64(addr)
            keep[rest] = addr.notna().to_numpy(dtype=bool)
    else:                                       # pragma: no cover - without pyarrow
        addr = rx_extract(t_all, r"\bskbaddr=(?:0x)?([0-9a-fA-F]{1,16})\b")
        keep = addr.notna().to_numpy(dtype=bool)
        key = hex_to_u64(addr)
    ok = keep & (key != 0)
    sel = np.flatnonzero(ok)
    t = t_all.iloc[sel]
    ta = ta_all.filter(ok) if ta_all is not None else None
    sub = ev[[c for c in ev.columns if c != "text"]].iloc[rows[sel]]
    nm = cat_names[codes[rows[sel]]]
    is_free = pd.Series(nm, dtype=object).isin(FREE_EVENTS).to_numpy()
    is_drop = pd.Series(nm, dtype=object).isin(DROP_EVENTS).to_numpy()
    reason = np.full(len(sel), None, dtype=object)
    location = np.full(len(sel), None, dtype=object)
    if is_drop.any():               # (few rows: the drops)
        td = _series(t.iloc[np.flatnonzero(is_drop)])
        reason[is_drop] = rx_extract(td, r"reason: (\w+)").to_numpy(dtype=object)
        location[is_drop] = rx_extract(td, r"location=(\S+)").to_numpy(dtype=object)
    ctx_flag = np.full(len(sel), "", dtype=object)
    if "lat_flags" in sub:
        fl = sub["lat_flags"]
        if isinstance(fl.dtype, pd.CategoricalDtype) and len(fl.cat.categories):
            per_cat = np.array([str(f)[2:3] for f in fl.cat.categories] + [""], dtype=object)
            ctx_flag = per_cat[fl.cat.codes.to_numpy()]     # (code −1 → the last: "")
    return pd.DataFrame({
        "key": key[sel],
        "ts_s": sub["ts_s"].to_numpy(dtype=float),
        "end_s": sub["ts_s"].to_numpy(dtype=float),
        **_task_columns(sub),
        "is_call": np.zeros(len(sel), dtype=bool),
        "name": _obj(nm),
        "dev": _obj(word_after(ta, "dev=") if ta is not None else
                    rx_extract(t, r"(?:^|\s)dev=(\S+)").to_numpy(dtype=object)),
        "call": sub["call"].to_numpy(dtype=np.int64),
        "duration_us": np.full(len(sel), np.nan),
        "is_free": is_free,
        "is_drop": is_drop,
        "reason": _obj(reason),
        "location": _obj(location),
        "ctx_flag": _obj(ctx_flag),
    })


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


def _call_steps(calls: pd.DataFrame) -> pd.DataFrame:
    args = calls["args"]
    if not isinstance(args.dtype, pd.CategoricalDtype):
        args = args.astype("category")
    cats = pd.Series(args.cat.categories.to_numpy(dtype=object))
    if not len(cats):
        return pd.DataFrame()
    val = rx_extract(cats, r"(?:^|, )\w*skb\w*=0x([0-9a-fA-F]{1,16})(?:,|$)")
    ckey = hex_to_u64(val)
    cok = val.notna().to_numpy(dtype=bool) & (ckey >= _KERNEL_MIN)
    creason = rx_extract(cats, r"(?:^|, )reason=(\d+)").to_numpy(dtype=object, na_value=None)
    codes = args.cat.codes.to_numpy()
    has = codes >= 0
    good = np.zeros(len(codes), dtype=bool)
    good[has] = cok[codes[has]]
    sel = np.flatnonzero(good)
    c = calls.iloc[sel]
    cc = codes[sel]
    func = c["func"].astype(object).to_numpy()
    fs = pd.Series(func)
    is_free = fs.isin(FREE_FUNCS).to_numpy()
    is_drop = fs.isin(DROP_FUNCS).to_numpy()
    reason = np.where(is_drop, creason[cc], None)
    return pd.DataFrame({
        "key": ckey[cc],
        "ts_s": c["start_s"].to_numpy(dtype=float),
        "end_s": c["end_s"].to_numpy(dtype=float),
        **_task_columns(c),
        "is_call": np.ones(len(sel), dtype=bool),
        "name": _obj(func),
        "dev": _obj(np.full(len(sel), None, dtype=object)),
        "call": c.index.to_numpy(dtype=np.int64),
        "duration_us": c["duration_us"].to_numpy(dtype=float),
        "is_free": is_free,
        "is_drop": is_drop,
        "reason": _obj(reason),
        "location": _obj(np.full(len(sel), None, dtype=object)),
        "ctx_flag": _obj(np.full(len(sel), "", dtype=object)),
    })


def _lookup(calls: pd.DataFrame, ids: np.ndarray, column: str, default: object) -> np.ndarray:
    """``calls[column]`` at call ids (``default`` where the id is −1 or not in the table)."""
    if not len(calls):
        return np.full(len(ids), default, dtype=object if default is None else None)
    pos = calls.index.get_indexer(ids)
    col = calls[column]
    vals = col.astype(object).to_numpy() if isinstance(col.dtype, pd.CategoricalDtype) \
        else col.to_numpy()
    return np.where(pos >= 0, vals[np.maximum(pos, 0)], default)


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


def steps(trace: "Trace") -> pd.DataFrame:
    """Every appearance of an skb in the trace, with its generation, sorted by (key, gen, time).

    Columns: ``key`` (uint64 address or hash), ``skb`` (as printed), ``gen``, ``ts_s`` (s; a
    call's start), ``end_s`` (s; a call's end, an event's time), ``line``, ``cpu``, ``pid``,
    ``comm``, ``task`` (``comm-pid``), ``context`` (``task``/``softirq``/``irq``), ``kind``
    (``call``/``event``), ``name``, ``dev``, ``call`` (−1: an event outside any call),
    ``duration_us``, ``is_free``, ``is_drop``, ``reason``, ``location``.
    Cached on the trace.
    """
    cached = trace.__dict__.get("_packet_steps")
    if cached is not None:
        return cached
    parts = [p for p in (_call_steps(trace.calls), _event_steps(trace.events)) if len(p)]
    if not parts:
        raise NoPacketsError(
            "this trace has no skb addresses: no funcgraph-args with skb= and no events with "
            "skbaddr= (record them with `ftracekit record --packets`)")
    st = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    raw_calls = bool(st["is_call"].any())
    ev_keys = st["key"].to_numpy()[~st["is_call"].to_numpy()]
    if raw_calls and len(ev_keys) and (ev_keys <= _HASH_MAX).any():
        warnings.warn("skbaddr= of the events is hashed (options/hash-ptr was 1 when the trace "
                      "was read), so events cannot be joined with the skb= pointers of calls; "
                      "record with `ftracekit record --packets` (it sets hash-ptr 0)",
                      stacklevel=3)
    calls = trace.calls
    # context: softirq/irq of the call (events: of their flags, else of the call they fired in)
    is_call = st["is_call"].to_numpy()
    owner = np.where(is_call, st["call"].to_numpy(), st["call"].to_numpy())
    has_owner = owner >= 0
    ctx = np.full(len(st), "task", dtype=object)
    if has_owner.any() and len(calls):
        ids = owner[has_owner]
        soft = _softirq_below(calls, ids)
        pos = calls.index.get_indexer(ids)
        irq = np.where(pos >= 0, calls["in_irq"].to_numpy()[np.maximum(pos, 0)], False)
        sub = np.where(soft, "softirq", np.where(irq, "irq", "task"))
        ctx[has_owner] = sub
        # an event free's window is the call it fired in
        end_of = np.where(pos >= 0, calls["end_s"].to_numpy(dtype=float)[np.maximum(pos, 0)],
                          np.nan)
        ev_own = has_owner & ~is_call
        end_s = st["end_s"].to_numpy().copy()
        end_s[ev_own] = end_of[~is_call[has_owner]]
    else:
        end_s = st["end_s"].to_numpy().copy()
    # The idle task and ksoftirqd do network work only in softirq (or irq) context; a graph
    # root such as ip_rcv has no recorded softirq ancestor to tell.
    c_codes, c_uniq = pd.factorize(st["comm"].to_numpy(dtype=object))
    ksoft = np.array([isinstance(c, str) and c.startswith("ksoftir") for c in c_uniq] + [False],
                     dtype=bool)                   # (per distinct comm; code −1 → the last)
    soft_task = (st["pid"].to_numpy() == 0) | ksoft[c_codes]
    ctx = np.where((ctx == "task") & soft_task, "softirq", ctx)
    flag = st["ctx_flag"].to_numpy(dtype=object)
    ctx = np.where(flag == "s", "softirq", np.where((flag == "h") | (flag == "H"), "irq", ctx))
    free_end = np.where(st["is_free"].to_numpy(), end_s, -np.inf)
    free_end[st["is_free"].to_numpy() & ~is_call & ~has_owner] = -np.inf
    # calls whose exit was not seen: their free lasts to the end of the trace
    free_end[st["is_free"].to_numpy() & is_call & np.isnan(end_s)] = np.inf
    st["context"] = _obj(ctx)
    st["free_end"] = free_end
    order = np.lexsort((st["line"].to_numpy(), np.nan_to_num(st["ts_s"].to_numpy(), nan=np.inf),
                        st["key"].to_numpy()))
    st = st.iloc[order].reset_index(drop=True)
    st["gen"] = generations(st["key"].to_numpy(), st["ts_s"].to_numpy(), st["pid"].to_numpy(),
                            st["is_free"].to_numpy(), st["free_end"].to_numpy())
    st["skb"] = _obj(skb_text(st["key"].to_numpy()))
    st["kind"] = _obj(np.where(st["is_call"].to_numpy(), "call", "event").astype(object))
    # comm-pid, formatted once per distinct task
    comm = st["comm"].to_numpy(dtype=object)
    pid = st["pid"].to_numpy()
    codes = _combine(comm, pid)
    _u, first = np.unique(codes, return_index=True)
    names = np.array([f"{c if isinstance(c, str) else '?'}-{p}" if p >= 0 else None
                      for c, p in zip(comm[first], pid[first])], dtype=object)
    st["task"] = _obj(names[codes])
    st = st.drop(columns=["ctx_flag"])
    trace.__dict__["_packet_steps"] = st
    return st


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
    fe = np.where(is_free, free_end, -np.inf)
    gkey = _combine(key, pid)
    w_incl = pd.Series(fe).groupby(gkey).cummax().to_numpy()
    w = w_incl[np.maximum(lf, 0)]
    has = lf >= 0
    lfp = np.maximum(lf, 0)
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


# ---------------------------------------------------------------------------------------------
# Packets and journeys

def _joined(gid: np.ndarray, values: np.ndarray, ok: np.ndarray, n: int) -> np.ndarray:
    """Per group: the sorted distinct values (where ``ok``) joined with ``,`` (one string each).

    Column-wise: the distinct (group, value) pairs become rows of value codes (sorted codes =
    sorted values), the distinct rows are joined once each (a handful: the same few tasks,
    devices and CPUs recur), and spread back to the groups.
    """
    out = np.full(n, "", dtype=object)
    if not ok.any():
        return out
    codes, cats = pd.factorize(values[ok], sort=True)
    nc = len(cats)
    pair = pd.unique(gid[ok].astype(np.int64) * nc + codes.astype(np.int64))
    pair.sort()
    g, c = pair // nc, pair % nc                 # sorted by group, then by code
    first = np.r_[True, g[1:] != g[:-1]]
    start = np.flatnonzero(first)
    pos = np.arange(len(g)) - np.repeat(start, np.diff(np.r_[start, len(g)]))
    width = int(pos.max()) + 1
    mat = np.full((len(start), width), -1, dtype=np.int64)
    mat[np.cumsum(first) - 1, pos] = c
    inv = _combine(*mat.T)
    _u, one = np.unique(inv, return_index=True)
    names = np.array([str(x) for x in cats], dtype=object)
    text = np.array([",".join(names[r[r >= 0]]) for r in mat[one]], dtype=object)
    out[g[first]] = text[inv]
    return out


def _clone_links(trace: "Trace", st: pd.DataFrame, pk: pd.DataFrame) -> np.ndarray:
    """``clone_of`` of each packet: the skb (as printed) whose clone call returned its address
    just before its first step; empty where none."""
    out = np.full(len(pk), "", dtype=object)
    c = st[st["is_call"].to_numpy() & st["name"].isin(CLONE_FUNCS).to_numpy()]
    if not len(c):
        return out
    pos = trace.calls.index.get_indexer(c["call"].to_numpy())
    ret = trace.calls["retval"].to_numpy(dtype=object, na_value=None)[pos]
    have = np.array([r is not None for r in ret], dtype=bool)
    if not have.any():
        return out
    new = np.array([int(r) & 0xFFFFFFFFFFFFFFFF for r in ret[have]], dtype=np.uint64)
    links = pd.DataFrame({"key": new, "ts": c["ts_s"].to_numpy()[have],
                          "src": c["skb"].to_numpy()[have]}).sort_values("ts")
    left = pd.DataFrame({"key": pk["_key"].to_numpy(), "ts": pk["first_s"].to_numpy(),
                         "i": np.arange(len(pk))}).sort_values("ts")
    left = left[left["ts"].notna()]
    m = pd.merge_asof(left, links, on="ts", by="key", direction="backward")
    ok = m["src"].notna().to_numpy()
    out[m["i"].to_numpy()[ok]] = m["src"].to_numpy()[ok]
    return out


def packets(trace: "Trace", dev: str | None = None, dropped: bool | None = None,
            start_s: float | None = None, end_s: float | None = None) -> pd.DataFrame:
    """One row per skb generation; see :meth:`ftracekit.Trace.packets` for the columns."""
    st = steps(trace)
    key = st["key"].to_numpy()
    gen = st["gen"].to_numpy()
    n = len(st)
    new = np.r_[True, (key[1:] != key[:-1]) | (gen[1:] != gen[:-1])]
    gid = np.cumsum(new) - 1
    firsts = np.flatnonzero(new)
    lasts = np.r_[firsts[1:] - 1, n - 1]
    ng = len(firsts)
    ts = st["ts_s"].to_numpy()
    stop = np.fmax(ts, st["end_s"].to_numpy())
    first_s = pd.Series(ts).groupby(gid).min().to_numpy()
    last_s = pd.Series(stop).groupby(gid).max().to_numpy()
    gap = np.r_[np.nan, np.diff(ts)] * 1e6
    gap[new] = np.nan
    gs = pd.Series(gap)
    max_gap = gs.groupby(gid).max().to_numpy()
    at = np.full(ng, -1)
    has_gap = ~np.isnan(max_gap)
    if has_gap.any():
        idx = gs.dropna().groupby(gid[~np.isnan(gap)]).idxmax()
        at[idx.index.to_numpy()] = idx.to_numpy()
    names = st["name"].to_numpy(dtype=object)
    is_drop = st["is_drop"].to_numpy()
    dropped_g = np.bincount(gid, weights=is_drop, minlength=ng) > 0
    # the drop: its reason and location (an event's location=, else the caller of the call)
    reason = np.full(ng, None, dtype=object)
    loc = np.full(ng, None, dtype=object)
    d = np.flatnonzero(is_drop)
    if len(d):
        r = st["reason"].to_numpy(dtype=object)[d]
        lo = st["location"].to_numpy(dtype=object)[d]
        par = _lookup(trace.calls, st["call"].to_numpy()[d], "parent", -1)
        caller = _lookup(trace.calls, par, "func", None)
        is_call_d = st["is_call"].to_numpy()[d]
        lo = np.where(is_call_d & pd.isna(lo), caller, lo)
        # prefer events (they name the reason) over calls: last write wins, events last
        ordr = np.argsort(~is_call_d, kind="stable")
        for arr, val in ((reason, r), (loc, lo)):
            gd = gid[d][ordr]
            v = val[ordr]
            keep = pd.notna(v)
            arr[gd[keep]] = v[keep]
    dev_v = st["dev"].to_numpy(dtype=object)
    cpu_v = st["cpu"].to_numpy()
    task_v = st["task"].to_numpy(dtype=object)
    names_of = ((trace.meta.get("recording") or {}).get("skb_drop_reasons") or {})
    if names_of:               # a reason= argument is the enum's number: this kernel's names
        reason = np.array([names_of.get(r, r) if isinstance(r, str) else r for r in reason],
                          dtype=object)
    pk = pd.DataFrame({
        "skb": st["skb"].to_numpy()[firsts],
        "gen": gen[firsts],
        "first_s": first_s,
        "last_s": last_s,
        "span_us": (last_s - first_s) * 1e6,
        "n_steps": np.diff(np.r_[firsts, n]),
        "first": names[firsts],
        "last": names[lasts],
        "devs": _joined(gid, dev_v, pd.notna(dev_v) & (dev_v != ""), ng),
        "cpus": _joined(gid, cpu_v, cpu_v >= 0, ng),
        "tasks": _joined(gid, task_v, pd.notna(task_v), ng),
        "dropped": dropped_g,
        "reason": _obj(reason),
        "drop_location": loc,
        "max_gap_us": max_gap,
        "gap_after": np.where(at >= 0, names[np.maximum(at - 1, 0)], None),
        "gap_before": np.where(at >= 0, names[np.maximum(at, 0)], None),
        "_key": key[firsts],
    })
    pk["clone_of"] = _clone_links(trace, st, pk)
    if dev is not None:
        devs = pk["devs"].to_numpy(dtype=object)
        uniq, inv = np.unique(devs.astype(str), return_inverse=True)
        hit = np.array([dev in u.split(",") for u in uniq], dtype=bool)
        pk = pk[hit[inv.reshape(-1)]] if len(pk) else pk
    if dropped is not None:
        pk = pk[pk["dropped"] == bool(dropped)]
    if start_s is not None:
        pk = pk[pk["last_s"] >= start_s]
    if end_s is not None:
        pk = pk[pk["first_s"] < end_s]
    return pk.drop(columns=["_key"]).reset_index(drop=True)


def journey(trace: "Trace", skb: str | int, gen: int | None = None) -> pd.DataFrame:
    """The steps of one packet in time order; see :meth:`ftracekit.Trace.journey`."""
    st = steps(trace)
    want = parse_skb(skb)
    keys = st["key"].to_numpy()
    sel = keys == np.uint64(want)
    if not sel.any():
        known = pd.unique(st["skb"].to_numpy(dtype=object)).tolist()
        raise UnknownPacketError(str(skb), [str(k) for k in known])
    j = st[sel]
    if gen is not None:
        gens = sorted(set(j["gen"].tolist()))
        if gen not in gens:
            raise FtracekitError(f"skb {skb} has no generation {gen} (it has {gens})")
        j = j[j["gen"] == gen]
    ts = j["ts_s"].to_numpy()
    gap = np.r_[np.nan, np.diff(ts)] * 1e6
    g = j["gen"].to_numpy()
    gap[np.r_[True, g[1:] != g[:-1]]] = np.nan
    out = j[["gen", "ts_s", "cpu", "task", "context", "kind", "name", "dev", "call",
             "duration_us"]].copy()
    out["gap_us"] = gap
    out.loc[out["kind"] == "event", "duration_us"] = np.nan
    return out.reset_index(drop=True)
