"""CLI commands that read a trace file: ``report``, ``tree``, ``top``."""

from __future__ import annotations

import argparse
import sys
from typing import IO, Any

import pandas as pd

from ..analysis import frame_names
from ..errors import FtracekitError
from ..show.format import US, fmt_count, fmt_pct, fmt_s, fmt_us
from ..trace import Trace
from ._common import add_filters, load_for_cli, non_negative_float, non_negative_int, table, tasks_of
from . import dataset as D

__all__ = ["register", "print_report", "load_for_cli"]


def only_exits(trace: Trace) -> bool:
    """A ``tracing_thresh`` trace: only exit lines, so children below the threshold are
    missing and self times count only the children that were recorded."""
    kinds = trace.meta.get("line_kinds") or {}
    thresh = ((trace.meta.get("recording") or {}).get("settings") or {}).get("thresh_us")
    return bool(thresh) or (kinds.get("exit", 0) > 0 and not kinds.get("entry") and not kinds.get("leaf"))


def _lost_lines(trace: Trace) -> list[str]:
    out = []
    lost = trace.meta.get("lost_events", {})
    if lost.get("total") or lost.get("lines_without_count"):
        per = ", ".join(f"CPU {c}: {fmt_count(n)}" for c, n in sorted(lost.get("per_cpu", {}).items()))
        parts = []
        if lost.get("total"):
            parts.append(f"{fmt_count(lost['total'])} events" + (f" ({per})" if per else ""))
        if lost.get("lines_without_count"):
            n = lost["lines_without_count"]
            parts.append(f"{fmt_count(n)} 'LOST EVENTS' line{'s' if n != 1 else ''} without a count")
        out.append("lost in the ring buffer: " + "; ".join(parts)
                   + " — calls around them may lack an entry or an exit")
    rec = (trace.meta.get("recording") or {}).get("lost_events")
    if isinstance(rec, dict) and rec.get("total"):
        out.append(f"lost while recording (ring buffer overrun/dropped): {fmt_count(rec['total'])} events")
    return out


def _events_summary(trace: Trace, file: IO[str], n: int = 8) -> None:
    ev = trace.events
    if not len(ev):
        return
    counts = ev["event"].astype(str).value_counts()
    print(file=file)
    print(f"events ({fmt_count(len(ev))}):", file=file)
    rows = []
    calls = trace.calls
    for name, cnt in counts.head(n).items():
        sub = ev[ev["event"].astype(str) == name]
        inside = sub[sub["call"] >= 0]
        where = "-"
        if len(inside):
            top_call = inside["call"].map(calls["func"].astype(object)).value_counts()
            where = ", ".join(f"{f} ({fmt_count(k)})" for f, k in top_call.head(3).items())
        rows.append({"event": name, "count": int(cnt), "in calls of": where})
    table(pd.DataFrame(rows), ["event", "count", "in calls of"], file)
    if len(counts) > n:
        print(f"  … and {len(counts) - n} more kinds", file=file)


