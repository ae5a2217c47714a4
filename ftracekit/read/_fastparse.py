"""Vectorised parsing of the common function_graph lines of a block (numpy only).

Contract
--------
``parse_block(block, first_lineno, parser) -> (cols, n_fast)``: ``block`` is bytes ending with
a newline whose first line is line ``first_lineno``. Returns the record columns (see
:mod:`ftracekit.read.records`) of *every* line of the block, in line order, and how many lines the
vectorised path handled. Lines the vectorised path cannot vouch for are given to
``parser.parse_line`` (the exact definition) in line order, interleaved with the interning of
the names first seen on vectorised lines, so that interned codes, side tables (comments,
switches, ...), counters and the header come out exactly as if every line had gone through
``parser.parse_line``.

Where things are: this module scans blocks; the templates and the tables of distinct
windows/bodies it looks lines up in are in :mod:`._templates`, the byte-level (SWAR) helpers
in :mod:`._swar`.

The work is split in two so that blocks can be scanned on worker threads:
:func:`scan_block` (pure numpy plus a little Python per *distinct* prefix/body; no interning;
thread-safe) and :func:`finish_block` (interning + exact parsing of the rejected lines; must
run in block order on one thread).

How a line is accepted
----------------------
A *template* is derived from a line of the block that the layout's regex matches: the byte
offsets of each context column (they are fixed-width: right-aligned numbers, the centred
``comm-pid``, the 14-wide duration column). For every line the template's separators are
checked at those offsets (gathered 8 bytes at a time), the numbers are parsed from
fixed-width windows with SWAR arithmetic on uint64 words (integer mantissa, divided once by a
power of ten, so values equal Python's ``float()`` bit for bit), the indentation is scanned
8 bytes at a time, and two byte strings per line are interned by hashing: the cpu/proc/latency
window (``" 0)     ip-407     | "``) and the body (``"kmem_cache_free() {"``). Every distinct
window/body is interpreted once by the exact parser itself (``LineParser`` on a synthetic
line / ``LineParser._body``), and lines are grouped with their representative by comparing
all their bytes (not just the hash). Each context column ends at the first ``|`` or ``)``
after it, so the regex's split of a line is forced and the pieces can be checked
independently. Anything unexpected (other widths, comments, args, CR, garbage) is rejected to
the exact parser. Lines of a block that do not fit the first template are retried with a
template derived from them (e.g. abstime gaining a digit, long pids).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .records import COLUMNS, K_COMMENT, Interner
from ._swar import (
    _ALL, _BODY_MASKS, _DOTS, _H1, _HIGH80, _HMUL, _LOW, _MARK_OK, _POW10, _SP, _U, _X0F, _X30,
    _X46, _X80, _ctz_bytes, _digit_bytes, _swar8, _zero_bytes,
)
from ._argscan import gather_texts, split_args
from ._fastevents import scan_events
from ._templates import (
    _State, _Template, _fill_misses, _lookup_info, _make_template, _movemask, _resolve, _state,
)

__all__ = ["parse_block", "scan_block", "finish_block"]

_PAD = 320                     # zero bytes appended to a block so gathers never overrun
_PAD_BYTES = bytes(_PAD)
_MAX_INDENT = 512              # deeper lines go to the exact parser
_MAX_BODY = 128                # longer bodies go to the exact parser
_MAX_TEMPLATES = 4
_SLASH, _STAR, _SPACE = 47, 42, 32
_MIN_RETRY = 48                # retry with another template only if this many lines are left
_Side = dict[str, tuple[np.ndarray, list[str]]]


# ---------------------------------------------------------------------------------------------
# Scanning

@dataclass
class BlockScan:
    """Result of :func:`scan_block` (consumed by :func:`finish_block`)."""

    block: bytes
    starts: np.ndarray
    ends: np.ndarray
    nbytes: int                       # length of the block
    acc: np.ndarray                   # line indices (within the block) accepted, sorted
    cols: dict[str, np.ndarray]       # record columns for ``acc`` (codes still to assign)
    refs: tuple[np.ndarray, np.ndarray, np.ndarray]  # comm/func/module name ids (-1: none)
    # per-line texts for the parser's side tables: name → (line indices, texts)
    side: _Side | None = None


class _Words:
    """Contiguous uint64 words of the gathered prefix rows (bytes [off, off+8) of each line)."""

    def __init__(self, P: np.ndarray) -> None:
        self.P = P
        self.cols: dict[int, np.ndarray] = {}

    def col(self, j: int) -> np.ndarray:
        c = self.cols.get(j)
        if c is None:
            c = self.cols[j] = np.ascontiguousarray(self.P[:, j])
        return c

    def at(self, off: int) -> np.ndarray:
        j, r = divmod(off, 8)
        if r == 0:
            return self.col(j)
        return (self.col(j) >> _U(8 * r)) | (self.col(j + 1) << _U(64 - 8 * r))


def _right_int(W: _Words, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-aligned decimal in bytes [a, b) (spaces then ≥ 1 digits), width ≤ 16.

    Parsed once per run of equal fields (e.g. the seconds of consecutive timestamps)."""
    w = b - a
    if w <= 8:
        lo = W.at(a) << _U(8 * (8 - w))
        hi = None
    else:
        lo = W.at(b - 8)
        hi = W.at(a) << _U(8 * (16 - w))
    k = len(lo)
    change = np.empty(k, dtype=bool)
    if k:
        change[0] = True
        np.not_equal(lo[1:], lo[:-1], out=change[1:])
        if hi is not None:
            change[1:] |= hi[1:] != hi[:-1]
    heads = np.flatnonzero(change)
    if len(heads) * 4 > k:          # few runs: not worth it
        return _right_int_words(lo, hi, w)
    val, ok = _right_int_words(lo[heads], None if hi is None else hi[heads], w)
    run = np.cumsum(change) - 1
    return val[run], ok[run]


