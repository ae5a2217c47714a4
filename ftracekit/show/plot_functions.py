"""Per-function plots: :func:`plot_top` (functions ranked by self or total time) and
:func:`plot_compare` (the same functions in two traces, in the order of ``Trace.compare``).

Functions are compared by name without GCC clone suffixes (``rtnl_fill_ifinfo`` and
``rtnl_fill_ifinfo.isra.0`` are one function across kernels), as :func:`ftracekit.analysis.compare`
does. See :mod:`.plot` for the other plots and :class:`~.plot.TracePlots`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..analysis import COMPARE_KEYS
from ..errors import FtracekitError
from ._plotbase import _new_axes, _unit
from .format import fmt_count, fmt_us

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ..trace import Trace

__all__ = ["plot_top", "plot_compare", "trace_labels"]


def plot_top(trace: "Trace", n: int = 20, ax: "Axes | None" = None, *, by: str = "self"
             ) -> "Axes":
    """Horizontal bars of the ``n`` functions with the most self time (``by="self"``) or total
    time (``by="total"``), largest on top, each annotated with its time and call count."""
    col = {"self": "self_us", "total": "total_us"}.get(by)
    if col is None:
        raise FtracekitError(f"cannot rank by {by!r}; use 'self' or 'total'")
    t = trace.top(n, by=by)
    if not len(t):
        raise FtracekitError("no calls to rank")
    vals = t[col].fillna(0).to_numpy(dtype=float)
    if not (vals > 0).any():
        raise FtracekitError(f"no {by} time to rank: the trace prints no durations "
                             "(funcgraph-duration was off); rank by count with trace.top(by='count')")
    scale, unit = _unit(float(vals.max()))
    ax = _new_axes(ax, (10, 0.9 + 0.3 * len(t)))
    y = np.arange(len(t))
    ax.barh(y, vals / scale, color="#4c72b0")
    ax.set_yticks(y)
    ax.set_yticklabels(list(t.index), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{'self' if by == 'self' else 'total'} time ({unit})")
    ax.grid(True, axis="x", alpha=0.3)
    # share of all self time (total times nest, so they have no meaningful share)
    all_self = float(np.nansum(trace.calls["self_us"].to_numpy(dtype=float, na_value=np.nan)))
    for yi, v, cnt in zip(y, vals, t["count"].to_numpy()):
        share = f"  {100 * v / all_self:.1f} %" if by == "self" and all_self > 0 else ""
        ax.annotate(f" {fmt_us(v, unit=True)}{share}  ×{fmt_count(cnt)}", xy=(v / scale, yi),
                    va="center", fontsize=7.5, color="#333")
    ax.set_xlim(0, vals.max() / scale * 1.45)
    ax.set_title(f"top {len(t)} functions by {by} time", loc="left", fontsize=10)
    return ax


def trace_labels(a: "Trace", b: "Trace") -> tuple[str, str]:
    """Names that tell two traces apart: their file names; when those are equal, the
    parent directories (``6.1.0-56-amd64`` vs ``6.12.117+deb12-amd64``), then the whole
    paths; ``a``/``b`` when the traces do not say where they came from or are one file."""
    sa, sb = (str(t.meta.get("source") or "") for t in (a, b))
    if not sa or not sb or sa == sb:
        return "a", "b"
    pa, pb = Path(sa), Path(sb)
    if pa.name != pb.name:
        return pa.name, pb.name
    if pa.parent.name and pb.parent.name and pa.parent.name != pb.parent.name:
        return pa.parent.name, pb.parent.name
    common = os.path.commonpath([os.path.abspath(sa), os.path.abspath(sb)])
    return os.path.relpath(sa, common), os.path.relpath(sb, common)


#: What ``by`` plots: (column in a, column in b, axis label, whether it is a duration).
_COMPARE_VALUES = {
    "total": ("total_us_a", "total_us_b", "total time", True),
    "self": ("self_us_a", "self_us_b", "self time", True),
    "count": ("count_a", "count_b", "calls", False),
    "p50": ("p50_us_a", "p50_us_b", "median duration (p50)", True),
    "p99": ("p99_us_a", "p99_us_b", "p99 duration", True),
}


def plot_compare(a: "Trace", b: "Trace", n: int = 20, ax: "Axes | None" = None, *,
                 by: str = "self", labels: Sequence[str] | None = None) -> "Axes":
    """The ``n`` functions whose ``by`` (``self``, ``total``, ``count``, ``p50``, ``p99``)
    changed most from ``a`` to ``b`` — the first ``n`` rows of ``a.compare(b, by=by)``, in
    that order — as pairs of bars (``a`` above ``b``), each annotated with the change.

    ``labels``: the legend names of ``a`` and ``b`` (default: :func:`trace_labels`, the file
    names, or their directories when the file names are equal). Functions are matched by
    base name (see :meth:`ftracekit.Trace.compare`)."""
    if by not in _COMPARE_VALUES:
        raise FtracekitError(f"cannot compare by {by!r}; use one of: {', '.join(COMPARE_KEYS)}")
    if labels is None:
        labels = trace_labels(a, b)
    labels = tuple(str(x) for x in labels)
    if len(labels) != 2:
        raise FtracekitError(f"labels: give two names (a, b), not {len(labels)}")
    t = a.compare(b, n, by)           # validates b and n as Trace.compare does
    if not len(t):
        raise FtracekitError("no calls in either trace")
    ca, cb, what, is_time = _COMPARE_VALUES[by]
    va_all = t[ca].to_numpy(dtype=float, na_value=np.nan)
    vb_all = t[cb].to_numpy(dtype=float, na_value=np.nan)
    top = float(np.nanmax(np.concatenate([va_all, vb_all, [0.0]])))
    scale, unit = _unit(top) if is_time else (1.0, "")
    ax = _new_axes(ax, (10, 1.0 + 0.42 * len(t)))
    y = np.arange(len(t))
    hb = 0.4
    ax.barh(y - hb / 2, np.nan_to_num(va_all) / scale, height=hb, color="#4c72b0",
            label=labels[0])
    ax.barh(y + hb / 2, np.nan_to_num(vb_all) / scale, height=hb, color="#dd8452",
            label=labels[1])
    ax.set_yticks(y)
    ax.set_yticklabels(list(t.index), fontsize=8)
    ax.invert_yaxis()
    fmt = (lambda v: fmt_us(v, unit=True)) if is_time else fmt_count
    for yi, va, vb, na, nb in zip(y, va_all, vb_all, t["count_a"], t["count_b"]):
        if na and nb and va > 0:
            ch = f"{100 * (vb - va) / va:+.0f} %  ({fmt(va)} → {fmt(vb)})"
        elif na and nb:
            ch = f"{fmt(va)} → {fmt(vb)}"
        else:
            ch = f"only in {labels[0] if na else labels[1]}"
        ax.annotate(f" {ch}", xy=(np.nanmax([va, vb, 0.0]) / scale, yi), va="center",
                    fontsize=7.5, color="#333")
    ax.set_xlim(0, (top or 1.0) / scale * 1.6)
    ax.set_xlabel(f"{what} ({unit})" if unit else what)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"{what} per function, largest change first", loc="left", fontsize=10)
    return ax
