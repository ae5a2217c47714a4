"""Templates and the tables of distinct windows and bodies behind the vectorised scanner.

A :class:`_Template` holds the byte offsets of each context column of one layout (derived
from a line the exact regex matched). Every distinct cpu/proc window and body is interpreted
once by the exact parser and remembered in hash tables (:class:`_Table`) kept per parser
state (:class:`_State`), so the scanner only hashes and looks up. See :mod:`._fastparse`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from .records import K_ENTRY, K_EXIT, K_LEAF, Interner
from ._swar import _ALL, _LOW, _MULTS, _U

_TABLE_BITS = 16

# ---------------------------------------------------------------------------------------------
# Templates

@dataclass
class _Template:
    P0: int                          # where the indentation starts
    gw: int                          # bytes gathered per line for the prefix (multiple of 8)
    fixed: list[tuple[int, int, int]]  # (word, mask, value) checks on the prefix words
    abs: tuple[int, int, int] | None  # (column start, dot, end of number)
    rel: tuple[int, int] | None       # (column start, end of number)
    key: tuple[int, int] | None       # cpu/proc/lat window [k0, k1)
    dur: tuple[int, int] | None       # (column start d0, bar)
    head: str                         # text before the key window (for synthetic lines)
    tail: str                         # text after the key window up to the body
    dur_tables: Any = None


def _key_end(text: str, m, layout) -> int:
    """Where the cpu/proc/latency columns of a matched line end (see :func:`_make_template`)."""
    if layout.lat:
        return m.end("lat") + 3
    if layout.proc:
        return text.index("|", m.end("proc")) + 2
    if layout.cpu:
        return m.end("cpu") + 2
    return -1


def _make_template(text: str, m, layout) -> _Template | None:
    P0 = m.start("indent")
    if not text[:P0].isascii():
        return None
    fixed_bytes: dict[int, int] = {}
    pos = 0
    abs_ = rel = key = dur = None
    if layout.abstime:
        a_s, a_e = m.span("abs")
        dot = text.index(".", a_s)
        ws, wf = dot - pos, a_e - dot - 1
        if not (1 <= ws <= 8 and 1 <= wf <= 8 and ws + wf <= 15):
            return None
        fixed_bytes[dot] = ord(".")
        for i, ch in enumerate(" |  "):
            fixed_bytes[a_e + i] = ord(ch)
        abs_ = (pos, dot, a_e)
        pos = a_e + 4
    if layout.reltime:
        r_e = m.end("rel")
        if not 1 <= r_e - pos <= 16:
            return None
        for i, ch in enumerate(" us |  "):
            fixed_bytes[r_e + i] = ord(ch)
        rel = (pos, r_e)
        pos = r_e + 7
    k0 = pos
    if layout.lat:
        k1 = m.end("lat") + 3
    elif layout.proc:
        k1 = text.index("|", m.end("proc")) + 2
    elif layout.cpu:
        k1 = m.end("cpu") + 2
    else:
        k1 = k0
    if k1 > k0:
        key = (k0, k1)
    if layout.duration:
        d0 = k1
        bar = P0 - 3
        R = bar - d0 - 2
        if not 8 <= R <= 16 or text[bar:P0] != "|  ":
            return None
        fixed_bytes[d0 + 1] = ord(" ")
        for i, ch in enumerate("|  "):
            fixed_bytes[bar + i] = ord(ch)
        dur = (d0, bar)
    elif k1 != P0:
        return None
    gw = (P0 + 15) // 8 * 8
    words: dict[int, list[int]] = {}
    for off, val in fixed_bytes.items():
        j, r = divmod(off, 8)
        mk, vv = words.get(j, [0, 0])
        words[j] = [mk | (0xFF << (8 * r)), vv | (val << (8 * r))]
    fixed = [(j, mk, vv) for j, (mk, vv) in sorted(words.items())]
    head = text[:k0]
    tail = (" " * (dur[1] - dur[0]) + "|  ") if dur else ""
    tpl = _Template(P0=P0, gw=gw, fixed=fixed, abs=abs_, rel=rel, key=key, dur=dur,
                    head=head, tail=tail)
    if dur:
        tpl.dur_tables = _dur_tables(dur[1] - dur[0] - 2)
    return tpl


def _movemask(x: np.ndarray) -> np.ndarray:
    """The 0x80 bits of the 8 bytes of ``x`` → an 8-bit number (bit i = byte i)."""
    return ((x >> _U(7)) * _U(0x0102040810204080)) >> _U(56)


def _dur_tables(R: int) -> dict[str, np.ndarray]:
    """Tables for the duration number in a region of ``R`` bytes (number, " us", spaces).

    A number's *shape* is its length L (1-8) and the position P of its dot (none or 1..L-1),
    found from the 16-bit signature (space bytes | dot bytes << 8) of its first 8 bytes.
    Shape tables give the byte masks to check, the masks that drop the dot (the bytes before
    it move up one byte), the shift that right-aligns the digits for :func:`_swar8`, and the
    power of ten to divide the integer mantissa by.
    """
    shapes = [(L, None) for L in range(1, 9)] + [(L, P) for L in range(2, 9) for P in range(1, L)]
    ns = len(shapes)
    t = {name: np.zeros(ns + 1, dtype=dt) for name, dt in (
        ("dm", np.uint64), ("nd30", np.uint64), ("m1", np.uint64), ("e1", np.uint64),
        ("m2", np.uint64), ("e2", np.uint64), ("shift", np.uint64), ("lo", np.uint64),
        ("hi", np.uint64), ("pow", np.float64), ("ok", bool))}
    t["pow"][:] = 1.0
    sig = np.full(1 << 16, ns, dtype=np.intp)
    for sid, (L, P) in enumerate(shapes):
        if L + 3 > R:
            continue
        region = ["#"] * L + list(" us") + [" "] * (R - L - 3)
        if P is not None:
            region[P] = "."
        dm = m1 = e1 = m2 = e2 = 0
        for b in range(8):
            if b < L and b != P:
                dm |= 0xFF << (8 * b)
            if b >= L:
                m1 |= 0xFF << (8 * b)
                e1 |= ord(region[b]) << (8 * b)
            i = R - 8 + b
            if i >= L:
                m2 |= 0xFF << (8 * b)
                e2 |= ord(region[i]) << (8 * b)
        t["dm"][sid], t["nd30"][sid] = dm, 0x3030303030303030 & ~dm
        t["m1"][sid], t["e1"][sid], t["m2"][sid], t["e2"][sid] = m1, e1, m2, e2
        t["shift"][sid] = 8 * (8 - L)
        if P is not None:
            t["lo"][sid] = int(_LOW[P])
            t["hi"][sid] = _ALL & ~int(_LOW[P + 1])
            t["pow"][sid] = 10.0 ** (L - 1 - P)
        else:
            t["hi"][sid] = _ALL
        t["ok"][sid] = True
        sp = 0
        for b in range(8):
            if region[b] == " ":
                sp |= 1 << b
        s = sp | ((1 << P) << 8 if P is not None else 0)
        sig[s] = sid
    t["sig"] = sig
    return t


# ---------------------------------------------------------------------------------------------
# Interpreting distinct windows and bodies (once each, with the exact parser)

class _Names:
    """Names found by the fast path (str → dense id), shared by all blocks of one input."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.names: list[str] = []

    def ref(self, name: str | None) -> int:
        if name is None:
            return -1
        i = self.index.get(name)
        if i is None:
            i = self.index[name] = len(self.names)
            self.names.append(name)
        return i


