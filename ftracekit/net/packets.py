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
from ._columns import STR, cat, combine, obj, str_column, values
from ._scan import per_code
from .steps import (DROP_EVENTS, DROP_FUNCS, FREE_EVENTS, FREE_FUNCS, RX_SOFTIRQ_FUNCS,
                    SOFTIRQ_FUNCS, NoPacketsError, StepIndex, _HASH_MAX, generations,
                    generations_sequential, step_index, step_rows, steps)

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


_M16 = np.uint64(0x0000FFFF0000FFFF)
_M8 = np.uint64(0x00FF00FF00FF00FF)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_B01 = np.uint64(0x0101010101010101)


def _hex_word(x: np.ndarray) -> np.ndarray:
    """The 8 lowercase hex digits of the low 32 bits of each uint64, as the bytes of a word
    (first digit in the low byte): the nibbles spread one per byte (SWAR), then made
    characters — no per-digit matrix."""
    x = x & np.uint64(0xFFFFFFFF)
    x = (x | (x << np.uint64(16))) & _M16
    x = (x | (x << np.uint64(8))) & _M8
    x = (x | (x << np.uint64(4))) & _M4                # byte i: nibble i (the lowest first)
    letter = ((x + _B01 * np.uint64(6)) >> np.uint64(4)) & _B01        # 1 where nibble ≥ 10
    return (x + _B01 * np.uint64(0x30) + letter * np.uint64(39)).byteswap()


def _hex_chars(keys: np.ndarray) -> np.ndarray:
    """(n, 16) uint8: the 16 lowercase hex digits of each 64-bit key."""
    keys = np.asarray(keys, dtype=np.uint64)
    out = np.empty((len(keys), 2), dtype=np.uint64)
    out[:, 0] = _hex_word(keys >> np.uint64(32))
    out[:, 1] = _hex_word(keys)
    return out.view(np.uint8).reshape(len(keys), 16)


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
    if raw.all():
        data = chars.reshape(-1)
    elif not raw.any():
        data = np.ascontiguousarray(chars[:, 2:]).reshape(-1)
    else:
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

class _Sets:
    """The distinct values of a coded column per packet (devices, CPUs, tasks), gathered chunk
    by chunk: while every code is below 64 as one bit mask per packet (OR-reduced over its
    run of steps), else as distinct (packet, code) pairs. :meth:`result` joins each distinct set
    once (a handful: the same few tasks, devices and CPUs recur)."""

    def __init__(self) -> None:
        self.masks: list[np.ndarray] = []
        self.pairs: list[np.ndarray] = []
        self.ng = 0

    def add(self, gid: np.ndarray, firsts: np.ndarray, codes: np.ndarray) -> None:
        """One chunk: ``gid`` each step's packet (0… in the chunk), ``firsts`` the packets'
        first steps, ``codes`` each step's value (−1: none)."""
        ng = len(firsts)
        codes = np.asarray(codes, dtype=np.int64)
        if not self.pairs and (not len(codes) or int(codes.max()) < 64):
            bits = np.where(codes >= 0, np.left_shift(np.uint64(1), np.maximum(codes, 0).astype(
                np.uint64)), np.uint64(0))
            self.masks.append(np.bitwise_or.reduceat(bits, firsts) if len(codes) else
                              np.zeros(ng, dtype=np.uint64))
        else:
            if self.masks:                   # (from now on as pairs: the masks' bits too)
                m = np.concatenate(self.masks)
                self.masks = []
                bits = np.unpackbits(m.view(np.uint8).reshape(-1, 8), axis=1,
                                     bitorder="little")
                g, c = np.nonzero(bits)
                self.pairs.append((g.astype(np.int64) << 32) | c.astype(np.int64))
            ok = codes >= 0
            g = gid[ok].astype(np.int64) + self.ng
            c = codes[ok]
            keep = np.r_[True, (g[1:] != g[:-1]) | (c[1:] != c[:-1])] if len(g) else \
                np.zeros(0, dtype=bool)
            self.pairs.append(pd.unique((g[keep] << 32) | c[keep]))
        self.ng += ng

    def result(self, names: np.ndarray, rank: np.ndarray) -> pd.Categorical:
        """A categorical over the packets: each one's values joined with ``,`` in ``rank``
        order (``rank[code]``; −1: left out), ``""`` where it has none; ``names[code]`` are the
        values."""
        names = np.array([str(x) for x in names], dtype=object)
        rank = np.asarray(rank, dtype=np.int64)
        if self.masks or not self.pairs:
            mask = np.concatenate(self.masks) if self.masks else np.zeros(self.ng, np.uint64)
            inv, sets = pd.factorize(mask)
            texts = []
            for m in sets:
                m = int(m)
                cs = [c for c in range(64) if (m >> c) & 1 and c < len(rank) and rank[c] >= 0]
                texts.append(",".join(names[sorted(cs, key=lambda c: rank[c])]))
            return _used_cat(inv, texts)
        pairs = np.concatenate(self.pairs)
        g, c = pairs >> 32, rank[pairs & 0xFFFFFFFF]
        ok = c >= 0
        nr = int(rank.max()) + 1 if len(rank) else 1
        pair = np.unique(g[ok] * nr + c[ok])          # sorted by packet, then by rank
        g, r = pair // nr, pair % nr
        by_rank = np.empty(max(nr, 1), dtype=object)
        by_rank[rank[rank >= 0]] = names[np.flatnonzero(rank >= 0)]
        first = np.r_[True, g[1:] != g[:-1]] if len(g) else np.zeros(0, dtype=bool)
        start = np.flatnonzero(first)
        out = np.full(self.ng, 0, dtype=np.int64)
        texts: list[str] = [""]
        if len(start):
            pos = np.arange(len(g)) - np.repeat(start, np.diff(np.r_[start, len(g)]))
            mat = np.full((len(start), int(pos.max()) + 1), -1, dtype=np.int64)
            mat[np.cumsum(first) - 1, pos] = r
            inv = combine(*mat.T)
            _u, one = np.unique(inv, return_index=True)
            texts += [",".join(by_rank[row[row >= 0]]) for row in mat[one]]
            out[g[first]] = inv + 1
        return _used_cat(out, texts)


