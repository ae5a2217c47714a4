"""Ring-buffer pages → events: the page walk and the field gathers (numpy, vectorised).

Page layout (``events/header_page``): u64 timestamp, local_t commit (data size in the low 27
bits; bit 31 "events were lost before this page", bit 30 "and their count is stored after the
data"), then the data. Each event starts with a 32-bit header: ``type_len`` (5 bits) and
``time_delta`` (27 bits); ``type_len`` 1–28 = payload of ``4*type_len`` bytes, 0 = payload
length in the next word, 29 = padding, 30 = time extend, 31 = absolute time stamp
(``kernel/trace/ring_buffer.c``). Headers and payloads are 4-byte aligned, so the pages are
read as 32-bit words.

The walk finds the headers of all pages of a buffer at once, one header per page and step
(a page holds up to ~170 events, so ~170 steps of a few numpy calls over all pages). Each step
only marks where a header is and moves on by its length; everything else (timestamps,
payload positions and lengths) is then computed for all headers together: a page's time is
its header timestamp plus the running sum of the deltas (and time extends), restarted at an
absolute time stamp.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["PageEvents", "walk_pages", "CpuEvents", "decode_cpu", "gather_u32", "gather_u64",
           "gather_field"]

_COMMIT_MASK = (1 << 27) - 1
_MISSED_EVENTS = 1 << 31
_MISSED_STORED = 1 << 30

# Words from one header to the next, by type_len: data 1–28 = 1 + type_len, time extend and
# absolute time stamp = 2. Type 0 (long data) and 29 (padding) carry their length in the next
# word: their entry is so large that the position leaves the page, and such headers are
# resolved apart (they are rare: at most a few per page).
_LONG = 1 << 40
_ADVANCE = np.array([_LONG] + [1 + t for t in range(1, 29)] + [_LONG, 2, 2], dtype=np.int64)


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


def walk_pages(words: np.ndarray, page_size: int) -> PageEvents:
    """All data events of the whole pages in ``words`` (uint32, little endian)."""
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

    # The walk: mark every header; count the headers of each page.
    mark = np.zeros(n_pages * nw, dtype=bool)
    count = np.zeros(n_pages, dtype=np.int64)
    page = np.flatnonzero(size > 0)
    pos = base[page] + 4
    stop_at = end[page]
    steps = 0
    while pos.size:
        mark[pos] = True
        pos += _ADVANCE[words[pos] & 31]
        steps += 1
        live = pos < stop_at
        if live.all():
            continue
        long = np.flatnonzero(pos >= _LONG)
        if long.size:
            at = pos[long] - _LONG
            h = words[at]
            last = at // nw * nw + nw - 1
            a0 = words[np.minimum(at + 1, last)].astype(np.int64)
            nxt = at + np.maximum((a0 + 7) >> 2, 1)
            # padding with a zero delta: the rest of the page is empty
            empty = ((h & 31) == 29) & ((h >> 5) == 0)
            nxt[empty] = stop_at[long[empty]]
            pos[long] = nxt
            live = pos < stop_at
        done = ~live
        count[page[done]] = steps
        pos, stop_at, page = pos[live], stop_at[live], page[live]
    del pos, stop_at, page

    at = np.flatnonzero(mark)                 # every header, in stream order
    del mark
    n = len(at)
    h = words[at]
    tl = h & 31
    delta = (h >> 5).astype(np.int64)
    del h
    first = np.cumsum(count) - count          # index in ``at`` of each page's first header
    # Headers whose next word matters: long data, padding, time extend, absolute time.
    odd = np.flatnonzero((tl - 1) >= 28)      # (unsigned: 0 wraps around)
    a0_odd = words[np.minimum(at[odd] + 1, at[odd] // nw * nw + nw - 1)].astype(np.int64)
    tl_odd = tl[odd]
    ext = tl_odd == 30
    delta[odd[ext]] += a0_odd[ext] << 27
    absolute = odd[tl_odd == 31]
    abs_value = (a0_odd[tl_odd == 31] << 27) + delta[absolute]
    delta[absolute] = 0
    ts = np.cumsum(delta)
    # Restart points: each page's first header (its page time) and absolute time stamps.
    full = count > 0
    starts = first[full]
    before = np.where(starts > 0, ts[np.maximum(starts - 1, 0)], 0)
    start_value = page_ts[full] - before
    if absolute.size:
        k = np.searchsorted(starts, absolute)
        same = (k < len(starts)) & (starts[np.minimum(k, len(starts) - 1)] == absolute)
        starts = np.concatenate((starts, absolute[~same]))
        start_value = np.concatenate((start_value, np.zeros((~same).sum(), np.int64)))
        order = np.argsort(starts, kind="stable")
        starts, start_value = starts[order], start_value[order]
        j = np.searchsorted(starts, absolute)
        start_value[j] = abs_value - ts[absolute]
    ts += np.repeat(start_value, np.diff(np.append(starts, n)))

    # Data events: payload after the header (type_len 0: after the length word).
    data = np.flatnonzero(tl <= 28) if (tl > 28).any() else None
    if data is None:
        word, length = at + 1, tl.astype(np.int64) * 4
    else:
        word, length, ts = at[data] + 1, tl[data].astype(np.int64) * 4, ts[data]
    zero = np.flatnonzero(length == 0)
    if zero.size:
        src = np.searchsorted(odd, data[zero] if data is not None else zero)
        word[zero] += 1
        length[zero] = a0_odd[src] - 4
    ok = (length >= 8) & (word * 4 + length <= n_pages * page_size)
    if not ok.all():
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


# ---------------------------------------------------------------------------------------------
# Fields

def gather_u32(words: np.ndarray, word: np.ndarray, k: int) -> np.ndarray:
    """The 32-bit word ``k`` words after each position (uint32)."""
    return words[word + k] if k else words[word]


def gather_u64(words: np.ndarray, word: np.ndarray, k: int) -> np.ndarray:
    """The 64-bit value at words ``k``, ``k + 1`` after each position (uint64)."""
    lo = words[word + k].astype(np.uint64)
    lo |= words[word + (k + 1)].astype(np.uint64) << np.uint64(32)
    return lo


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
