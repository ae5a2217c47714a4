"""Plots of a :class:`~ftracekit.Trace` (matplotlib, imported only when a plot is drawn).

Every function returns the Axes it drew on (``plot_hist``: the histogram and the ECDF Axes),
takes an optional ``ax`` to draw into, and works headless (Agg). Data are aggregated with
numpy/pandas before drawing, so million-call traces plot in about a second.

* :func:`plot_hist` — duration distribution of a function: log-binned histogram + ECDF,
  p50/p99 marked;
* :func:`plot_time` — duration of every call of a function against time (the stall
  finder), slowest calls labelled;
* :func:`plot_timeline` — root calls as bars over time, one row per task (or CPU), coloured
  by function;
* :func:`plot_flame` — icicle chart of one call's tree (width = duration);
* :func:`plot_top` — top functions by self (or total) time;
* :func:`plot_compare` — the same functions in two traces side by side.

``Trace.plot`` is a :class:`TracePlots` with these as methods: ``trace.plot.hist("f")``.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from ..analysis import frame_names
from ..errors import FtracekitError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ..trace import Trace

__all__ = ["TracePlots", "plot_hist", "plot_time", "plot_timeline", "plot_flame", "plot_top",
           "plot_compare", "time_axis"]

NO_TIME_NOTE = "no timestamps: record with funcgraph-abstime"


def _plt() -> Any:
    import matplotlib.pyplot as plt

    return plt


def _new_axes(ax: "Axes | None", figsize: tuple[float, float]) -> "Axes":
    if ax is not None:
        return ax
    fig, ax = _plt().subplots(figsize=figsize, layout="constrained")
    return ax


def _unit(max_us: float) -> tuple[float, str]:
    """Divisor and unit name to show ``max_us`` with a readable number."""
    if max_us >= 2e6:
        return 1e6, "s"
    if max_us >= 2e3:
        return 1e3, "ms"
    return 1.0, "µs"


def _fmt_us(v: float) -> str:
    if v != v:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.3g} s"
    if v >= 1e3:
        return f"{v / 1e3:.3g} ms"
    return f"{v:.3g} µs"


def _task_label(comm: Any, pid: int, cpu: int | None = None) -> str:
    """``comm-pid``; ``cpu N`` when the trace does not say which task (no funcgraph-proc)."""
    if pid < 0:
        return f"cpu {cpu}" if cpu is not None and cpu >= 0 else "unknown task"
    comm = comm if isinstance(comm, str) else "?"
    return f"{comm}-{pid}"


def _short_num(v: float, _pos: Any = None) -> str:
    """Tick label without powers of ten: 0.5, 3, 20, 1k, 2.5k, 1M."""
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def _log_axis(axis: Any, lo: float, hi: float) -> None:
    """Log scale with plain tick labels; minor labels (2, 5) only on short ranges."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.axes.set_xscale("log") if axis is axis.axes.xaxis else axis.axes.set_yscale("log")
    axis.set_major_formatter(FuncFormatter(_short_num))
    if hi / max(lo, 1e-12) < 30:
        axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        axis.set_minor_formatter(FuncFormatter(_short_num))
    else:
        axis.set_minor_formatter(NullFormatter())


def _task_labels(trace: "Trace", calls: pd.DataFrame) -> list[str]:
    """Task of each of ``calls``, named as in the whole trace (the first comm printed for
    that task other than ``<...>``); ``cpu N`` when the trace has no task column."""
    from ..analysis import task_names

    c = trace.calls
    pids = calls["pid"].to_numpy()
    mine = c[np.isin(c["pid"].to_numpy(), np.unique(pids))]
    names = pd.Series(task_names(mine["pid"].to_numpy(), mine["cpu"].to_numpy(), mine["comm"]),
                      index=mine.index)
    out = []
    for call, pid, cpu in zip(calls.index, pids, calls["cpu"].to_numpy()):   # labels only
        out.append(f"cpu {cpu}" if pid < 0 else str(names.get(call, f"?-{pid}")))
    return out


def _durations(trace: "Trace", func: str) -> tuple[pd.DataFrame, np.ndarray]:
    calls = trace.calls_of(func)
    d = calls["duration_us"].to_numpy(dtype=float, na_value=np.nan)
    return calls, d