def print_report(trace: Trace, *, func: str | None = None, top: int = 20, slowest: int = 5,
                 file: IO[str] | None = None) -> None:
    """The summary printed by ``ftracekit report`` (and after ``ftracekit record``)."""
    out = file or sys.stdout
    m = trace.meta
    s = trace.summary()
    print(f"trace: {m.get('source')}", file=out)
    if m.get("filtered_from"):
        print("  (filtered: only the calls and events the --comm/--pid/--cpu/--from/--to options kept)", file=out)
    layout = " ".join(m.get("layout", [])) or "no context columns"
    print(f"  {fmt_count(s['lines'] or 0)} lines; columns: {layout}", file=out)
    print(f"  {fmt_count(s['calls'])} calls ({fmt_count(s['complete'])} complete, "
          f"{fmt_count(s['no_exit'])} without exit, {fmt_count(s['no_entry'])} without entry) "
          f"of {fmt_count(s['functions'])} functions", file=out)
    print(f"  {fmt_count(s['tasks'])} task{'s' if s['tasks'] != 1 else ''} on "
          f"{fmt_count(s['cpus'])} CPU{'s' if s['cpus'] != 1 else ''}; "
          f"{fmt_count(s['events'])} event{'s' if s['events'] != 1 else ''}", file=out)
    if s["span_s"] is not None:
        c = trace.calls
        print(f"  time span: {fmt_s(s['span_s'])} s (from {fmt_s(c['start_s'].min())} "
              f"to {fmt_s(c['end_s'].max())} s)", file=out)
    for line in _lost_lines(trace):
        print(f"  {line}", file=out)
    sk = m.get("skipped", {})
    if sk.get("count"):
        ex = sk.get("examples") or []
        first = f" (first: line {ex[0][0]}: {ex[0][1][:60]!r})" if ex else ""
        print(f"  skipped {fmt_count(sk['count'])} unparseable line{'s' if sk['count'] != 1 else ''}{first}",
              file=out)
    if m.get("truncated_last_line"):
        print("  the last line is truncated (no newline) and was skipped", file=out)
    thresh = only_exits(trace)
    if thresh:
        print("  tracing_thresh trace: only calls above the threshold were recorded (exit lines "
              "only), so self times include the unrecorded shorter children; ranked by total "
              "time below", file=out)
    if not len(trace.calls):
        return

    if func is not None:
        calls = trace.calls_of(func)
        what = f"{func} calls"
    else:
        calls = trace.roots()
        what = "root calls"
    ranked = calls.sort_values("duration_us", ascending=False, na_position="last", kind="stable")
    print(file=out)
    print(f"slowest {what} (of {fmt_count(len(calls))}):", file=out)
    show = ranked.head(slowest).copy()
    show["func"] = frame_names(show)
    show["task"] = tasks_of(show)
    show.insert(0, "call", show.index)
    cols = ["call", "func", "duration_us", "self_us", "n_children", "task", "cpu"]
    if trace.has_times:
        cols.append("start_s")
    cols.append("line")
    table(show, cols, out)
    if len(show) and show["duration_us"].notna().any():
        best = int(show.index[0])
        _print_path(trace, best, out)
        kids = trace.children(best)
        if len(kids) > 1:
            heavy = kids.sort_values("duration_us", ascending=False, kind="stable").head(5).copy()
            print(file=out)
            print(f"heaviest of the {fmt_count(len(kids))} children of call {best}:", file=out)
            heavy.insert(0, "call", heavy.index)
            heavy["func"] = frame_names(heavy)
            heavy["interrupt"] = ["yes" if v else "" for v in heavy["in_irq"]]
            table(heavy, ["call", "func", "duration_us", "self_us", "n_children", "interrupt"], out)
    by = "total" if thresh else "self"
    t = trace.top(top, by=by).reset_index()
    print(file=out)
    print(f"top {len(t)} functions by {by} time (of {fmt_count(s['functions'])}):", file=out)
    table(t, ["func", "count", "self_us", "total_us", "mean_us", "p50_us", "p99_us", "max_us"], out)
    _events_summary(trace, out)
    if trace.has_netlink:          # -- a netlink capture goes with it (issue 12) --
        d = trace.dumps()
        verdicts = ", ".join(f"{n} {v}" for v, n in d["verdict"].value_counts().items())
        print(file=out)
        print(f"netlink: {len(trace.netlink):,} messages captured, {len(d)} dump"
              f"{'s' if len(d) != 1 else ''}" + (f" ({verdicts})" if len(d) else "")
              + "; details: ftracekit netlink TRACE", file=out)


def _print_path(trace: Trace, call: int, out: IO[str]) -> None:
    cp = trace.critical_path(call)
    cp["func"] = frame_names(cp)
    first = cp.iloc[0]
    print(file=out)
    print(f"critical path of call {call} ({first['func']}, {fmt_us(first['duration_us'])} {US}):",
          file=out)
    print(f"  {'of call':>8}  {'duration ' + US:>14}  {'self ' + US:>12}  {'interrupts ' + US:>15}  function",
          file=out)
    d0 = int(first["depth"])
    for _, r in cp.iterrows():
        irq = fmt_us(r["irq_us"]) if r["irq_us"] else ""
        print(f"  {fmt_pct(r['pct_of_top'], 8)}  {fmt_us(r['duration_us'], 14)}  "
              f"{fmt_us(r['self_us'], 12)}  {irq:>15}  {'  ' * (int(r['depth']) - d0)}{r['func']}",
              file=out)
    last = cp.iloc[-1]
    end = cp.attrs.get("end")
    share = (100 * last["self_us"] / first["duration_us"]) if first["duration_us"] else float("nan")
    if end == "self time":
        why = (f"the time is spent in {last['func']} itself: self {fmt_us(last['self_us'])} {US} "
               f"({fmt_pct(share)} of call {call})")
    elif end == "only interrupts below":
        why = f"{last['func']} has only interrupts below it"
    else:
        why = f"{last['func']} calls nothing that was traced"
    if last["irq_us"]:
        why += f"; interrupts took {fmt_us(last['irq_us'])} {US} inside it"
    print(f"  → {why}", file=out)


def _cmd_report(args: argparse.Namespace) -> int:
    if D.is_dataset(args.trace):
        D.report(D.open_for_cli(args.trace, args), func=args.function, top_n=args.top,
                 slowest=args.slowest)
        return 0
    trace = load_for_cli(args.trace, args)
    print_report(trace, func=args.function, top=args.top, slowest=args.slowest)
    return 0


