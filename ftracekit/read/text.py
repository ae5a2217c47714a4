"""Text → :class:`~ftracekit.read.records.LineRecords`: streaming, layout detection, fast + exact paths.

Pure apart from reading the stream it is given. The input is read in 2 MB chunks (the first
4 MB at once, for layout detection) and cut at line boundaries; each block goes through the
vectorised fast path (:mod:`ftracekit.read._fastparse`), which parses the lines it can vouch for
and hands every other line, in order, to the exact per-line parser
(:class:`ftracekit.read.lineparse.LineParser`). Records are appended into preallocated columns
(:class:`ftracekit.read.records.ColumnBuilder`), so the text is never held whole and the peak
memory stays near the size of the result. With two or more usable CPUs, blocks are scanned
on ``_WORKERS`` threads (numpy releases the GIL in its big loops) while this thread finishes
them in order; where a CPU is left beside them, the record columns' pages are faulted in ahead
on a helper thread (:class:`ftracekit._memory.Prefaulter`). ``FTRACEKIT_THREADS=1`` turns
both off. A progress
line is drawn on stderr for large inputs when stderr is a terminal.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

from . import _fastparse
from .._memory import release_memory, usable_cpus
from ..errors import InputError, NotATraceError
from .lineparse import Layout, LineParser, detect_layout, layout_from_header, sniff_options
from .records import (
    K_COMMENT, K_ENTRY, K_EXIT, K_LEAF, K_LOST, KIND_NAMES, ColumnBuilder, Interner,
    LineRecords, concat_columns,
)
from .sources import PathOrFile, Source, open_source

__all__ = ["parse_source", "parse_text", "parse_block", "Progress"]

_SNIFF_LINES = 3000
_PROGRESS_MIN_BYTES = 32 << 20
# Fast-path block size. With two scanning threads 4 MB measured fastest on 10^7 lines (2.5-3.0 s
# against 2.9-3.0 s at 8 or 16 MB, 3.0-3.1 s at 2 MB, and 3.8-4.2 s on one thread at 2 MB),
# but the blocks in flight hold ~20 MB more: inputs under _BIG_INPUT use 2 MB.
_SCAN_BYTES = 2 << 20
_SCAN_BYTES_BIG = 4 << 20
_BIG_INPUT = 256 << 20
_READ_BYTES = 2 << 20     # read size after the first _SNIFF_BYTES (the block size)
_SNIFF_BYTES = 4 << 20    # the first bytes read at once (layout detection)
_PREFAULT_MIN_ROWS = 1 << 18   # record columns this long are faulted in ahead (12+ MB)
_WORKERS = 2              # scanning threads where 2+ CPUs are usable (3 were not faster on 2)


class _Done:
    """A finished result with the interface of a future (single-threaded path)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value

    def cancel(self) -> bool:
        return False


def _first_lines(data: bytes, n: int) -> bytes:
    """The first ``n`` lines of ``data`` (with their newlines; all of it if it has fewer)."""
    cut = -1
    for _ in range(n):
        cut = data.find(b"\n", cut + 1)
        if cut < 0:
            return data
    return data[: cut + 1]


def _split_block(data: bytes, end: int, size: int):
    """``data[:end]`` (ending with a newline) in pieces of about ``size`` bytes cut after
    newlines, as (start, end) offsets."""
    pos = 0
    while end - pos > size + (size >> 1):
        cut = data.rfind(b"\n", pos, pos + size)
        if cut < pos:
            cut = data.find(b"\n", pos + size, end)
        yield pos, cut + 1
        pos = cut + 1
    if pos < end:
        yield pos, end


class Progress:
    """A one-line progress indicator on stderr (only on a terminal, only for big inputs)."""

    def __init__(self, name: str, total: int | None, enabled: bool | None,
                 verb: str = "parsing"):
        self.verb = verb
        if enabled is None:
            enabled = bool(total and total >= _PROGRESS_MIN_BYTES and sys.stderr.isatty())
        self.enabled = enabled
        self.name = name
        self.total = total
        self.last = 0.0
        self.t0 = time.monotonic()

    def update(self, done: int, lines: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.2:
            return
        self.last = now
        pct = f"{100 * done / self.total:5.1f}% " if self.total else ""
        rate = lines / max(now - self.t0, 1e-9) / 1e6
        sys.stderr.write(f"\r{self.verb} {self.name}: {pct}{lines / 1e6:.2f} M lines ({rate:.1f} M/s)")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 78 + "\r")
            sys.stderr.flush()


