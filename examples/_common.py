"""Helpers shared by the example scripts: finding the bundled traces, the ``--live`` mode,
call paths and plain-text tables. Not part of the ftracekit API."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

import ftracekit
from ftracekit.errors import FtracekitError

REPO = Path(__file__).resolve().parent.parent
_SUFFIXES = (".txt", ".txt.xz", ".txt.gz")


def find_sample(*names: str) -> Path:
    """The first of ``names`` found among ftracekit's bundled samples or the test data
    (``tests/data/<kernel>/NAME.txt[.xz|.gz]``)."""
    try:
        import ftracekit.samples as samples

        for name in names:
            if name in samples.names():
                return Path(samples.path(name))
    except ImportError:  # pragma: no cover - older ftracekit without samples
        pass
    for name in names:
        for suf in _SUFFIXES:
            hits = sorted((REPO / "tests" / "data").glob(f"*/{name}{suf}"))
            if hits:
                return hits[-1]       # the newest kernel directory sorts last
    raise FtracekitError(f"no bundled trace named {' or '.join(names)}; pass --trace FILE")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--trace", help="analyse this trace file instead of the bundled one")
    p.add_argument("--live", action="store_true",
                   help="record a fresh trace on this machine (root, function_graph) first")
    p.add_argument("--output", default="live-trace.txt",
                   help="--live: where to write the recording (default live-trace.txt)")
    p.add_argument("--plots", metavar="DIR", help="also save the plots as PNG files into DIR")
    return p


def live_record(functions: Sequence[str], command: Sequence[str], output: str,
                events: Sequence[str] = (), what: str | None = None,
                **settings: Any) -> ftracekit.Trace:
    """Record with ftracekit's Recorder; one clear line when this machine cannot."""
    if os.geteuid() != 0:
        raise FtracekitError("--live records with ftrace and needs root (run it with sudo)")
    try:
        from ftracekit import record
    except ImportError as err:  # pragma: no cover
        raise FtracekitError(f"this ftracekit has no recorder ({err})") from err
    print(f"recording {', '.join(functions)}" + (f" and {', '.join(events)}" if events else "")
          + f" while {what or ' '.join(command)}", file=sys.stderr)
    return record(list(functions), command=list(command), output=output,
                  events=list(events), **settings)


def main_wrapper(run: Callable[[argparse.Namespace], int], p: argparse.ArgumentParser) -> None:
    """Parse arguments, run, and turn ftracekit errors into one line + exit code 2."""
    args = p.parse_args()
    try:
        code = run(args)
    except FtracekitError as err:
        print(f"{Path(sys.argv[0]).name}: error: {err}", file=sys.stderr)
        code = 2
    except BrokenPipeError:
        code = 0
    sys.exit(code)


def task_of(trace: ftracekit.Trace, calls: pd.DataFrame) -> pd.Series:
    """``comm-pid`` per call, with the comm first printed for that task in the whole trace
    (the kernel may print ``<...>`` until its comm cache knows the name)."""
    from ftracekit.analysis import task_names

    if "_task_names" not in trace.meta:
        c = trace.calls
        trace.meta["_task_names"] = pd.Series(
            task_names(c["pid"].to_numpy(), c["cpu"].to_numpy(), c["comm"]), index=c.index)
    return trace.meta["_task_names"].loc[calls.index]


def call_paths(trace: ftracekit.Trace, calls: pd.Index | Sequence[int], *, sep: str = " → ",
               stop_at: int | None = None) -> pd.Series:
    """The chain of functions from the outermost recorded caller down to each call,
    e.g. ``tcp_v4_rcv → tcp_v4_send_reset``. Walks up one level per loop turn for all calls at
    once (at most the tree depth turns)."""
    c = trace.calls
    ids = np.asarray(list(calls), dtype=np.int64)
    func = c["func"].astype(str)
    parent = c["parent"]
    paths = func.loc[ids].to_numpy(dtype=object).copy()
    cur = parent.loc[ids].to_numpy()
    while True:
        up = (cur >= 0) & np.isin(cur, c.index.to_numpy())
        if not up.any():
            break
        names = np.full(len(ids), "", dtype=object)
        names[up] = func.loc[cur[up]].to_numpy(dtype=object)
        paths[up] = names[up] + sep + paths[up]
        nxt = cur.copy()
        nxt[up] = parent.loc[cur[up]].to_numpy()
        nxt[~up] = -1
        cur = nxt
    return pd.Series(paths, index=ids, name="path")


def fmt_us(v: float) -> str:
    """Durations as everywhere in ftracekit: µs with 3 decimals (ftracekit.show.format)."""
    from ftracekit.show.format import fmt_us as _fmt

    return _fmt(v, unit=True)


def print_table(df: pd.DataFrame, *, indent: str = "  ", max_width: int = 150) -> None:
    """A DataFrame as aligned text (numbers right, text left), long cells cut with …."""
    cols = list(df.columns)
    cells = [[str(c) for c in cols]]
    for row in df.itertuples(index=False):
        cells.append([_cell(v) for v in row])
    widths = [max(len(r[i]) for r in cells) for i in range(len(cols))]
    total = sum(widths) + 2 * len(cols)
    if total > max_width:           # shrink the widest column (usually a path)
        w = widths.index(max(widths))
        widths[w] = max(12, widths[w] - (total - max_width))
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in cols]
    for r in cells:
        out = []
        for i, v in enumerate(r):
            if len(v) > widths[i]:
                v = "…" + v[-(widths[i] - 1):]
            out.append(v.rjust(widths[i]) if numeric[i] else v.ljust(widths[i]))
        print(indent + "  ".join(out).rstrip())


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "-" if v != v else f"{v:,.3f}"
    return str(v)


def save_plots(args: argparse.Namespace, plots: dict[str, Callable[[], Any]]) -> None:
    """``--plots DIR``: draw each plot (a callable returning Axes) and save it as DIR/NAME.png."""
    if not args.plots:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.plots)
    out.mkdir(parents=True, exist_ok=True)
    for name, draw in plots.items():
        ax = draw()
        fig = (ax[0] if isinstance(ax, tuple) else ax).figure
        fig.savefig(out / f"{name}.png", dpi=110)
        plt.close(fig)
        print(f"saved {out / name}.png", file=sys.stderr)
