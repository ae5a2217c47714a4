"""What every CLI command that reads a trace shares: loading, the task/CPU/time filters, and
aligned text tables in the one number format of :mod:`ftracekit.show.format`."""

from __future__ import annotations

import argparse
import math
from typing import IO, Any, Callable

import pandas as pd

from ..analysis import task_names
from ..errors import FtracekitError
from ..show.format import US, fmt_count, fmt_pct, fmt_s, fmt_us
from ..trace import Trace

__all__ = ["add_filters", "load_for_cli", "table", "tasks_of", "US_COLS", "fmt_columns",
           "non_negative_int", "non_negative_float"]

#: Columns that hold microseconds in the tables the commands print.
US_COLS = ("duration_us", "self_us", "irq_us", "total_us", "mean_us", "p50_us", "p90_us",
           "p99_us", "max_us", "min_us", "std_us")


def add_filters(p: argparse.ArgumentParser) -> None:
    """``--comm``, ``--pid``, ``--cpu``, ``--from``, ``--to`` (see :meth:`Trace.filter`)."""
    g = p.add_argument_group("filters (applied before anything else)")
    g.add_argument("--comm", action="append", metavar="NAME",
                   help="only this task name (globs allowed; repeat for several)")
    g.add_argument("--pid", action="append", type=int, metavar="PID", help="only this pid (repeatable)")
    g.add_argument("--cpu", action="append", type=int, metavar="CPU", help="only this CPU (repeatable)")
    g.add_argument("--from", dest="from_s", type=float, metavar="SECONDS",
                   help="only calls starting at or after this time (s, as the trace prints it)")
    g.add_argument("--to", dest="to_s", type=float, metavar="SECONDS",
                   help="only calls starting before this time (s, as the trace prints it)")


def load_for_cli(path: str, args: argparse.Namespace | None = None) -> Trace:
    """Load a trace for a CLI command and apply the filters in ``args``; a trace without any
    call is an error here (with what it holds instead)."""
    from .. import load

    trace = load(path)
    src = trace.meta.get("source", path)
    if not len(trace.calls):
        if len(trace.events):
            raise FtracekitError(f"{src}: the trace holds no function calls, only "
                                 f"{len(trace.events):,} trace events (tracer "
                                 f"{trace.meta.get('tracer') or '?'}); read them with "
                                 "ftracekit.load(...).events")
        raise FtracekitError(f"{src}: the trace holds no function calls (only "
                             f"{trace.meta.get('lines', 0)} header/comment lines)")
    if args is not None:
        kw = {"comm": getattr(args, "comm", None), "pid": getattr(args, "pid", None),
              "cpu": getattr(args, "cpu", None), "start_s": getattr(args, "from_s", None),
              "end_s": getattr(args, "to_s", None)}
        kw = {k: v for k, v in kw.items() if v is not None}
        if kw:
            trace = trace.filter(**kw)
            if not len(trace.calls):
                said = " ".join(f"--{'from' if k == 'start_s' else 'to' if k == 'end_s' else k} "
                                f"{v if not isinstance(v, list) else ','.join(map(str, v))}"
                                for k, v in kw.items())
                raise FtracekitError(f"{src}: no calls left after {said}")
    return trace


def tasks_of(calls: pd.DataFrame) -> list[str]:
    """Task names (``ip-262``, ``<idle>-0 (cpu 1)``, ``cpu 1``) of the rows of a calls table."""
    return list(task_names(calls["pid"].to_numpy(), calls["cpu"].to_numpy(), calls["comm"]))


def fmt_columns(cols: list[str]) -> dict[str, Callable[[Any], str]]:
    """The formatter of each column by its name: µs, counts, seconds, percent."""
    out: dict[str, Callable[[Any], str]] = {}
    for c in cols:
        if c in US_COLS or c.endswith("_us") or c.endswith("_us_a") or c.endswith("_us_b"):
            out[c] = fmt_us
        elif c in ("count", "n_children", "calls", "events", "tasks", "cpus", "roots",
                   "complete", "no_exit", "no_entry", "call", "line", "cpu", "depth"):
            out[c] = fmt_count
        elif c.endswith("_s"):
            out[c] = fmt_s
        elif c.endswith("_pct") or c in ("pct_of_top", "share_of_parent"):
            out[c] = fmt_pct
    return out


def _header(c: str) -> str:
    """Column titles with the unit written once: ``duration_us`` → ``duration µs``."""
    for suffix, unit in (("_us", f" {US}"), ("_s", " s"), ("_pct", " %")):
        if c.endswith(suffix):
            return c[: -len(suffix)] + unit
    return c


def table(df: pd.DataFrame, cols: list[str], file: IO[str], indent: str = "  ",
          fmt: dict[str, Callable[[Any], str]] | None = None) -> None:
    """Print ``df[cols]`` as an aligned text table (numbers right-aligned, text left)."""
    fm = fmt_columns(cols)
    fm.update(fmt or {})
    rows = [[_header(c) for c in cols]]
    for values in df[cols].itertuples(index=False):
        row = []
        for c, v in zip(cols, values):
            f = fm.get(c)
            if f is not None:
                row.append(f(v))
            elif isinstance(v, float) and math.isnan(v):
                row.append("-")
            else:
                row.append(str(v))
        rows.append(row)
    text_cols = {i for i, c in enumerate(cols) if c not in fm}
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    for r in rows:
        cells = [r[j].ljust(widths[j]) if j in text_cols else r[j].rjust(widths[j])
                 for j in range(len(cols))]
        print(indent + "  ".join(cells).rstrip(), file=file)


def non_negative_int(text: str) -> int:
    """argparse type: an integer ≥ 0."""
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError("must be ≥ 0")
    return v


def non_negative_float(text: str) -> float:
    """argparse type: a number ≥ 0."""
    v = float(text)
    if not v >= 0:
        raise argparse.ArgumentTypeError("must be ≥ 0")
    return v
