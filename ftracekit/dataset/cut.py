"""Where a trace may be cut: the line before which every call and event is settled.

Streaming conversion (:mod:`ftracekit.dataset.stream`) links a window of lines at a time. A
call is *settled* when nothing after the window could change its row: its exit, its children,
its parent and its events are all in the window, and the rules of
:mod:`ftracekit.calltree.link` that look ahead cannot reach past it. :func:`safe_cut` finds the
largest line ``L`` such that every call and event on a line before ``L`` only *reaches* lines
before ``L``; everything from ``L`` on is linked again with the next window (it carries over).

What a row reaches (line numbers, ``inf`` when the answer lies past the window):

* its own line, its exit line, its parent's line, its children's lines, its events' lines;
* an entry without exit at depth ``d`` (``no-exit``): the next call of its task at depth
  ``≤ d`` (until then it may still get children) and, as a late exit line may still be paired
  with it, the next call at depth ``< d`` or the one ``LATE_EXIT_SCAN`` calls later;
* a call without parent below depth 0, or sitting more than one level below its parent (an
  interrupt that a late entry line may adopt), and an event without a call: the next call of
  its task at depth 0 / at a smaller depth (the backward pass may still give it one).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..calltree import task_keys

__all__ = ["safe_cut", "LATE_EXIT_SCAN"]

#: How far back (records of one task) the linker pairs a late exit line with its entry.
LATE_EXIT_SCAN = 10000
_INF = np.iinfo(np.int64).max


class _TaskOrder:
    """Calls sorted by (task, line), for "the next call of this task after line x with depth
    below T" look-ups."""

    def __init__(self, task: np.ndarray, line: np.ndarray, depth: np.ndarray) -> None:
        self.tasks, code = np.unique(task, return_inverse=True)
        self.span = int(line.max()) + 2 if len(line) else 1
        key = code.astype(np.int64) * self.span + line
        order = np.argsort(key, kind="stable")
        self.key = key[order]
        self.code = code[order]
        self.line = line[order]
        self.depth = depth[order]
        self.n = len(order)
        self._suffix: dict[int, np.ndarray] = {}

    def code_of(self, task: np.ndarray) -> np.ndarray:
        """Dense code of each task (-1 for a task without calls)."""
        pos = np.searchsorted(self.tasks, task)
        pos_c = np.minimum(pos, max(len(self.tasks) - 1, 0))
        ok = (len(self.tasks) > 0) & (self.tasks[pos_c] == task) if len(self.tasks) else \
            np.zeros(len(task), dtype=bool)
        return np.where(ok, pos_c, -1)

    def after(self, code: np.ndarray, line: np.ndarray) -> np.ndarray:
        """Position (in the sorted order) of the first call of the task after ``line``."""
        return np.searchsorted(self.key, code.astype(np.int64) * self.span + line, side="right")

    def _next_below(self, threshold: int) -> np.ndarray:
        """Per position p: the first position ≥ p whose depth < ``threshold`` (n if none)."""
        got = self._suffix.get(threshold)
        if got is None:
            idx = np.where(self.depth < threshold, np.arange(self.n), self.n)
            got = np.append(np.minimum.accumulate(idx[::-1])[::-1], self.n)
            self._suffix[threshold] = got
        return got

    def line_below(self, code: np.ndarray, pos: np.ndarray, threshold: np.ndarray) -> np.ndarray:
        """Line of the first call at or after ``pos`` in task ``code`` with depth below
        ``threshold`` (``inf`` if none in the window)."""
        out = np.full(len(pos), _INF, dtype=np.int64)
        for t in np.unique(threshold).tolist():
            sel = np.flatnonzero(threshold == t)
            j = self._next_below(int(t))[pos[sel]]
            jc = np.minimum(j, max(self.n - 1, 0))
            ok = (j < self.n) & (self.code[jc] == code[sel]) if self.n else j < 0
            out[sel[ok]] = self.line[jc[ok]]
        return out

    def line_later(self, code: np.ndarray, pos: np.ndarray, k: int) -> np.ndarray:
        """Line of the call ``k`` positions after ``pos`` in the same task (``inf`` if none)."""
        j = pos + k
        jc = np.minimum(j, max(self.n - 1, 0))
        ok = (j < self.n) & (self.code[jc] == code) if self.n else j < 0
        return np.where(ok, self.line[jc], _INF)


