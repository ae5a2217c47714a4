"""Trace events as typed tables: one column per field, read from each event's own text.

An event line is the event's ``print fmt`` applied to its fields, e.g. (6.11+)::

    kfree_skb: skbaddr=ffff888104d1d800 rx_sk=0000000000000000 protocol=2048 location=__udp4_lib_rcv+0x4bc/0xd00 reason: NO_SOCKET

Most formats are ``name=value`` pairs separated by spaces; a few end in ``key: VALUE`` (the
drop ``reason`` of ``kfree_skb``). Layouts differ between kernels (``kfree_skb`` gained
``reason`` in 5.17 and ``rx_sk`` in 6.11), so nothing is hard-coded: the fields are whatever
the text names. Rows of one event share a template (the sequence of keys); each template is
matched with one regex over all its rows, so the cost is per template, not per row.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ..errors import FtracekitError, _suggest
from .values import rx_extract, to_arrow, typed_column

__all__ = ["event_fields", "events_named", "UnknownEventError", "EVENT_BASE_COLUMNS"]

#: Columns every :func:`event_fields` table starts with (from the events table).
EVENT_BASE_COLUMNS = ["line", "ts_s", "cpu", "pid", "comm", "call"]

_RX_KEYS = re.compile(r"(?:^| )([A-Za-z_]\w*)(=|:(?= |$))")
_RX_LOCATION = r"^([\w.]+)\+0x[0-9a-f]+/0x[0-9a-f]+$"
_MAX_TEMPLATES = 64
_SAMPLE = 1024        # rows whose template texts give the common template (see _signatures)


class UnknownEventError(FtracekitError):
    """An event name that does not occur in the trace; ``suggestions`` holds close matches."""

    def __init__(self, name: str, candidates: list[str]):
        self.name = name
        self.suggestions = _suggest(name, candidates)
        msg = f"no event {name!r} in this trace"
        if self.suggestions:
            msg += "; did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?"
        elif candidates:
            msg += f" (it has: {', '.join(sorted(candidates)[:8])})"
        else:
            msg += " (it has no events: record them with --event or --packets)"
        super().__init__(msg)


def _template_regex(keys: tuple[tuple[str, str], ...]) -> str:
    """The regex of one template: the keys as literal anchors, each value lazily up to the next
    key (RE2-compatible: no look-around), so values may hold spaces."""
    parts = []
    for i, (k, sep) in enumerate(keys):
        parts.append(("" if i == 0 else " ") + re.escape(k) + re.escape(sep))
        parts.append(" ?(.*?)" if sep == ":" else "(.*?)")
    return "^" + "".join(parts) + "$"


def _fields_of(body) -> dict[str, pd.Series]:
    """Field text columns (str, NA where a row lacks the field) of event bodies: a pyarrow
    string array (a field that one template gives for every row stays in Arrow, no Python
    string per value), or an object Series where pyarrow is missing (regexes only)."""
    arrow = not isinstance(body, pd.Series)
    n = len(body)
    # the template of each row: its text with the values removed (first pass: values without
    # spaces; a value with spaces leaves words behind, which name no key and are ignored)
    if arrow:
        import pyarrow as pa
        import pyarrow.compute as pc

        sig, split = _signatures(body)
        enc = pc.fill_null(sig, "").dictionary_encode()
        inv = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        uniq = enc.dictionary.to_pylist()
    else:                                       # pragma: no cover - without pyarrow
        sig = body.str.replace(r"=\S*", "=", regex=True).str.replace(
            r"(^| )(\w+): \S*", "\\1\\2:", regex=True)
        inv, uniq = pd.factorize(sig.fillna("").to_numpy(dtype=object))
        uniq = [str(u) for u in uniq]
    keys_of = [tuple((m.group(1), m.group(2)) for m in _RX_KEYS.finditer(u)) for u in uniq]
    tpl_ids: dict[tuple, int] = {}
    tpl_of_sig = np.array([tpl_ids.setdefault(k, len(tpl_ids)) for k in keys_of], dtype=np.int64)
    tpl = tpl_of_sig[inv] if len(inv) else np.zeros(0, dtype=np.int64)
    order = sorted(tpl_ids.items(), key=lambda kv: -int((tpl == kv[1]).sum()))
    clean_sig = np.array([" ".join(k + sep for k, sep in keys_of[i]) == u
                          for i, u in enumerate(uniq)], dtype=bool)
    clean = clean_sig[inv] if len(inv) else np.zeros(0, dtype=bool)
    pieces: dict[str, list[tuple[np.ndarray, object]]] = {}
    for n_t, (keys, t_id) in enumerate(order):
        if n_t >= _MAX_TEMPLATES or not keys:
            continue
        for k, _sep in keys:
            pieces.setdefault(k, [])
        rows = tpl == t_id
        fast = rows & clean if arrow else np.zeros(len(rows), dtype=bool)
        if fast.any():
            # values without spaces: split on spaces, the tokens are in template order
            at = np.flatnonzero(fast)
            done = _split_fields(body.filter(fast), keys, at, pieces,
                                 split[1] if split is not None and np.array_equal(fast, split[0])
                                 else None)
            fast[at[~done]] = False      # (a "key:" that ends the text has no value token)
        slow = rows & ~fast
        if slow.any():
            got = rx_extract(None if arrow else body[slow], _template_regex(keys), expand=True,
                             arrow=body.filter(slow) if arrow else None)
            where = np.flatnonzero(slow)
            for i, (k, _sep) in enumerate(keys):
                col = got[i]
                pieces[k].append((where, (col.str.strip() if k == "reason" else col)
                                  .to_numpy(dtype=object)))
    out: dict[str, pd.Series] = {}
    for k, parts in pieces.items():
        if arrow and len(parts) == 1 and len(parts[0][0]) == n \
                and isinstance(parts[0][1], pa.Array):
            out[k] = pd.Series(pd.arrays.ArrowStringArray(parts[0][1].cast(pa.large_string())))
            continue
        col = np.full(n, None, dtype=object)
        for where, vals in parts:
            col[where] = vals if isinstance(vals, np.ndarray) else \
                vals.to_numpy(zero_copy_only=False)
        out[k] = pd.Series(col, dtype=object)
    return out


def _regex_signatures(body, colon: bool | None = None):
    """Each row's template text (values cut: ``dev= len= reason:``), by regex: ``colon`` forces
    the ``key: VALUE`` pass (None: when any row has one)."""
    import pyarrow.compute as pc

    sig = pc.replace_substring_regex(body, r"=\S*", "=")
    if colon or (colon is None and pc.any(pc.match_substring(sig, ": ")).as_py()):
        sig = pc.replace_substring_regex(sig, r"(^| )(\w+): \S*", "\\1\\2:")
    return sig


def _signatures(body) -> tuple[Any, tuple[np.ndarray, Any] | None]:
    """:func:`_regex_signatures` of every row, without the regexes over the rows of the most
    common clean template of a sample (nearly all rows of an event, whose fields the kernel
    prints with one format): a row has that template's text exactly when its space-separated
    tokens are, in order, ``key=`` + a value (and ``key:`` then a value token) and it holds no
    other whitespace. Also returns those rows (bool) and their tokens (flattened), or None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(body)
    if n < 2 * _SAMPLE:
        return _regex_signatures(body), None
    sample = _regex_signatures(body.slice(0, _SAMPLE)).to_pylist()
    counts: dict[str, int] = {}
    for u in sample:
        if u is not None:
            counts[u] = counts.get(u, 0) + 1
    u0, keys = None, ()
    for u in sorted(counts, key=lambda v: -counts[v]):
        ks = tuple((m.group(1), m.group(2)) for m in _RX_KEYS.finditer(u))
        if ks and " ".join(k + sep for k, sep in ks) == u:
            u0, keys = u, ks
            break
    if u0 is None:
        return _regex_signatures(body), None
    tok = pc.split_pattern(body, " ")
    ntok = _n_tokens(keys)
    ok = pc.fill_null(pc.equal(pc.list_value_length(tok), ntok), False)
    ok = pc.and_not(ok, pc.fill_null(pc.match_substring_regex(body, "[\t\n\r\f]"), True))
    rows = pc.filter(tok, ok)
    m = len(rows)
    if not m:
        return _regex_signatures(body), None
    flat = pc.list_flatten(rows)
    good = np.ones(m, dtype=bool)
    j = 0
    for k, sep in keys:
        t = flat.take(np.arange(j, m * ntok, ntok))
        good &= (pc.starts_with(t, k + "=") if sep == "=" else pc.equal(t, k + ":")
                 ).to_numpy(zero_copy_only=False)
        j += 2 if sep == ":" else 1
    hit = np.zeros(n, dtype=bool)
    hit[np.flatnonzero(ok.to_numpy(zero_copy_only=False))[good]] = True
    split = (hit, flat if good.all() else pc.list_flatten(pc.filter(rows, pa.array(good))))
    rest = np.flatnonzero(~hit)
    out = pa.repeat(pa.scalar(u0, body.type), n)
    if not len(rest):
        return out, split
    colon = ": " in u0 or None          # (the regex pass over all rows would have run)
    miss = _regex_signatures(body.take(rest), colon).cast(body.type)
    if isinstance(miss, pa.ChunkedArray):
        miss = miss.combine_chunks()
    return pc.replace_with_mask(out, pa.array(~hit), miss), split


