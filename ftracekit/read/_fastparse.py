"""Vectorised parsing of the common function_graph lines of a block (numpy only).

Contract
--------
``parse_block(block, first_lineno, parser) -> (cols, n_fast)``: ``block`` is bytes ending with
a newline whose first line is line ``first_lineno``. Returns the record columns (see
:mod:`ftracekit.records`) of *every* line of the block, in line order, and how many lines the
vectorised path handled. Lines the vectorised path cannot vouch for are given to
``parser.parse_line`` (the exact definition) in line order, interleaved with the interning of
the names first seen on vectorised lines, so that interned codes, side tables (comments,
switches, ...), counters and the header come out exactly as if every line had gone through
``parser.parse_line``.

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

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from .records import COLUMNS, K_ENTRY, K_EXIT, K_LEAF, Interner

__all__ = ["parse_block", "scan_block", "finish_block"]

_U = np.uint64
_PAD = 320                     # zero bytes appended to a block so gathers never overrun
_PAD_BYTES = bytes(_PAD)
_MAX_INDENT = 512              # deeper lines go to the exact parser
_MAX_BODY = 128                # longer bodies go to the exact parser
_TABLE_BITS = 16
_MAX_TEMPLATES = 4
_MIN_RETRY = 48                # retry with another template only if this many lines are left

_ALL = (1 << 64) - 1
_LOW = np.array([(1 << (8 * i)) - 1 if i < 8 else _ALL for i in range(9)], dtype=np.uint64)
_HIGH80 = np.array([sum(0x80 << (8 * (7 - j)) for j in range(i)) for i in range(9)],
                   dtype=np.uint64)          # 0x80 in the top i bytes
_LOW80 = np.array([sum(0x80 << (8 * j) for j in range(i)) for i in range(9)],
                  dtype=np.uint64)           # 0x80 in the low i bytes
_POW10 = np.array([10.0 ** i for i in range(16)], dtype=np.float64)
_SP = _U(0x2020202020202020)
_DOTS = _U(0x2E2E2E2E2E2E2E2E)
_X7F = _U(0x7F7F7F7F7F7F7F7F)
_X80 = _U(0x8080808080808080)
_X0F = _U(0x0F0F0F0F0F0F0F0F)
_XF0 = _U(0xF0F0F0F0F0F0F0F0)
_X30 = _U(0x3030303030303030)
_X06 = _U(0x0606060606060606)
_X10 = _U(0x1010101010101010)
_M1 = _U(0x000000FF000000FF)
_C1 = _U(100 + (1000000 << 32))
_C2 = _U(1 + (10000 << 32))
_H1 = _U(0x9E3779B97F4A7C15)
_H2 = _U(0xBF58476D1CE4E5B9)
_H3 = _U(0x94D049BB133111EB)
_MULTS = [_U(x) for x in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                          0xD6E8FEB86659FD93, 0xA0761D6478BD642F, 0xE7037ED1A0B428DB,
                          0x8EBC6AF09C88C6E3, 0x589965CC75374CC3)]
_X46 = _U(0x4646464646464646)
_HMUL = [_U(x) for x in (0xD6E8FEB86659FD93, 0xA0761D6478BD642F, 0xE7037ED1A0B428DB,
                         0x8EBC6AF09C88C6E3, 0x589965CC75374CC3, 0x1D8E4E27C47D124F)]
# _BODY_MASKS[j][n]: the bytes of word j that belong to a body of n (≤ 32) bytes.
_BODY_MASKS = [np.array([int(_LOW[min(max(n - 8 * j, 0), 8)]) for n in range(33)], dtype=np.uint64)
               for j in range(4)]
_MARK_OK = np.zeros(256, dtype=bool)
for _c in b" +!#*@$":
    _MARK_OK[_c] = True


# ---------------------------------------------------------------------------------------------
# SWAR helpers (uint64 words hold 8 text bytes, first byte in the low bits)

def _zero_bytes(z: np.ndarray) -> np.ndarray:
    """0x80 in every byte of ``z`` that is zero (exact)."""
    t = (z & _X7F) + _X7F
    return ~(t | z | _X7F)


def _digit_bytes(w: np.ndarray) -> np.ndarray:
    """0x80 in every byte of ``w`` that is an ASCII digit."""
    hi = _zero_bytes((w & _XF0) ^ _X30)
    lo = _zero_bytes(((w & _X0F) + _X06) & _X10)
    return hi & lo


def _ctz_bytes(x: np.ndarray) -> np.ndarray:
    """Index of the lowest byte with its 0x80 bit set in ``x`` (8 when none)."""
    low = x & (~x + _U(1))
    return (np.bitwise_count(low - _U(1)) >> 3).astype(np.int64)


def _swar8(v: np.ndarray) -> np.ndarray:
    """Eight decimal digit values (0-9, first digit in the low byte) → their integer value."""
    v = v * _U(10) + (v >> _U(8))
    return (((v & _M1) * _C1) + (((v >> _U(16)) & _M1) * _C2)) >> _U(32)


def _hash_mix(h: np.ndarray, w: np.ndarray) -> np.ndarray:
    h = (h ^ w) * _H2
    return h ^ (h >> _U(31))


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


_DICTS = ("comments", "switches", "lost", "overruns", "args", "retaddr")
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
# Grouping equal byte strings within a block

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
    if parts:
        acc = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
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
                     refs=refs)  # type: ignore[arg-type]


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
    blen = e - bs
    ok &= blen >= 1
    ok &= blen <= _MAX_BODY
    if not ok.all():
        blen[~ok] = 1
        bs[~ok] = e[~ok] - 1
    # Bodies: words masked to the body, hashed, looked up / interpreted.
    bview = np.ndarray((len(mem) - 31,), dtype="V32", buffer=mem, offset=0, strides=(1,))
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
            return state.body_info(mem[a:a + int(blen[rows[r]])])
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
        E = _EXT_VIEW(mem)[bs[long_rows] + 32].view(np.uint64).reshape(len(long_rows), 12)
        E = E & _LOW[np.clip(bl[:, None] - 32 - 8 * np.arange(12)[None, :], 0, 8)]
        lwords = ([w[long_rows] for w in bwords] + [bl.astype(np.uint64)]
                  + [np.ascontiguousarray(E[:, j]) for j in range(12)])
        hl = h[long_rows]
        for j in range(12):
            hl = hl + lwords[5 + j] * _HMUL[j % len(_HMUL)]
        sub = _resolve(state.long_table, hl, lwords, interpret_body(long_rows), state.lock)
        for f in info:
            info[f][long_rows] = sub[f]
    ok &= info["ok"]
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
    return (acc, cols, refs), mismatch


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