def time_axis(trace: "Trace", calls: pd.DataFrame) -> tuple[np.ndarray, str]:
    """x values for ``calls``: seconds since the trace's first timestamp, or — when the trace
    has none — the line number, with the axis label saying which."""
    if trace.has_times:
        c = trace.calls
        t0 = np.nanmin(c["start_s"].to_numpy(dtype=float, na_value=np.nan))
        if not np.isfinite(t0):
            t0 = np.nanmin(c["end_s"].to_numpy(dtype=float, na_value=np.nan))
        st = calls["start_s"].to_numpy(dtype=float, na_value=np.nan)
        # calls without an entry have only their exit time
        alt = (calls["end_s"].to_numpy(dtype=float, na_value=np.nan)
               - calls["duration_us"].to_numpy(dtype=float, na_value=np.nan) / 1e6)
        x = np.where(np.isfinite(st), st, alt) - t0
        span = float(np.nanmax(c["end_s"].to_numpy(dtype=float, na_value=np.nan)) - t0) \
            if c["end_s"].notna().any() else float(np.nanmax(x, initial=0.0))
        if span < 2.0:
            return x * 1e3, "time since trace start (ms)"
        return x, "time since trace start (s)"
    return calls["line"].to_numpy(dtype=float), f"line number in the trace ({NO_TIME_NOTE})"


# ---------------------------------------------------------------------------------------------
# Distribution

def plot_hist(trace: "Trace", func: str, ax: "Sequence[Axes] | None" = None, *, bins: int = 60,
              log: bool = True) -> tuple["Axes", "Axes"]:
    """Duration distribution of ``func``: histogram (log-spaced bins on a log axis when
    ``log``) and ECDF side by side, with p50 and p99 marked. ``ax``: two Axes to draw into.
    Returns ``(hist_ax, ecdf_ax)``. Calls without a duration are left out (counted in the
    title)."""
    calls, d = _durations(trace, func)
    ok = np.isfinite(d)
    dd = d[ok]
    if log:
        dd = dd[dd > 0]
    if not len(dd):
        raise FtracekitError(f"{func}: no call with a duration to plot")
    if ax is None:
        fig, (ah, ae) = _plt().subplots(1, 2, figsize=(11, 4), layout="constrained")
    else:
        ah, ae = ax
    p50, p99 = np.percentile(dd, [50, 99])
    bins = int(np.clip(2 * np.sqrt(len(dd)), 10, bins))     # few calls: few, wider bins
    lo, hi = float(dd.min()), float(dd.max())
    if log:
        if hi <= lo:
            lo, hi = lo / 1.5, hi * 1.5
        edges = np.geomspace(lo, hi, bins + 1)
    else:
        edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    counts, edges = np.histogram(dd, bins=edges)
    ah.stairs(counts, edges, fill=True, color="#4c72b0", alpha=0.85)
    ae_x = np.sort(dd)
    if len(ae_x) > 4000:   # the ECDF at 4000 quantiles looks the same and draws fast
        q = np.linspace(0, 1, 4000)
        ae_x, ae_y = np.quantile(dd, q), q
    else:
        ae_y = np.arange(1, len(ae_x) + 1) / len(ae_x)
    ae.step(ae_x, ae_y, where="post", color="#4c72b0")
    for a in (ah, ae):
        if log:
            _log_axis(a.xaxis, lo, hi)
        a.set_xlabel("duration (µs)")
        a.grid(True, which="major", alpha=0.3)
    import matplotlib.transforms as mtrans

    trans = mtrans.blended_transform_factory(ah.transData, ah.transAxes)
    for v, name, style in ((p50, "p50", "--"), (p99, "p99", ":")):
        for a in (ah, ae):
            a.axvline(v, color="#c44e52", linestyle=style, linewidth=1.2)
        ah.text(v, 0.98, f"{name} {_fmt_us(v)}", transform=trans, rotation=90, ha="right",
                va="top", fontsize=8, color="#c44e52",
                bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.85))
    ah.set_ylabel("calls")
    from matplotlib.ticker import MaxNLocator

    ah.yaxis.set_major_locator(MaxNLocator(integer=True))
    ae.set_ylabel("fraction of calls ≤ duration")
    ae.set_ylim(0, 1.02)
    n_missing = int((~ok).sum())
    extra = f", {n_missing} without duration" if n_missing else ""
    ah.set_title(f"{func}: {len(dd):,} calls{extra}", loc="left", fontsize=10)
    ae.set_title(f"ECDF  (p50 {_fmt_us(p50)}, p99 {_fmt_us(p99)}, max {_fmt_us(hi)})",
                 loc="left", fontsize=10)
    return ah, ae


# ---------------------------------------------------------------------------------------------
# Durations over time

