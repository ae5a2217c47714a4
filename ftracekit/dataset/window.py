"""What the text and binary streaming passes share: window sizes, :class:`StreamStats`, and
the shift of window-local call ids to the input's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_WINDOW_LINES", "DEFAULT_WINDOW_EVENTS", "StreamStats", "shift_ids",
           "take_before"]

#: Lines linked at a time by default (~130 MB of working memory for kernel text, see README).
DEFAULT_WINDOW_LINES = 1_000_000
#: Events of a binary capture linked at a time by default (an event is about half a text
#: line's call: a leaf is one line but two events; peak ~750 MB on fg_10m.dat, see README).
DEFAULT_WINDOW_EVENTS = 500_000


@dataclass
class StreamStats:
    """What a streaming pass saw: ``lines`` and ``bytes`` read, ``calls``/``events`` given
    out, ``windows`` linked, ``forced_cuts`` (see the module docstring), ``max_window_lines``
    (the largest window linked, carried lines included) and ``meta`` (the first window's
    :attr:`ftracekit.Trace.meta`-like detection results: layout, tracer, options …)."""

    name: str = ""
    lines: int = 0
    bytes: int = 0
    calls: int = 0
    events: int = 0
    windows: int = 0
    forced_cuts: int = 0
    max_window_lines: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


def shift_ids(calls: pd.DataFrame, events: pd.DataFrame, base: int) -> None:
    """Window-local call ids → the input's (in place)."""
    if not base:
        return
    calls.index = calls.index + base
    calls.index.name = "call"
    p = calls["parent"].to_numpy(copy=True)
    p[p >= 0] += base
    calls["parent"] = p
    calls["root"] = calls["root"].to_numpy() + base
    c = events["call"].to_numpy(copy=True)
    c[c >= 0] += base
    events["call"] = c


def take_before(calls: pd.DataFrame, events: pd.DataFrame, cut: int, call_base: int,
                st: StreamStats) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The calls and events of a linked window that start before line ``cut`` (copies), with
    the input's call ids (window ids + ``call_base``); counted in ``st``."""
    k = int(np.searchsorted(calls["line"].to_numpy(), cut)) if len(calls) else 0
    e = int(np.searchsorted(events["line"].to_numpy(), cut)) if len(events) else 0
    out_c, out_e = calls.iloc[:k].copy(), events.iloc[:e].copy()
    shift_ids(out_c, out_e, call_base)
    st.calls += k
    st.events += e
    return out_c, out_e