#: ``tree`` without --max-depth/--min-us: fold children under this share of the call's time.
TREE_DEFAULT_SHARE = 0.01


def _cmd_tree(args: argparse.Namespace) -> int:
    if D.is_dataset(args.trace):
        trace, call, which = D.pick_call(D.open_for_cli(args.trace, args), args.function,
                                         args.nth)
    else:
        trace, call, which = _pick_call(load_for_cli(args.trace, args), args)
    max_depth, min_us = args.max_depth, args.min_us
    default = max_depth is None and min_us is None and not args.all
    if default:
        dur = trace.calls.loc[call, "duration_us"]
        min_us = round(float(dur) * TREE_DEFAULT_SHARE, 3) if dur == dur else 0.0
    tree = trace.tree(call, max_depth=max_depth, min_us=min_us or 0.0)
    print(f"{args.function}: {which} (--nth K for another)")
    print(tree)
    if default:
        print(f"(children under 1 % of the call — {fmt_us(min_us)} {US} — are folded; "
              f"--min-us/--max-depth to choose, --all for every call)")
    return 0


def _pick_call(trace: Trace, args: argparse.Namespace) -> tuple[Trace, int, str]:
    """The call ``tree`` shows (--nth K, else the slowest) and how it was chosen."""
    calls = trace.calls_of(args.function)
    if args.nth is not None:
        k = args.nth
        if not 0 <= k < len(calls):
            raise FtracekitError(f"--nth {k} is out of range: {args.function} has {len(calls)} call"
                                 f"{'s' if len(calls) != 1 else ''} (0..{len(calls) - 1})")
        return trace, int(calls.index[k]), f"call {k} of {fmt_count(len(calls))}"
    ranked = calls.sort_values("duration_us", ascending=False, na_position="last", kind="stable")
    return trace, int(ranked.index[0]), f"the slowest of {fmt_count(len(calls))} calls"


def _cmd_top(args: argparse.Namespace) -> int:
    if D.is_dataset(args.trace):
        D.top(D.open_for_cli(args.trace, args), args.n, args.by, args.csv)
        return 0
    trace = load_for_cli(args.trace, args)
    t = trace.top(args.n, by=args.by)
    if args.csv:
        t.to_csv(sys.stdout, float_format="%.3f")
        return 0
    table(t.reset_index(), ["func"] + list(t.columns), sys.stdout, indent="")
    return 0




def _add_tag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tag", action="append", metavar="KEY=VALUE",
                   help="for a dataset folder (ftracekit convert): only the inputs with this tag")


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="summary of a trace: slowest calls, critical path, top functions",
                       description="Summarise a function_graph trace (text from trace, trace_pipe, "
                                   "per-CPU files or trace-cmd report; .gz/.xz; - for stdin).")
    p.add_argument("trace", help="trace file, - for stdin, or a dataset folder (ftracekit convert)")
    p.add_argument("--func", "-f", dest="function", help="report the slowest calls of this function (default: root calls)")
    p.add_argument("--top", type=non_negative_int, default=20, help="functions in the top table (default 20)")
    p.add_argument("--slowest", type=non_negative_int, default=5, help="slowest calls to list (default 5)")
    add_filters(p)
    _add_tag(p)
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("tree", help="print the call tree of one call",
                       description="Print the call tree of one call of FUNC (the slowest by default) "
                                   "with durations, self time and interrupts (µs). Without "
                                   "--max-depth/--min-us, children under 1 %% of the call's time "
                                   "are folded (the critical path never is).")
    p.add_argument("trace")
    p.add_argument("--func", "-f", dest="function", required=True, help="function whose call to show")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--nth", type=non_negative_int, default=None, help="K-th call of FUNC (0-based) "
                   "instead of the slowest")
    g.add_argument("--slowest", action="store_true", help="the slowest call of FUNC (the default)")
    p.add_argument("--max-depth", type=non_negative_int, default=None, help="levels to show below the call")
    p.add_argument("--min-us", type=non_negative_float, default=None,
                   help="fold children shorter than this (µs)")
    p.add_argument("--all", action="store_true", help="fold nothing")
    add_filters(p)
    _add_tag(p)
    p.set_defaults(func=_cmd_tree)

    p = sub.add_parser("top", help="functions ranked by self time, total time or count")
    p.add_argument("trace")
    p.add_argument("--by", choices=["self", "total", "count", "max"], default="self")
    p.add_argument("-n", type=non_negative_int, default=20, help="rows (default 20)")
    p.add_argument("--csv", action="store_true", help="CSV on stdout instead of a table")
    add_filters(p)
    _add_tag(p)
    p.set_defaults(func=_cmd_top)
