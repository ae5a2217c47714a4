"""Plots of a :class:`~ftracekit.Trace` (matplotlib, imported only when a plot is drawn).

Every function returns the Axes it drew on (``plot_hist``: the histogram's, with the ECDF Axes
as its ``ecdf_axes``), takes an optional ``ax`` to draw into, and works headless (Agg). Plots
over time use the trace's own clock: x is ``calls.start_s`` in seconds, the numbers
``Trace.filter(start_s=, end_s=)`` takes. Data are aggregated with
numpy/pandas before drawing, so million-call traces plot in about a second.

* :func:`plot_hist` — duration distribution of a function: log-binned histogram + ECDF,
  p50/p99 marked;
* :func:`plot_time` — duration of every call of a function against time (the stall
  finder), slowest calls labelled;
* :func:`plot_timeline` — root calls as bars over time, one row per task (or CPU), coloured
  by function;
* :func:`plot_flame` — icicle chart of one call's tree (width = duration);
* :func:`plot_top` — top functions by self (or total) time (in :mod:`.plot_functions`);
* :func:`plot_compare` — the functions that changed most between two traces, in the order of
  ``Trace.compare`` (in :mod:`.plot_functions`).

``Trace.plot`` is a :class:`TracePlots` with these as methods: ``trace.plot.hist("f")``.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from ..analysis import frame_names
from ..errors import FtracekitError
from ._plotbase import (
    NO_TIME_NOTE, TIME_LABEL, _durations, _log_axis, _new_axes, _plt, _task_label, _task_labels,
    _unit, seconds_axis, time_axis,
)
from .format import US, fmt_count, fmt_s, fmt_us
from .plot_functions import plot_compare, plot_top, trace_labels

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ..trace import Trace

__all__ = ["TracePlots", "plot_hist", "plot_time", "plot_timeline", "plot_flame", "plot_top",
           "plot_compare", "time_axis", "trace_labels", "NO_TIME_NOTE", "TIME_LABEL"]


# ---------------------------------------------------------------------------------------------
# Distribution

def _mark_percentiles(ah: "Axes", axes: Sequence["Axes"], p50: float, p99: float) -> None:
    """p50 and p99 as vertical lines on ``axes``, labelled on ``ah``: the p50 label left of its
    line, the p99 label right of its line (p50 ≤ p99, so the labels never cover each other);
    one label when they are equal."""
    import matplotlib.transforms as mtrans

    trans = mtrans.blended_transform_factory(ah.transData, ah.transAxes)
    box = dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.85)
    same = np.isclose(p50, p99, rtol=1e-9, atol=5e-4)
    marks = [(p50, "p50 = p99" if same else "p50", "--", "right")]
    if not same:
        marks.append((p99, "p99", ":", "left"))
    for v, name, style, side in marks:
        for a in axes:
            a.axvline(v, color="#c44e52", linestyle=style, linewidth=1.2)
        ah.text(v, 0.98, f"{name} {fmt_us(v, unit=True)}", transform=trans, rotation=90,
                ha=side, va="top", fontsize=8, color="#c44e52", bbox=box)


def plot_hist(trace: "Trace", func: str, ax: "Axes | Sequence[Axes] | None" = None, *,
              bins: int = 60, log: bool = True) -> "Axes":
    """Duration distribution of ``func``: a histogram (log-spaced bins on a log axis when
    ``log``) and the ECDF (fraction of calls at most that long; one call is one step), with
    p50 and p99 marked. Calls without a duration are left out (counted in the title).

    ``ax``: None (a new figure, histogram left, ECDF right), two Axes ``(hist, ecdf)`` to draw
    into, or one Axes (the ECDF then shares it, on a right-hand y axis).

    Returns the histogram Axes; the ECDF Axes is its attribute ``ecdf_axes``
    (``ax = trace.plot.hist(f); ax.ecdf_axes``), and both are in ``ax.figure.axes``.
    """
    calls, d = _durations(trace, func)
    ok = np.isfinite(d)
    dd = d[ok]
    if log:
        dd = dd[dd > 0]
    if not len(dd):
        raise FtracekitError(f"{func}: no call with a duration to plot")
    twin = ax is not None and not isinstance(ax, (list, tuple, np.ndarray))
    if ax is None:
        fig, (ah, ae) = _plt().subplots(1, 2, figsize=(11, 4), layout="constrained")
    elif twin:
        ah, ae = ax, ax.twinx()
    else:
        ah, ae = ax
    p50, p99 = np.percentile(dd, [50, 99])
    bins = int(np.clip(2 * np.sqrt(len(dd)), 10, bins))     # few calls: few, wider bins
    dmin, dmax = float(dd.min()), float(dd.max())             # the data, for the title
    lo, hi = dmin, dmax                                       # the axis (widened below)
    if hi <= lo:         # every call as long as the other: one bar centred on that duration
        v = lo
        if log:
            edges = np.array([v / 1.08, v * 1.08])
            lo, hi = v / 1.5, v * 1.5
        else:
            w = max(abs(v) * 0.08, 0.5)
            edges = np.array([v - w, v + w])
            lo, hi = v - 6 * w, v + 6 * w
    elif log:
        edges = np.geomspace(lo, hi, bins + 1)
    else:
        edges = np.linspace(lo, hi, bins + 1)
    counts, edges = np.histogram(dd, bins=edges)
    ah.stairs(counts, edges, fill=True, color="#4c72b0", alpha=0.85)
    # room on both sides: the first and last steps of the ECDF and the labels stay visible
    if log:
        f = max((hi / lo) ** 0.05, 1.08)
        lo, hi = lo / f, hi * f
    else:
        pad = 0.05 * (hi - lo)
        lo, hi = lo - pad, hi + pad
    # the ECDF: 0 left of the shortest call, a step of 1/n at each call, 1 from the longest on
    xs = np.sort(dd)
    if len(xs) > 4000:   # the ECDF at 4000 quantiles looks the same and draws fast
        q = np.linspace(0, 1, 4001)[1:]
        xs, ys = np.quantile(dd, q), q
    else:
        ys = np.arange(1, len(xs) + 1) / len(xs)
    ae.step(np.concatenate(([lo], xs, [hi])), np.concatenate(([0.0], ys, [1.0])),
            where="post", color="#4c72b0")
    if len(xs) <= 50:    # few calls: each one visible as a point on its step
        ae.plot(xs, ys, linestyle="none", marker="o", markersize=3.5, color="#4c72b0")
    for a in (ah, ae):
        if log:
            _log_axis(a.xaxis, lo, hi)
        a.set_xlim(lo, hi)
        a.set_xlabel(f"duration ({US})")
        a.grid(True, which="major", alpha=0.3)
    _mark_percentiles(ah, (ah,) if twin else (ah, ae), p50, p99)
    ah.set_ylabel("calls")
    from matplotlib.ticker import MaxNLocator

    ah.yaxis.set_major_locator(MaxNLocator(integer=True))
    ae.set_ylabel("fraction of calls ≤ duration")
    ae.set_ylim(0, 1.02)
    n_missing = int((~ok).sum())
    extra = f", {fmt_count(n_missing)} without duration" if n_missing else ""
    ah.set_title(f"{func}: {fmt_count(len(dd))} call{'' if len(dd) == 1 else 's'}{extra}",
                 loc="left", fontsize=10)
    stats = (f"p50 {fmt_us(p50, unit=True)}, p99 {fmt_us(p99, unit=True)}, "
             f"max {fmt_us(dmax, unit=True)}")
    if twin:                                                    # one Axes: one title
        ah.set_title(f"{func}: {fmt_count(len(dd))} call{'' if len(dd) == 1 else 's'}{extra}; "
                     f"{stats}", loc="left", fontsize=10)
    else:
        ae.set_title(f"ECDF  ({stats})", loc="left", fontsize=10)
    ah.ecdf_axes = ae
    return ah


# ---------------------------------------------------------------------------------------------
# Durations over time

def plot_time(trace: "Trace", func: str, ax: "Axes | None" = None, *, label: int = 5,
              log: bool = True) -> "Axes":
    """Duration of every call of ``func`` against its start time — seconds on the trace's
    clock, the numbers of ``calls.start_s`` that ``Trace.filter(start_s=, end_s=)`` takes (line
    number when the trace has no timestamps) — the ``label`` slowest calls annotated with
    their call number, task and duration. Points are drawn in one vectorised call."""
    calls, d = _durations(trace, func)
    x, xlabel = time_axis(trace, calls)
    ok = np.isfinite(d) & np.isfinite(x)
    if not ok.any():
        raise FtracekitError(f"{func}: no call with a duration to plot")
    ax = _new_axes(ax, (11, 4.2))
    xs, ys = x[ok], d[ok]
    big = len(xs) > 20000
    ax.plot(xs, ys, linestyle="none", marker="." if not big else ",", markersize=4,
            color="#4c72b0", alpha=0.6 if big else 0.8, rasterized=big)
    if log and (ys > 0).all():
        _log_axis(ax.yaxis, float(ys.min()), float(ys.max()))
    ax.set_xlabel(xlabel)
    if trace.has_times:
        seconds_axis(ax.xaxis)
    ax.set_ylabel(f"{func} duration ({US})")
    ax.grid(True, alpha=0.3)
    n = int(ok.sum())
    ax.set_title(f"{func}: {fmt_count(n)} call{'' if n == 1 else 's'} over time; slowest "
                 "labelled", loc="left", fontsize=10)
    if label:
        sub = calls[ok]
        top = np.argsort(-ys, kind="stable")[:label]
        # label outliers only: calls slower than the median (all of them if none is)
        slow = top[ys[top] > np.median(ys)]
        top = slow if len(slow) else top[:1]
        ax.plot(xs[top], ys[top], linestyle="none", marker="o", markersize=6,
                markerfacecolor="none", markeredgecolor="#c44e52")
        xmid = np.nanmedian(xs) if len(xs) else 0
        texts = []
        order = top[np.argsort(xs[top], kind="stable")]
        labels = _task_labels(trace, sub.iloc[order])
        for i, task in zip(order, labels):
            text = f"#{sub.index[int(i)]} {task} {fmt_us(ys[i], unit=True)}"
            right = xs[i] <= xmid if len(top) > 1 else True
            texts.append(ax.annotate(
                text, xy=(xs[i], ys[i]), xytext=(10 if right else -10, 12),
                textcoords="offset points", fontsize=8, color="#8c2d2f",
                ha="left" if right else "right", va="center",
                arrowprops=dict(arrowstyle="-", color="#c44e52", lw=0.6)))
        ymax = ys.max()
        if ax.get_yscale() == "log":
            ax.set_ylim(top=ymax * 3)
        else:
            ax.set_ylim(top=ymax * 1.15)
        _declutter(ax, texts)
    return ax


def _declutter(ax: "Axes", texts: list[Any]) -> None:
    """Move annotation labels up/down (in steps of their height) until none overlaps another
    (a handful of labels: a small loop over labels, not over calls)."""
    if len(texts) < 2:
        return
    from matplotlib.text import Text

    fig = ax.figure
    fig.canvas.draw()          # settle the layout first: positions below are final pixels
    renderer = fig.canvas.get_renderer()

    def box(t: Any) -> Any:    # the text alone, not its arrow
        return Text.get_window_extent(t, renderer).expanded(1.0, 1.15)

    placed: list[Any] = []
    for t in sorted(texts, key=lambda a: -a.xy[1]):
        bb = box(t)
        step = (bb.height + 2) * 72 / fig.dpi
        x0, y0 = t.xyann
        for k in range(1, 16):
            if not any(bb.overlaps(p) for p in placed):
                break
            dy = step * ((k + 1) // 2) * (1 if k % 2 else -1)
            t.xyann = (x0, y0 + dy)
            bb = box(t)
        placed.append(bb)


# ---------------------------------------------------------------------------------------------
# Timeline

def _func_colors(names: Sequence[str], n_named: int = 9) -> tuple[dict[str, Any], list[str]]:
    """Colour per function: the first ``n_named`` get tab10 colours, the rest grey."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    named = list(names[:n_named])
    colors = {f: cmap(i if i < 7 else i + 1) for i, f in enumerate(named)}   # skip grey (7)
    return colors, named