class _Table:
    """A direct-mapped table of distinct byte strings seen so far (hash → id), with their words
    for exact verification and what the exact parser made of them (``info`` arrays by id).

    Lookups read an immutable snapshot (safe on worker threads); inserts build a new one. The
    slot array starts small and doubles when it gets 1/8 full (its entries are re-slotted; an
    entry whose new slot is taken drops out and is simply added again when seen again).
    """

    MIN_BITS = 12
    MAX_BITS = 20

    def __init__(self, n_words: int, fields: dict[str, tuple[Any, Any]]) -> None:
        self.fields = fields
        self.snap = (np.full(1 << self.MIN_BITS, -1, dtype=np.int32),
                     np.zeros(0, dtype=np.uint64),
                     [np.zeros(0, dtype=np.uint64) for _ in range(n_words)],
                     {f: np.zeros(0, dtype=dt) for f, (dt, _) in fields.items()},
                     frozenset(),      # info fields holding some non-default value
                     self.MIN_BITS)

    @staticmethod
    def _slots(h: np.ndarray, bits: int) -> np.ndarray:
        return ((h * _MULTS[0]) >> _U(64 - bits)).astype(np.intp)

    def slots(self, h: np.ndarray) -> np.ndarray:
        return self._slots(h, self.snap[5])

    def lookup(self, h: np.ndarray, words: list[np.ndarray]) -> tuple[np.ndarray, tuple]:
        snap = self.snap
        tab, kh, kw = snap[:3]
        ids = tab[self._slots(h, snap[5])].astype(np.int64)
        if not len(kh):
            return ids, snap
        found = ids >= 0
        iv = np.where(found, ids, 0)
        found &= kh[iv] == h
        for w, k in zip(words, kw):
            found &= k[iv] == w
        ids[~found] = -1
        return ids, snap

    def insert(self, h: np.ndarray, words: list[np.ndarray], info: dict[str, np.ndarray]) -> None:
        """Add rows (distinct strings, not in the table); rows whose slot is taken are dropped."""
        tab, kh, kw, kinfo, used, bits = self.snap
        n0 = len(kh)
        kh = np.concatenate([kh, h])
        kw = [np.concatenate([k, w]) for k, w in zip(kw, words)]
        kinfo = {f: np.concatenate([kinfo[f], info[f]]) for f in kinfo}
        used = used | {f for f, (_, dflt) in self.fields.items()
                       if bool((info[f] != dflt).any())}
        grow = bits < self.MAX_BITS and len(kh) * 8 > (1 << bits)
        while bits < self.MAX_BITS and len(kh) * 8 > (1 << bits):
            bits += 1
        if grow:
            tab = np.full(1 << bits, -1, dtype=np.int32)
            new = np.arange(len(kh))          # re-slot every entry
        else:
            tab = tab.copy()
            new = np.arange(n0, len(kh))
        slot = self._slots(kh[new], bits)
        free = tab[slot] < 0
        _, first = np.unique(slot, return_index=True)    # one entry per free slot
        take = np.zeros(len(new), dtype=bool)
        take[first] = True
        take &= free
        tab[slot[take]] = new[take]
        self.snap = (tab, kh, kw, kinfo, frozenset(used), bits)