def _reach(calls: pd.DataFrame, events: pd.DataFrame, exit_line: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lines and reaches of the calls and of the events (see the module docstring)."""
    line = calls["line"].to_numpy(dtype=np.int64)
    depth = calls["depth"].to_numpy(dtype=np.int64)
    parent = calls["parent"].to_numpy(dtype=np.int64)
    reach = np.maximum(line, exit_line.astype(np.int64))
    has = parent >= 0
    np.maximum.at(reach, parent[has], line[has])
    reach[has] = np.maximum(reach[has], line[parent[has]])
    ev_line = events["line"].to_numpy(dtype=np.int64)
    ev_call = events["call"].to_numpy(dtype=np.int64)
    own = ev_call >= 0
    np.maximum.at(reach, ev_call[own], ev_line[own])
    ev_reach = ev_line.copy()
    ev_reach[own] = np.maximum(ev_reach[own], line[ev_call[own]])
    if not len(line):
        return line, reach, ev_line, ev_reach
    task = task_keys(calls["pid"].to_numpy(), calls["cpu"].to_numpy())
    order = _TaskOrder(task, line, depth)
    code = order.code_of(task)
    pos = order.after(code, line)            # the task's next call after each call
    status = calls["status"].cat.codes.to_numpy()
    no_exit = np.flatnonzero(status == 1)
    if len(no_exit):
        d = depth[no_exit]
        c, p = code[no_exit], pos[no_exit]
        closed = order.line_below(c, p, d + 1)
        paired = np.minimum(order.line_below(c, p, d), order.line_later(c, p, LATE_EXIT_SCAN))
        reach[no_exit] = np.maximum(reach[no_exit], np.maximum(closed, paired))
    pdepth = np.where(has, depth[np.maximum(parent, 0)], -1)
    loose = np.flatnonzero((~has & (depth > 0)) | (has & (depth > pdepth + 1)))
    if len(loose):
        thr = np.where(has[loose], depth[loose], 1)
        got = order.line_below(code[loose], pos[loose], thr)
        reach[loose] = np.maximum(reach[loose], got)
    alone = np.flatnonzero(~own)
    if len(alone):
        ev_task = task_keys(events["pid"].to_numpy()[alone], events["cpu"].to_numpy()[alone])
        c = order.code_of(ev_task)
        known = c >= 0          # events of a task without calls here: nothing can own them
        sel = alone[known]
        got = order.line_below(c[known], order.after(c[known], ev_line[sel]),
                               np.ones(len(sel), dtype=np.int64))
        ev_reach[sel] = np.maximum(ev_reach[sel], got)
    return line, reach, ev_line, ev_reach


def safe_cut(calls: pd.DataFrame, events: pd.DataFrame, exit_line: np.ndarray,
             lo: int, hi: int) -> int | None:
    """The largest line ``L`` with ``lo < L ≤ hi`` such that every call and event of the window
    on a line before ``L`` is settled, i.e. reaches only lines before ``L``; ``None`` if there
    is none. ``calls``/``events``: the window's tables (:func:`ftracekit.calltree.build_tables`
    with ``exit_lines``), lines numbered as in the whole input."""
    line, reach, ev_line, ev_reach = _reach(calls, events, exit_line)
    lines = np.concatenate([line, ev_line])
    reaches = np.concatenate([reach, ev_reach])
    order = np.argsort(lines, kind="stable")
    lines, reaches = lines[order], reaches[order]
    # Cutting before item k (at lines[k]) is safe when everything before k reaches < lines[k]
    # (items on one line are never separated: that line's reach covers itself).
    before = np.maximum.accumulate(reaches)
    ok = np.flatnonzero((before[:-1] < lines[1:]) & (lines[1:] > lo) & (lines[1:] <= hi))
    return int(lines[ok[-1] + 1]) if len(ok) else None