def _merge_bars(row: np.ndarray, key: np.ndarray, start: np.ndarray, end: np.ndarray,
                gap: float) -> pd.DataFrame:
    """Merge bars of the same (row, key) closer than ``gap`` into one (vectorised)."""
    df = pd.DataFrame({"row": row, "key": key, "start": start, "end": end})
    df = df.sort_values(["row", "key", "start"], kind="stable")
    prev_end = df.groupby(["row", "key"], sort=False)["end"].cummax().groupby(
        [df["row"], df["key"]], sort=False).shift(1)
    new = ~(df["start"] <= prev_end + gap)
    df["grp"] = new.cumsum()
    return df.groupby("grp", sort=False).agg(row=("row", "first"), key=("key", "first"),
                                             start=("start", "min"), end=("end", "max"))


def plot_timeline(trace: "Trace", ax: "Axes | None" = None, *, by: str = "task",
                  func: str | None = None, max_rows: int = 30, colors: int = 9) -> "Axes":
    """Root calls as horizontal bars over time, one row per task (``by="task"``) or CPU
    (``by="cpu"``), coloured by function (the ``colors`` busiest functions; the rest grey).

    ``func``: only root calls of that function. Rows: the ``max_rows`` busiest. Without
    timestamps the x axis is the line number (a root call spans from its line to its last
    descendant's). x: seconds on the trace's clock, as in ``calls.start_s`` and
    ``Trace.filter(start_s=, end_s=)``. Bars closer than 1/2000 of the span are merged before
    drawing.
    """
    if by not in ("task", "cpu"):
        raise FtracekitError(f"cannot group the timeline by {by!r}; use 'task' or 'cpu'")
    c = trace.calls
    roots = trace.roots(func) if func is not None else trace.roots()
    if not len(roots):
        raise FtracekitError("no root calls to draw")
    x0, xlabel = time_axis(trace, roots)
    if trace.has_times:
        end_s = roots["end_s"].to_numpy(dtype=float, na_value=np.nan)
        d = roots["duration_us"].to_numpy(dtype=float, na_value=np.nan) / 1e6
        # no exit: until the last thing that started in the call's subtree
        last = c.groupby("root", observed=True)["start_s"].max()
        sub_last = last.reindex(roots.index).to_numpy(dtype=float)
        x1 = np.where(np.isfinite(d), x0 + d, np.where(np.isfinite(end_s), end_s, sub_last))
    else:
        last_line = c.groupby("root", observed=True)["line"].max()
        x1 = last_line.reindex(roots.index).to_numpy(dtype=float) + 1
    x1 = np.where(np.isfinite(x1), np.maximum(x1, x0), x0)
    ok = np.isfinite(x0)
    roots, x0, x1 = roots[ok], x0[ok], x1[ok]

    if by == "task":
        key = roots["pid"].astype(np.int64).to_numpy()
        cpu_k = np.where(key > 0, -1, roots["cpu"].to_numpy())   # pid 0 / unknown: per CPU
        rowkey = pd.MultiIndex.from_arrays([key, cpu_k])
        labels_src = roots[["comm", "pid", "cpu"]]
    else:
        rowkey = pd.Index(roots["cpu"].to_numpy())
    row_codes, row_uniq = pd.factorize(rowkey)
    busy = pd.Series(x1 - x0).groupby(row_codes).sum().sort_values(ascending=False)
    keep_rows = busy.index[:max_rows].to_numpy()
    dropped = len(busy) - len(keep_rows)
    # rows in order of first appearance among the kept ones
    first = pd.Series(np.arange(len(row_codes))).groupby(row_codes).min()
    keep_rows = first.loc[keep_rows].sort_values().index.to_numpy()
    row_pos = np.full(len(row_uniq), -1)
    row_pos[keep_rows] = np.arange(len(keep_rows))
    rp = row_pos[row_codes]
    sel = rp >= 0

    funcs = frame_names(roots, module=False).astype(str)
    busy_f = pd.Series(x1 - x0).groupby(funcs).sum().sort_values(ascending=False)
    color_of, named = _func_colors(list(busy_f.index), colors)
    fkey = np.where(np.isin(funcs, named), funcs, "other")

    span = float(np.nanmax(x1[sel]) - np.nanmin(x0[sel])) or 1.0
    bars = _merge_bars(rp[sel], fkey[sel], x0[sel], x1[sel], gap=span / 2000)
    # keep tiny bars visible: at least ~1.5 px wide on a 900 px axis
    bars["end"] = np.maximum(bars["end"], bars["start"] + span / 600)

    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Patch

    ax = _new_axes(ax, (11, 1.2 + 0.32 * max(len(keep_rows), 3)))
    h = 0.8
    handles = []
    for k in list(named) + ["other"]:
        b = bars[bars["key"] == k]
        if not len(b):
            continue
        xs0, xs1 = b["start"].to_numpy(), b["end"].to_numpy()
        y0 = b["row"].to_numpy() - h / 2
        verts = np.stack([np.column_stack([xs0, y0]), np.column_stack([xs0, y0 + h]),
                          np.column_stack([xs1, y0 + h]), np.column_stack([xs1, y0])], axis=1)
        col = color_of.get(k, (0.6, 0.6, 0.6, 1.0))
        ax.add_collection(PolyCollection(verts, facecolors=[col], edgecolors=[col],
                                         linewidths=0.3))
        handles.append(Patch(color=col, label=k))
    ax.set_xlim(np.nanmin(x0[sel]) - span * 0.01, np.nanmax(x1[sel]) + span * 0.01)
    ax.set_ylim(len(keep_rows) - 0.5, -0.5)
    ax.set_yticks(np.arange(len(keep_rows)))
    if by == "task":
        lab = []
        for r in keep_rows:
            i = int(np.flatnonzero(row_codes == r)[0])
            row = labels_src.iloc[i]
            pid = int(row["pid"])
            base = _task_label(row["comm"], pid, int(row["cpu"]))
            lab.append(base if pid != 0 else f"{base} (cpu {int(row['cpu'])})")
    else:
        lab = [f"CPU {int(row_uniq[r])}" if int(row_uniq[r]) >= 0 else "CPU ?" for r in keep_rows]
    ax.set_yticklabels(lab, fontsize=8)
    ax.set_xlabel(xlabel)
    if trace.has_times:
        seconds_axis(ax.xaxis)
    ax.grid(True, axis="x", alpha=0.3)
    what = f"root calls of {func}" if func else "root calls"
    more = f" ({dropped} quieter {by}s not shown)" if dropped else ""
    ax.set_title(f"{what} per {by}{more}", loc="left", fontsize=10)
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0),
              frameon=False, title="function", title_fontsize=8)
    return ax


