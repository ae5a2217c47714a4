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

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import FtracekitError, _suggest
from ._columns import STR, codes_cats, combine, obj, str_column, values
from .steps import (DROP_EVENTS, DROP_FUNCS, FREE_EVENTS, FREE_FUNCS, RX_SOFTIRQ_FUNCS,
                    SOFTIRQ_FUNCS, NoPacketsError, _HASH_MAX, generations, generations_sequential,
                    steps)

if TYPE_CHECKING:  # pragma: no cover
    from ..trace import Trace

__all__ = ["steps", "packets", "journey", "generations", "generations_sequential",
           "NoPacketsError", "UnknownPacketError", "PACKET_COLUMNS", "JOURNEY_COLUMNS",
           "FREE_FUNCS", "DROP_FUNCS", "FREE_EVENTS", "DROP_EVENTS", "SOFTIRQ_FUNCS",
           "RX_SOFTIRQ_FUNCS", "CLONE_FUNCS", "parse_skb", "skb_text"]

CLONE_FUNCS = frozenset({"skb_clone", "skb_copy", "pskb_copy", "__pskb_copy_fclone",
                         "skb_copy_expand", "skb_clone_sk"})

PACKET_COLUMNS = ["skb", "gen", "first_s", "last_s", "span_us", "n_steps", "first", "last",
                  "devs", "cpus", "tasks", "dropped", "reason", "drop_location", "max_gap_us",
                  "gap_after", "gap_before", "clone_of"]
JOURNEY_COLUMNS = ["gen", "ts_s", "cpu", "task", "context", "kind", "name", "dev", "call",
                   "duration_us", "gap_us"]


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
    if STR is None:
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
    return pd.array(arr, dtype=STR)



def _lookup(calls: pd.DataFrame, ids: np.ndarray, column: str, default: object) -> np.ndarray:
    """``calls[column]`` at call ids (``default`` where the id is −1 or not in the table)."""
    if not len(calls):
        return np.full(len(ids), default, dtype=object if default is None else None)
    pos = calls.index.get_indexer(ids)
    col = calls[column]
    vals = col.astype(object).to_numpy() if isinstance(col.dtype, pd.CategoricalDtype) \
        else col.to_numpy()
    return np.where(pos >= 0, vals[np.maximum(pos, 0)], default)


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
    inv = combine(*mat.T)
    _u, one = np.unique(inv, return_index=True)
    texts = np.array([",".join(names[r[r >= 0]]) for r in mat[one]] + [""], dtype=object)
    out = np.full(ng, len(texts) - 1, dtype=np.int64)
    out[g[first]] = inv
    return out, texts


def _sorted_codes(col: Any, keep: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """A categorical column's codes renumbered so that code order is the categories' sorted
    order, and the sorted categories; ``keep(categories)`` drops some (code −1)."""
    codes, cats = codes_cats(col)
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
    name_codes, name_cats = codes_cats(st["name"])
    is_drop = st["is_drop"].to_numpy()
    dropped_g = np.bincount(gid, weights=is_drop, minlength=ng) > 0
    # the drop: its reason and location (an event's location=, else the caller of the call)
    reason = np.full(ng, None, dtype=object)
    loc = np.full(ng, None, dtype=object)
    d = np.flatnonzero(is_drop)
    if len(d):
        r = values(st["reason"].array[d])             # (the drops only)
        lo = values(st["location"].array[d])
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
        "first": str_column(name_codes[firsts], name_cats),
        "last": str_column(name_codes[lasts], name_cats),
        "devs": str_column(*_joined(gid, firsts, *_sorted_codes(st["dev"],
                                                                 keep=lambda c: c != ""))),
        "cpus": str_column(*_joined(gid, firsts, cpu_codes, np.asarray(cpu_names))),
        "tasks": str_column(*_joined(gid, firsts, *_sorted_codes(st["task"]))),
        "dropped": dropped_g,
        "reason": obj(reason),
        "drop_location": loc,
        "max_gap_us": max_gap,
        "gap_after": str_column(gap_at, name_cats),
        "gap_before": str_column(gap_to, name_cats),
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
        out[col] = pd.Series(values(out[col]), index=out.index, dtype=object)
    out["gap_us"] = gap
    out.loc[out["kind"] == "event", "duration_us"] = np.nan
    return out.reset_index(drop=True)
