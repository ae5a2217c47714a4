"""CLI commands that read a trace file: ``report``, ``tree``, ``top``."""

from __future__ import annotations

import argparse
import math
import sys
from typing import IO, Any

import pandas as pd

from ..analysis import frame_names
from ..errors import FtracekitError
from ..show import fmt_us
from ..trace import Trace

__all__ = ["register", "print_report", "load_for_cli"]


def load_for_cli(path: str) -> Trace:
    """Load a trace for a CLI command; a trace without any call is an error here."""
    from .. import load

    trace = load(path)
    if not len(trace.calls):
        src = trace.meta.get("source", path)
        if len(trace.events):
            raise FtracekitError(f"{src}: the trace holds no function calls, only "
                                 f"{len(trace.events):,} trace events (tracer "
                                 f"{trace.meta.get('tracer') or '?'}); read them with "
                                 "ftracekit.load(...).events")
        raise FtracekitError(f"{src}: the trace holds no function calls (only "
                             f"{trace.meta.get('lines', 0)} header/comment lines)")
    return trace


def _table(df: pd.DataFrame, cols: list[str], fmt: dict[str, Any], file: IO[str],
           indent: str = "  ") -> None:
    """Print ``df[cols]`` as an aligned text table."""
    rows = [[str(c) for c in cols]]
    for _, r in df[cols].iterrows():
        row = []
        for c in cols:
            v = r[c]
            f = fmt.get(c)
            if f is not None:
                row.append(f(v))
            elif isinstance(v, float):
                row.append("-" if math.isnan(v) else f"{v:g}")
            else:
                row.append(str(v))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    for i, r in enumerate(rows):
        cells = [r[j].rjust(widths[j]) if j else r[j].ljust(widths[j]) for j in range(len(cols))]
        print(indent + "  ".join(cells).rstrip(), file=file)


def _task(row: pd.Series) -> str:
    comm = row["comm"]
    comm = "?" if not isinstance(comm, str) else comm
    return f"{comm}-{row['pid']}" if row["pid"] >= 0 else comm


def _lost_lines(trace: Trace) -> list[str]:
    out = []
    lost = trace.meta.get("lost_events", {})
    if lost.get("total") or lost.get("lines_without_count"):
        per = ", ".join(f"CPU{c}: {n:,}" for c, n in sorted(lost.get("per_cpu", {}).items()))
        extra = (f" (+{lost['lines_without_count']} 'LOST EVENTS' lines without a count)"
                 if lost.get("lines_without_count") else "")
        out.append(f"lost events (LOST lines in the text): {lost.get('total', 0):,} [{per}]{extra}")
    rec = (trace.meta.get("recording") or {}).get("lost_events")
    if isinstance(rec, dict) and rec.get("total"):
        out.append(f"lost events during recording (ring buffer overrun/dropped): {rec['total']:,}")
    return out


def print_report(trace: Trace, *, func: str | None = None, top: int = 20, slowest: int = 5,
                 file: IO[str] | None = None) -> None:
    """The summary printed by ``ftracekit report`` (and after ``ftracekit record``)."""
    out = file or sys.stdout
    m = trace.meta
    s = trace.summary()
    print(f"trace: {m.get('source')}", file=out)
    layout = " ".join(m.get("layout", [])) or "no context columns"
    print(f"  {s['lines'] or 0:,} lines; columns: {layout}", file=out)
    print(f"  {s['calls']:,} calls ({s['complete']:,} complete, {s['no_exit']:,} without exit, "
          f"{s['no_entry']:,} without entry) of {s['functions']:,} functions", file=out)
    print(f"  {s['tasks']} task{'s' if s['tasks'] != 1 else ''} on {s['cpus']} CPU"
          f"{'s' if s['cpus'] != 1 else ''}; {s['events']:,} events/comments", file=out)
    if s["span_s"] is not None:
        print(f"  time span: {s['span_s']:.6f} s", file=out)
    for line in _lost_lines(trace):
        print(f"  {line}", file=out)
    sk = m.get("skipped", {})
    if sk.get("count"):
        ex = sk.get("examples") or []
        first = f" (first: line {ex[0][0]}: {ex[0][1][:60]!r})" if ex else ""
        print(f"  skipped {sk['count']:,} unparseable line{'s' if sk['count'] != 1 else ''}{first}",
              file=out)
    if m.get("truncated_last_line"):
        print("  the last line is truncated (no newline) and was skipped", file=out)
    if not len(trace.calls):
        return

    if func is not None:
        calls = trace.calls_of(func)
        what = f"{func}"
    else:
        calls = trace.roots()
        what = "root calls"
    ranked = calls.sort_values("duration_us", ascending=False, na_position="last", kind="stable")
    print(file=out)
    print(f"slowest {what} (of {len(calls):,}):", file=out)
    show = ranked.head(slowest).copy()
    show["func"] = frame_names(show)
    show["task"] = [_task(r) for _, r in show.iterrows()]
    show.insert(0, "call", show.index)
    cols = ["call", "func", "duration_us", "self_us", "n_children", "task", "cpu"]
    if trace.has_times:
        cols.append("start_s")
    cols.append("line")
    _table(show, cols, {"duration_us": fmt_us, "self_us": fmt_us,
                        "start_s": lambda v: "-" if v != v else f"{v:.6f}"}, out)
    if len(show) and show["duration_us"].notna().any():
        best = int(show.index[0])
        cp = trace.critical_path(best)
        cp["func"] = frame_names(cp)
        print(file=out)
        print(f"critical path of call {best} ({show['func'].iloc[0]}, "
              f"{fmt_us(float(show['duration_us'].iloc[0]))} us):", file=out)
        for _, r in cp.iterrows():
            pct = "" if r["pct_of_top"] != r["pct_of_top"] else f"{r['pct_of_top']:5.1f}%"
            print(f"  {pct:>6}  {fmt_us(r['duration_us'], 11)} us  self {fmt_us(r['self_us'], 10)}"
                  f"  {'  ' * (int(r['depth']) - int(cp['depth'].iloc[0]))}{r['func']}", file=out)
        heavy = trace.children(best).sort_values("duration_us", ascending=False).head(5)
        if len(heavy):
            print(file=out)
            print(f"heaviest children of call {best}:", file=out)
            h = heavy.copy()
            h.insert(0, "call", h.index)
            h["func"] = frame_names(h)
            _table(h, ["call", "func", "duration_us", "self_us", "n_children"],
                   {"duration_us": fmt_us, "self_us": fmt_us}, out)
    print(file=out)
    print(f"top {min(top, trace.calls['func'].nunique())} functions by self time:", file=out)
    t = trace.top(top, by="self").reset_index()
    fm = {c: fmt_us for c in ("total_us", "self_us", "mean_us", "p50_us", "p90_us", "p99_us", "max_us")}
    _table(t, ["func", "count", "self_us", "total_us", "mean_us", "p50_us", "p99_us", "max_us"], fm, out)
    if trace.has_netlink:          # -- a netlink capture goes with it (issue 12) --
        d = trace.dumps()
        verdicts = ", ".join(f"{n} {v}" for v, n in d["verdict"].value_counts().items())
        print(file=out)
        print(f"netlink: {len(trace.netlink):,} messages captured, {len(d)} dump"
              f"{'s' if len(d) != 1 else ''}" + (f" ({verdicts})" if len(d) else "")
              + "; details: ftracekit netlink TRACE", file=out)


