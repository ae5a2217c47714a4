"""A binary capture (``trace.dat`` or ``record --raw`` directory), linked a window of events
at a time: the calls and events tables in pieces, with the rows and ids :func:`ftracekit.load`
gives, in bounded memory.

The binary counterpart of :mod:`ftracekit.dataset.stream` (text): the records come from
:func:`ftracekit.dataset.pagemerge.merged_records` (the CPUs' pages decoded a block at a time
and merged into time order), ``line`` being the event's time rank + 1. Each window of records
is linked (:func:`ftracekit.calltree.build_tables`); the rows before the window's safe cut
(:func:`ftracekit.dataset.cut.safe_cut`) are given out with call ids shifted to the whole
input's numbering, and the records from the cut on (calls still open on some task, with what
may still attach to them) are carried into the next window and linked again with it. Windows
without a safe cut grow, up to ``max_window_lines`` (then a forced cut, counted).
"""

from __future__ import annotations

import os
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from ..calltree import build_tables
from ..read._decode import _nbytes
from ..read.records import LineRecords, concat_columns
from .binsource import open_pages
from .cut import safe_cut
from .pagemerge import DEFAULT_CHUNK_EVENTS, MergeStats, merged_records
from .window import DEFAULT_WINDOW_EVENTS, StreamStats, take_before

__all__ = ["stream_binary_tables"]


def _concat(parts: list[LineRecords]) -> LineRecords:
    """Records of consecutive chunks as one (the name tables are shared by all chunks)."""
    last = parts[-1]
    comments: dict[int, str] = {}
    for p in parts:
        comments.update(p.comments)
    cols = parts[0].cols if len(parts) == 1 else concat_columns([p.cols for p in parts])
    return LineRecords(cols=cols, funcs=last.funcs, modules=last.modules, comms=last.comms,
                       comments=comments)


def _tail(recs: LineRecords, k: int) -> LineRecords:
    """Records ``k`` … end (copies: the window's arrays are freed)."""
    cols = {name: np.array(a[k:]) for name, a in recs.cols.items()}
    first = int(cols["line"][0]) if len(cols["line"]) else 0
    comments = {ln: t for ln, t in recs.comments.items() if ln >= first} if first else {}
    return LineRecords(cols=cols, funcs=recs.funcs, modules=recs.modules, comms=recs.comms,
                       comments=comments)


def stream_binary_tables(path: str | os.PathLike[str], *,
                         window_lines: int = DEFAULT_WINDOW_EVENTS,
                         max_window_lines: int | None = None,
                         stats: StreamStats | None = None,
                         on_progress: Callable[[int, int | None, int], None] | None = None,
                         scratch: str | None = None
                         ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Yield ``(calls, events)`` pieces of the binary capture ``path`` in time order;
    concatenated, they are the tables :func:`ftracekit.load` gives (same columns, ids and
    values; categorical columns have each piece's own categories).

    ``window_lines``: new events linked per window; ``max_window_lines``: the largest window
    before a forced cut (default 8 × ``window_lines``); ``stats``: filled in as it goes
    (``lines`` = events, ``bytes`` = page bytes decoded); ``on_progress(bytes, total, events)``
    after each window (``bytes`` of the file's ``total``, in proportion to the pages decoded); ``scratch``: where a compressed ``.dat`` is unpacked.
    Raises :class:`~ftracekit.errors.InputError` for unusable input.
    """
    max_lines = max_window_lines or 8 * window_lines
    margin = max(window_lines // 8, 8)
    st = stats if stats is not None else StreamStats()
    src = open_pages(path, scratch=scratch)
    st.name = src.name
    st.meta = dict(src.meta, layout=["abstime", "cpu", "proc", "duration"],
                   tracer="function_graph", header=[])
    st.meta.setdefault("options", {})
    ms = MergeStats()
    page_total = max(sum(_nbytes(data) for _, data in src.blobs), 1)
    try:
        chunks = merged_records(src, chunk_events=min(window_lines, DEFAULT_CHUNK_EVENTS),
                                stats=ms)
        carry: LineRecords | None = None
        new: list[LineRecords] = []
        n_new = 0
        first_line = 1
        call_base = 0
        target = window_lines
        exhausted = False
        while True:
            while n_new < target and not exhausted:
                got = next(chunks, None)
                if got is None:
                    exhausted = True
                else:
                    new.append(got)
                    n_new += len(got)
            parts = ([carry] if carry is not None and len(carry) else []) + new
            if not parts:
                break
            recs = _concat(parts)
            new, n_new = [], 0
            n = len(recs)
            end_line = first_line + n
            calls, events, info = build_tables(recs, exit_lines=True)
            st.windows += 1
            st.max_window_lines = max(st.max_window_lines, n)
            if exhausted:
                cut = end_line
            else:
                hi = end_line - margin
                cut = safe_cut(calls, events, info["exit_line"], first_line, hi) \
                    if len(calls) else hi
                cut = cut if cut is not None and cut > first_line else None
                if cut is None:
                    if n < max_lines:                    # grow the window
                        carry = recs
                        target = min(window_lines, max_lines - n)
                        continue
                    cut = end_line - margin
                    st.forced_cuts += 1
            out_c, out_e = take_before(calls, events, cut, call_base, st)
            del calls, events, info
            call_base += len(out_c)
            carry = _tail(recs, cut - first_line) if not exhausted else None
            del recs
            first_line = cut
            target = window_lines
            st.lines = cut - 1
            st.bytes = ms.bytes
            if on_progress is not None:       # (page bytes decoded, in the file's scale)
                on_progress(int(src.size * min(ms.bytes / page_total, 1.0)), src.size,
                            st.lines)
            if len(out_c) or len(out_e):
                yield out_c, out_e
            del out_c, out_e
            if exhausted:
                break
        st.meta["lost_events"] = {"per_cpu": ms.lost, "total": sum(ms.lost.values()),
                                  "lines_without_count": ms.lost_unknown}
        st.meta["late_events"] = ms.late_events
    finally:
        src.close()