def _looks_binary(data: bytes) -> bool:
    head = data[:65536]
    if b"\x00" in head:
        return True
    if not head:
        return False
    ctrl = sum(1 for b in head[:4096] if b < 9 or 13 < b < 32)
    return ctrl > len(head[:4096]) * 0.05


def _count_kinds(kinds: np.ndarray) -> np.ndarray:
    """Records per kind. In pieces: bincount wants intp, and a whole-size intp copy of the int8
    column (80 MB at 10^7 records) would be memory touched for nothing."""
    counts = np.zeros(len(KIND_NAMES), dtype=np.intp)
    for lo in range(0, len(kinds), 1 << 18):
        counts += np.bincount(kinds[lo:lo + (1 << 18)].astype(np.intp), minlength=len(KIND_NAMES))
    return counts


def parse_source(src: PathOrFile, *, progress: bool | None = None,
                 fast: bool = True) -> tuple[LineRecords, dict[str, Any]]:
    """Parse a whole input into records and a ``meta`` dict (see :func:`ftracekit.load`).

    ``fast=False`` forces the exact per-line parser for every line (slow; for testing).
    """
    source = src if isinstance(src, Source) else open_source(src)
    try:
        if source.kind != "text":
            raise InputError(f"{source.name}: is a trace-cmd binary trace.dat, not text; "
                             "load it with ftracekit.load()")
        big = source.size is not None and source.size >= _BIG_INPUT
        block = _SCAN_BYTES_BIG if big else _SCAN_BYTES
        return _parse_stream(source.name, source.chunks(_SCAN_BYTES_BIG if big else _READ_BYTES),
                             source.size, source.position, progress, fast, block)
    finally:
        source.close()


def parse_text(text: str, *, fast: bool = True) -> tuple[LineRecords, dict[str, Any]]:
    """Parse trace text held in a string."""
    data = text.encode("utf-8", "surrogateescape")
    return _parse_stream("<text>", iter([data]) if data else iter([]), len(data), lambda: None,
                         False, fast)


def parse_block(data: bytes, layout: Layout | None, first_line: int, name: str = "<block>"
                ) -> tuple[LineRecords, dict[str, Any], Layout]:
    """Parse whole lines of a trace that start at line ``first_line`` (1-based) of it, with
    ``layout`` (``None``: detect it from these lines, as :func:`parse_source` does). Returns
    the records (``line`` numbered as in the whole input), the ``meta`` dict and the layout,
    for the next block of the same input (streaming conversion, :mod:`ftracekit.dataset`)."""
    used: list[Layout] = []
    chunks = (data[i:i + _READ_BYTES] for i in range(0, len(data), _READ_BYTES))
    recs, meta = _parse_stream(name, chunks, len(data), lambda: None, False, True,
                               layout=layout, line_base=first_line - 1, layout_out=used)
    return recs, meta, used[0]


