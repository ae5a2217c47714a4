"""Ring-buffer pages → events: the page walk and the field gathers (numpy, vectorised).

Page layout (``events/header_page``): u64 timestamp, local_t commit (data size in the low 27
bits; bit 31 "events were lost before this page", bit 30 "and their count is stored after the
data"), then the data. Each event starts with a 32-bit header: ``type_len`` (5 bits) and
``time_delta`` (27 bits); ``type_len`` 1–28 = payload of ``4*type_len`` bytes, 0 = payload
length in the next word, 29 = padding, 30 = time extend, 31 = absolute time stamp
(``kernel/trace/ring_buffer.c``). Headers and payloads are 4-byte aligned, so the pages are
read as 32-bit words.

The walk finds the headers of all pages of a buffer at once, one header per page and step
(a page holds up to ~170 events, so ~170 steps of three numpy calls over all pages, see
:func:`_walk`). Each step only notes where a header is and moves on by its length;
everything else (timestamps, payload positions and lengths) is then computed for all headers
together: a page's time is its header timestamp plus the running sum of the deltas (and time
extends), restarted at an absolute time stamp.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["PageEvents", "Scratch", "walk_pages", "walk_pages_sequential", "CpuEvents", "decode_cpu", "gather_u32", "gather_u64",
           "gather_field"]

_COMMIT_MASK = (1 << 27) - 1
_MISSED_EVENTS = 1 << 31
_MISSED_STORED = 1 << 30

# Words from one header to the next, by type_len: data 1–28 = 1 + type_len. The others (0: data
# with a length word, 29: padding with a length word, 30: time extend, 31: absolute time stamp)
# get an advance so large that the position leaves the page: they are resolved apart (they are
# rare: about one per page).
_LONG = 1 << 40
_ADVANCE = np.array([_LONG] + [1 + t for t in range(1, 29)] + [_LONG] * 3, dtype=np.int64)
# The same in bytes, by the header's low byte (type_len and 3 bits of the delta).
_ADVANCE_BYTES = np.array([4 * a if a < _LONG else _LONG for a in _ADVANCE.tolist()] * 8,
                          dtype=np.int64)
_CHECK_EVERY = 8        # walk steps between looks at which pages ended or met a rare header
_ROWS = 192             # steps of a round (a page of graph events: 92-170)


@dataclass
class PageEvents:
    """The data events of a buffer of pages, in stream order."""

    word: np.ndarray       # int64: payload start, in 32-bit words from the buffer start
    length: np.ndarray     # int64: payload bytes
    ts: np.ndarray         # int64: ns
    lost: list[tuple[int, int]] = field(default_factory=list)   # (event index, count or -1)


def _empty() -> PageEvents:
    z = np.zeros(0, dtype=np.int64)
    return PageEvents(z, z.copy(), z.copy())


class Scratch:
    """int64 buffers of the walk, reused from block to block: allocated anew each time,
    they would be fresh memory each time (glibc gives large blocks back to the OS), which
    costs more to touch than the walk itself on a VM whose host backs memory lazily."""

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """An uninitialised int64 array of ``shape`` in buffer ``name``."""
        n = int(np.prod(shape))
        buf = self._bufs.get(name)
        if buf is None or len(buf) < n:
            buf = self._bufs[name] = np.empty(n, dtype=np.int64)
        return buf[:n].reshape(shape)


def walk_pages(words: np.ndarray, page_size: int, scratch: Scratch | None = None
               ) -> PageEvents:
    """All data events of the whole pages in ``words`` (uint32, little endian); ``scratch``:
    buffers to reuse (see :class:`Scratch`)."""
    nw = page_size // 4
    n_pages = len(words) // nw
    if not n_pages:
        return _empty()
    hdr = words[: n_pages * nw].reshape(n_pages, nw)[:, :4].astype(np.uint64)
    page_ts = (hdr[:, 0] | (hdr[:, 1] << np.uint64(32))).astype(np.int64)
    commit = hdr[:, 2] | (hdr[:, 3] << np.uint64(32))
    size = np.minimum((commit & np.uint64(_COMMIT_MASK)).astype(np.int64), page_size - 16)
    base = np.arange(n_pages, dtype=np.int64) * nw
    end = base + 4 + (size + 3) // 4

    # The walk (see _walk): the data headers in stream order, and the headers with a length
    # word or a time value (types 0, 29, 30, 31), resolved apart.
    page = np.flatnonzero(size > 0)
    found = _walk(words, nw, (base[page] + 4) * 4, end[page] * 4, scratch or Scratch())
    at = found.at
    long_at, long_a0 = found.long_at, found.long_a0
    odd_at, odd_h, odd_a0 = found.odd_at, found.odd_h, found.odd_a0
    del page
    n = len(at)
    h = words[at]
    delta = (h >> np.uint32(5)).astype(np.int64)
    # Time restarts at each page's first event (page time stamp) and after an absolute time
    # stamp; time extends and discarded events add to the delta of the next event.
    first = np.searchsorted(at, base)
    has = (first < n) & (at[np.minimum(first, max(n - 1, 0))] < base + nw) if n else first < 0
    restart: dict[int, int] = dict(zip(first[has].tolist(), page_ts[has].tolist()))
    if odd_at:
        _time_headers(np.concatenate(odd_at), np.concatenate(odd_h), np.concatenate(odd_a0),
                      at, nw, delta, restart)
    if restart:
        k = np.fromiter(restart, dtype=np.int64, count=len(restart))
        order = np.argsort(k)
        k = k[order]
        value = np.fromiter(restart.values(), dtype=np.int64, count=len(restart))[order]
        seg_sum = np.add.reduceat(delta, k) if n else np.zeros(0, np.int64)
        sum_before = np.cumsum(seg_sum) - seg_sum + delta[:k[0]].sum()
        b = value - sum_before                # ts = running sum + b of the last restart
        delta[k] += np.diff(b, prepend=0)
    ts = np.cumsum(delta, out=delta)
    del delta

    word = at + 1
    length = (h & np.uint32(31)) << np.uint32(2)
    del h, at
    if long_at:                               # type 0: payload after the length word
        la = np.concatenate(long_at)
        j = np.searchsorted(word, la + 1)
        word[j] += 1
        length[j] = np.clip(np.concatenate(long_a0) - 4, 0, 0xFFFFFFFF).astype(np.uint32)
    bad = length < 8
    tail = np.searchsorted(word, (n_pages - 1) * nw)
    bad[tail:] |= word[tail:] * 4 + length[tail:] > n_pages * page_size
    if long_at:
        bad[j] |= word[j] * 4 + length[j] > n_pages * page_size
    if bad.any():
        ok = ~bad
        word, length, ts = word[ok], length[ok], ts[ok]
    ev = PageEvents(word, length, ts)
    # Lost events before a page: the index of the page's first event.
    missed = np.flatnonzero((commit & np.uint64(_MISSED_EVENTS)) != 0)
    if missed.size:
        first_event = np.searchsorted(word, base[missed])
        for i, fe in zip(missed.tolist(), first_event.tolist()):
            cnt = -1
            if int(commit[i]) & _MISSED_STORED:
                p = i * page_size + 16 + int(size[i])
                if p + 8 <= (i + 1) * page_size:
                    cnt = int.from_bytes(words.view(np.uint8)[p:p + 8].tobytes(), "little",
                                         signed=True)
            ev.lost.append((fe, cnt))
    return ev


@dataclass
class _Headers:
    """What the walk finds in a buffer of pages (positions in 32-bit words from its start)."""

    at: np.ndarray                                        # int64: data headers, ascending
    long_at: list[np.ndarray] = field(default_factory=list)   # data with a length word (type 0)
    long_a0: list[np.ndarray] = field(default_factory=list)   # (int64: that word)
    odd_at: list[np.ndarray] = field(default_factory=list)    # time headers (29 with a delta,
    odd_h: list[np.ndarray] = field(default_factory=list)     # 30, 31): header (uint32) and
    odd_a0: list[np.ndarray] = field(default_factory=list)    # next word (int64)


def _walk(words: np.ndarray, nw: int, start: np.ndarray, stop: np.ndarray, scratch: Scratch
          ) -> _Headers:
    """The headers of the pages whose first header is at byte ``start`` and whose data end
    at byte ``stop`` (int64, one per page, pages in ascending order).

    All pages are walked together, one header per page and step: step ``s`` of the walk is
    row ``s`` of a matrix (steps × pages) of byte positions, each row the one before plus the
    advance of its headers (3 numpy calls on rows as long as the pages, no scattered writes).
    Only every few steps (:data:`_CHECK_EVERY`) does the walk look for the pages that ended
    and for headers that need their next word (types 0, 29, 30, 31: their advance took the
    position out of every page, :data:`_LONG`); the steps walked past such a header are
    voided and the page goes on from the header after it. The valid positions of the matrix
    read column by column are the headers in stream order. A round ends when its rows are
    used up; the pages still going (many small events) start a new round.
    """
    data = words.view(np.uint8)
    found = _Headers(np.zeros(0, dtype=np.int64))
    runs: list[np.ndarray] = []
    while len(start):
        start, stop = _round(data, words, nw, start, stop, runs, found, scratch)
    at = runs[0] if runs else found.at
    for r in runs[1:]:               # (pages with many events: a few short extra runs)
        at = np.insert(at, np.searchsorted(at, r), r)
    at >>= 2
    found.at = at
    return found


def _round(data: np.ndarray, words: np.ndarray, nw: int, start: np.ndarray, stop: np.ndarray,
           runs: list[np.ndarray], found: _Headers, scratch: Scratch
           ) -> tuple[np.ndarray, np.ndarray]:
    """One round of :func:`_walk`: appends the byte positions of the data headers found to
    ``runs``; returns the next header and the end of the pages still going."""
    cols = len(start)
    pos = scratch.get("steps", (_ROWS + 1, cols))
    pos[0] = start
    b = np.empty(cols, dtype=np.uint8)
    adv = np.empty(cols, dtype=np.int64)
    s = looked = 0
    every = _CHECK_EVERY
    while True:
        for _ in range(min(every, _ROWS - s)):
            data.take(pos[s], out=b, mode="clip")            # (the header's low byte)
            _ADVANCE_BYTES.take(b, out=adv)
            np.add(pos[s], adv, out=pos[s + 1])
            s += 1
        cur = pos[s]
        rare = 0
        if cur.max() >= _LONG:
            rare = _rare_headers(words, nw, pos, looked, s, stop, found)
        looked = s
        live = cur < stop
        n_live = int(np.count_nonzero(live))
        if not n_live or s == _ROWS:
            break
        # (many rare headers, e.g. a time extend before each event on an idle CPU: look more
        # often, a page waits for the next look after each)
        every = max(every // 2, 1) if 16 * rare > n_live else _CHECK_EVERY
    runs.append(_by_page(pos[:s], stop, scratch))
    return cur[live], stop[live]


def _by_page(steps: np.ndarray, stop: np.ndarray, scratch: Scratch) -> np.ndarray:
    """The positions of ``steps`` (steps × pages) below their page's ``stop``, page by page
    (the matrix is transposed in bands of rows: cache-friendly)."""
    by_page = scratch.get("by_page", steps.shape[::-1])
    for lo in range(0, len(steps), 16):
        by_page[:, lo:lo + 16] = steps[lo:lo + 16].T
    return by_page[by_page < stop[:, None]]


def _rare_headers(words: np.ndarray, nw: int, pos: np.ndarray, looked: int, s: int,
                  stop: np.ndarray, found: _Headers) -> int:
    """Resolve the headers with a length word or a time value met in steps ``looked`` to
    ``s`` of a round (see :func:`_walk`): kept aside in ``found``, the steps after them voided
    and ``pos[s]`` set to the header that follows. Returns how many there were."""
    cols = np.flatnonzero((pos[s] >= _LONG) & (pos[looked] < stop))   # (not: pages ended
    if not len(cols):                                                  # before ``looked``)
        return 0
    seg = pos[looked + 1:s + 1, cols]               # (the steps since the last look)
    row = np.argmax(seg >= _LONG, axis=0)          # the first that left the pages: its
    hp = pos[looked:s, cols][row, np.arange(len(cols))]   # header, one step before
    real = hp < stop[cols]                          # (else the page had ended before)
    cols, row, hp, seg = cols[real], row[real], hp[real], seg[:, real]
    if not len(cols):
        return 0
    at = hp >> 2
    h = words[at]
    t = h & 31
    a0 = words[np.minimum(at + 1, at // nw * nw + nw - 1)].astype(np.int64)
    nxt = (at + np.where(t >= 30, 2, np.maximum((a0 + 7) >> 2, 1))) * 4
    empty = (t == 29) & ((h >> 5) == 0)              # padding without a delta: the page ends
    nxt[empty] = stop[cols[empty]]
    seg[np.arange(len(seg))[:, None] >= row[None, :]] = _LONG   # (void: ≥ every stop)
    seg[-1] = nxt
    pos[looked + 1:s + 1, cols] = seg
    data = t == 0
    if not data.all():                               # time headers are no data events
        pos[looked + row[~data], cols[~data]] = _LONG
    if data.any():
        found.long_at.append(at[data])
        found.long_a0.append(a0[data])
    timed = ~data & ~empty
    if timed.any():
        found.odd_at.append(at[timed])
        found.odd_h.append(h[timed])
        found.odd_a0.append(a0[timed])
    return len(cols)


def _time_headers(at_t: np.ndarray, h: np.ndarray, a0: np.ndarray, at: np.ndarray, nw: int,
                  delta: np.ndarray, restart: dict[int, int]) -> None:
    """Apply time extends, discarded events' deltas and absolute time stamps (rare) to the
    next data event of the same page: its delta, or a restart of the time there."""
    order = np.argsort(at_t, kind="stable")
    at_t, h, a0 = at_t[order], h[order], a0[order]
    k = np.searchsorted(at, at_t)
    n = len(at)
    same = (k < n) & (at[np.minimum(k, max(n - 1, 0))] // nw == at_t // nw) if n else k < 0
    t = (h & 31).tolist()
    td = (h >> 5).astype(np.int64).tolist()
    add: dict[int, int] = {}
    for kk, ok, tt, d, a in zip(k.tolist(), same.tolist(), t, td, a0.tolist()):
        if not ok:
            continue
        if tt == 31:                          # absolute: what came before in the page is void
            restart[kk] = (a << 27) + d
            add[kk] = 0
        else:
            add[kk] = add.get(kk, 0) + (d + (a << 27) if tt == 30 else d)
    for kk, extra in add.items():
        delta[kk] += extra


# ---------------------------------------------------------------------------------------------
# Fields

def gather_u32(words: np.ndarray, word: np.ndarray, k: int) -> np.ndarray:
    """The 32-bit word ``k`` words after each position (uint32)."""
    return words[k:][word]          # (a shifted view: no index array ``word + k``)


def gather_u64(words: np.ndarray, word: np.ndarray, k: int) -> np.ndarray:
    """The 64-bit value at words ``k``, ``k + 1`` after each position (uint64), through a view
    of 8-byte values at every 4-byte step (payloads are only 4-byte aligned)."""
    n = len(words) - k - 1
    if n <= 0:
        return np.zeros(len(word), dtype=np.uint64)
    view = np.ndarray((n,), dtype="<u8", buffer=words, offset=4 * k, strides=(4,))
    return view[word]


def gather_field(words: np.ndarray, word: np.ndarray, offset: int, size: int, signed: bool
                 ) -> np.ndarray:
    """A little-endian field at byte ``offset`` of each payload: int64 (uint64 for unsigned
    8-byte fields); zeros for sizes other than 1, 2, 4, 8."""
    if size not in (1, 2, 4, 8) or not len(word):
        return np.zeros(len(word), dtype=np.int64)
    if offset % 4 == 0 and size == 8:
        v = gather_u64(words, word, offset // 4)
        return v.view(np.int64) if signed else v
    if offset % 4 + size <= 4:
        v = gather_u32(words, word, offset // 4)
        shift = 8 * (offset % 4)
        if shift:
            v = v >> np.uint32(shift)
        if size < 4:
            v = v & np.uint32((1 << (8 * size)) - 1)
        dt = {1: np.int8, 2: np.int16, 4: np.int32}[size] if signed else \
            {1: np.uint8, 2: np.uint16, 4: np.uint32}[size]
        return v.astype(dt).astype(np.int64)
    # unaligned 8-byte or straddling fields: byte by byte
    data = words.view(np.uint8)
    idx = word[:, None] * 4 + offset + np.arange(size)
    np.minimum(idx, len(data) - 1, out=idx)
    b = np.ascontiguousarray(data[idx])
    dt = {2: "<i2", 4: "<i4", 8: "<i8"}[size] if signed else {2: "<u2", 4: "<u4", 8: "<u8"}[size]
    vals = b.view(dt).reshape(-1)
    return vals if size == 8 and not signed else vals.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# One CPU's stream as a whole (tests and tools)

@dataclass
class CpuEvents:
    """Events of one CPU's raw stream: byte offset of each payload, its length, time (ns)."""

    cpu: int
    data: np.ndarray                  # uint8 view of the whole stream
    offset: np.ndarray                # int64, payload start in ``data``
    length: np.ndarray                # int64, payload bytes
    ts: np.ndarray                    # int64 ns
    lost: list[tuple[int, int]] = field(default_factory=list)   # (event index, count or -1)


