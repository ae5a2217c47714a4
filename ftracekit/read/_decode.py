"""Ring-buffer pages of each CPU → :class:`~ftracekit.read.records.LineRecords` (numpy, vectorised).

Shared by raw captures (:mod:`.rawtrace`) and trace-cmd's ``trace.dat`` (:mod:`.tracedat`).
The pages are decoded in blocks of up to 8 MB (:mod:`._pages` walks them; a compressed
``trace.dat`` is decompressed block by block on a helper thread), and each block is reduced at
once to typed columns of its events in stream order: time, kind, pid, depth, duration and a
code for the function address (each distinct address is looked up in kallsyms once, at the
end). The pages themselves are never held whole. The CPUs' streams are then merged into time
order (each CPU's stream is already in order: a merge of sorted runs, as a stable sort by time
would give) and only the events that are not funcgraph entries/exits are rendered to text. An
entry event and its exit that follow each other in their task become one leaf record
(:mod:`._pairs`): ~40 % fewer records to gather and to link, for the same calls table.

On this project's VM, memory touched for the first time costs ~2.7 ms per MB (the host backs
guest memory lazily), more than the decoding itself: the stream columns and the final record
columns are reserved early and faulted in ahead on a helper thread
(:class:`ftracekit._memory.Prefaulter`), and nothing as large as the pages is ever copied.
The blocks' temporaries find the memory the block before freed (glibc keeps it: see
:func:`ftracekit._memory.reuse_freed_memory`, which also faults in the first block's on a
helper thread; the walk's largest buffers are kept in a :class:`._pages.Scratch`), and the
record columns, allocated after the first block, are mappings of their own that do not take
that memory.
"""

from __future__ import annotations

import mmap
import sys
import time
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from .. import _native
from .._memory import Prefaulter, mapped_empty, release_memory, reuse_freed_memory
from ..errors import InputError
from ._formats import EventFormat, Renderer, find_format
from ._pairs import adjacent_pairs, cpu_ends, join_mask
from ._pages import Scratch, gather_field, gather_u32, walk_pages
from ._symbols import Symbols
from .records import DEFAULTS, K_COMMENT, K_ENTRY, K_EXIT, K_LEAF, Interner, LineRecords

__all__ = ["decode_records", "BLOCK_BYTES"]

if _native.native is not None and (_native.native.K_ENTRY, _native.native.K_EXIT,
                                   _native.native.K_COMMENT, _native.native.K_LEAF) != (
        K_ENTRY, K_EXIT, K_COMMENT, K_LEAF):                 # pragma: no cover
    _native.ENABLED = False          # (a stale build: the kinds it writes are not these)

#: Pages are decoded in blocks of this size (a buffer reused for compressed input).
BLOCK_BYTES = 8 << 20
_PROGRESS_MIN_BYTES = 32 << 20     # (as for text)
_PREFAULT_MIN_ROWS = 1 << 18     # stream columns this long are faulted in ahead (7+ MB)
_WARM_BYTES = 3 * BLOCK_BYTES    # the temporaries of a block of pages, at most ~2.5 × its size
_WARM_MIN_BYTES = 1 << 20        # (smaller inputs: not worth a helper thread)
_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)


# ---------------------------------------------------------------------------------------------
# Pages → records

