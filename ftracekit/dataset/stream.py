"""A function_graph text, linked a window of lines at a time: the calls and events tables in
pieces, with the rows and ids :func:`ftracekit.load` gives, in bounded memory.

Each window is parsed (:func:`ftracekit.read.parse_block`, the layout detected once on the
first window) and linked (:func:`ftracekit.calltree.build_tables`). The rows on lines before
the window's safe cut (:func:`ftracekit.dataset.cut.safe_cut`) are final: they are given out
with call ids shifted to the whole input's numbering. The text from the cut on is carried
into the next window and linked again with it. Memory is that of linking one window
(``window_lines`` new lines plus the carried tail), whatever the size of the input.

A window without any safe cut grows (the next one holds more lines); past
``max_window_lines`` it is cut anyway ``window_lines / 8`` lines before its end (a *forced*
cut, counted in :attr:`StreamStats.forced_cuts`: rows next to it may then differ from
``load``). No real capture in the tests needs one.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd

from ..calltree import build_tables
from ..errors import InputError, NotATraceError
from ..read import K_SWITCH, PathOrFile, open_source, parse_block
from .cut import safe_cut
from .window import DEFAULT_WINDOW_EVENTS, DEFAULT_WINDOW_LINES, StreamStats, take_before

__all__ = ["stream_tables", "StreamStats", "DEFAULT_WINDOW_LINES", "DEFAULT_WINDOW_EVENTS"]

_READ = 8 << 20


def _line_offset(data: bytes, k: int) -> int:
    """Byte offset of the start of line ``k`` (0-based) of ``data`` (whole lines)."""
    if k <= 0:
        return 0
    seen = 0
    step = 16 << 20
    for lo in range(0, len(data), step):
        nl = np.flatnonzero(np.frombuffer(data, dtype=np.uint8, count=min(step, len(data) - lo),
                                          offset=lo) == 10)
        if seen + len(nl) >= k:
            return lo + int(nl[k - seen - 1]) + 1
        seen += len(nl)
    return len(data)


def _link_window(data: bytes, layout: Any, first_line: int, name: str
                 ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, dict[str, Any], Any,
                            tuple[tuple[np.ndarray, np.ndarray], dict[int, int]]]:
    """Parse and link one window: calls, events, exit lines, meta, layout, and ((CPUs, lines)
    of its task-switch lines, {CPU: first line whose task waits for the CPU's first switch})."""
    try:
        recs, meta, layout = parse_block(data, layout, first_line, name)
    except NotATraceError:
        if layout is None:
            raise
        none = np.zeros(0, dtype=np.int64)
        return pd.DataFrame(), pd.DataFrame(), none, {}, layout, ((none, none), {})
    cols = recs.cols
    is_sw = cols["kind"] == K_SWITCH
    sw = np.flatnonzero(is_sw)
    switches = (cols["cpu"][sw].astype(np.int64), cols["line"][sw].astype(np.int64))
    # Lines whose task is unknown on a CPU without a task switch here: their task is the one
    # the CPU's first switch (in some later window) switches away from.
    unknown = np.flatnonzero((cols["pid"] < 0) & ~is_sw & ~np.isin(cols["cpu"], switches[0]))
    cpus, first = np.unique(cols["cpu"][unknown], return_index=True)
    waiting = dict(zip(cpus.tolist(), cols["line"][unknown[first]].tolist()))
    del is_sw, sw, unknown
    calls, events, st = build_tables(recs, consume=True, exit_lines=True)
    return calls, events, st["exit_line"], meta, layout, (switches, waiting)


def _line_at(data: bytes, k: int) -> bytes:
    """Line ``k`` (0-based) of ``data``, with its newline."""
    lo = _line_offset(data, k)
    hi = data.find(b"\n", lo)
    return data[lo:hi + 1]


def stream_tables(src: PathOrFile, *, window_lines: int | None = None,
                  max_window_lines: int | None = None, stats: StreamStats | None = None,
                  on_progress: Callable[[int, int | None, int], None] | None = None,
                  scratch: str | None = None
                  ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Yield ``(calls, events)`` pieces of the trace ``src`` in line order; concatenated,
    they are the tables :func:`ftracekit.load` gives (same columns, ids and values; the
    categorical columns have each piece's own categories).

    ``window_lines``: new lines linked per window (≥ 16; default
    :data:`DEFAULT_WINDOW_LINES`, binary: :data:`DEFAULT_WINDOW_EVENTS`).
    ``max_window_lines``: the largest window before a forced cut (default 8 ×
    ``window_lines``). ``stats``: filled in as it goes. ``on_progress(bytes_read, total_bytes, lines)`` after each window.

    A path to a trace-cmd ``trace.dat`` or a ``record --raw`` directory is decoded page by page
    instead (:func:`ftracekit.dataset.binstream.stream_binary_tables`: ``lines`` are events;
    ``scratch``: where a compressed ``.dat`` is unpacked). Raises
    :class:`~ftracekit.errors.InputError` for unusable input.
    """
    if window_lines is not None and window_lines < 16:
        raise InputError(f"window_lines must be at least 16, not {window_lines}")
    if isinstance(src, (str, os.PathLike)) and os.fspath(src) != "-":
        from .binsource import is_binary
        if is_binary(src):
            from .binstream import stream_binary_tables
            yield from stream_binary_tables(src, window_lines=window_lines or
                                            DEFAULT_WINDOW_EVENTS,
                                            max_window_lines=max_window_lines, stats=stats,
                                            on_progress=on_progress, scratch=scratch)
            return
    window_lines = window_lines or DEFAULT_WINDOW_LINES
    max_lines = max_window_lines or 8 * window_lines
    margin = max(window_lines // 8, 8)
    st = stats if stats is not None else StreamStats()
    source = open_source(src)
    st.name = source.name
    try:
        if source.kind != "text":       # (a trace.dat from a file object: paths go above)
            raise InputError(f"{source.name}: a trace-cmd trace.dat from a stream; give its "
                             "path (it is decoded from a file)")
        parts: list[bytes] = []
        n_pending = 0            # lines in parts (whole ones)
        first_line = 1           # line number of parts' first line
        call_base = 0
        layout = None
        switch_text: dict[int, bytes] = {}      # CPU → its last task-switch line before the cut
        target = window_lines
        chunks = source.chunks(_READ)
        done = exhausted = False
        while not done:
            while n_pending <= target and not exhausted:
                data = next(chunks, None)
                if data is None:
                    exhausted = True
                    break
                st.bytes += len(data)
                parts.append(data)
                n_pending += data.count(b"\n")
            done = exhausted and n_pending <= target
            buf = b"".join(parts)
            parts = []
            if done:
                if buf and not buf.endswith(b"\n"):
                    buf += b"\n"
                block, rest = buf, b""
            else:
                end = _line_offset(buf, target)
                block, rest = buf[:end], buf[end:]
            del buf
            n_block = block.count(b"\n")
            if not n_block:
                if not st.windows:
                    raise InputError(f"{source.name}: empty file")
                break
            # The task-switch state of each CPU at the window's start (needed to know the task
            # of lines without a pid): the last switch line seen on it, put in front.
            head = b"".join(switch_text.values())
            n_head = len(switch_text)
            calls, events, exit_line, meta, layout, switches = _link_window(
                head + block, layout, first_line - n_head, source.name)
            if not st.meta:
                st.meta = meta
            st.windows += 1
            st.max_window_lines = max(st.max_window_lines, n_block)
            end_line = first_line + n_block
            (sw_cpu, sw_line), waiting = switches
            if done:
                cut = end_line
            else:
                hi = min([end_line - margin] + [ln for c, ln in waiting.items()
                                                if c not in switch_text])
                cut = safe_cut(calls, events, exit_line, first_line, hi) if len(calls) else hi
                cut = cut if cut is None or cut > first_line else None
                if cut is None:
                    if n_block < max_lines:          # grow the window
                        parts, n_pending = [block, rest], n_block + rest.count(b"\n")
                        target = min(n_block + window_lines, max_lines)
                        continue
                    cut = end_line - margin
                    st.forced_cuts += 1
            out_c, out_e = take_before(calls, events, cut, call_base, st)
            del calls, events, exit_line
            call_base += len(out_c)
            for cpu, ln in zip(sw_cpu.tolist(), sw_line.tolist()):   # (in line order)
                if first_line <= ln < cut:
                    switch_text[cpu] = _line_at(block, ln - first_line)
            carried = block[_line_offset(block, cut - first_line):] if not done else b""
            del block
            n_carried = end_line - cut if not done else 0
            st.lines = cut - 1
            if on_progress is not None:
                on_progress(st.bytes, source.size, st.lines)
            if len(out_c) or len(out_e):
                yield out_c, out_e
            del out_c, out_e
            parts = [carried, rest] if not done else []
            n_pending = n_carried + rest.count(b"\n")
            first_line = cut
            target = n_carried + window_lines
    finally:
        source.close()
