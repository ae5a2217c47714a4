"""Plots of packets: one packet's journey across CPUs and tasks, drops over time, callers.

Each returns the matplotlib Axes (matplotlib is imported only when a plot is drawn).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import FtracekitError
from ._plotbase import _new_axes, _unit
from .format import fmt_us

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ..trace import Trace

__all__ = ["plot_journey", "plot_drops", "plot_callers"]

_KIND_COLOR = {"task": "tab:blue", "softirq": "tab:orange", "irq": "tab:red"}


def _fmt_dur(v: float) -> str:
    return fmt_us(v, unit=True)


def plot_journey(trace: "Trace", skb: str | int, gen: int | None = None,
                 ax: "Axes | None" = None, *, label: bool = True) -> "Axes":
    """One packet's steps on a time axis, one lane per CPU and task: calls as bars (their
    duration), events as marks, coloured by context (task, softirq, irq); the largest gap is
    shaded and labelled. ``gen``: which generation of the address (default: the longest)."""
    j = trace.journey(skb, gen=gen)
    if gen is None and j["gen"].nunique() > 1:
        span = j.groupby("gen")["ts_s"].agg(lambda s: s.max() - s.min())
        j = j[j["gen"] == int(span.idxmax())].reset_index(drop=True)
    if j["ts_s"].isna().all():
        raise FtracekitError("this trace has no timestamps: a journey needs them "
                             "(record with funcgraph-abstime)")
    t0 = float(j["ts_s"].min())
    end = j["ts_s"] + j["duration_us"].fillna(0) * 1e-6
    div, unit = _unit(max(float(end.max() - t0) * 1e6, 1.0))
    lanes = pd.unique((j["cpu"].astype(str) + " · " + j["task"].fillna("?").astype(str)).to_numpy())
    lane_of = {name: i for i, name in enumerate(lanes)}
    y = np.array([lane_of[f"{c} · {t if isinstance(t, str) else '?'}"]
                  for c, t in zip(j["cpu"], j["task"])])
    ax = _new_axes(ax, (10, 2.4 + 0.8 * len(lanes)))
    x = (j["ts_s"].to_numpy() - t0) * 1e6 / div
    colors = [_KIND_COLOR.get(c, "grey") for c in j["context"]]
    calls = (j["kind"] == "call").to_numpy()
    if calls.any():
        w = j["duration_us"].fillna(0).to_numpy()[calls] / div
        # nested calls drawn inside their callers: thinner with each level below the lane's top
        ids = j["call"].to_numpy()[calls]
        depth = trace.calls["depth"].reindex(ids).fillna(0).to_numpy(dtype=float)
        rel = depth - pd.Series(depth).groupby(y[calls]).transform("min").to_numpy()
        ax.barh(y[calls], w, left=x[calls], height=0.6 * 0.75 ** rel,
                color=np.array(colors)[calls], alpha=0.55, edgecolor="black", linewidth=0.4)
    ev = ~calls
    if ev.any():
        ax.scatter(x[ev], y[ev], marker="D", s=30, c=np.array(colors)[ev], edgecolors="black",
                   linewidths=0.4, zorder=3)
    if label:
        width = max(float(end.max() - t0) * 1e6 / div, 1e-12)
        for xi, yi, text in _step_labels(x, y, j["name"].astype(str).to_numpy(), 0.04 * width):
            ax.annotate(text, (xi, yi), xytext=(0, 7), textcoords="offset points",
                        rotation=35, fontsize=7, ha="left", va="bottom")
    if j["gap_us"].notna().any():
        i = int(j["gap_us"].idxmax())
        a, b = x[i - 1], x[i]
        ax.axvspan(a, b, color="grey", alpha=0.15, zorder=0)
        ax.annotate(f"gap {_fmt_dur(float(j['gap_us'].iloc[i]))}\n{j['name'].iloc[i - 1]} → "
                    f"{j['name'].iloc[i]}", ((a + b) / 2, len(lanes) - 0.5), ha="center",
                    va="top", fontsize=8)
    ax.set_yticks(range(len(lanes)), list(lanes))
    ax.set_ylim(-0.7, len(lanes) - 0.1 + 0.6)
    ax.invert_yaxis()
    ax.set_xlabel(f"time since the first step ({unit})")
    g = int(j["gen"].iloc[0])
    ax.set_title(f"journey of skb {skb} (generation {g}): {len(j)} steps, "
                 f"{_fmt_dur(float(end.max() - t0) * 1e6)}", pad=45 if label else 6)
    from matplotlib.lines import Line2D

    ax.legend(handles=[Line2D([], [], marker="s", ls="", color=c, label=k)
                       for k, c in _KIND_COLOR.items() if k in set(j["context"])],
              loc="lower right", fontsize=8)
    return ax


def _step_labels(x: np.ndarray, y: np.ndarray, names: np.ndarray, min_dx: float
                 ) -> list[tuple[float, float, str]]:
    """One label per run of steps of a lane closer than ``min_dx`` to the run's first step (x
    units): its name, both names for two steps, else ``first … last (n steps)`` — steps at
    nearly the same time would otherwise write their names over each other."""
    out = []
    for lane in pd.unique(y):
        at = np.flatnonzero(y == lane)
        at = at[np.argsort(x[at], kind="stable")]
        start = 0
        while start < len(at):
            stop = start + 1
            while stop < len(at) and not (x[at[stop]] - x[at[start]] >= min_dx):
                stop += 1
            run = at[start:stop]
            if len(run) == 1:
                text = str(names[run[0]])
            elif len(run) == 2:
                text = f"{names[run[0]]}, {names[run[1]]}"
            else:
                text = f"{names[run[0]]} … {names[run[-1]]} ({len(run)} steps)"
            out.append((float(x[run[0]]), float(lane), text))
            start = stop
    return out


def plot_drops(trace: "Trace", ax: "Axes | None" = None, *, bins: int = 50) -> "Axes":
    """Dropped packets per reason over time (stacked counts per time bin; the time of a drop is
    the packet's last step)."""
    pk = trace.packets(dropped=True)
    ax = _new_axes(ax, (10, 4))
    if not len(pk):
        ax.text(0.5, 0.5, "no dropped packets", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return ax
    t = pk["last_s"].to_numpy(dtype=float)
    if np.isnan(t).all():
        raise FtracekitError("this trace has no timestamps: drops over time need them")
    t0 = float(np.nanmin(t))
    rel = t - t0
    edges = np.linspace(0, max(float(np.nanmax(rel)), 1e-6), bins + 1)
    reasons = pk["reason"].fillna("?").astype(str)
    order = reasons.value_counts().index.tolist()
    bottom = np.zeros(bins)
    for r in order:
        h, _ = np.histogram(rel[(reasons == r).to_numpy()], bins=edges)
        ax.bar(edges[:-1], h, width=np.diff(edges), bottom=bottom, align="edge",
               label=f"{r} ({int(h.sum())})")
        bottom += h
    ax.set_xlabel(f"time since {t0:.6f} s (s)")
    ax.set_ylabel("drops per bin")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{len(pk)} dropped packets by reason")
    ax.legend(fontsize=8)
    return ax


def plot_callers(trace: "Trace", func: str | None = None, event: str | None = None,
                 n: int = 10, ax: "Axes | None" = None) -> "Axes":
    """The ``n`` most frequent call chains that led to ``func`` (or ``event``) as horizontal
    bars of their count, labelled with the chain's last functions and total time."""
    c = trace.callers(func=func, event=event).head(n)
    ax = _new_axes(ax, (10, 1 + 0.45 * len(c)))

    def short(chain: str) -> str:
        parts = chain.split(" > ")
        return ("… > " if len(parts) > 3 else "") + " > ".join(parts[-3:])

    ys = np.arange(len(c))
    ax.barh(ys, c["count"], color="tab:blue", alpha=0.7)
    ax.set_yticks(ys, [short(ch) for ch in c["chain"]], fontsize=8)
    ax.invert_yaxis()
    for yi, (cnt, tot) in enumerate(zip(c["count"], c["total_us"])):
        ax.annotate(f" {cnt}" + ("" if pd.isna(tot) else f", {_fmt_dur(float(tot))}"),
                    (cnt, yi), va="center", fontsize=8)
    ax.set_xlabel("count")
    ax.set_title(f"who called {func or event}: {len(c)} chain(s)")
    return ax