def _blocks(data: Any, page_size: int) -> Iterable[Any]:
    """Buffers of whole pages: slices of a buffer (no copy), or what an iterable yields."""
    if isinstance(data, (bytes, bytearray, memoryview, mmap.mmap, np.ndarray)):
        mv = memoryview(data).cast("B")
        step = max(BLOCK_BYTES // page_size, 1) * page_size
        for lo in range(0, len(mv) // page_size * page_size, step):
            yield mv[lo:lo + step]
            if isinstance(data, mmap.mmap) and step % mmap.PAGESIZE == 0 and _DONTNEED:
                # done with these pages: out of this process's resident set (the page cache
                # keeps them)
                data.madvise(_DONTNEED, lo, min(step, len(data) - lo))
    else:
        yield from data


def _nbytes(data: Any) -> int:
    if isinstance(data, (bytes, bytearray, memoryview, mmap.mmap, np.ndarray)):
        return memoryview(data).nbytes
    return int(getattr(data, "nbytes", 0))


class _Progress:
    """``decoding NAME: 42.0% 1.23 M events`` on stderr (a terminal, big inputs only)."""

    def __init__(self, name: str, total: int, enabled: bool | None):
        if enabled is None:
            enabled = total >= _PROGRESS_MIN_BYTES and sys.stderr.isatty()
        self.enabled, self.name, self.total = enabled, name, max(total, 1)
        self.t0 = time.monotonic()
        self.last = 0.0                    # (the first block draws the line)

    def update(self, done: int, events: int) -> None:
        now = time.monotonic()
        if self.enabled and now - self.last >= 0.2:
            self.last = now
            rate = events / max(now - self.t0, 1e-9) / 1e6
            sys.stderr.write(f"\rdecoding {self.name}: {100 * done / self.total:5.1f}% "
                             f"{events / 1e6:.2f} M events ({rate:.1f} M/s)")
            sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 78 + "\r")
            sys.stderr.flush()


class _Decoder:
    """Reduces blocks of pages to typed columns in stream order (see module docstring)."""

    def __init__(self, formats: Mapping[int, EventFormat], retval_on: bool, name: str):
        self.ent = find_format(formats, "ftrace", "funcgraph_entry")
        self.exit = find_format(formats, "ftrace", "funcgraph_exit")
        self.print = find_format(formats, "ftrace", "print")
        if self.ent is None or self.exit is None or not all(
                k in f.fields for f in (self.ent, self.exit) for k in ("func", "depth")):
            raise InputError(f"{name}: no funcgraph_entry/funcgraph_exit event formats: not a "
                             "function_graph recording")
        self.kind_of = np.full(1 << 16, K_COMMENT, dtype=np.int8)
        self.kind_of[self.ent.id & 0xFFFF] = K_ENTRY
        self.kind_of[self.exit.id & 0xFFFF] = K_EXIT
        rf = self.exit.fields.get("retval")
        self.retval = rf if retval_on else None
        # payload bytes a graph event needs (shorter ones, in corrupt data, become comments)
        self.need_ent, self.need_exit = (max(f.offset + f.size for f in fmt.fields.values())
                                         for fmt in (self.ent, self.exit))
        self.stream = _Stream(retval_on and rf is not None)
        self.addr_code: dict[int, int] = {}          # function address → dense code
        self.seen: list[tuple[set, set]] = []        # per CPU: codes seen in entries, exits
        self.other: list[tuple[int, int, bytes]] = []   # (stream index, type, payload)
        self.n = 0
        self.lost: list[int] = []
        self.scratch = Scratch()                     # the page walk's buffers
        self.codes: Any = None       # (the compiled walk's own addr_code and seen, in C)
        self.layout = self._layout()      # (the graph fields, as the compiled walk takes them)

    def _codes(self, addr_lo: np.ndarray, addr_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Dense codes (int32, shared by all blocks) of function addresses, and the block's
        local codes (index into its distinct addresses)."""
        if len(addr_hi) and (addr_hi == addr_hi[0]).all():
            local, uniq = pd.factorize(addr_lo, sort=False)   # (kernel text: one high word)
            full = (np.uint64(addr_hi[0]) << np.uint64(32)) | uniq.astype(np.uint64)
        else:
            full = (addr_hi.astype(np.uint64) << np.uint64(32)) | addr_lo
            local, full = pd.factorize(full, sort=False)
        table = self.addr_code
        lut = np.array([table.setdefault(a, len(table)) for a in full.tolist()], dtype=np.int32)
        return lut, local

    def _field(self, words: np.ndarray, w: np.ndarray, name: str, x: np.ndarray | None
               ) -> np.ndarray:
        """Field ``name`` of graph events at words ``w`` (``x``: which are exits; None: same
        layout in both formats) as int64 / uint64."""
        fe, fx = self.ent.fields[name], self.exit.fields[name]
        if (fe.offset, fe.size) == (fx.offset, fx.size) or x is None:
            return gather_field(words, w, fe.offset, fe.size, fe.signed)
        out = np.empty(len(w), dtype=np.uint64 if fe.size == 8 and not fe.signed else np.int64)
        out[~x] = gather_field(words, w[~x], fe.offset, fe.size, fe.signed)
        out[x] = gather_field(words, w[x], fx.offset, fx.size, fx.signed)
        return out

    def reserve(self, n_bytes: int, page_size: int) -> None:
        """Room for the events ``n_bytes`` of pages can hold at most (12 bytes each): address
        space only, the pages of memory are used as the events come."""
        self.stream.reserve(self.n + n_bytes // page_size * _events_per_page(page_size))

    def block(self, buf: Any, cpu_slot: int, page_size: int) -> int:
        """Decode the whole pages of ``buf`` (bytes-like) of CPU slot ``cpu_slot`` into the
        stream's next rows; returns how many events they held."""
        if _native.ENABLED:
            return self._block_compiled(buf, cpu_slot, page_size)
        return self._block_numpy(buf, cpu_slot, page_size)

    def _block_compiled(self, buf: Any, cpu_slot: int, page_size: int) -> int:
        """:meth:`block` by the compiled walk (``ftracekit/_cext.c``): pages to columns in one pass."""
        mv = memoryview(buf).cast("B")
        cap = len(mv) // page_size * _events_per_page(page_size)
        out = self.stream.slots(cap)
        if self.codes is None:
            self.codes = _native.native.codes()
        n, others, lost = _native.native.decode(
            mv, page_size, self.kind_of, (self.need_ent, self.need_exit), self.layout,
            out["ts"], out["kind"], out["pid"], out["depth"], out["dur"], out.get("retval"),
            out["func"], self.codes, cpu_slot)
        self.lost.extend(cnt for _, cnt in lost)
        self.stream.n += n
        self.other.extend((self.n + i, t, raw) for i, t, raw in others)
        self.n += n
        return n

    def addresses(self) -> np.ndarray:
        """The function address of each dense code so far (uint64)."""
        if self.codes is not None:
            return np.frombuffer(_native.native.codes_keys(self.codes), dtype=np.uint64)
        return np.fromiter(self.addr_code, dtype=np.uint64, count=len(self.addr_code))

    def functions(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """The function address of each dense code (uint64), and the codes used (int64
        arrays): CPU slot by slot, those of its entries, then those of its exits."""
        addrs = self.addresses()
        if self.codes is not None:
            groups = []
            for slot in range(len(self.seen)):
                used = np.frombuffer(_native.native.codes_seen(self.codes, slot), dtype=np.uint8)
                groups += [np.flatnonzero(used & 1), np.flatnonzero(used & 2)]
            return addrs, groups
        return addrs, [np.fromiter(g, dtype=np.int64, count=len(g))
                       for pair in self.seen for g in pair]

    def _layout(self) -> tuple:
        """The graph fields for the compiled walk: (offset, size, signed) or None each."""
        def f(fmt: EventFormat, name: str) -> tuple[int, int, bool] | None:
            fd = fmt.fields.get(name)
            return None if fd is None else (fd.offset, fd.size, bool(fd.signed))

        return (f(self.ent, "func"), f(self.exit, "func"), f(self.ent, "depth"),
                f(self.exit, "depth"), f(self.exit, "calltime"), f(self.exit, "rettime"),
                None if self.retval is None else f(self.exit, "retval"))

    def _block_numpy(self, buf: Any, cpu_slot: int, page_size: int) -> int:
        """:meth:`block` by the numpy walk (:mod:`._pages`): the definition of the records."""
        words = np.frombuffer(buf, dtype=np.uint32, count=len(buf) // page_size * page_size // 4)
        ev = walk_pages(words, page_size, self.scratch)
        n = len(ev.word)
        self.lost.extend(cnt for _, cnt in ev.lost)
        if not n:
            return 0
        w = ev.word
        out = self.stream.slots(n)          # (the block's rows of the stream, written in place)
        np.copyto(out["ts"], ev.ts)
        etype = gather_u32(words, w, 0) & np.uint32(0xFFFF)
        kind = np.take(self.kind_of, etype, out=out["kind"], mode="clip")
        np.take(words[1:], w, out=out["pid"].view(np.uint32), mode="clip")
        # A graph event too short for its fields (corrupt data) is a comment (its fields would
        # be read from the events after it, or past the buffer at its end).
        short = ev.length < np.where(kind == K_EXIT, self.need_exit, self.need_ent)
        kind[short & (kind != K_COMMENT)] = K_COMMENT
        graph = kind != K_COMMENT
        g = None if graph.all() else np.flatnonzero(graph)
        wg = w if g is None else w[g]
        kg = kind if g is None else kind[g]
        is_exit = kg == K_EXIT
        fe, fx = self.ent.fields["func"], self.exit.fields["func"]
        if (fe.offset, fe.size) == (fx.offset, fx.size) and fe.size == 8 and fe.offset % 4 == 0:
            lo = gather_u32(words, wg, fe.offset // 4)
            hi = gather_u32(words, wg, fe.offset // 4 + 1)
        else:
            a = self._field(words, wg, "func", is_exit).astype(np.uint64)
            lo, hi = (a & np.uint64(0xFFFFFFFF)).astype(np.uint32), (a >> np.uint64(32)).astype(np.uint32)
        lut, local = self._codes(lo, hi)
        del lo, hi
        # which codes this CPU's entries and exits use (the order names are interned in)
        used = np.bincount(local * 2 + is_exit, minlength=2 * len(lut)).reshape(-1, 2) > 0
        ent_seen, exit_seen = self.seen[cpu_slot]
        ent_seen.update(lut[used[:, 0]].tolist())
        exit_seen.update(lut[used[:, 1]].tolist())
        df, dx = self.ent.fields["depth"], self.exit.fields["depth"]
        if (df.offset, df.size) == (dx.offset, dx.size) and df.size == 4 and df.offset % 4 == 0:
            depth = gather_u32(words, wg, df.offset // 4)
        else:
            depth = self._field(words, wg, "depth", is_exit)
        x = np.flatnonzero(is_exit)
        wx = wg[x]
        ct, rt = self.exit.fields.get("calltime"), self.exit.fields.get("rettime")
        dur_x: Any = np.nan
        if ct is not None and rt is not None:
            call = gather_field(words, wx, ct.offset, ct.size, ct.signed).view(np.int64) \
                if ct.size == 8 else gather_field(words, wx, ct.offset, ct.size, ct.signed)
            ret = gather_field(words, wx, rt.offset, rt.size, rt.signed).view(np.int64) \
                if rt.size == 8 else gather_field(words, wx, rt.offset, rt.size, rt.signed)
            ret -= call
            dur_x = ret / 1000.0
        dur = out["dur"]
        dur.fill(np.nan)
        if g is None:
            np.take(lut, local, out=out["func"], mode="clip")
            out["depth"][:] = depth                     # (wraps as astype(int16) did)
            dur[x] = dur_x
        else:
            out["func"].fill(-1)
            out["func"][g] = lut[local]
            out["depth"].fill(-1)
            out["depth"][g] = depth
            dur[g[x]] = dur_x
        if self.retval is not None:          # (then the stream has the column)
            out["retval"].fill(0)
            out["retval"][x if g is None else g[x]] = gather_field(
                words, wx, self.retval.offset, self.retval.size, self.retval.signed)
        self.stream.n += n
        if g is not None:
            data = words.view(np.uint8)
            for i in np.flatnonzero(~graph).tolist():
                at, ln = int(w[i]) * 4, int(ev.length[i])
                self.other.append((self.n + i, int(etype[i]), data[at:at + ln].tobytes()))
        self.n += n
        return n


def _events_per_page(page_size: int) -> int:
    """The most data events a page holds: each takes 12 bytes or more (a header and 8 bytes
    of payload), the last may start in the page's last data word."""
    return (page_size // 4 - 4 + 2) // 3


def _time_order(ts: np.ndarray, bounds: list[tuple[int, int]] | None = None) -> np.ndarray:
    """Stream index of each event in time order (ties: stream order, CPU by CPU). Each CPU's
    stream is normally in time order already, and a stable sort (timsort) finds those runs and
    merges them: linear in the events for a few CPUs. (Compiled, with the CPUs' ``bounds``: a
    merge of the CPUs' streams when each is in order, the same result.)"""
    his = cpu_ends(bounds, len(ts)) if _native.ENABLED and bounds and len(ts) else None
    if his is not None:
        order = np.empty(len(ts), dtype=np.int64)
        if _native.native.merge_order(ts, his, order):
            return order
    return np.argsort(ts, kind="stable")


class _Stream:
    """Typed columns of the events in stream order (CPU by CPU), appended block by block into
    arrays reserved for the most events the pages can hold (untouched pages cost nothing)."""

    DTYPES = {"ts": np.int64, "kind": np.int8, "pid": np.int32, "func": np.int32,
              "depth": np.int16, "dur": np.float64, "retval": np.int64}

    def __init__(self, retval: bool):
        self.n = 0
        self.cols = {k: np.empty(0, dtype=dt) for k, dt in self.DTYPES.items()
                     if retval or k != "retval"}
        self._prefault: Prefaulter | None = None

    def prefault(self, expected: int) -> None:
        """Fault in the rows up to ``expected`` on a helper thread, ahead of the appends (see
        :class:`ftracekit._memory.Prefaulter`)."""
        if self._prefault is None and expected >= _PREFAULT_MIN_ROWS:
            self._prefault = Prefaulter(list(self.cols.values()), expected,
                                        lambda: self.n).start()

    def stop_prefault(self) -> None:
        if self._prefault is not None:
            self._prefault.stop()
            self._prefault = None

    def reserve(self, cap: int) -> None:
        for k, a in self.cols.items():
            if len(a) < cap:
                # (not ndarray.resize: it would write zeros into all of the new room)
                b = np.empty(cap, dtype=a.dtype)
                b[: self.n] = a[: self.n]
                self.cols[k] = b

    def slots(self, n: int) -> dict[str, np.ndarray]:
        """Views of the next ``n`` rows of each column, to write a block into (the caller then
        adds ``n`` to :attr:`n`)."""
        if self.n + n > len(self.cols["ts"]):
            self.stop_prefault()
            self.reserve(max(self.n + n, len(self.cols["ts"]) * 3 // 2))
        return {k: a[self.n:self.n + n] for k, a in self.cols.items()}

    def take(self, name: str) -> np.ndarray:
        """Column ``name`` (the stream lets go of it)."""
        self.stop_prefault()
        return self.cols.pop(name)[: self.n]


class _Finals:
    """The record columns (time order), allocated as soon as the number of events can be
    guessed (after the first block) and faulted in on a helper thread while the pages are
    decoded: on this project's VM, memory touched for the first time costs ~2.7 ms per MB."""

    DTYPES = {"ts": np.float64, "end_ts": np.float64, "dur": np.float64, "pid": np.int32,
              "func": np.int32, "cpu": np.int16, "depth": np.int16, "kind": np.int8}
    # (line, comm: in the memory of the stream's time and pid columns once they are gathered)

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self._prefault: Prefaulter | None = None

    @property
    def started(self) -> bool:
        return bool(self.arrays)

    def start(self, expected: int) -> None:
        if self.arrays or expected < _PREFAULT_MIN_ROWS or not Prefaulter.available():
            return
        cap = expected + expected // 32 + 1024
        # (mapped apart: allocated after the first block, in the heap they would take the
        # memory its temporaries freed, and the next block's would be fresh memory again)
        self.arrays = {k: mapped_empty(cap, dt) for k, dt in self.DTYPES.items()}
        self._prefault = Prefaulter(list(self.arrays.values()), cap, lambda: 0,
                                    ahead_bytes=1 << 62).start()

    def get(self, name: str, n: int) -> np.ndarray:
        a = self.arrays.pop(name, None)
        return a[:n] if a is not None and len(a) >= n else np.empty(n, dtype=self.DTYPES[name])

    def stop(self) -> None:
        if self._prefault is not None:
            self._prefault.stop()
            self._prefault = None


_PIECE = 1 << 18


def _gather(values: np.ndarray, order: np.ndarray, out: np.ndarray, scale: float = 0.0
            ) -> np.ndarray:
    """``values`` (stream order) put into time order (divided by ``scale`` if given) in
    ``out``, in pieces: no temporary as long as the column."""
    for lo in range(0, len(order), _PIECE):
        o = order[lo:lo + _PIECE]
        if scale:
            np.divide(values[o], scale, out=out[lo:lo + _PIECE])
        else:
            np.take(values, o, out=out[lo:lo + _PIECE], mode="clip")   # (valid: unbuffered)
    return out


def _joined_share(stream: "_Stream", lo: int) -> float:
    """Share of the stream's events from ``lo`` on that are an entry followed by its exit."""
    c = stream.cols
    sl = slice(lo, stream.n)
    if stream.n - lo < 2:
        return 0.0
    return float(adjacent_pairs(c["kind"][sl], c["pid"][sl], c["depth"][sl],
                                c["func"][sl]).sum()) / (stream.n - lo)


def _kept(order: np.ndarray, dropped: np.ndarray, n: int) -> np.ndarray | None:
    """Per time rank (bool): whether that event is a record (not one of the ``dropped``
    stream indices); None when all are."""
    if not len(dropped):
        return None
    keep = np.ones(n, dtype=bool)
    keep[dropped] = False
    return keep[order]


def _compact(order: np.ndarray, kept: np.ndarray | None) -> np.ndarray:
    """``order[kept]`` (the stream index of each record), written over ``order`` itself in
    pieces: no fresh memory as long as the trace (costly on this project's VM)."""
    if kept is None:
        return order
    at = 0
    for lo in range(0, len(order), _PIECE):
        sel = order[lo:lo + _PIECE][kept[lo:lo + _PIECE]]
        order[at:at + len(sel)] = sel          # (at ≤ lo: only what was read is written)
        at += len(sel)
    return order[:at]


def _line_numbers(kept: np.ndarray | None, out: np.ndarray) -> None:
    """``out[i]``: the time rank + 1 of record ``i`` (its line number), in pieces."""
    at = 0
    for lo in range(0, len(out) if kept is None else len(kept), _PIECE):
        if kept is None:
            idx = np.arange(lo + 1, min(lo + _PIECE, len(out)) + 1, dtype=np.int64)
        else:
            idx = np.flatnonzero(kept[lo:lo + _PIECE])
            idx += lo + 1
        out[at:at + len(idx)] = idx
        at += len(idx)


def decode_records(name: str, blobs: list[tuple[int, Any]], *, page_size: int,
                   formats: Mapping[int, EventFormat],
                   symbols: Symbols | Callable[[], Symbols], cmdlines: dict[int, str],
                   retval_on: bool = False, progress: bool | None = None
                   ) -> tuple[LineRecords, dict[str, Any]]:
    """Ring-buffer pages of each CPU → records in time order + meta.

    ``blobs``: ``(cpu, pages)`` where pages is a buffer (bytes, mmap, …) or an iterable of
    buffers of whole pages (with an ``nbytes`` attribute for progress). ``formats`` maps event
    ids to formats (must include ftrace's funcgraph_entry/exit); ``symbols``: the kallsyms, or
    a function returning them (called once the pages are decoded: they may be read meanwhile);
    ``cmdlines`` maps pids to comms.
    """
    dec = _Decoder(formats, retval_on, name)
    n_bytes = sum(_nbytes(data) for _, data in blobs)
    bar = _Progress(name, n_bytes, progress)
    dec.reserve(n_bytes, page_size)
    # (after the stream's columns: the heap memory warmed is the blocks' temporaries')
    reuse_freed_memory(min(_WARM_BYTES, 3 * n_bytes) if n_bytes >= _WARM_MIN_BYTES else 0)
    finals = _Finals()
    try:
        recs, meta = _decode(name, blobs, dec, finals, bar, page_size, n_bytes, formats,
                             symbols, cmdlines)
    finally:
        finals.stop()
        dec.stream.stop_prefault()
    return recs, meta


def _decode(name: str, blobs: list[tuple[int, Any]], dec: _Decoder, finals: _Finals,
            bar: _Progress, page_size: int, n_bytes: int, formats: Mapping[int, EventFormat],
            symbols: Symbols | Callable[[], Symbols], cmdlines: dict[int, str]
            ) -> tuple[LineRecords, dict[str, Any]]:
    bounds: list[tuple[int, int]] = []
    lost_total: dict[int, int] = {}
    lost_unknown = 0
    done = 0
    try:
        for slot, (cpu, data) in enumerate(blobs):
            dec.seen.append((set(), set()))
            dec.lost = []
            lo = dec.n
            for buf in _blocks(data, page_size):
                at = dec.n
                dec.block(buf, slot, page_size)
                done += len(buf)
                bar.update(done, dec.n)
                # the events to expect, from the first block's density
                expected = int(dec.n * 1.02 * n_bytes / max(done, 1))
                dec.stream.prefault(expected)
                if not finals.started:
                    # and the records: leaves are joined (most of the entries followed by
                    # their exit in the stream are, see ._pairs)
                    finals.start(int(expected * (1 - 0.97 * _joined_share(dec.stream, at))))
            bounds.append((lo, dec.n))
            for cnt in dec.lost:
                if cnt < 0:
                    lost_unknown += 1
                else:
                    lost_total[cpu] = lost_total.get(cpu, 0) + cnt
    finally:
        bar.finish()
        dec.stream.stop_prefault()
    cpus = [cpu for cpu, _ in blobs]
    del blobs, data
    if not isinstance(symbols, Symbols):
        symbols = symbols()
    n_total = dec.n
    stream = dec.stream
    # The stream's columns are gathered into the record columns in time order; three of them
    # then hold other record columns (memory already resident, see _Finals).
    ts = stream.take("ts")
    order = _time_order(ts, bounds)
    # An entry event and its exit that follow each other in their task become one leaf
    # record (see ._pairs): the records are the other events, in time order (``rows``: their
    # stream indices; ``line``: their time rank + 1, as before the joining).
    kind_s = stream.cols["kind"][:n_total]
    n_entry = int(np.count_nonzero(kind_s == K_ENTRY))
    n_exit = int(np.count_nonzero(kind_s == K_EXIT))
    ok = join_mask(order, kind_s, stream.cols["pid"][:n_total], stream.cols["depth"][:n_total],
                   stream.cols["func"][:n_total], bounds)
    comments = _render_others(dec, order, formats, symbols)
    if _native.ENABLED:
        # (compiled: the same, with no temporaries as long as the trace)
        kept = np.empty(n_total, dtype=np.uint8)
        ret = stream.cols.get("retval")
        n_rows = _native.native.join(ok, kind_s, stream.cols["dur"][:n_total],
                                     None if ret is None else ret[:n_total], order, kept)
        rows = order[:n_rows]                            # (in the memory of ``order``)
        kept = kept.view(bool)
    else:
        joined = np.flatnonzero(ok)
        nxt = joined + 1
        kind_s[joined] = K_LEAF
        for key in ("dur", "retval"):
            if key in stream.cols:
                col = stream.cols[key]
                col[joined] = col[nxt]
        del joined
        kept = _kept(order, nxt, n_total)
        del nxt
        rows = _compact(order, kept)                     # (in the memory of ``order``)
    del order, ok
    n_rows = len(rows)
    cols: dict[str, np.ndarray] = {}
    cols["ts"] = _gather(ts, rows, finals.get("ts", n_rows), 1e9)
    spare: dict[str, np.ndarray] = {}
    for key in ("dur", "kind", "depth", "pid", "func", "retval"):
        if key in stream.cols:
            spare[key] = stream.take(key)
            cols[key] = _gather(spare[key], rows,
                                finals.get(key, n_rows) if key != "retval"
                                else np.empty(n_rows, dtype=np.int64))
    glob = cols.pop("func")
    pid = cols["pid"]
    cpu_of = spare.pop("depth")                      # (int16: the CPU of each, stream order)
    for cpu, (lo, hi) in zip(cpus, bounds):
        cpu_of[lo:hi] = cpu
    cols["cpu"] = _gather(cpu_of, rows, finals.get("cpu", n_rows))
    del cpu_of
    if "retval" in cols:
        cols["has_ret"] = (cols["kind"] == K_EXIT) | (cols["kind"] == K_LEAF)
    else:
        cols["retval"] = _constant("retval", n_rows)
        cols["has_ret"] = _constant("has_ret", n_rows)
    # the end of a leaf record: the time of its exit event (the next event in the stream)
    end_ts = finals.get("end_ts", n_rows)
    if _native.ENABLED:
        _native.native.leaf_ends(rows, cols["kind"], ts, end_ts)
    else:
        end_ts.fill(np.nan)
        leaf = np.flatnonzero(cols["kind"] == K_LEAF)
        end_ts[leaf] = ts[rows[leaf] + 1] / 1e9
        del leaf
    cols["end_ts"] = end_ts
    del rows
    line = ts[:n_rows]                               # (int64, done with)
    del ts
    _line_numbers(kept, line)
    del kept
    funcs, modules = Interner(), Interner()
    flut, mlut = _intern_functions(dec, symbols, funcs, modules)
    cols["module"] = mlut[glob] if (mlut >= 0).any() else _constant("module", n_rows)
    cols["func"] = np.take(flut, glob, out=glob, mode="wrap")       # (-1: "none", the last slot; not "raise": it buffers)
    del glob
    comms = Interner()
    cols["comm"] = _comms(pid, cmdlines, comms, spare.pop("pid")[:n_rows])   # (int32, done with)
    del spare
    cols["line"] = line
    recs = LineRecords(cols=cols, funcs=funcs.names, modules=modules.names, comms=comms.names,
                       comments=comments)
    release_memory()       # (the blocks' and the stream's freed memory, as the text path does)
    n_comment = n_total - n_entry - n_exit
    meta: dict[str, Any] = {
        "source": name,
        "format": "ring-buffer pages",
        "bytes": n_bytes,
        "lines": n_total,
        "events_decoded": n_total,
        "layout": ["abstime", "cpu", "proc", "duration"],
        "layout_from": "raw",
        "tracer": "function_graph",
        "header": [],
        "line_kinds": {"entry": n_entry, "exit": n_exit, "comment": n_comment},
        "lost_events": {"per_cpu": lost_total, "total": sum(lost_total.values()),
                        "lines_without_count": lost_unknown},
        "overruns": 0,
        "skipped": {"count": 0, "examples": []},
        "other_layout_lines": 0,
        "truncated_last_line": None,
        "options": {},
        "kernel_hints": {},
        "has_comments": n_comment > 0,
    }
    return recs, meta


def _constant(name: str, n: int) -> np.ndarray:
    """A column holding only its default: a read-only zero-stride view (as the text path's)."""
    from .records import COLUMNS
    return np.broadcast_to(np.array(DEFAULTS[name], dtype=COLUMNS[name]), (n,))


def _intern_functions(dec: _Decoder, symbols: Symbols, funcs: Interner, modules: Interner
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Function and module codes of each address code (last slot: -1 for "none"). Names are
    interned CPU by CPU, entries then exits, each by address: the codes earlier versions gave."""
    addrs, groups = dec.functions()
    names, mods, _ = symbols.lookup(addrs)
    flut = np.full(len(addrs) + 1, -1, dtype=np.int32)
    mlut = np.full(len(addrs) + 1, -1, dtype=np.int32)
    for codes in groups:
        if not len(codes):
            continue
        codes = codes[np.argsort(addrs[codes], kind="stable")].tolist()
        for k in codes:
            flut[k] = funcs.code(names[k])
        for k in codes:
            if mods[k]:
                mlut[k] = modules.code(mods[k])
    return flut, mlut


def _comms(pid: np.ndarray, cmdlines: dict[int, str], comms: Interner, out: np.ndarray
           ) -> np.ndarray:
    """comm code of each record from saved_cmdlines (the kernel's pid → comm cache at the end
    of recording), interned by pid."""
    def name(p: int) -> str:
        return "<idle>" if p == 0 else cmdlines.get(p, "<...>")

    if not len(pid):
        return np.zeros(0, dtype=np.int32)
    lo, hi = int(pid.min()), int(pid.max())
    if hi - lo >= 1 << 24:
        upids, inv = np.unique(pid, return_inverse=True)
        codes = np.array([comms.code(name(p)) for p in upids.tolist()], dtype=np.int32)
        return codes[inv].astype(np.int32)
    if lo >= 0 and hi < 1 << 22:         # (pid_max ≤ 2^22: pids index the table as they are)
        lo, rel = 0, pid
    else:
        rel = pid - np.int32(lo)
    present = np.zeros(hi - lo + 1, dtype=bool)
    present[rel] = True
    lut = np.zeros(hi - lo + 1, dtype=np.int32)
    for r in np.flatnonzero(present).tolist():
        lut[r] = comms.code(name(r + lo))
    return np.take(lut, rel, out=out, mode="clip")


def _render_others(dec: _Decoder, order: np.ndarray, formats: Mapping[int, EventFormat],
                   symbols: Symbols) -> dict[int, str]:
    """Text of the events that are not funcgraph entries/exits, by line (time rank + 1;
    ``order``: the stream index of each line)."""
    out: dict[int, str] = {}
    if not dec.other:
        return out
    is_other = np.zeros(len(order), dtype=bool)
    is_other[[i for i, _, _ in dec.other]] = True
    at = np.flatnonzero(is_other[order])          # their time ranks
    line_of = dict(zip(order[at].tolist(), (at + 1).tolist()))
    renderers: dict[int, Renderer] = {}
    f_print = dec.print
    for i, t, raw in dec.other:
        if f_print is not None and t == f_print.id:
            bf = f_print.fields.get("buf")
            text = raw[bf.offset if bf else 16:].split(b"\0", 1)[0].decode("utf-8", "replace").rstrip("\n")
        elif t in formats:
            r = renderers.get(t)
            if r is None:
                r = renderers[t] = Renderer(formats[t], symbols)
            text = r.render(raw)
        else:
            text = f"unknown event type {t}"
        out[line_of[i]] = text
    return out
