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
from pandas.api.types import union_categoricals

from ..errors import FtracekitError, _suggest
from .values import (fixed_hex_after, hex_to_u64, named_pointer, rx_extract, to_arrow,
                     word_after)

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


def _hex_chars(keys: np.ndarray) -> np.ndarray:
    """(n, 16) uint8: the 16 lowercase hex digits of each 64-bit key."""
    keys = np.asarray(keys, dtype=np.uint64)
    return _HEXDIGITS[((keys[:, None] >> _NIBBLE_SHIFTS[None, :]) & np.uint64(15)).astype(np.intp)]


def skb_text(keys: np.ndarray) -> np.ndarray:
    """The addresses as printed (object array): raw addresses ``0x…`` (16 digits), hashes
    their 16 digits."""
    keys = np.asarray(keys, dtype=np.uint64)
    txt = np.ascontiguousarray(_hex_chars(keys)).view("S16").ravel().astype("U18")
    raw = keys > _HASH_MAX
    txt[raw] = np.char.add("0x", txt[raw])
    return txt.astype(object)


def _skb_column(keys: np.ndarray) -> Any:
    """:func:`skb_text` of many keys as a pandas string array, built in one Arrow buffer (no
    Python string per row); an object array where pandas' string dtype is not Arrow."""
    if _STR is None:
        return skb_text(keys)
    import pyarrow as pa

    keys = np.asarray(keys, dtype=np.uint64)
    n = len(keys)
    raw = keys > _HASH_MAX
    chars = np.empty((n, 18), dtype=np.uint8)
    chars[:, 0], chars[:, 1] = ord("0"), ord("x")
    chars[:, 2:] = _hex_chars(keys)
    keep = np.ones((n, 18), dtype=bool)
    keep[~raw, :2] = False
    data = chars[keep]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.where(raw, 18, 16), out=offsets[1:])
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    return pd.array(arr, dtype=_STR)


def _str_column(codes: np.ndarray, cats: np.ndarray) -> Any:
    """``cats[codes]`` (None at code −1) as a pandas string array: the distinct strings are
    converted once and taken in Arrow; an object array where pandas' string dtype is not
    Arrow."""
    if _STR is None:
        return np.append(np.asarray(cats, dtype=object), None)[codes]
    import pyarrow as pa

    arr = pa.array(np.asarray(cats, dtype=object), type=pa.large_string(), from_pandas=True)
    return pd.array(arr.take(pa.array(codes, mask=codes < 0)), dtype=_STR)


def _arrow_str_dtype() -> Any:
    """pandas' default string dtype when it is Arrow-backed (pandas 3), else None."""
    dt = pd.Series(["x"]).dtype
    try:
        import pyarrow  # noqa: F401
    except ImportError:                         # pragma: no cover - without pyarrow
        return None
    return dt if getattr(dt, "storage", None) == "pyarrow" else None


_STR = _arrow_str_dtype()


# ---------------------------------------------------------------------------------------------
# Steps: every appearance of an skb, in calls and events. The text columns are categoricals
# (a few distinct names, devices and tasks over millions of steps): no string per row.

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


def _cat(codes: np.ndarray, cats: Any) -> pd.Categorical:
    """A categorical of ``cats`` (distinct, as objects) at ``codes`` (−1: missing)."""
    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int32),
                                     categories=pd.Index(np.asarray(cats, dtype=object),
                                                         dtype=object))


def _none_cat(n: int) -> pd.Categorical:
    return _cat(np.full(n, -1), [])


def _factorized(values: np.ndarray) -> pd.Categorical:
    """A categorical of an object array (None/NaN: missing)."""
    codes, uniq = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    return _cat(codes, uniq.to_numpy(dtype=object) if hasattr(uniq, "to_numpy") else uniq)


def _sparse_cat(n: int, rows: np.ndarray, values: np.ndarray) -> pd.Categorical:
    """A categorical of ``n`` rows, missing except at ``rows`` (holding ``values``)."""
    sub = _factorized(values)
    codes = np.full(n, -1, dtype=np.int32)
    codes[rows] = np.asarray(sub.codes)
    return _cat(codes, sub.categories)


def _values(col: Any) -> np.ndarray:
    """A categorical (or any) column as an object array, None where missing."""
    if isinstance(getattr(col, "dtype", None), pd.CategoricalDtype):
        cat = col.array if isinstance(col, pd.Series) else col
        cats = np.append(np.asarray(cat.categories, dtype=object), None)
        return cats[np.asarray(cat.codes)]              # (code −1 → the last: None)
    return np.asarray(col, dtype=object)


def _codes_cats(col: Any) -> tuple[np.ndarray, np.ndarray]:
    cat = col.array if isinstance(col, pd.Series) else col
    return np.asarray(cat.codes).astype(np.int64), np.asarray(cat.categories, dtype=object)


def _as_cat(col: pd.Series) -> pd.Categorical:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.array
    return _factorized(col.to_numpy(dtype=object))