def plot_time(trace: "Trace", func: str, ax: "Axes | None" = None, *, label: int = 5,
              log: bool = True) -> "Axes":
    """Duration of every call of ``func`` against its start time (seconds since the trace
    started; line number when the trace has no timestamps), the ``label`` slowest calls
    annotated with their call number and task. Points are drawn in one vectorised call."""
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
    ax.set_ylabel(f"{func} duration (µs)")
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{func}: {int(ok.sum()):,} calls over time; slowest labelled", loc="left",
                 fontsize=10)
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
            text = f"#{sub.index[int(i)]} {task} {_fmt_us(ys[i])}"
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
    descendant's). Bars closer than 1/2000 of the span are merged before drawing.
    """
    if by not in ("task", "cpu"):
        raise FtracekitError(f"cannot group the timeline by {by!r}; use 'task' or 'cpu'")
    c = trace.calls
    roots = trace.roots(func) if func is not None else trace.roots()
    if not len(roots):
        raise FtracekitError("no root calls to draw")
    x0, xlabel = time_axis(trace, roots)
    if trace.has_times:
        k = 1e3 if "(ms)" in xlabel else 1.0          # x unit per second
        end_s = roots["end_s"].to_numpy(dtype=float, na_value=np.nan)
        t0 = np.nanmin(c["start_s"].to_numpy(dtype=float, na_value=np.nan))
        d = roots["duration_us"].to_numpy(dtype=float, na_value=np.nan) / 1e6 * k
        # no exit: until the last thing that started in the call's subtree
        last = c.groupby("root", observed=True)["start_s"].max()
        sub_last = (last.reindex(roots.index).to_numpy(dtype=float) - t0) * k
        x1 = np.where(np.isfinite(d), x0 + d,
                      np.where(np.isfinite(end_s), (end_s - t0) * k, sub_last))
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
    ax.set_title(f"call {call}: {r['func']} ({_fmt_us(float(r['duration_us']))}), task "
                 f"{_task_labels(trace, sub.loc[[call]])[0]}; width = duration",
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
# Top functions, comparison

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
        share = f"  {100 * v / all_self:.1f}%" if by == "self" and all_self > 0 else ""
        ax.annotate(f" {_fmt_us(v)}{share}  ×{int(cnt):,}", xy=(v / scale, yi),
                    va="center", fontsize=7.5, color="#333")
    ax.set_xlim(0, vals.max() / scale * 1.35)
    ax.set_title(f"top {len(t)} functions by {by} time", loc="left", fontsize=10)
    return ax


def plot_compare(a: "Trace", b: "Trace", n: int = 20, ax: "Axes | None" = None, *,
                 by: str = "self", labels: tuple[str, str] = ("a", "b")) -> "Axes":
    """The ``n`` functions with the most ``by`` time (``self``/``total``) in either trace, as
    pairs of bars (``a`` above ``b``), each pair annotated with the change from a to b."""
    col = {"self": "self_us", "total": "total_us"}.get(by)
    if col is None:
        raise FtracekitError(f"cannot compare by {by!r}; use 'self' or 'total'")
    ta = a.top(None, by=by)[col]
    tb = b.top(None, by=by)[col]
    both = pd.concat([ta.rename("a"), tb.rename("b")], axis=1).fillna(0.0)
    if not len(both):
        raise FtracekitError("no calls in either trace")
    both = both.loc[both.max(axis=1).sort_values(ascending=False, kind="stable").index[:n]]
    scale, unit = _unit(float(both.to_numpy().max()))
    ax = _new_axes(ax, (10, 1.0 + 0.42 * len(both)))
    y = np.arange(len(both))
    hb = 0.4
    ax.barh(y - hb / 2, both["a"] / scale, height=hb, color="#4c72b0", label=labels[0])
    ax.barh(y + hb / 2, both["b"] / scale, height=hb, color="#dd8452", label=labels[1])
    ax.set_yticks(y)
    ax.set_yticklabels(list(both.index), fontsize=8)
    ax.invert_yaxis()
    for yi, va, vb in zip(y, both["a"].to_numpy(), both["b"].to_numpy()):
        if va > 0 and vb > 0:
            ch = f"{100 * (vb - va) / va:+.0f}%"
        else:
            ch = f"only in {labels[0] if va > 0 else labels[1]}"
        ax.annotate(f" {ch}", xy=(max(va, vb) / scale, yi), va="center", fontsize=7.5,
                    color="#333")
    ax.set_xlim(0, float(both.to_numpy().max()) / scale * 1.18)
    ax.set_xlabel(f"{by} time ({unit})")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"{by} time per function: {labels[0]} vs {labels[1]}", loc="left", fontsize=10)
    return ax


# ---------------------------------------------------------------------------------------------

class TracePlots:
    """``Trace.plot``: the plots of one trace as methods (see the module functions)."""

    def __init__(self, trace: "Trace"):
        self._trace = trace

    def __repr__(self) -> str:
        return ("<plots: hist(func), time(func), timeline(), flame(call), top(), compare(other), "
                "journey(skb), drops(), callers(func)>")

    def hist(self, func: str, ax: Any = None, **kw: Any) -> tuple["Axes", "Axes"]:
        """:func:`plot_hist`"""
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
        """:func:`plot_compare` (this trace as ``a``)"""
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