def _cmd_report(args: argparse.Namespace) -> int:
    trace = load_for_cli(args.trace)
    print_report(trace, func=args.function, top=args.top, slowest=args.slowest)
    return 0


def _cmd_tree(args: argparse.Namespace) -> int:
    trace = load_for_cli(args.trace)
    calls = trace.calls_of(args.function)
    if args.slowest:
        ranked = calls.sort_values("duration_us", ascending=False, na_position="last", kind="stable")
        call = int(ranked.index[0])
    else:
        k = args.nth
        if not 0 <= k < len(calls):
            raise FtracekitError(f"--nth {k} is out of range: {args.function} has {len(calls)} call"
                                 f"{'s' if len(calls) != 1 else ''} (0..{len(calls) - 1})")
        call = int(calls.index[k])
    print(trace.tree(call, max_depth=args.max_depth, min_us=args.min_us))
    return 0


def _cmd_top(args: argparse.Namespace) -> int:
    trace = load_for_cli(args.trace)
    t = trace.top(args.n, by=args.by)
    if args.csv:
        t.to_csv(sys.stdout, float_format="%.3f")
        return 0
    fm = {c: fmt_us for c in ("total_us", "self_us", "mean_us", "p50_us", "p90_us", "p99_us", "max_us")}
    _table(t.reset_index(), ["func"] + list(t.columns), fm, sys.stdout, indent="")
    return 0


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError("must be ≥ 0")
    return v


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="summary of a trace: slowest calls, critical path, top functions",
                       description="Summarise a function_graph trace (text from trace, trace_pipe, "
                                   "per-CPU files or trace-cmd report; .gz/.xz; - for stdin).")
    p.add_argument("trace", help="trace file, or - for stdin")
    p.add_argument("--func", "-f", dest="function", help="report the slowest calls of this function (default: root calls)")
    p.add_argument("--top", type=_positive_int, default=20, help="functions in the top table (default 20)")
    p.add_argument("--slowest", type=_positive_int, default=5, help="slowest calls to list (default 5)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("tree", help="print the call tree of one call",
                       description="Print the call tree of one call of FUNC with durations and self time (µs).")
    p.add_argument("trace")
    p.add_argument("--func", "-f", dest="function", required=True, help="function whose call to show")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--nth", type=_positive_int, default=0, help="K-th call of FUNC (0-based, default 0)")
    g.add_argument("--slowest", action="store_true", help="the slowest call of FUNC")
    p.add_argument("--max-depth", type=_positive_int, default=None, help="levels to show below the call")
    p.add_argument("--min-us", type=float, default=0.0, help="fold children shorter than this (µs)")
    p.set_defaults(func=_cmd_tree)

    p = sub.add_parser("top", help="functions ranked by self time, total time or count")
    p.add_argument("trace")
    p.add_argument("--by", choices=["self", "total", "count", "max"], default="self")
    p.add_argument("-n", type=_positive_int, default=20, help="rows (default 20)")
    p.add_argument("--csv", action="store_true", help="CSV on stdout instead of a table")
    p.set_defaults(func=_cmd_top)