def _used_cat(codes: np.ndarray, cats: Any) -> pd.Categorical:
    """A categorical of ``cats`` at ``codes`` (−1: missing) with only the categories used,
    sorted; categories that read alike are merged."""
    codes = np.asarray(codes, dtype=np.int64)
    cats = np.asarray(cats, dtype=object)
    used = np.zeros(len(cats) + 1, dtype=bool)
    used[codes] = True                                   # (code −1 → the last)
    keep = np.flatnonzero(used[:-1])
    new_codes, uniq = pd.factorize(pd.Series(cats[keep], dtype=object), sort=True)
    remap = np.full(len(cats) + 1, -1, dtype=np.int64)
    remap[keep] = new_codes
    return cat(remap[codes], np.asarray(uniq, dtype=object))


def _rank(names: np.ndarray, keep: Any = None) -> np.ndarray:
    """Each name's position in the sorted names (−1 where ``keep`` says no)."""
    order = np.argsort(np.asarray([str(x) for x in names], dtype=object), kind="stable")
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    if keep is not None:
        rank[~np.asarray([bool(keep(x)) for x in names], dtype=bool)] = -1
    return rank


def _clone_links(trace: "Trace", idx: StepIndex, key: np.ndarray, first_s: np.ndarray
                 ) -> Any:
    """``clone_of`` of each packet (its ``key`` and ``first_s``): the skb (as printed) whose
    clone call returned its address just before its first step; empty where none. A string
    column (made from the few distinct sources, not one string per packet)."""
    out = np.full(len(key), "", dtype=object)
    if not any(p.is_call for p in idx.parts):
        return str_column(np.zeros(len(key), dtype=np.int64), np.array([""], dtype=object))
    src, ts, ids = [], [], []
    for p in idx.parts:
        if not p.is_call:
            continue
        at = np.flatnonzero(per_code(p.name_cats, CLONE_FUNCS)[p.name_codes])
        src.append(p.key[at])
        ts.append(p.ts[p.rows[at]])
        ids.append(p.call[p.rows[at]])
    if not src or not sum(len(x) for x in src):
        return out
    src_k, ts_c, ids_c = np.concatenate(src), np.concatenate(ts), np.concatenate(ids)
    pos = trace.calls.index.get_indexer(ids_c)
    ret = trace.calls["retval"].to_numpy(dtype=object, na_value=None)[pos]
    have = np.array([r is not None for r in ret], dtype=bool)
    if not have.any():
        return out
    new = np.array([int(r) & 0xFFFFFFFFFFFFFFFF for r in ret[have]], dtype=np.uint64)
    links = pd.DataFrame({"key": new, "ts": ts_c[have],
                          "src": skb_text(src_k[have])}).sort_values("ts")
    left = pd.DataFrame({"key": key, "ts": first_s, "i": np.arange(len(key))}).sort_values("ts")
    left = left[left["ts"].notna()]
    m = pd.merge_asof(left, links, on="ts", by="key", direction="backward")
    ok = m["src"].notna().to_numpy()
    out[m["i"].to_numpy()[ok]] = m["src"].to_numpy()[ok]
    return out


