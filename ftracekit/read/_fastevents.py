"""Vectorised parsing of trace-event lines (events-only text, ``trace-cmd report`` text).

The layout is ``<comm>-<pid> [<cpu>] <flags> <secs>.<frac>: <event>: <fields>`` (the flags
column and a ``(tgid)`` column are optional; see ``_RE_TRACECMD`` in :mod:`.lineparse`, the
exact definition). Columns are not fixed-width here (a long comm shifts everything), so each
line is cut at its own separators: the first ``]`` ends the task window, the first ``:`` after
it ends the timestamp, the first space after that ends the event name. Three byte strings per
line — the task window (``"  python3-20357   [000]"``), the flags segment and the event name —
are interpreted once per distinct value by the exact regexes and looked up by hash (the tables
of :mod:`._templates`); numbers are read with SWAR arithmetic (values equal ``float(text)`` bit
for bit). Anything else — function_graph lines of ``trace-cmd report`` (``funcgraph_entry``),
tabs, CR, odd spacing, long windows — is left to the exact parser, so the result is the same as
``LineParser.parse_line`` on every line.
"""

from __future__ import annotations

import re

import numpy as np

from ._argscan import gather_texts
from ._swar import (
    _H1, _HMUL, _LOW, _SP, _X0F, _X80, _ctz_bytes, _digit_bytes, _swar8, _zero_bytes,
)
from ._templates import _Names, _Table, _movemask, _resolve
from .records import K_COMMENT

_KEY_WORDS = 6            # task windows up to 48 bytes
_LAT_WORDS = 3            # flags segments up to 24 bytes
_NAME_WORDS = 5           # event names up to 40 bytes (with their ':')

_RE_KEY = re.compile(r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]$")
_RE_LAT = re.compile(r" +(?:(?P<lat>\S+) +)?")
_RE_NAME = re.compile(r"\w+:")
_GRAPH_EVENTS = ("funcgraph_entry:", "funcgraph_exit:")

_KEY_FIELDS = {"ok": (bool, False), "cpu": (np.int16, -1), "pid": (np.int32, -1),
               "comm": (np.int64, -1)}
_LAT_FIELDS = {"ok": (bool, False), "lat": (np.int64, -1)}
_NAME_FIELDS = {"ok": (bool, False)}

# highest set bit (0-7) of an 8-bit value; -1 for 0
_HIGHEST = np.array([v.bit_length() - 1 for v in range(256)], dtype=np.int64)


class _EventTables:
    """Per-input tables of the event scanner (kept on the fast path's state)."""

    def __init__(self) -> None:
        self.key = _Table(_KEY_WORDS + 1, _KEY_FIELDS)
        self.lat = _Table(_LAT_WORDS + 1, _LAT_FIELDS)
        self.name = _Table(_NAME_WORDS + 1, _NAME_FIELDS)
        self.flags = _Names()


def _tables(state) -> _EventTables:
    t = getattr(state, "event_tables", None)
    if t is None:
        with state.lock:
            t = getattr(state, "event_tables", None)
            if t is None:
                t = state.event_tables = _EventTables()
    return t


def _words(mem: bytes, starts: np.ndarray, lengths: np.ndarray, nw: int):
    """(hash, words) of the byte strings ``[starts, starts + lengths)`` (lengths ≤ 8·nw; the
    length is a word too)."""
    view = np.ndarray((len(mem) - 8 * nw + 1,), dtype=f"V{8 * nw}", buffer=mem, offset=0,
                      strides=(1,))
    M = view[starts].view(np.uint64).reshape(len(starts), nw)
    words = [lengths.astype(np.uint64)]
    h = np.full(len(starts), _H1, dtype=np.uint64) + words[0] * _HMUL[-1]
    for j in range(nw):
        wj = M[:, j] & _LOW[np.clip(lengths - 8 * j, 0, 8)]
        words.append(wj)
        h += wj * _HMUL[j % len(_HMUL)]
    return h, words


def _top_digits(w: np.ndarray) -> np.ndarray:
    """How many of the last bytes of each 8-byte word are ASCII digits (0-8)."""
    nd = _movemask(~_digit_bytes(w) & _X80)
    return 7 - _HIGHEST[nd.astype(np.intp)]


