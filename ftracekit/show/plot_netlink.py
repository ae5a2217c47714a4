"""The netlink dump plot: one dump as a timeline of its rounds (``trace.plot.dump(seq)``).

Rounds are bars on the time axis (width = the ``netlink_dump`` call's duration, the kernel
time; the number of messages written on each), the gaps between them split into the reader's
``netlink_recvmsg`` copying the last round out and user space, the request and ``NLMSG_DONE``
marked. Times are relative to the request, in ms or µs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .format import fmt_us

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ..trace import Trace

__all__ = ["plot_dump"]


def plot_dump(trace: "Trace", dump: int, ax: "Axes | None" = None) -> "Axes":
    """Draw the dump whose ``seq`` is ``dump`` (or, when no dump has that seq, the
    ``dump``-th row of ``trace.dumps()``); returns the Axes."""
    d = trace.dumps()
    packet = trace._dump_packet(dump)
    row = d.loc[packet]
    r = trace.dump_rounds(dump)
    t0 = float(row["start_s"])
    span_us = max((float(row["end_s"]) - t0) * 1e6, 1e-3)
    div, unit = (1e3, "ms") if span_us >= 2e3 else (1.0, "µs")
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(10, 3.2), layout="constrained")
    start = (r["start_s"].to_numpy() - t0) * 1e6 / div
    end = (r["end_s"].to_numpy() - t0) * 1e6 / div
    traced = r["call"].to_numpy() >= 0
    width = np.where(traced, end - start, 0.0)
    colors = np.where(traced, "tab:blue", "tab:gray")
    ax.barh(np.zeros(len(r)), np.maximum(width, span_us / div * 2e-3), left=start, height=0.5,
            color=colors, edgecolor="black", linewidth=0.4, label="round (kernel)")
    for s, w, n in zip(start, width, r["n_messages"].to_numpy()):
        ax.text(s + w / 2, 0, str(int(n)), ha="center", va="center", fontsize=7, color="white"
                if w > span_us / div * 0.03 else "black", clip_on=True)
    # between rounds: the reader's netlink_recvmsg copying the last round out (kernel time,
    # drawn next to the round it runs before), then user space
    recv = np.nan_to_num(r["recv_before_us"].to_numpy(dtype=float)) / div
    labels = {"copy": True, "user": True}
    for i in range(1, len(r)):
        if end[i - 1] >= start[i]:
            continue
        cut = max(start[i] - recv[i], end[i - 1])
        if cut > end[i - 1]:
            ax.axvspan(end[i - 1], cut, ymin=0.3, ymax=0.7, color="tab:orange", alpha=0.25, lw=0,
                       label="user space" if labels.pop("user", False) else None)
        if start[i] > cut:
            ax.axvspan(cut, start[i], ymin=0.3, ymax=0.7, color="tab:cyan", alpha=0.35, lw=0,
                       label="copy to user (recvmsg)" if labels.pop("copy", False) else None)
    ax.axvline(0, color="tab:green", lw=1.2, label=f"request ({row['type']})")
    if bool(row["done"]) and len(r):
        last = np.flatnonzero(r["done"].to_numpy())[-1]
        ax.axvline(end[last], color="tab:red", lw=1.2, ls="--", label="NLMSG_DONE")
    task = f"{row['comm']}-{row['pid']}" if row["pid"] >= 0 else f"portid {row['portid']}"
    ax.set_title(f"dump seq {row['seq']} by {task}: {row['n_rounds']} rounds, "
                 f"{row['n_messages']} messages; kernel {fmt_us(row['kernel_us'], unit=True)} "
                 f"+ copies {fmt_us(row['recv_us'], unit=True)}, "
                 f"user space {fmt_us(row['user_us'], unit=True)}: {row['verdict']}", fontsize=9)
    ax.set_yticks([])
    ax.set_ylim(-1, 1)
    ax.set_xlabel(f"time since the request ({unit})")
    ax.legend(loc="upper right", fontsize=7, ncol=5)
    return ax