def decode_cpu(raw: bytes, cpu: int, page_size: int = 4096) -> CpuEvents:
    """Walk all pages of one CPU's ``trace_pipe_raw`` stream."""
    n_pages = len(raw) // page_size
    data = np.frombuffer(raw, dtype=np.uint8, count=n_pages * page_size)
    ev = walk_pages(data.view(np.uint32), page_size)
    return CpuEvents(cpu, data, ev.word * 4, ev.length, ev.ts, ev.lost)


def walk_pages_sequential(words: np.ndarray, page_size: int) -> PageEvents:
    """The definition of :func:`walk_pages`: one header at a time (tests compare the two)."""
    nw = page_size // 4
    n_pages = len(words) // nw
    total = n_pages * page_size
    out_w: list[int] = []
    out_len: list[int] = []
    out_ts: list[int] = []
    lost: list[tuple[int, int]] = []
    w = [int(x) for x in words[: n_pages * nw]]
    for p in range(n_pages):
        b = p * nw
        t = w[b] | (w[b + 1] << 32)
        commit = w[b + 2] | (w[b + 3] << 32)
        size = min(commit & _COMMIT_MASK, page_size - 16)
        if commit & _MISSED_EVENTS:
            cnt = -1
            at = p * page_size + 16 + size
            if commit & _MISSED_STORED and at + 8 <= (p + 1) * page_size:
                cnt = int.from_bytes(words.view(np.uint8)[at:at + 8].tobytes(), "little",
                                     signed=True)
            lost.append((len(out_w), cnt))
        pos, end = b + 4, b + 4 + (size + 3) // 4
        while pos < end:
            h = w[pos]
            tl, td = h & 31, h >> 5
            a0 = w[min(pos + 1, b + nw - 1)]
            if tl == 31:
                t = (a0 << 27) + td
            elif tl == 30:
                t += (a0 << 27) + td
            else:
                t += td
            t = ((t + (1 << 63)) & ((1 << 64) - 1)) - (1 << 63)      # (int64 arithmetic)
            if tl <= 28:
                ln, pw = (a0 - 4, pos + 2) if tl == 0 else (tl * 4, pos + 1)
                if ln >= 8 and pw * 4 + ln <= total:
                    out_w.append(pw)
                    out_len.append(ln)
                    out_ts.append(t)
            if tl == 29 and td == 0:
                break
            pos += max((a0 + 7) >> 2, 1) if tl in (0, 29) else 2 if tl >= 30 else 1 + tl
    return PageEvents(np.array(out_w, dtype=np.int64), np.array(out_len, dtype=np.int64),
                      np.array(out_ts, dtype=np.int64), lost)
