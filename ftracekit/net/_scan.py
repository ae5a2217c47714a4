"""Where the skb addresses are: one scan of the events table (``skbaddr=``) and one of the calls
table (funcgraph-args ``skb=``), each giving a :class:`Part` — the rows that name an skb, their
addresses, names, devices and drop reasons — in table order.

Column-wise throughout: event texts are read from Arrow's byte buffer (:mod:`.values`), args
texts once per distinct text; the other columns stay in their tables and are read at the
steps' rows when needed (:class:`Part` keeps numpy views of them, no copies).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from .._concurrent import background
from ._columns import as_cat
from ._skb import DROP_EVENTS, DROP_FUNCS, FREE_EVENTS, FREE_FUNCS, _KERNEL_MIN
from .values import (fixed_hex_after, hex_to_u64, named_pointer, rx_extract, to_arrow,
                     word_after)

__all__ = ["Part", "event_part", "call_part", "per_code"]


class Part:
    """The skb appearances of one table (the calls or the events), in table order.

    ``rows`` (int32, or int64 for tables of 2**31 rows or more): their positions in
    ``table``; ``key`` (uint64): the address or hash (None once a :class:`~.steps.StepIndex`
    holds the events' keys sorted);
    ``name_codes`` (int32 into ``name_cats``; −1: none): the function or event; ``dev_codes``
    (int32 into ``dev_cats``; −1: none; None: no device column); ``drops`` (int64, sorted):
    the positions (in this part) of the drops, with their ``reason`` and ``location`` (object
    arrays, None where not printed). ``free_of``/``drop_of``: bool per name code, with a last
    False for code −1. The table's columns are held as numpy views: ``ts`` (s; a call's
    start), ``end`` (s; a call's end, None for events), ``line``, ``cpu``, ``pid``,
    ``comm_codes``/``comm_cats``, ``call`` (the call id; an event's enclosing call, −1 outside
    any), ``duration`` (µs; None for events) and ``flag`` (the lat flags' context letter as a
    byte per row, None where there are none).
    """

    def __init__(self, table: pd.DataFrame, is_call: bool, rows: np.ndarray, key: np.ndarray,
                 name_codes: np.ndarray, name_cats: np.ndarray, free_names: frozenset[str],
                 drop_names: frozenset[str], dev: tuple[np.ndarray, np.ndarray] | None,
                 drops: np.ndarray, reason: np.ndarray, location: np.ndarray) -> None:
        self.table, self.is_call, self.rows, self.key = table, is_call, rows, key
        self.name_codes = np.asarray(name_codes, dtype=np.int32)
        self.name_cats = np.asarray(name_cats, dtype=object)
        self.free_of = per_code(self.name_cats, free_names)
        self.drop_of = per_code(self.name_cats, drop_names)
        self.dev_codes, self.dev_cats = (None, np.zeros(0, dtype=object)) if dev is None else \
            (np.asarray(dev[0], dtype=np.int32), np.asarray(dev[1], dtype=object))
        self.drops, self.reason, self.location = drops, reason, location
        self.ts = table["start_s" if is_call else "ts_s"].to_numpy(dtype=float)
        self.end = table["end_s"].to_numpy(dtype=float) if is_call else None
        self.duration = table["duration_us"].to_numpy(dtype=float) if is_call else None
        self.line = table["line"].to_numpy()
        self.cpu = table["cpu"].to_numpy()
        self.pid = table["pid"].to_numpy()
        comm = as_cat(table["comm"])
        self.comm_codes = np.asarray(comm.codes)
        self.comm_cats = np.asarray(comm.categories, dtype=object)
        self.call = table.index.to_numpy(dtype=np.int64) if is_call else \
            table["call"].to_numpy(dtype=np.int64)
        self.flag: tuple[np.ndarray, np.ndarray] | None = None
        fl = table["lat_flags"] if (not is_call and "lat_flags" in table) else None
        if fl is not None and isinstance(fl.dtype, pd.CategoricalDtype) and \
                len(fl.cat.categories):
            per_cat = np.array([ord(str(f)[2:3] or "\0") for f in fl.cat.categories] + [0],
                               dtype=np.uint8)            # (code −1 → the last: 0)
            self.flag = (np.asarray(fl.cat.codes), per_cat)

    def __len__(self) -> int:
        return len(self.rows)

    def at_drops(self, pos: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``values`` (reason or location) at part positions ``pos`` (None where not a drop)."""
        out = np.full(len(pos), None, dtype=object)
        if not len(self.drops) or not len(pos):
            return out
        i = np.minimum(np.searchsorted(self.drops, pos), len(self.drops) - 1)
        hit = self.drops[i] == pos
        out[hit] = values[i[hit]]
        return out


def event_part(ev: pd.DataFrame) -> Part | None:
    """The events with an ``skbaddr=`` field (decided per event name, on its first text)."""
    if not len(ev):
        return None
    event = ev["event"]
    if not isinstance(event.dtype, pd.CategoricalDtype):
        event = event.astype("category")
    codes = event.cat.codes.to_numpy()
    cat_names = event.cat.categories.to_numpy(dtype=object)
    text = ev["text"]
    present = np.zeros(len(cat_names) + 1, dtype=bool)
    present[codes] = True                        # (code −1 → the last)
    firsts = {}                                  # name code → its first text (bytes)
    for c in np.flatnonzero(present[:-1]):       # (one pass per event name: a handful)
        b = str(text.iat[int(np.argmax(codes == c))]).encode("utf-8", "replace")
        if b"skbaddr=" in b:
            firsts[int(c)] = b
    with_skb = np.zeros(len(cat_names) + 1, dtype=bool)
    with_skb[list(firsts)] = True
    rows = _rows_where(with_skb, codes)
    if not len(rows):
        return None
    ta_all = to_arrow(text)
    nm_codes = codes[rows].astype(np.int32)
    dev_codes = None
    if ta_all is not None:
        # Each event prints its fields in its own fixed format: where dev= and skbaddr= were in
        # the name's first text is where they are in its other rows (while the words before
        # them are as long) — checked in place per row, searched only where the guess misses.
        # The two fields are read on two threads where two CPUs are free.
        n_cat = len(cat_names) + 1
        dev_at = np.full(n_cat, -2, dtype=np.int32)          # −2: the format has no dev=
        skb_at = np.full(n_cat, -1, dtype=np.int32)
        for c, b in firsts.items():
            skb_at[c] = b.find(b"skbaddr=")
            m = _DEV.search(b)
            if m:
                dev_at[c] = m.start(1)
        with_dev = _rows_where(dev_at != -2, nm_codes)            # (the formats with dev=)
        dev_rows = rows[with_dev]
        devs = background(word_after, ta_all, "dev=", dev_rows, dev_at[nm_codes[with_dev]],
                          size=len(dev_rows))
        # %p prints 16 digits: read them from the Arrow buffer (a regex only for the rest)
        key, keep = fixed_hex_after(ta_all, "skbaddr=", rows, guess=skb_at[nm_codes])
        got, dev_cats = devs.result()
        dev_codes = np.full(len(rows), -1, dtype=np.int32)
        dev_codes[with_dev] = got
        del got, dev_rows, with_dev
        rest = np.flatnonzero(~keep)
        if len(rest):
            addr = rx_extract(_texts(ta_all, text, rows[rest]),
                              r"\bskbaddr=(?:0x)?([0-9a-fA-F]{1,16})\b")
            key[rest] = hex_to_u64(addr)
            keep[rest] = addr.notna().to_numpy(dtype=bool)
    else:                                       # pragma: no cover - without pyarrow
        addr = rx_extract(_texts(None, text, rows), r"\bskbaddr=(?:0x)?([0-9a-fA-F]{1,16})\b")
        keep = addr.notna().to_numpy(dtype=bool)
        key = hex_to_u64(addr)
    keep &= key != 0
    if not keep.all():
        rows, key, nm_codes = rows[keep], key[keep], nm_codes[keep]
        if dev_codes is not None:
            dev_codes = dev_codes[keep]
    del keep
    drops = np.flatnonzero(per_code(cat_names, DROP_EVENTS)[nm_codes])
    reason = location = np.zeros(0, dtype=object)
    if len(drops):                  # (few rows: the drops)
        if ta_all is not None:
            import pyarrow as pa
            td, ad = None, ta_all.take(pa.array(rows[drops]))
        else:                                   # pragma: no cover - without pyarrow
            td, ad = _texts(None, text, rows[drops]), None
        reason = rx_extract(td, r"reason: (\w+)", arrow=ad).to_numpy(dtype=object,
                                                                     na_value=None)
        location = rx_extract(td, r"location=(\S+)", arrow=ad).to_numpy(dtype=object,
                                                                        na_value=None)
    if dev_codes is None:                       # pragma: no cover - without pyarrow
        got = rx_extract(_texts(None, text, rows), r"(?:^|\s)dev=(\S+)")
        dev_codes, dev_cats = pd.factorize(got.to_numpy(dtype=object), use_na_sentinel=True)
    return Part(ev, False, rows, key, nm_codes, cat_names, FREE_EVENTS, DROP_EVENTS,
                (dev_codes, np.asarray(dev_cats, dtype=object)), drops, reason, location)


def per_code(cats: Any, names: frozenset[str]) -> np.ndarray:
    """Whether each category is one of ``names``, with a last False for code −1 (index it
    with a categorical's codes)."""
    return np.append(pd.Index(np.asarray(cats, dtype=object), dtype=object).isin(names), False)


def _rows_where(per_code: np.ndarray, codes: np.ndarray, step: int = 1 << 20) -> np.ndarray:
    """The positions whose code is one ``per_code`` marks (``per_code[-1]``: code −1), as
    int32 where they fit, found a piece at a time (no 8-byte position per row of the table)."""
    dt = np.int32 if len(codes) < 2**31 - 1 else np.int64
    parts = [(np.flatnonzero(per_code[codes[lo:lo + step]]) + lo).astype(dt)
             for lo in range(0, len(codes), step)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dt)


def _texts(arrow: Any, text: pd.Series, rows: np.ndarray) -> pd.Series:
    """The event texts at ``rows`` as an object Series (only ever a few rows, or the whole
    column where pyarrow is missing)."""
    if arrow is not None:
        import pyarrow as pa
        return pd.Series(arrow.take(pa.array(rows)).to_numpy(zero_copy_only=False),
                         dtype=object)
    return pd.Series(text.to_numpy(dtype=object)[rows], dtype=object)


_DEV = re.compile(rb"(?:^|\s)(dev=)(\S*)")
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


def call_part(calls: pd.DataFrame) -> Part | None:
    """The calls with a kernel pointer in an argument named ``*skb*`` (funcgraph-args)."""
    if not len(calls) or "args" not in calls:
        return None
    args = calls["args"]
    if not isinstance(args.dtype, pd.CategoricalDtype):
        args = args.astype("category")
    cats = args.cat.categories
    if not len(cats):
        return None
    ckey, cfound = _arg_skb_keys(cats)
    cok = np.append(cfound & (ckey >= _KERNEL_MIN), False)     # (code −1 → the last)
    codes = args.cat.codes.to_numpy()
    rows = _rows_where(cok, codes)
    if not len(rows):
        return None
    cc = codes[rows]
    func = as_cat(calls["func"])
    f_codes = np.asarray(func.codes)[rows]
    f_cats = np.asarray(func.categories, dtype=object)
    drops = np.flatnonzero(per_code(f_cats, DROP_FUNCS)[f_codes])
    reason = np.zeros(0, dtype=object)
    if len(drops):      # reason= (its number, as text): the regex over the distinct args texts
        used, inv = np.unique(cc[drops], return_inverse=True)
        got = rx_extract(pd.Series(np.asarray(cats[used], dtype=object), dtype=object),
                         r"(?:^|, )reason=(\d+)").to_numpy(dtype=object, na_value=None)
        reason = got[inv.reshape(-1)]
    return Part(calls, True, rows, ckey[cc], f_codes, f_cats, FREE_FUNCS, DROP_FUNCS, None,
                drops, reason, np.full(len(drops), None, dtype=object))