# ---------------------------------------------------------------------------------------------
# Flame / icicle

def _flame_color(name: str) -> tuple[float, float, float]:
    """Warm FlameGraph-like colour, stable per function name."""
    h = zlib.crc32(name.encode())
    r = 205 + (h & 0x31)
    g = 80 + ((h >> 8) % 140)
    b = 30 + ((h >> 16) % 50)
    return (min(r, 255) / 255, g / 255, b / 255)


def plot_flame(trace: "Trace", call: int, ax: "Axes | None" = None, *,
               max_depth: int | None = None, min_frac: float = 0.001,
               clock: str = "auto") -> "Axes":
    """Icicle chart of ``call``'s tree: the call on top, each child below its parent, width =
    duration. With timestamps the children sit at their real start (``clock="abstime"``);
    without, they are packed from the parent's start so the parent's self time is the gap at
    its right (``"synthetic"``). Calls narrower than ``min_frac`` of the top call are not
    drawn; names are written where they fit. x axis: µs (ms/s for long calls) since the call
    started."""
    from ._layout import layout

    trace._check_call(call)
    sub = trace.subtree(call)
    lay = layout(sub, clock=clock)
    # the row is the depth below the call; an interrupt attached more than one level below
    # its parent (laid out inside the sibling it interrupted) keeps its printed depth
    lvl = np.maximum(lay["gen"].to_numpy(), sub["depth"].to_numpy() - int(sub.loc[call, "depth"]))
    top_dur = float(lay.loc[call, "dur_us"]) or 1.0
    t0 = float(lay.loc[call, "ts_us"])
    keep = lay["dur_us"].to_numpy() >= min_frac * top_dur
    if max_depth is not None:
        keep &= lvl <= max_depth
    scale, unit = _unit(top_dur)
    x = (lay["ts_us"].to_numpy() - t0) / scale
    w = lay["dur_us"].to_numpy() / scale
    names = frame_names(sub, module=False)
    x, w, lv, names = x[keep], w[keep], lvl[keep], names[keep]
    n_levels = int(lv.max()) + 1 if len(lv) else 1

    from matplotlib.collections import PolyCollection

    ax = _new_axes(ax, (12, 1.0 + 0.28 * max(n_levels, 4)))
    h = 0.92
    y0 = lv - h / 2
    verts = np.stack([np.column_stack([x, y0]), np.column_stack([x, y0 + h]),
                      np.column_stack([x + w, y0 + h]), np.column_stack([x + w, y0])], axis=1)
    uniq, inv = np.unique(names, return_inverse=True)
    palette = np.array([_flame_color(u) for u in uniq])
    ax.add_collection(PolyCollection(verts, facecolors=palette[inv], edgecolors="white",
                                     linewidths=np.where(w > top_dur / scale / 500, 0.4, 0.0)))
    ax.set_xlim(0, top_dur / scale)
    ax.set_ylim(n_levels - 0.5, -0.5)
    ax.set_yticks([])
    ax.set_xlabel(f"time since the call started ({unit})"
                  + ("" if lay.attrs["clock"] == "abstime" else
                     " — children packed left, self time on the right"))
    for s in ("left", "right", "top"):
        ax.spines[s].set_visible(False)
    r = sub.loc[call]
    when = (f", from {fmt_s(r['start_s'])} s (trace clock)"
            if r["start_s"] == r["start_s"] else "")
    ax.set_title(f"call {call}: {r['func']} ({fmt_us(float(r['duration_us']), unit=True)}), task "
                 f"{_task_labels(trace, sub.loc[[call]])[0]}{when}; width = duration",
                 loc="left", fontsize=10)
    # labels where they fit: estimate character width from the axes size in pixels
    fig = ax.figure
    fig.canvas.draw_idle()
    bbox = ax.get_window_extent()
    px_per_unit = bbox.width / (top_dur / scale)
    char_px = 6.2 * fig.dpi / 100 * (8 / 8)
    room = (w * px_per_unit - 6) / char_px
    can = room >= 3
    for xi, wi, li, nm, rm in zip(x[can], w[can], lv[can], names[can], room[can]):
        # one text per labelled box; boxes too narrow for 3 characters get none
        text = nm if len(nm) <= rm else nm[: max(int(rm) - 1, 2)] + "…"
        ax.text(xi + wi / 2, li, text, ha="center", va="center", fontsize=8, clip_on=True)
    return ax