_BODY_FIELDS = {"ok": (bool, False), "kind": (np.int8, 0), "func": (np.int64, -1),
                "mod": (np.int64, -1), "ret": (np.int64, 0), "hasret": (bool, False)}
_KEY_FIELDS = {"ok": (bool, False), "cpu": (np.int16, -1), "pid": (np.int32, -1),
               "comm": (np.int64, -1)}


class _State:
    """Per-input state of the fast path: name ids, tables, the scratch exact parser."""

    def __init__(self, parser) -> None:
        from .lineparse import LineParser
        self.lock = threading.Lock()
        self.scratch = LineParser(parser.layout, Interner(), Interner(), Interner())
        self.rx = parser._rx
        self.names = (_Names(), _Names(), _Names())        # comm, func, module
        self.body_table = _Table(4, _BODY_FIELDS)
        self.long_table = _Table(17, _BODY_FIELDS)
        self.key_tables: dict[tuple, _Table] = {}
        self.replay_cache: dict[bytes, Any] = {}
        self.replay_seen: set[bytes] = set()
        # name id → code in the parser's interners (-1: not interned yet); index -1 = no name.
        self.code_of = [np.full(1, -1, dtype=np.int32) for _ in range(3)]
        self.known = [np.ones(1, dtype=bool) for _ in range(3)]

    def _reset_scratch(self) -> None:
        sc = self.scratch
        for v in sc.cols.values():
            v.clear()
        sc.comments.clear()
        sc.args.clear()
        sc.retaddr.clear()
        sc.flags.clear()

    def key_info(self, tpl: _Template, kb: bytes) -> tuple:
        """(ok, cpu, pid, comm name id) for a cpu/proc/lat window, from the exact parser run on
        a synthetic line with this window."""
        k = kb.decode("utf-8", "replace")
        synth = tpl.head + k + tpl.tail + "x();"
        if synth[0] == "#":
            return (False, -1, -1, -1)
        m = self.rx.match(synth)
        if (m is None or m.start("indent") != len(tpl.head) + len(k) + len(tpl.tail)
                or m["body"] != "x();" or (tpl.dur is not None and m["dur"] is not None)
                or _key_end(synth, m, self.scratch.layout) != len(tpl.head) + len(k)):
            # (the last check: the window's columns must end where the window ends — a blank
            # duration column could otherwise absorb a space that belongs to it)
            return (False, -1, -1, -1)
        self._reset_scratch()
        sc = self.scratch
        if not sc._call_line(0, m) or len(sc.cols["kind"]) != 1:
            return (False, -1, -1, -1)
        c = sc.cols
        comm = c["comm"][0]
        return (True, c["cpu"][0], c["pid"][0],
                self.names[0].ref(sc.comms.names[comm]) if comm >= 0 else -1)

    def body_info(self, bb: bytes) -> tuple:
        """(ok, kind, func name id, module name id, retval, has_ret) for a body, from the exact
        parser's body interpretation."""
        bad = (False, 0, -1, -1, 0, False)
        b = bb.decode("utf-8", "replace")
        if not b or b[0].isspace() or b[0] in "/#":
            return bad
        self._reset_scratch()
        sc = self.scratch
        ok = sc._body(0, b, -2, -1, -1, -1, np.nan, np.nan)
        c = sc.cols
        if not (ok and len(c["kind"]) == 1 and c["depth"][0] == -1 and not sc.comments
                and not sc.args and not sc.retaddr and c["kind"][0] in (K_ENTRY, K_LEAF, K_EXIT)):
            return bad
        f, mo = c["func"][0], c["module"][0]
        return (True, c["kind"][0], self.names[1].ref(sc.funcs.names[f]) if f >= 0 else -1,
                self.names[2].ref(sc.modules.names[mo]) if mo >= 0 else -1,
                c["retval"][0], bool(c["has_ret"][0]))

    def replayer(self, parser):
        """A function (lineno, line bytes) that has the same effect on ``parser`` as
        ``parser.parse_line(lineno, text)``, replaying recorded effects for repeated lines."""
        cache = self.replay_cache
        seen = self.replay_seen
        layout = parser.layout
        interners = (parser.comms, parser.funcs, parser.modules)
        add = parser._add

        def run(lineno: int, raw: bytes) -> None:
            eff = cache.get(raw, False)
            text = None
            if eff is False:
                # Recorded at the second occurrence (most rejected lines with a timestamp are
                # unique: for them the plain parse is cheaper than recording).
                eff = None
                if raw in seen:
                    text = raw.decode("utf-8", "replace").rstrip("\r")
                    if len(cache) < _REPLAY_MAX:
                        eff = cache[raw] = _record_replay(layout, text)
                elif len(raw) < 512 and len(seen) < _REPLAY_MAX:
                    seen.add(raw)
            if eff is None:
                if text is None:
                    text = raw.decode("utf-8", "replace").rstrip("\r")
                parser.parse_line(lineno, text)
                return
            for itn, names in zip(interners, eff.interned):
                for name in names:
                    itn.code(name)
            for rec in eff.records:
                r = dict(rec)
                for name, which in _NAMED.items():
                    nm = r[name]
                    r[name] = -1 if nm is None else interners[which].codes[nm]
                add(lineno, **r)
            for d, v in eff.dicts.items():
                getattr(parser, d)[lineno] = v
            if eff.skipped:
                if text is None:
                    text = raw.decode("utf-8", "replace").rstrip("\r")
                parser._skip(lineno, text)
            if eff.other:
                parser.other_layout_lines += eff.other

        return run

    def key_table(self, tpl: _Template) -> _Table:
        sig = (tpl.head, tpl.tail, tpl.key)
        t = self.key_tables.get(sig)
        if t is None:
            k0, k1 = tpl.key  # type: ignore[misc]
            n_words = (k1 - 1) // 8 - k0 // 8 + 1
            t = self.key_tables[sig] = _Table(n_words, _KEY_FIELDS)
        return t