def _n_tokens(keys: tuple[tuple[str, str], ...]) -> int:
    """Space-separated tokens of a clean row of the template: ``key=value`` is one, ``key:
    VALUE`` two."""
    return sum(2 if sep == ":" else 1 for _k, sep in keys)


def _split_fields(arr, keys: tuple[tuple[str, str], ...], where: np.ndarray,
                  pieces: dict[str, list[tuple[np.ndarray, object]]], flat: Any = None
                  ) -> np.ndarray:
    """Field values of rows whose values hold no spaces (pyarrow kernels: split on spaces,
    take every n-th token, cut the ``key=`` prefix) as ``(where, values)`` into
    ``pieces[key]`` (pyarrow arrays). ``flat``: the rows' tokens if split already. Returns
    which rows were read (bool): those with as many tokens as the template has."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ntok = _n_tokens(keys)
    done = np.ones(len(arr), dtype=bool)
    if flat is None:
        tok = pc.split_pattern(arr, " ")
        done = pc.equal(pc.list_value_length(tok), ntok).to_numpy(zero_copy_only=False)
        if not done.all():
            tok = tok.filter(pa.array(done))
            where = where[done]
        flat = pc.list_flatten(tok)
    n = len(where)
    j = 0
    for k, sep in keys:
        if sep == ":":
            col = flat.take(np.arange(j + 1, n * ntok, ntok))
            j += 2
        else:
            col = pc.utf8_slice_codeunits(flat.take(np.arange(j, n * ntok, ntok)), len(k) + 1)
            j += 1
        pieces[k].append((where, col))
    return done


def events_named(events: pd.DataFrame, event: str) -> pd.DataFrame:
    """The rows of the events table named ``event`` (selected on the categorical's codes: no
    string per row); raises :class:`UnknownEventError` with close names when there are none."""
    names = events["event"]
    if isinstance(names.dtype, pd.CategoricalDtype):
        at = names.cat.categories.get_indexer([event])[0]
        hit = names.cat.codes.to_numpy() == at if at >= 0 else np.zeros(len(names), dtype=bool)
    else:
        hit = (names.astype(object) == event).to_numpy(dtype=bool)
    if not hit.any():
        present = names.dropna().astype(str).unique()
        raise UnknownEventError(event, sorted(set(present) - {"marker"}))
    return events[hit]


def event_fields(events: pd.DataFrame, event: str) -> pd.DataFrame:
    """The events named ``event`` with one typed column per field of its text.

    Columns: ``line``, ``ts_s`` (s), ``cpu``, ``pid``, ``comm``, ``call`` (as in the events
    table), then the fields in the order the text names them. A field is ``Int64`` when every
    value is decimal, ``UInt64`` for ``0x…`` hex and for ``%p`` pointers (16 hex digits, raw or
    hashed), else text. A ``sym+0xoff/0xsize`` field (``location``) stays as printed and gains a
    ``<field>_func`` column with the symbol alone. A field named like one of the first columns
    (``comm``, ``pid`` of ``sched_wakeup``) is ``field_comm``, ``field_pid``. Works for any
    event.
    """
    sel = events_named(events, event)
    arr = to_arrow(sel["text"])
    if arr is not None:
        import pyarrow.compute as pc

        body = pc.utf8_slice_codeunits(arr, len(event) + 2)
    else:                                       # pragma: no cover - without pyarrow
        body = pd.Series(sel["text"].astype(object).str.slice(len(event) + 2).to_numpy(),
                         dtype=object)
    fields = _fields_of(body)
    out = sel[EVENT_BASE_COLUMNS].copy()
    for name, col in fields.items():
        col.index = sel.index
        k = f"field_{name}" if name in out.columns else name
        out[k] = typed_column(col).array
        if not out[k].dtype == "string" or not col.astype(str).str.contains("+0x", regex=False).any():
            continue
        loc = rx_extract(col, _RX_LOCATION)
        if loc.notna().any() and (loc.notna() | col.isna()).all():
            out[k] = pd.array(col.to_numpy(dtype=object, na_value=None), dtype="string")
            out[f"{k}_func"] = pd.array(loc.to_numpy(dtype=object, na_value=None), dtype="string")
    return out