# ---------------------------------------------------------------------------------------------

class TracePlots:
    """``Trace.plot``: the plots of one trace as methods (see the module functions)."""

    def __init__(self, trace: "Trace"):
        self._trace = trace

    def __repr__(self) -> str:
        return ("<plots: hist(func), time(func), timeline(), flame(call), top(), compare(other), "
                "journey(skb), drops(), callers(func)>")

    def hist(self, func: str, ax: Any = None, **kw: Any) -> "Axes":
        """:func:`plot_hist`: the histogram Axes; the ECDF is ``.ecdf_axes`` of it."""
        return plot_hist(self._trace, func, ax, **kw)

    def time(self, func: str, ax: "Axes | None" = None, **kw: Any) -> "Axes":
        """:func:`plot_time`"""
        return plot_time(self._trace, func, ax, **kw)

    def timeline(self, ax: "Axes | None" = None, **kw: Any) -> "Axes":
        """:func:`plot_timeline`"""
        return plot_timeline(self._trace, ax, **kw)

    def flame(self, call: int, ax: "Axes | None" = None, **kw: Any) -> "Axes":
        """:func:`plot_flame`"""
        return plot_flame(self._trace, call, ax, **kw)

    def top(self, n: int = 20, ax: "Axes | None" = None, **kw: Any) -> "Axes":
        """:func:`plot_top`"""
        return plot_top(self._trace, n, ax, **kw)

    def compare(self, other: "Trace", n: int = 20, ax: "Axes | None" = None, **kw: Any) -> "Axes":
        """:func:`plot_compare` (this trace as ``a``; ``labels=(a, b)`` names them)"""
        return plot_compare(self._trace, other, n, ax, **kw)

    def dump(self, dump: int, ax: "Axes | None" = None) -> "Axes":
        """A netlink dump's rounds over time (:func:`ftracekit.show.plot_netlink.plot_dump`)."""
        from .plot_netlink import plot_dump

        return plot_dump(self._trace, dump, ax)

    # -- packets (issue 11): :mod:`ftracekit.show.plot_net`
    def journey(self, skb: str | int, gen: int | None = None, ax: "Axes | None" = None,
                **kw: Any) -> "Axes":
        """:func:`ftracekit.show.plot_net.plot_journey`"""
        from .plot_net import plot_journey

        return plot_journey(self._trace, skb, gen, ax, **kw)

    def drops(self, ax: "Axes | None" = None, **kw: Any) -> "Axes":
        """:func:`ftracekit.show.plot_net.plot_drops`"""
        from .plot_net import plot_drops

        return plot_drops(self._trace, ax, **kw)

    def callers(self, func: str | None = None, event: str | None = None, n: int = 10,
                ax: "Axes | None" = None) -> "Axes":
        """:func:`ftracekit.show.plot_net.plot_callers`"""
        from .plot_net import plot_callers

        return plot_callers(self._trace, func, event, n, ax)