_STATE_LOCK = threading.Lock()


_DICTS = ("comments", "switches", "lost", "overruns", "args", "retaddr", "flags")
_NAMED = {"comm": 0, "func": 1, "module": 2}


class _Replay:
    """What ``LineParser.parse_line`` does with one line text, recorded once and replayed for
    later lines with the same bytes (task-switch blocks, separators, blank lines, comments,
    lost-events lines, garbage): the records it adds (names kept as strings), the names it
    interns (in order), the side-table entries for its line number, the skip / other-layout
    counters. A line whose parse changes anything else is not cached (its parse is run)."""

    __slots__ = ("records", "interned", "dicts", "skipped", "other")

    def __init__(self, records, interned, dicts, skipped, other):
        self.records = records
        self.interned = interned
        self.dicts = dicts
        self.skipped = skipped
        self.other = other


def _fingerprint(sc) -> dict[str, Any]:
    """Sizes / values of every attribute of a LineParser (to see what a parse changed)."""
    out: dict[str, Any] = {}
    for k, v in vars(sc).items():
        if isinstance(v, (int, float, str, bool, type(None))):
            out[k] = v
        elif isinstance(v, Interner):
            out[k] = len(v)
        elif isinstance(v, (list, dict, set, tuple)):
            out[k] = (len(v), {kk: len(vv) for kk, vv in v.items()} if k == "cols" else None)
        else:
            out[k] = id(v)
    return out