def _right_int_words(lo: np.ndarray, hi: np.ndarray | None, w: int):
    field80 = _HIGH80[min(w, 8)]
    d = _digit_bytes(lo) & field80
    s = _zero_bytes(lo ^ _SP) & field80
    lowbit = d & (~d + _U(1))
    ok = ((d | s) == field80) & (s < lowbit) & (d != 0)
    val = _swar8(lo & _X0F).astype(np.int64)
    if hi is not None:
        f2 = _HIGH80[w - 8]
        dh = _digit_bytes(hi) & f2
        sh = _zero_bytes(hi ^ _SP) & f2
        lowh = dh & (~dh + _U(1))
        ok_hi = ((dh | sh) == f2) & (sh < lowh)
        all_sp = sh == f2
        # Digits in the high part need an all-digit low part.
        ok &= np.where(all_sp, True, ok_hi & (s == 0))
        val = val + _swar8(hi & _X0F).astype(np.int64) * 100000000
    return val, ok


def _fixed_int(W: _Words, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """All-digit decimal in bytes [a, b), width ≤ 8."""
    w = b - a
    v = W.at(a) << _U(8 * (8 - w))
    # The shifted-in low bytes read as "0"; then every byte must be in "0".."9": no byte
    # above 0x39 (+0x46 sets bit 7), below 0x30 (-0x30 borrows into bit 7) or above 0x7f.
    x = v | _U(int(_LOW[8 - w]) & 0x3030303030303030)
    ok = ((x | (x + _X46) | (x - _X30)) & _X80) == 0
    return _swar8(v & _X0F).astype(np.int64), ok


def _find_template(block: bytes, starts, ends, idx: np.ndarray, state: _State, limit: int = 64):
    rx = state.rx
    for i in idx[:limit].tolist():
        text = block[starts[i]:ends[i]].decode("utf-8", "replace")
        if not text or text[0] == "#":
            continue
        m = rx.match(text)
        if m is None:
            continue
        tpl = _make_template(text, m, state.scratch.layout)
        if tpl is not None:
            return tpl
    return None


def _EXT_VIEW(mem: bytes) -> np.ndarray:
    return np.ndarray((len(mem) - 95,), dtype="V96", buffer=mem, offset=0, strides=(1,))


_EMPTY_COLS = ("kind", "cpu", "pid", "ts", "dur", "depth", "retval", "has_ret")


def scan_block(block, parser, start: int = 0, end: int | None = None) -> BlockScan:
    """Vectorised pass over ``block[start:end]`` (whole lines; no interning; safe to run on a
    worker thread). ``block`` is bytes or a memoryview; when bytes with at least ``_PAD``
    bytes after ``end``, it is used in place (no copy)."""
    state = _state(parser)
    if end is None:
        end = len(block)
    if isinstance(block, bytes) and len(block) - end >= _PAD:
        mem = block
    else:
        mem = b"".join((memoryview(block)[start:end], _PAD_BYTES))
        end -= start
        start = 0
    buf = np.frombuffer(mem, dtype=np.uint8)
    nl = np.flatnonzero(buf[start:end] == 10)
    nl += start
    n = len(nl)
    starts = np.empty(n, dtype=np.int64)
    if n:
        starts[0] = start
        starts[1:] = nl[:-1]
        starts[1:] += 1
    ends = nl
    parts: list[tuple] = []
    remaining = np.arange(n, dtype=np.int64)
    if not parser.layout.tracecmd and n:
        tpl = getattr(state, "last_template", None)
        for attempt in range(_MAX_TEMPLATES):
            if tpl is None or attempt:
                tpl = _find_template(mem, starts, ends, remaining, state)
                if tpl is None:
                    break
            res, mismatch = _scan_template(mem, buf, starts, ends, remaining, tpl, state)
            if res is not None:
                parts.append(res)
                if attempt == 0:
                    state.last_template = tpl
            remaining = mismatch
            if len(remaining) < _MIN_RETRY:
                break
    if parser.layout.tracecmd and n:
        parts.append(scan_events(mem, buf, starts, ends, state))
    side: _Side = {}
    if parts:
        acc = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        side = _merge_side([p[3] for p in parts])
        if len(parts) > 1:
            cols = {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}
            refs = tuple(np.concatenate([p[2][i] for p in parts]) for i in range(3))
            o = np.argsort(acc, kind="stable")
            acc = acc[o]
            cols = {k: v[o] for k, v in cols.items()}
            refs = tuple(r[o] for r in refs)
        else:
            cols, refs = parts[0][1], parts[0][2]
    else:
        acc = np.zeros(0, dtype=np.int64)
        cols = {k: np.zeros(0, dtype=COLUMNS[k]) for k in _EMPTY_COLS}
        refs = (np.zeros(0, dtype=np.int64),) * 3
    return BlockScan(block=mem, starts=starts, ends=ends, nbytes=end - start, acc=acc, cols=cols,
                     refs=refs, side=side)  # type: ignore[arg-type]


def _merge_side(parts: list[_Side]) -> _Side:
    out: _Side = {}
    for name in {k for sd in parts for k in sd}:
        got = [sd[name] for sd in parts if name in sd and len(sd[name][0])]
        if got:
            out[name] = got[0] if len(got) == 1 else (
                np.concatenate([g[0] for g in got]), [t for g in got for t in g[1]])
    return out


def _scan_template(mem: bytes, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                   idx: np.ndarray, tpl: _Template, state: _State):
    """Lines ``idx`` against one template → (accepted part or None, lines not fitting it)."""
    P0 = tpl.P0
    s = starts[idx]
    e = ends[idx]
    # The prefix of each line, gathered once.
    gw = tpl.gw
    vview = np.ndarray((len(mem) - gw + 1,), dtype=f"V{gw}", buffer=mem, offset=0, strides=(1,))
    P = vview[s].view(np.uint64).reshape(len(s), gw // 8)
    W = _Words(P)
    fit = (e - s) > P0
    for j, mk, vv in tpl.fixed:
        fit &= (W.col(j) & _U(mk)) == _U(vv)
    if not fit.all():
        mismatch = idx[~fit]
        if not fit.any():
            return None, mismatch
        idx, s, e, P = idx[fit], s[fit], e[fit], P[fit]
        W = _Words(P)
    else:
        mismatch = idx[:0]
    k = len(idx)
    ok = buf[e - 1] != 13                       # CR line ends: the exact parser strips them
    # Timestamps.
    ts = None
    if tpl.abs is not None:
        c, dot, a_e = tpl.abs
        sec, ok1 = _right_int(W, c, dot)
        frac, ok2 = _fixed_int(W, dot + 1, a_e)
        wf = a_e - dot - 1
        ok &= ok1
        ok &= ok2
        sec *= int(10 ** wf)
        sec += frac
        ts = sec.astype(np.float64)
        ts /= _POW10[wf]
    if tpl.rel is not None:      # validated even when abstime gives the timestamp
        c, r_e = tpl.rel
        val, ok1 = _right_int(W, c, r_e)
        ok &= ok1
        if ts is None:
            ts = val.astype(np.float64)
            ts /= 1e6
    # Durations.
    dur = None
    if tpl.dur is not None:
        d0, bar = tpl.dur
        T = tpl.dur_tables
        N = W.at(d0 + 2)
        N2 = W.at(bar - 8)
        first = W.at(d0)
        sig = _movemask(_zero_bytes(N ^ _SP)) | (_movemask(_zero_bytes(N ^ _DOTS)) << _U(8))
        sh = T["sig"][sig.astype(np.intp)]
        x = (N & T["dm"][sh]) | T["nd30"][sh]
        bad = (x | (x + _X46) | (x - _X30)) & _X80
        num_ok = T["ok"][sh]
        num_ok &= bad == 0
        num_ok &= (N & T["m1"][sh]) == T["e1"][sh]
        num_ok &= (N2 & T["m2"][sh]) == T["e2"][sh]
        num_ok &= _MARK_OK[(first & _U(0xFF)).astype(np.intp)]
        blank = first == _SP
        blank &= N2 == _SP
        if bar - d0 > 16:
            blank &= W.at(d0 + 8) == _SP
        ok &= num_ok | blank
        c = ((N & T["lo"][sh]) << _U(8)) | (N & T["hi"][sh])
        dur = _swar8((c << T["shift"][sh]) & _X0F).astype(np.float64)
        dur /= T["pow"][sh]
        dur[~num_ok] = np.nan
    # Indentation: the first non-space at or after P0.
    w = W.at(P0)
    indent = _ctz_bytes(_zero_bytes(w ^ _SP) ^ _X80)
    active = np.flatnonzero(indent == 8)
    if active.size:
        u8view = np.ndarray((len(mem) - 7,), dtype="<u8", buffer=mem, offset=0, strides=(1,))
        step = 8
        sa = s[active] + P0
        while active.size and step <= _MAX_INDENT:
            wa = u8view[sa + step]
            na = _ctz_bytes(_zero_bytes(wa ^ _SP) ^ _X80)
            indent[active] = step + na
            more = na == 8
            active = active[more]
            sa = sa[more]
            step += 8
        if active.size:
            ok[active] = False
            indent[active] = 0
    bs = s + P0
    bs += indent
    # Inline events and markers (``/* net_dev_queue: dev=lo skbaddr=… */``): each text is
    # different, so they are not looked up; their texts are cut out here (see _comment_texts)
    cmt = buf[bs] == _SLASH
    cmt &= buf[bs + 1] == _STAR
    has_cmt = bool(cmt.any())
    cmt_bs = bs[cmt] if has_cmt else None
    # funcgraph-args: bodies are looked up without their arguments (see ._argscan)
    bmem = mem
    argscan = split_args(mem, buf, bs, np.where(cmt, bs, e) if has_cmt else e, _PAD_BYTES)
    if argscan is not None:
        bmem, bs, blen, arg_rows, arg_texts = argscan
    else:
        blen = e - bs
    body_ok = blen >= 1
    body_ok &= blen <= _MAX_BODY
    if has_cmt:
        body_ok |= cmt
    ok &= body_ok
    if not ok.all() or has_cmt:
        void = ~ok | cmt                  # (looked up as a 1-byte body: one lookup for all)
        blen[void] = 1
        bs[void] = e[void] - 1
    # Bodies: words masked to the body, hashed, looked up / interpreted.
    bview = np.ndarray((len(bmem) - 31,), dtype="V32", buffer=bmem, offset=0, strides=(1,))
    B = bview[bs].view(np.uint64).reshape(k, 4)
    # The body and its "\n" (a body has none): equal words mean equal bodies, lengths
    # included, for bodies of up to 31 bytes; longer ones go to the long table below.
    b32 = np.minimum(blen + 1, 32)
    bwords = []
    h = np.full(k, _H1, dtype=np.uint64)
    for j in range(4):
        wj = B[:, j] & _BODY_MASKS[j][b32]
        bwords.append(wj)
        h += wj * _HMUL[j]
    long_rows = np.flatnonzero(blen >= 32)

    def interpret_body(rows: np.ndarray):
        def run(r: int) -> tuple:
            a = int(bs[rows[r]])
            return state.body_info(bmem[a:a + int(blen[rows[r]])])
        return run

    if not long_rows.size:
        info = _resolve(state.body_table, h, bwords, interpret_body(np.arange(k)), state.lock)
    else:
        # All rows are looked up in the short table (a long body never matches there: its
        # first 32 bytes have no "\n"); the misses among short bodies are interpreted, long
        # bodies (32..128 bytes: 12 more words) have a table of their own.
        info, ids = _lookup_info(state.body_table, h, bwords)
        short_miss = np.flatnonzero((ids < 0) & (blen < 32))
        if short_miss.size:
            _fill_misses(state.body_table, info, short_miss, h, bwords,
                         interpret_body(np.arange(k)), state.lock)
        bl = blen[long_rows]
        E = _EXT_VIEW(bmem)[bs[long_rows] + 32].view(np.uint64).reshape(len(long_rows), 12)
        E = E & _LOW[np.clip(bl[:, None] - 32 - 8 * np.arange(12)[None, :], 0, 8)]
        lwords = ([w[long_rows] for w in bwords] + [bl.astype(np.uint64)]
                  + [np.ascontiguousarray(E[:, j]) for j in range(12)])
        hl = h[long_rows]
        for j in range(12):
            hl = hl + lwords[5 + j] * _HMUL[j % len(_HMUL)]
        sub = _resolve(state.long_table, hl, lwords, interpret_body(long_rows), state.lock)
        for f in info:
            info[f][long_rows] = sub[f]
    ok &= (info["ok"] | cmt) if has_cmt else info["ok"]
    # Key windows (cpu / proc / latency): masked words, hashed, looked up / interpreted.
    kinfo = None
    if tpl.key is not None:
        k0, k1 = tpl.key
        kwords = []
        for j in range(k0 // 8, (k1 - 1) // 8 + 1):
            lo_b = max(k0 - 8 * j, 0)
            hi_b = min(k1 - 8 * j, 8)
            mk = int(_LOW[hi_b]) & ~int(_LOW[lo_b])
            kwords.append(W.col(j) & _U(mk) if mk != _ALL else W.col(j))
        # Consecutive lines mostly come from the same task: look up one row per run.
        change = np.zeros(k, dtype=bool)
        change[0] = True
        for wj in kwords:
            change[1:] |= wj[1:] != wj[:-1]
        heads = np.flatnonzero(change)
        runs = len(heads) * 3 <= k
        if runs:
            kwords = [wj[heads] for wj in kwords]
            rows = heads
        else:
            rows = np.arange(k)
        hk = np.full(len(rows), _H1, dtype=np.uint64)
        for n_w, wj in enumerate(kwords):
            hk += wj * _HMUL[n_w % len(_HMUL)]

        def interpret_key(r: int) -> tuple:
            a = int(s[rows[r]])
            return state.key_info(tpl, mem[a + k0:a + k1])

        kinfo = _resolve(state.key_table(tpl), hk, kwords, interpret_key, state.lock)
        if runs:
            run = np.cumsum(change) - 1
            kinfo = {f: v[run] for f, v in kinfo.items()}
        ok &= kinfo["ok"]
    if ok.all():
        acc = idx
        sel = None
    else:
        sel = np.flatnonzero(ok)
        acc = idx[sel]

    def pick(a: np.ndarray) -> np.ndarray:
        return a if sel is None else a[sel]

    n_sel = len(acc)
    cols = {
        "kind": pick(info["kind"]),
        "depth": (pick(indent) >> 1).astype(np.int16),
        "retval": pick(info["ret"]),
        "has_ret": pick(info["hasret"]),
        "ts": pick(ts) if ts is not None else np.full(n_sel, np.nan),
        "dur": pick(dur) if dur is not None else np.full(n_sel, np.nan),
    }
    if kinfo is not None:
        cols["cpu"] = pick(kinfo["cpu"])
        cols["pid"] = pick(kinfo["pid"])
        comm_ref = pick(kinfo["comm"])
    else:
        cols["cpu"] = np.full(n_sel, -1, dtype=np.int16)
        cols["pid"] = np.full(n_sel, -1, dtype=np.int32)
        comm_ref = np.full(n_sel, -1, dtype=np.int64)
    refs = (comm_ref, pick(info["func"]), pick(info["mod"]))
    side: _Side = {}
    if argscan is not None:
        kept = ok[arg_rows]
        side["args"] = (idx[arg_rows[kept]], [t for t, kp in zip(arg_texts, kept.tolist()) if kp])
    if has_cmt:
        # what the exact parser records for a comment line: kind, context and time only
        c = pick(cmt)
        cols["kind"] = np.where(c, np.int8(K_COMMENT), cols["kind"]).astype(cols["kind"].dtype)
        cols["depth"][c] = -1
        cols["retval"] = np.where(c, 0, cols["retval"]).astype(cols["retval"].dtype)
        cols["has_ret"] = cols["has_ret"] & ~c
        cols["dur"] = np.where(c, np.nan, cols["dur"])
        refs = (refs[0], np.where(c, -1, refs[1]), np.where(c, -1, refs[2]))
        kept = ok[cmt]
        side["comments"] = (idx[cmt][kept], _comment_texts(mem, buf, cmt_bs[kept], e[cmt][kept]))
    return (acc, cols, refs, side), mismatch


def _comment_texts(mem: bytes, buf: np.ndarray, bs: np.ndarray, e: np.ndarray) -> list[str]:
    """The texts of comment bodies ``[bs, e)`` (each starts with ``/*``; ``e``: the line's
    newline) as the exact parser's ``_RE_COMMENT`` takes them: after ``/*`` and one optional
    space, without a closing ``*/`` (and one space before it) that does not overlap the
    opening."""
    if not len(bs):
        return []
    t0 = bs + 2
    t0 += buf[t0] == _SPACE
    te = e.copy()
    close = (buf[e - 2] == _STAR) & (buf[e - 1] == _SLASH) & (e - 2 >= t0)
    te -= 2 * close
    te -= close & (te - 1 >= t0) & (buf[te - 1] == _SPACE)
    return gather_texts(mem, buf, int(bs.min()), int(e.max()), t0, te, e)


# ---------------------------------------------------------------------------------------------
# Finishing: interning in line order, exact parsing of the rest

def finish_block(scan: BlockScan, first_lineno: int, parser) -> tuple[dict[str, np.ndarray], int]:
    """Intern names, run the exact parser on the rejected lines (in order); all records."""
    state = _state(parser)
    block, starts, ends, acc = scan.block, scan.starts, scan.ends, scan.acc
    n = len(starts)
    m = len(acc)
    if m == n:
        rejected: list[int] = []
    else:
        rejected_mask = np.ones(n, dtype=bool)
        rejected_mask[acc] = False
        rejected = np.flatnonzero(rejected_mask).tolist()
    interners = (parser.comms, parser.funcs, parser.modules)
    with state.lock:
        all_names = [list(nm.names) for nm in state.names]
    # Grow the name id → code maps to the names known now.
    for i in range(3):
        need = len(all_names[i]) + 1
        if len(state.code_of[i]) < need:
            extra = need - len(state.code_of[i])
            state.code_of[i] = np.concatenate([state.code_of[i][:-1], np.full(extra, -1, np.int32),
                                               state.code_of[i][-1:]])
            state.known[i] = np.concatenate([state.known[i][:-1], np.zeros(extra, bool),
                                             state.known[i][-1:]])
    # Names used here that are not interned yet: intern them at their first use, in line order
    # with the rejected lines (which the exact parser may intern names from).
    events: list[tuple[int, int, Interner, str, int]] = []
    for i in range(3):
        ref = scan.refs[i]
        unknown = ~state.known[i][ref]
        if unknown.any():
            rows = np.flatnonzero(unknown)
            ids = ref[rows]
            uniq, first = np.unique(ids, return_index=True)
            for nid, r in zip(uniq.tolist(), rows[first].tolist()):
                name = all_names[i][nid]
                events.append((int(acc[r]), i, interners[i], name, nid))
    replay = state.replayer(parser)

    def feed_line(j: int) -> None:
        replay(first_lineno + j, block[starts[j]:ends[j]])

    ri = 0
    if events:
        events.sort(key=lambda t: (t[0], t[1]))
        for line_i, i, itn, name, nid in events:
            while ri < len(rejected) and rejected[ri] < line_i:
                feed_line(rejected[ri])
                ri += 1
            state.code_of[i][nid] = itn.code(name)
            state.known[i][nid] = True
    for j in rejected[ri:]:
        feed_line(j)
    for name, (s_lines, s_texts) in (scan.side or {}).items():
        getattr(parser, name).update(zip((s_lines + first_lineno).tolist(), s_texts))
    # Codes for the accepted lines.
    cols = scan.cols
    fast: dict[str, np.ndarray] = {"line": acc + first_lineno}
    for i, name in enumerate(("comm", "func", "module")):
        fast[name] = state.code_of[i][scan.refs[i]]
    for name in _EMPTY_COLS:
        fast[name] = cols[name]
    fast = {name: np.asarray(fast[name], dtype=dt) for name, dt in COLUMNS.items()}
    slow = parser.take_columns()
    ns = len(slow["line"])
    if not ns:
        return fast, m
    if not m:
        return slow, 0
    # Merge by line number (both sorted).
    pos_slow = np.searchsorted(fast["line"], slow["line"]) + np.arange(ns)
    is_fast = np.ones(m + ns, dtype=bool)
    is_fast[pos_slow] = False
    merged = {}
    for name, dt in COLUMNS.items():
        col = np.empty(m + ns, dtype=dt)
        col[pos_slow] = slow[name]
        col[is_fast] = fast[name]
        merged[name] = col
    return merged, m


def parse_block(block: bytes, first_lineno: int, parser) -> tuple[dict[str, np.ndarray], int]:
    """Records of every line of ``block`` (see the module docstring)."""
    return finish_block(scan_block(block, parser), first_lineno, parser)