def _drop_facts(trace: "Trace", idx: StepIndex, d: np.ndarray, gid: np.ndarray,
                reason: np.ndarray, loc: np.ndarray) -> None:
    """Sets ``reason`` and ``location`` (object arrays over the packets) of the packets with a
    drop: ``d`` the drop steps (step indices), ``gid`` their packets. An event's
    ``location=``, else the caller of the drop call; events win over calls (they name the
    reason), later steps over earlier ones."""
    if not len(d):
        return
    r = idx.drop_values("reason", d)
    lo = idx.drop_values("location", d)
    is_call_d = idx.is_call(d)
    if is_call_d.any():
        par = _lookup(trace.calls, idx.call(d), "parent", -1)
        caller = _lookup(trace.calls, par, "func", None)
        lo = np.where(is_call_d & pd.isna(lo), caller, lo)
    # last write wins, events last
    ordr = np.argsort(~is_call_d, kind="stable")
    gd = gid[ordr]
    for arr, val in ((reason, r), (loc, lo)):
        v = val[ordr]
        keep = pd.notna(v)
        arr[gd[keep]] = v[keep]


def packets(trace: "Trace", dev: str | None = None, dropped: bool | None = None,
            start_s: float | None = None, end_s: float | None = None) -> pd.DataFrame:
    """One row per skb generation; see :meth:`ftracekit.Trace.packets` for the columns.

    Reduced from the :class:`~.steps.StepIndex` a chunk of about a million steps at a time
    (a packet never spans two chunks), so the memory it needs beyond the index stays small."""
    idx = step_index(trace)
    # the packets' first steps (a change of key or generation), counted first so that every
    # chunk writes its packets straight into the columns
    starts = []
    for lo, hi in idx.chunks():
        key, gen = idx.key[lo:hi], idx.gen[lo:hi]
        starts.append(lo + np.flatnonzero(np.r_[True, (key[1:] != key[:-1])
                                                | (gen[1:] != gen[:-1])]))
    start = np.concatenate(starts)
    del starts
    ng = len(start)
    c = {k: np.empty(ng, dtype=t) for k, t in (
        ("gen", np.int64), ("first_s", float), ("last_s", float), ("first", np.int32),
        ("last", np.int32), ("dropped", bool), ("max_gap", float), ("gap_at", np.int32),
        ("gap_to", np.int32))}
    keys = idx.key[start]
    n_steps = np.diff(np.r_[start, len(idx)]).astype(np.int64)
    drop_steps, drop_gid = [], []                 # (the drops: few; their facts at the end)
    devs, cpus, tasks = _Sets(), _Sets(), _Sets()
    for lo, hi in idx.chunks():
        n = hi - lo
        ga, gb = np.searchsorted(start, [lo, hi])
        out = slice(ga, gb)
        firsts = start[ga:gb] - lo
        new = np.zeros(n, dtype=bool)
        new[firsts] = True
        gid = np.cumsum(new) - 1
        lasts = np.r_[firsts[1:] - 1, n - 1]
        ts = idx.ts[lo:hi]
        c["gen"][out] = idx.gen[lo:hi][firsts]
        # the groups are runs: reduce over each run (fmin/fmax skip NaN, as groupby does)
        c["first_s"][out] = np.fmin.reduceat(ts, firsts)
        c["last_s"][out] = np.fmax.reduceat(np.fmax(ts, idx.end_s(lo, hi)), firsts)
        gap = np.empty(n)
        gap[0] = np.nan
        np.subtract(ts[1:], ts[:-1], out=gap[1:])
        gap *= 1e6
        gap[new] = np.nan
        max_gap = np.fmax.reduceat(gap, firsts)
        c["max_gap"][out] = max_gap
        # where: the first step of the group with the largest gap
        with np.errstate(invalid="ignore"):
            at_max = gap == max_gap[gid]
        at = np.minimum.reduceat(np.where(at_max, np.arange(n), n), firsts)
        at = np.where(at < n, at, -1)
        nm = idx.name_codes(lo, hi)
        c["first"][out] = nm[firsts]
        c["last"][out] = nm[lasts]
        c["gap_at"][out] = np.where(at >= 0, nm[np.maximum(at - 1, 0)], -1)
        c["gap_to"][out] = np.where(at >= 0, nm[np.maximum(at, 0)], -1)
        is_drop = idx.is_drop(lo, hi)
        c["dropped"][out] = np.logical_or.reduceat(is_drop, firsts)
        d = np.flatnonzero(is_drop)
        drop_steps.append(lo + d)
        drop_gid.append(ga + gid[d])
        devs.add(gid, firsts, idx.dev_codes(lo, hi))
        cpus.add(gid, firsts, idx.cpu(lo, hi))
        tasks.add(gid, firsts, idx.task_codes(lo, hi))
    reason = np.full(ng, None, dtype=object)
    loc = np.full(ng, None, dtype=object)
    _drop_facts(trace, idx, np.concatenate(drop_steps), np.concatenate(drop_gid), reason, loc)
    names_of = ((trace.meta.get("recording") or {}).get("skb_drop_reasons") or {})
    if names_of:               # a reason= argument is the enum's number: this kernel's names
        reason = np.array([names_of.get(r, r) if isinstance(r, str) else r for r in reason],
                          dtype=object)
    # (CPU numbers are their own codes, in numeric order; the bound is the tables' largest)
    cpu_names = np.arange(max([int(p.cpu.max()) for p in idx.parts if len(p.cpu)] + [0]) + 1)
    first_s, last_s = c["first_s"], c["last_s"]
    pk = pd.DataFrame({
        "skb": _skb_column(keys),
        "gen": c["gen"],
        "first_s": first_s,
        "last_s": last_s,
        "span_us": (last_s - first_s) * 1e6,
        "n_steps": n_steps,
        "first": _used_cat(c["first"], idx.names),
        "last": _used_cat(c["last"], idx.names),
        "devs": devs.result(idx.devs, _rank(idx.devs, keep=lambda x: x != "")),
        "cpus": cpus.result(cpu_names, cpu_names),
        "tasks": tasks.result(np.asarray(idx.task_names, dtype=object),
                              _rank(np.asarray(idx.task_names, dtype=object))),
        "dropped": c["dropped"],
        "reason": obj(reason),
        "drop_location": loc,
        "max_gap_us": c["max_gap"],
        "gap_after": _used_cat(c["gap_at"], idx.names),
        "gap_before": _used_cat(c["gap_to"], idx.names),
    }, copy=False)
    pk["clone_of"] = _clone_links(trace, idx, keys, first_s)
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
    return pk.reset_index(drop=True)


def journey(trace: "Trace", skb: str | int, gen: int | None = None) -> pd.DataFrame:
    """The steps of one packet in time order; see :meth:`ftracekit.Trace.journey`."""
    idx = step_index(trace)
    want = np.uint64(parse_skb(skb))
    keys = idx.key
    lo = int(np.searchsorted(keys, want, side="left"))
    hi = int(np.searchsorted(keys, want, side="right"))
    if hi <= lo:
        change = np.r_[True, keys[1:] != keys[:-1]]          # (sorted by key)
        known = [str(k) for k in skb_text(keys[change])]
        raise UnknownPacketError(str(skb), known)
    j = step_rows(idx, lo, hi)
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