_REPLAY_MAX = 1 << 16


def _record_replay(layout, text: str) -> _Replay | None:
    from .lineparse import LineParser
    sc = LineParser(layout, Interner(), Interner(), Interner())
    before = _fingerprint(sc)
    sc.parse_line(-1, text)
    after = _fingerprint(sc)
    changed = {k for k in after if after[k] != before.get(k)}
    if not changed <= {"cols", "skipped", "skipped_examples", "other_layout_lines", "comms",
                       "funcs", "modules", *_DICTS}:
        return None            # e.g. a header line: run the real parse each time
    if any(any(key != -1 for key in getattr(sc, d)) for d in _DICTS):
        return None
    cols = sc.take_columns()
    records = []
    for i in range(len(cols["line"])):
        rec = {k: v[i].item() for k, v in cols.items() if k != "line"}
        for name, which in _NAMED.items():
            code = rec[name]
            rec[name] = None if code < 0 else (sc.comms, sc.funcs, sc.modules)[which].names[code]
        records.append(rec)
    interned = [list(sc.comms.names), list(sc.funcs.names), list(sc.modules.names)]
    dicts = {d: getattr(sc, d)[-1] for d in _DICTS if -1 in getattr(sc, d)}
    return _Replay(records, interned, dicts, sc.skipped, sc.other_layout_lines)