def _task_columns(rows: pd.DataFrame, take: np.ndarray) -> dict[str, Any]:
    """The steps' ``line``, ``cpu``, ``pid`` and ``comm`` (categorical) at positions ``take``
    of the calls or the events table (both have them)."""
    comm = _as_cat(rows["comm"])
    return {"line": rows["line"].to_numpy()[take].astype(np.int64),
            "cpu": rows["cpu"].to_numpy()[take].astype(np.int64),
            "pid": rows["pid"].to_numpy()[take].astype(np.int64),
            "comm": _cat(np.asarray(comm.codes)[take], comm.categories)}


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
    reason = location = _none_cat(n)
    if len(drops):                  # (few rows: the drops)
        td = _series(t.iloc[drops])
        reason = _sparse_cat(n, drops, rx_extract(td, r"reason: (\w+)").to_numpy(dtype=object))
        location = _sparse_cat(n, drops,
                               rx_extract(td, r"location=(\S+)").to_numpy(dtype=object))
    ctx_flag = np.zeros(n, dtype=np.uint8)          # the lat flags' context letter (0: none)
    if "lat_flags" in ev:
        fl = ev["lat_flags"]
        if isinstance(fl.dtype, pd.CategoricalDtype) and len(fl.cat.categories):
            per_cat = np.array([ord(str(f)[2:3] or "\0") for f in fl.cat.categories] + [0],
                               dtype=np.uint8)
            ctx_flag = per_cat[fl.cat.codes.to_numpy()[take]]   # (code −1 → the last: 0)
    if ta_all is not None:
        dev = _cat(*word_after(ta_all, "dev=", take))
    else:                                       # pragma: no cover - without pyarrow
        dev = _factorized(rx_extract(t, r"(?:^|\s)dev=(\S+)").to_numpy(dtype=object))
    ts = ev["ts_s"].to_numpy(dtype=float)[take]
    return {
        "key": key[sel],
        "ts_s": ts,
        "end_s": ts.copy(),
        **_task_columns(ev, take),
        "is_call": np.zeros(n, dtype=bool),
        "name": _cat(nm_codes, cat_names),
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
        return _none_cat(len(cc))
    used, inv = np.unique(cc[drops], return_inverse=True)
    got = rx_extract(pd.Series(np.asarray(cats[used], dtype=object), dtype=object),
                     r"(?:^|, )reason=(\d+)").to_numpy(dtype=object, na_value=None)
    return _sparse_cat(len(cc), drops, got[inv.reshape(-1)])


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
    func = _as_cat(calls["func"])
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
        "name": _cat(f_codes, f_cats),
        "dev": _none_cat(n),
        "call": calls.index.to_numpy(dtype=np.int64)[sel],
        "duration_us": calls["duration_us"].to_numpy(dtype=float)[sel],
        "is_free": is_free,
        "is_drop": is_drop,
        "reason": _drop_reasons(cats, cc, is_drop),
        "location": _none_cat(n),
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
    return _cat(remap[codes], np.asarray(uniq, dtype=object))


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
    c_codes, c_cats = _codes_cats(st["comm"])
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
    st["context"] = _cat(ctx, _CTX)
    st["free_end"] = free_end
    st["kind"] = _cat(is_call.astype(np.int8), ["event", "call"])
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


# ---------------------------------------------------------------------------------------------
# Packets and journeys

def _joined(gid: np.ndarray, firsts: np.ndarray, codes: np.ndarray, names: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Per group (the runs starting at ``firsts``; ``gid`` each step's group): its distinct
    values joined with ``,`` in the order of ``names`` (sorted), as a categorical
    ``(codes, texts)`` — ``names[codes]`` are the values, code −1 skipped; a group without
    values gets ``""``.

    Column-wise: with at most 63 distinct values each group's set is a bit mask OR-reduced over
    its run; else the distinct (group, code) pairs become rows of codes. The distinct sets (a
    handful: the same few tasks, devices and CPUs recur) are joined once each.
    """
    ng = len(firsts)
    names = np.array([str(x) for x in names], dtype=object)
    nc = len(names)
    if not len(gid) or not (codes >= 0).any():
        return np.zeros(ng, dtype=np.int64), np.array([""], dtype=object)
    if nc <= 63:
        bits = np.where(codes >= 0, np.left_shift(np.uint64(1), np.maximum(codes, 0).astype(
            np.uint64)), np.uint64(0))
        mask = np.bitwise_or.reduceat(bits, firsts)
        inv, sets = pd.factorize(mask)
        texts = np.array([",".join(names[[(int(m) >> i) & 1 == 1 for i in range(nc)]])
                          for m in sets], dtype=object)
        return inv.astype(np.int64), texts
    ok = codes >= 0
    pair = pd.unique(gid[ok].astype(np.int64) * nc + codes[ok].astype(np.int64))
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
    texts = np.array([",".join(names[r[r >= 0]]) for r in mat[one]] + [""], dtype=object)
    out = np.full(ng, len(texts) - 1, dtype=np.int64)
    out[g[first]] = inv
    return out, texts


def _sorted_codes(col: Any, keep: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """A categorical column's codes renumbered so that code order is the categories' sorted
    order, and the sorted categories; ``keep(categories)`` drops some (code −1)."""
    codes, cats = _codes_cats(col)
    order = np.argsort(cats.astype(str), kind="stable")
    rank = np.empty(len(cats) + 1, dtype=np.int64)
    rank[order] = np.arange(len(cats))
    rank[-1] = -1                                  # (code −1 → the last)
    if keep is not None:
        rank[:-1][~keep(cats)] = -1
    return rank[codes], cats[order]


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
                          "src": skb_text(c["key"].to_numpy()[have])}).sort_values("ts")
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
    # the groups are runs: reduce over each run (fmin/fmax skip NaN, as groupby does)
    first_s = np.fmin.reduceat(ts, firsts) if n else np.zeros(0)
    last_s = np.fmax.reduceat(stop, firsts) if n else np.zeros(0)
    gap = np.r_[np.nan, np.diff(ts)] * 1e6
    gap[new] = np.nan
    max_gap = np.fmax.reduceat(gap, firsts) if n else np.zeros(0)
    # where: the first step of the group with the largest gap
    with np.errstate(invalid="ignore"):
        at_max = gap == max_gap[gid]
    at = np.minimum.reduceat(np.where(at_max, np.arange(n), n), firsts) if n else \
        np.zeros(0, dtype=np.int64)
    at = np.where(at < n, at, -1)
    name_codes, name_cats = _codes_cats(st["name"])
    is_drop = st["is_drop"].to_numpy()
    dropped_g = np.bincount(gid, weights=is_drop, minlength=ng) > 0
    # the drop: its reason and location (an event's location=, else the caller of the call)
    reason = np.full(ng, None, dtype=object)
    loc = np.full(ng, None, dtype=object)
    d = np.flatnonzero(is_drop)
    if len(d):
        r = _values(st["reason"].array[d])             # (the drops only)
        lo = _values(st["location"].array[d])
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
    names_of = ((trace.meta.get("recording") or {}).get("skb_drop_reasons") or {})
    if names_of:               # a reason= argument is the enum's number: this kernel's names
        reason = np.array([names_of.get(r, r) if isinstance(r, str) else r for r in reason],
                          dtype=object)
    cpu_v = st["cpu"].to_numpy()
    cpu_seen = np.bincount(np.maximum(cpu_v, 0)) if n else np.zeros(1, dtype=np.int64)
    cpu_seen[0] = int((cpu_v == 0).sum()) if n else 0
    cpu_names = np.flatnonzero(cpu_seen)                   # the CPUs that occur, in order
    cpu_rank = np.cumsum(cpu_seen > 0) - 1
    cpu_codes = np.where(cpu_v >= 0, cpu_rank[np.maximum(cpu_v, 0)], -1)
    gap_at = np.where(at >= 0, name_codes[np.maximum(at - 1, 0)], -1)
    gap_to = np.where(at >= 0, name_codes[np.maximum(at, 0)], -1)
    pk = pd.DataFrame({
        "skb": _skb_column(key[firsts]),
        "gen": gen[firsts],
        "first_s": first_s,
        "last_s": last_s,
        "span_us": (last_s - first_s) * 1e6,
        "n_steps": np.diff(np.r_[firsts, n]),
        "first": _str_column(name_codes[firsts], name_cats),
        "last": _str_column(name_codes[lasts], name_cats),
        "devs": _str_column(*_joined(gid, firsts, *_sorted_codes(st["dev"],
                                                                 keep=lambda c: c != ""))),
        "cpus": _str_column(*_joined(gid, firsts, cpu_codes, np.asarray(cpu_names))),
        "tasks": _str_column(*_joined(gid, firsts, *_sorted_codes(st["task"]))),
        "dropped": dropped_g,
        "reason": _obj(reason),
        "drop_location": loc,
        "max_gap_us": max_gap,
        "gap_after": _str_column(gap_at, name_cats),
        "gap_before": _str_column(gap_to, name_cats),
        "_key": key[firsts],
    }, copy=False)
    pk["clone_of"] = _clone_links(trace, st, pk)
    if dev is not None:
        codes, uniq = pd.factorize(pk["devs"].to_numpy(dtype=object))
        hit = np.array([dev in str(u).split(",") for u in uniq], dtype=bool)
        pk = pk[hit[codes]] if len(pk) else pk
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
        change = np.r_[True, keys[1:] != keys[:-1]]          # (sorted by key)
        known = [str(k) for k in skb_text(keys[change])]
        raise UnknownPacketError(str(skb), known)
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
    for col in ("task", "context", "kind", "name", "dev"):
        out[col] = pd.Series(_values(out[col]), index=out.index, dtype=object)
    out["gap_us"] = gap
    out.loc[out["kind"] == "event", "duration_us"] = np.nan
    return out.reset_index(drop=True)
