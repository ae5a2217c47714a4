"""What the plots share: lazy matplotlib, new Axes, units and log axes, task labels, the time
axis. Private to :mod:`ftracekit.show` (see :mod:`.plot` for the plots).

The time axis is the trace's own clock: a call's x is its ``start_s`` — the seconds the trace
prints, that ``events.ts_s`` holds and that ``Trace.filter(start_s=, end_s=)`` and the CLI's
``--from``/``--to`` take — so a window read off a plot selects the same calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ..trace import Trace

NO_TIME_NOTE = "no timestamps: record with funcgraph-abstime"
#: x label of every plot over time: absolute seconds of the trace's clock.
TIME_LABEL = "time (s, trace clock)"


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
    """x values for ``calls`` and the axis label: each call's start in seconds on the trace's
    clock (``start_s``; for a call without an entry, its exit time minus its duration), or —
    when the trace has no timestamps — its line number, with the label saying which."""
    if trace.has_times:
        st = calls["start_s"].to_numpy(dtype=float, na_value=np.nan)
        # calls without an entry have only their exit time
        alt = (calls["end_s"].to_numpy(dtype=float, na_value=np.nan)
               - calls["duration_us"].to_numpy(dtype=float, na_value=np.nan) / 1e6)
        return np.where(np.isfinite(st), st, alt), TIME_LABEL
    return calls["line"].to_numpy(dtype=float), f"line number in the trace ({NO_TIME_NOTE})"


def seconds_axis(axis: Any) -> None:
    """Tick labels in plain seconds of the trace clock (``56.6665``, no ``+5.6e1`` offset),
    so the numbers can be typed into ``filter(start_s=, end_s=)``."""
    from matplotlib.ticker import ScalarFormatter

    fmt = ScalarFormatter(useOffset=False)
    fmt.set_scientific(False)
    axis.set_major_formatter(fmt)