def _state(parser) -> _State:
    st = getattr(parser, "_fast_state", None)
    if st is None:
        with _STATE_LOCK:
            st = getattr(parser, "_fast_state", None)
            if st is None:
                st = parser._fast_state = _State(parser)
    return st


# ---------------------------------------------------------------------------------------------
# Grouping equal byte strings within a block, looking them up

def _dedupe(h: np.ndarray, words: list[np.ndarray]) -> np.ndarray:
    """Representative row of each row (rows with equal ``words`` share one), -1 if unresolved.

    ``h`` is a hash of the words; rows are bucketed by it in a small table, and a row is
    grouped with its bucket's winner only if all its words are equal to the winner's.
    """
    k = len(h)
    rep = np.full(k, -1, dtype=np.int64)
    todo = np.arange(k, dtype=np.int64)
    size = 1 << _TABLE_BITS
    shift = _U(64 - _TABLE_BITS)
    for r in range(len(_MULTS)):
        if not todo.size:
            break
        ht = h[todo] if r else h
        slot = ((ht * _MULTS[r]) >> shift).astype(np.intp)
        tbl = np.empty(size, dtype=np.int64)
        tbl[slot] = todo
        cand = tbl[slot]
        same = ht == h[cand]
        for w in words:
            same &= (w[todo] if r else w) == w[cand]
        rep[todo[same]] = cand[same]
        todo = todo[~same]
    return rep


def _groups(rep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique id per row (-1 if rep is -1), representative rows) from :func:`_dedupe`."""
    k = len(rep)
    isrep = rep == np.arange(k)
    reps = np.flatnonzero(isrep)
    uid_of = np.full(k + 1, -1, dtype=np.int64)
    uid_of[reps] = np.arange(len(reps))
    return uid_of[rep], reps


def _resolve(table: _Table, h: np.ndarray, words: list[np.ndarray], interpret,
             lock: threading.Lock) -> dict[str, np.ndarray]:
    """Per row: the ``info`` of its byte string — from the table, else interpreted once per
    distinct string of the block (``interpret(row)``) and added to the table."""
    out, ids = _lookup_info(table, h, words)
    miss = np.flatnonzero(ids < 0)
    if miss.size:
        _fill_misses(table, out, miss, h, words, interpret, lock)
    return out


def _lookup_info(table: _Table, h: np.ndarray, words: list[np.ndarray]):
    """(info per row from the table — defaults where not found —, ids (-1: not found))."""
    ids, snap = table.lookup(h, words)
    kinfo, used = snap[3], snap[4]
    out = {}
    iv = np.where(ids >= 0, ids, 0) if len(kinfo[next(iter(kinfo))]) else None
    for f, (dt, dflt) in table.fields.items():
        # (fields that are the default in every entry are not gathered)
        out[f] = kinfo[f][iv] if iv is not None and f in used else np.full(len(h), dflt, dt)
    return out, ids


def _fill_misses(table: _Table, out: dict[str, np.ndarray], miss: np.ndarray, h: np.ndarray,
                 words: list[np.ndarray], interpret, lock: threading.Lock) -> None:
    """Interpret the rows ``miss`` (once per distinct string), add them to the table and to
    ``out``."""
    mh = h[miss]
    mw = [w[miss] for w in words]
    rep = _dedupe(mh, mw)
    uid, reps = _groups(rep)
    nu = len(reps)
    uinfo = {f: np.full(nu + 1, dflt, dtype=dt) for f, (dt, dflt) in table.fields.items()}
    with lock:
        for u, row in enumerate(miss[reps].tolist()):
            vals = interpret(row)
            for (f, _), v in zip(table.fields.items(), vals):
                uinfo[f][u] = v
        table.insert(mh[reps], [w[reps] for w in mw], {f: a[:nu] for f, a in uinfo.items()})
    for f in out:
        out[f][miss] = uinfo[f][uid]