def _word_before(u8view: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return u8view[np.maximum(pos - 8, 0)]


def scan_events(mem: bytes, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, state):
    """Event lines of one block → ``(acc, cols, refs, side)`` like the function_graph scanner
    (``side``: per-line texts for the parser's ``comments`` and ``flags`` tables)."""
    n = len(starts)
    tabs = _tables(state)
    s, e = starts, ends
    ok = e > s
    ok &= buf[np.maximum(e - 1, 0)] != 13
    ok &= buf[s] != 35                            # "#": header lines
    lo, hi = (int(s[0]), int(e[-1])) if n else (0, 0)
    # the task window ends at the first "]"
    close = np.flatnonzero(buf[lo:hi] == 93) + lo
    i = np.searchsorted(close, s)
    r = close[np.minimum(i, max(len(close) - 1, 0))] if len(close) else e
    ok &= (i < len(close)) & (r < e)
    r = np.where(ok, r, s)
    klen = r + 1 - s
    ok &= klen <= 8 * _KEY_WORDS
    # the timestamp ends at the first ":" after it
    colon = np.flatnonzero(buf[lo:hi] == 58) + lo
    j = np.searchsorted(colon, r)
    c = colon[np.minimum(j, max(len(colon) - 1, 0))] if len(colon) else e
    ok &= (j < len(colon)) & (c < e)
    c = np.where(ok, c, r + 40)
    u8 = np.ndarray((len(mem) - 7,), dtype="<u8", buffer=mem, offset=0, strides=(1,))
    wf = _word_before(u8, c)
    F = _top_digits(wf)
    ok &= (F >= 1) & (F <= 7)
    dot = c - 1 - F
    ok &= buf[dot] == 46
    ws = _word_before(u8, dot)
    L = _top_digits(ws)
    ok &= (L >= 1) & (L <= 7)
    t0 = dot - L
    ok &= buf[t0 - 1] == 32
    lat_len = t0 - (r + 1)
    ok &= (lat_len >= 1) & (lat_len <= 8 * _LAT_WORDS)
    sec = _swar8((ws & ~_LOW[8 - np.clip(L, 0, 8)]) & _X0F).astype(np.int64)
    frac = _swar8((wf & ~_LOW[8 - np.clip(F, 0, 8)]) & _X0F).astype(np.int64)
    Fc = np.clip(F, 0, 8)
    ts = (sec * (10 ** Fc) + frac).astype(np.float64)
    ts /= 10.0 ** Fc
    # ": " then the event name up to the next space (or the line's end)
    ok &= buf[c + 1] == 32
    n0 = c + 2
    ok &= (buf[n0] != 32) & (n0 < e)
    n0 = np.where(ok, n0, s)
    sp = np.minimum(_first_space(u8, n0, _NAME_WORDS + 1), e)
    nlen = sp - n0
    ok &= (nlen >= 2) & (nlen <= 8 * _NAME_WORDS)
    # the text (rstripped: trailing spaces; any other trailing byte than printable ASCII
    # is left to the exact parser)
    e2 = e.copy()
    for _ in range(8):
        more = ok & (buf[e2 - 1] == 32) & (e2 > n0)
        if not more.any():
            break
        e2[more] -= 1
    last = buf[e2 - 1]
    ok &= (last > 32) & (last < 127)
    # distinct windows, flags and names: interpreted once each, looked up by hash
    idx = np.flatnonzero(ok)

    def lookup(table, start, length, nw, interpret):
        h, words = _words(mem, start, length, nw)
        return _resolve(table, h, words, interpret, state.lock)

    sk, kl = s[idx], klen[idx]
    key = lookup(tabs.key, sk, kl, _KEY_WORDS,
                 lambda q: _key_info(state, mem[sk[q]:sk[q] + kl[q]]))
    la0, ll = r[idx] + 1, lat_len[idx]
    lat = lookup(tabs.lat, la0, ll, _LAT_WORDS,
                 lambda q: _lat_info(tabs, mem[la0[q]:la0[q] + ll[q]]))
    na0, nl = n0[idx], nlen[idx]
    name = lookup(tabs.name, na0, nl, _NAME_WORDS,
                  lambda q: _name_info(mem[na0[q]:na0[q] + nl[q]]))
    good = key["ok"] & lat["ok"] & name["ok"]
    sel = np.flatnonzero(good)
    acc = idx[sel]
    res = {"kind": np.full(len(acc), K_COMMENT, dtype=np.int8),
           "depth": np.full(len(acc), -1, dtype=np.int16),
           "retval": np.zeros(len(acc), dtype=np.int64),
           "has_ret": np.zeros(len(acc), dtype=bool),
           "ts": ts[acc], "dur": np.full(len(acc), np.nan),
           "cpu": key["cpu"][sel], "pid": key["pid"][sel]}
    no_name = np.full(len(acc), -1, dtype=np.int64)            # (events: no func, module)
    refs = (key["comm"][sel], no_name, no_name)
    # texts: "event: fields", one per accepted line
    texts = gather_texts(mem, buf, lo, hi, n0[acc], e2[acc], e[acc])
    side = {"comments": (acc, texts)}
    lat_ids = lat["lat"][sel]
    has_lat = lat_ids >= 0
    if has_lat.any():
        with state.lock:
            names = np.array(tabs.flags.names + [None], dtype=object)
        side["flags"] = (acc[has_lat], names[lat_ids[has_lat]].tolist())
    return acc, res, refs, side


def _first_space(u8: np.ndarray, pos: np.ndarray, n_words: int) -> np.ndarray:
    """Position of the first space at or after ``pos`` (``pos + 8·n_words`` if none)."""
    out = pos + 8 * n_words
    todo = np.arange(len(pos))
    at = pos.copy()
    for _ in range(n_words):
        if not todo.size:
            break
        z = _zero_bytes(u8[at] ^ _SP)
        found = z != 0
        hit = todo[found]
        out[hit] = at[found] + _ctz_bytes(z[found])
        todo, at = todo[~found], at[~found] + 8
    return out


def _key_info(state, kb: bytes) -> tuple:
    m = _RE_KEY.match(kb.decode("utf-8", "replace"))
    if m is None:
        return (False, -1, -1, -1)
    return (True, int(m["cpu"]), int(m["pid"]), state.names[0].ref(m["comm"]))


def _lat_info(tabs: _EventTables, lb: bytes) -> tuple:
    m = _RE_LAT.fullmatch(lb.decode("utf-8", "replace"))
    if m is None:
        return (False, -1)
    return (True, tabs.flags.ref(m["lat"]) if m["lat"] is not None else -1)


def _name_info(nb: bytes) -> tuple:
    t = nb.decode("utf-8", "replace")
    return (bool(_RE_NAME.fullmatch(t)) and t not in _GRAPH_EVENTS,)