def _parse_stream(name: str, chunks, size: int | None, position: Callable[[], int | None],
                  progress: bool | None, fast: bool, scan_bytes: int | None = None, *,
                  layout: Layout | None = None, line_base: int = 0,
                  layout_out: list[Layout] | None = None
                  ) -> tuple[LineRecords, dict[str, Any]]:
    scan_bytes = scan_bytes or _SCAN_BYTES
    funcs, modules, comms = Interner(), Interner(), Interner()
    bar = Progress(name, size, progress)
    parts: ColumnBuilder | None = None   # created once the first block tells the line length
    parser: LineParser | None = None
    fixed_layout = layout
    lineno = line_base  # lines consumed so far
    carry = b""
    nbytes = 0
    truncated_last: str | None = None
    first = True
    layout_source = "default"
    n_sniff_matching = 0
    sniffed: list[str] = []
    fast_lines = 0
    sniff_result: tuple[dict[str, Any], dict[str, Any]] | None = None

    # Fast path: blocks are scanned on worker threads (numpy releases the GIL) while this
    # thread finishes them in order (interning, exact parsing of rejected lines).
    pool: ThreadPoolExecutor | None = None
    pending: deque = deque()
    workers = _WORKERS if usable_cpus() >= 2 else 1

    def finish_one() -> None:
        nonlocal lineno, fast_lines
        assert parser is not None
        scan = pending.popleft().result()
        cols, n_fast = _fastparse.finish_block(scan, lineno + 1, parser)
        fast_lines += n_fast
        add_records(cols, len(scan.starts), scan.nbytes)
        lineno += len(scan.starts)

    def add_records(cols: dict[str, np.ndarray], n_lines: int, n_bytes: int) -> None:
        nonlocal parts
        if parts is None:
            # Guess the number of records from the first block's bytes per line.
            guess = expected = 0
            if size and n_lines:
                expected = int(size / max(n_bytes / n_lines, 1.0))
                guess = int(expected * 1.1) + 1024
            # Big inputs: the columns' pages are faulted in on a helper thread meanwhile, where
            # a CPU is left beside the scanning threads (on 2 CPUs with two scanning threads
            # it measured no faster: 10^7 lines 5.1-6.7 s with it, 4.9-5.3 s without).
            spare = usable_cpus() > workers + 1
            parts = ColumnBuilder(guess, prefault=expected if spare and guess >= _PREFAULT_MIN_ROWS
                                  else 0)
        parts.append(cols)

    def drain() -> None:
        while pending:
            finish_one()

    def run_block(data: bytes, end: int, wait: bool = False) -> None:
        """Parse ``data[:end]`` (whole lines)."""
        nonlocal lineno, pool
        assert parser is not None
        if fast:
            for lo, hi in _split_block(data, end, scan_bytes):
                if pool is None and workers > 1 and end >= scan_bytes:
                    pool = ThreadPoolExecutor(workers, thread_name_prefix="ftracekit-scan")
                if pool is not None:
                    pending.append(pool.submit(_fastparse.scan_block, data, parser, lo, hi))
                else:
                    pending.append(_Done(_fastparse.scan_block(data, parser, lo, hi)))
                while len(pending) > 2 * workers:
                    finish_one()
            if wait:
                drain()
        else:
            block = data[:end]
            n_lines = block.count(b"\n")
            text = block.decode("utf-8", "replace")
            lines = text.split("\n")
            lines.pop()  # block ends with "\n"
            parser.feed((lineno + 1 + i, ln.rstrip("\r")) for i, ln in enumerate(lines))
            add_records(parser.take_columns(), n_lines, len(block))
            lineno += n_lines

    def start(data: bytes) -> None:
        """Layout detection on the first bytes; creates the parser."""
        nonlocal parser, layout_source, n_sniff_matching, sniffed, first
        if _looks_binary(data):
            raise InputError(f"{name}: binary data, not a function_graph trace text")
        sniff = _first_lines(data[: 4 << 20], _SNIFF_LINES).decode("utf-8", "replace")
        sniff = sniff.split("\n")[:_SNIFF_LINES]
        sniffed = sniff
        if fixed_layout is not None:
            parser = LineParser(fixed_layout, funcs, modules, comms)
            first = False
            layout_source = "given"
            return
        layout = layout_from_header(sniff[:100])
        layout_source = "header"
        if layout is None:
            layout, n_sniff_matching = detect_layout(sniff)
            layout_source = "lines"
            if layout is None:
                layout, layout_source = Layout(), "default"
        parser = LineParser(layout, funcs, modules, comms)
        first = False

    def feed(data: bytes) -> None:
        nonlocal carry
        # (zero padding after the data lets the fast path read past the last line in place)
        block = b"".join((carry, data, _fastparse._PAD_BYTES)) if fast else carry + data
        size_ = len(carry) + len(data)
        cut = block.rfind(b"\n", 0, size_)
        if cut < 0:
            carry = block[:size_]
            return
        carry = block[cut + 1:size_]
        run_block(block, cut + 1)
        bar.update(position() or nbytes, lineno)

    try:
        head = b""
        for data in chunks:
            nbytes += len(data)
            if first:
                # The first 4 MB (or the whole input) decide the layout.
                head += data
                if len(head) < _SNIFF_BYTES:
                    continue
                data, head = head, b""
                start(data)
                feed(data)
                # (while the scanning threads work on the first blocks)
                sniff_result = sniff_options(sniffed, parser.layout)
                continue
            feed(data)
        if first and head:
            start(head)
            feed(head)
        drain()
        if carry:
            # A last line without its newline: parse it if it is complete, else report it.
            if parser is None:
                if _looks_binary(carry):
                    raise InputError(f"{name}: binary data, not a function_graph trace text")
                sniff = carry.decode("utf-8", "replace").split("\n")
                sniffed = sniff
                layout = (fixed_layout or layout_from_header(sniff) or detect_layout(sniff)[0]
                          or Layout())
                parser = LineParser(layout, funcs, modules, comms)
            before = parser.skipped
            last = carry + b"\n"
            run_block(last, len(last), wait=True)
            if parser.skipped > before:
                truncated_last = carry.decode("utf-8", "replace")[:200]
    finally:
        if parts is not None:
            parts.stop_prefault()
        if pool is not None:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=True)
        bar.finish()

    if nbytes == 0:
        raise InputError(f"{name}: empty file")
    assert parser is not None
    if layout_out is not None:
        layout_out.append(parser.layout)
    cols = parts.columns() if parts is not None else concat_columns([])
    del parts
    release_memory()     # the scan threads' temporaries
    recs = LineRecords(cols=cols, funcs=funcs.names, modules=modules.names, comms=comms.names,
                       comments=parser.comments, switches=parser.switches, lost=parser.lost,
                       overruns=parser.overruns, args=parser.args, retaddr=parser.retaddr,
                       flags=parser.flags)
    kinds = cols["kind"]
    kind_counts = _count_kinds(kinds)
    n_calls_lines = int(kind_counts[[K_ENTRY, K_LEAF, K_EXIT]].sum())
    tracer = None
    for h in parser.header[:5]:
        if h.startswith("# tracer:"):
            tracer = h.split(":", 1)[1].strip()
    events_only = n_calls_lines == 0 and bool(kind_counts[K_COMMENT])
    if n_calls_lines == 0 and not events_only:
        if tracer and tracer != "function_graph":
            raise NotATraceError(f"{name}: recorded with the {tracer!r} tracer, not function_graph "
                                 "and holds no trace events")
        if tracer != "function_graph" and not len(kinds):
            example = parser.skipped_examples[0][1] if parser.skipped_examples else ""
            hint = f"; first line: {example[:60]!r}" if example else ""
            raise NotATraceError(f"{name}: no function_graph lines in {lineno} lines{hint}")
    if sniff_result is None:
        sniff_result = sniff_options(sniffed, parser.layout)
    options, hints = sniff_result
    if recs.retaddr:
        options["funcgraph-retaddr"] = True
    if recs.args:
        options["funcgraph-args"] = True
    if bool(cols["has_ret"].any()):
        options["funcgraph-retval"] = True
    lost_per_cpu: dict[int, int] = {}
    lost_unknown = 0
    cpu_of_line: dict[int, int] = {}
    if kind_counts[K_LOST]:
        lost_at = np.flatnonzero(kinds == K_LOST)
        cpu_of_line = dict(zip(cols["line"][lost_at].tolist(), cols["cpu"][lost_at].tolist()))
    for ln, n in recs.lost.items():
        cpu = cpu_of_line.get(ln, -1)
        if n < 0:
            lost_unknown += 1
        else:
            lost_per_cpu[cpu] = lost_per_cpu.get(cpu, 0) + n
    counts = {KIND_NAMES[k]: int(v) for k, v in enumerate(kind_counts) if v}
    meta: dict[str, Any] = {
        "source": name,
        "bytes": nbytes,
        "lines": lineno,
        "layout": parser.layout.describe(),
        "layout_from": layout_source,
        "tracer": tracer or ("function_graph" if n_calls_lines else None),
        "header": parser.header[:50],
        "line_kinds": counts,
        "lost_events": {"per_cpu": lost_per_cpu, "total": sum(lost_per_cpu.values()),
                        "lines_without_count": lost_unknown},
        "overruns": sum(recs.overruns.values()),
        "skipped": {"count": parser.skipped, "examples": parser.skipped_examples},
        "other_layout_lines": parser.other_layout_lines,
        "truncated_last_line": truncated_last,
        "buffer_started_cpus": parser.buffer_started,
        "fast_path_lines": fast_lines,
        "options": options,
        "kernel_hints": hints,
        "has_comments": bool(kind_counts[K_COMMENT]),
        # no call lines, only trace events (tracer nop, or a graph that did not fire): the
        # calls table is empty and the events table full
        "events_only": events_only,
    }
    return recs, meta
