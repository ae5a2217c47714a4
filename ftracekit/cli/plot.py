"""CLI commands that draw or convert a trace: ``plot`` and ``export``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import FtracekitError
from ..show.format import fmt_count
from ._common import add_filters, load_for_cli, non_negative_int

__all__ = ["register"]

KINDS = ("hist", "time", "timeline", "flame", "top", "compare")
FORMATS = ("folded", "chrome", "parquet", "csv")
_IMAGE_EXT = (".png", ".svg", ".pdf", ".jpg", ".jpeg")


def _pick_call(trace: Any, func: str, nth: int | None, call: int | None) -> int:
    if call is not None:
        trace._check_call(call)
        return call
    calls = trace.calls_of(func)
    if nth is None:
        ranked = calls.sort_values("duration_us", ascending=False, na_position="last", kind="stable")
        return int(ranked.index[0])
    if not 0 <= nth < len(calls):
        raise FtracekitError(f"--nth {nth} is out of range: {func} has {len(calls)} call"
                             f"{'s' if len(calls) != 1 else ''} (0..{len(calls) - 1})")
    return int(calls.index[nth])


def _cmd_plot(args: argparse.Namespace) -> int:
    stem = "stdin" if args.trace == "-" else (Path(args.trace).name.split(".")[0] or "trace")
    out = args.output or f"{stem}_{args.kind}.png"
    if not out.lower().endswith(_IMAGE_EXT):
        raise FtracekitError(f"-o {out}: use a .png, .svg or .pdf file name")
    parent = os.path.dirname(out)
    if parent and not os.path.isdir(parent):
        raise FtracekitError(f"-o {out}: directory {parent} does not exist")
    needs_func = args.kind in ("hist", "time") or (args.kind == "flame" and args.call is None)
    if needs_func and not args.function:
        raise FtracekitError(f"--kind {args.kind} needs --func FUNC")
    if args.kind == "compare" and not args.against:
        raise FtracekitError("--kind compare needs --against OTHER_TRACE")

    trace = load_for_cli(args.trace, args)
    import matplotlib

    matplotlib.use("Agg")          # files only; never open a window from the CLI
    import matplotlib.pyplot as plt

    from ..show import plot as P

    if args.kind == "hist":
        ax = P.plot_hist(trace, args.function)
    elif args.kind == "time":
        ax = P.plot_time(trace, args.function, label=args.label)
    elif args.kind == "timeline":
        ax = P.plot_timeline(trace, by=args.by, func=args.function)
    elif args.kind == "flame":
        call = _pick_call(trace, args.function, args.nth, args.call)
        ax = P.plot_flame(trace, call, max_depth=args.max_depth)
    elif args.kind == "top":
        if args.function:          # the functions inside FUNC's calls
            trace = trace.filter(func=args.function)
        ax = P.plot_top(trace, args.n, by=args.rank)
    else:
        other = load_for_cli(args.against, args)
        ax = P.plot_compare(trace, other, args.n, by=args.rank, labels=args.labels)
    try:
        ax.figure.savefig(out, dpi=args.dpi)
    except OSError as err:
        raise FtracekitError(f"cannot write {out}: {err.strerror or err}") from err
    finally:
        plt.close(ax.figure)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from ..show import export as E

    if args.format in ("chrome", "parquet", "csv") and not args.output:
        raise FtracekitError(f"--format {args.format} needs -o PATH")
    if args.events and args.format not in ("parquet", "csv"):
        raise FtracekitError(f"--events is for --format csv or parquet, not {args.format}")
    trace = load_for_cli(args.trace, args)
    if args.format == "folded":
        if not args.output or args.output == "-":
            E.to_folded(trace, sys.stdout, unit=args.unit, tasks=args.tasks)
            return 0
        E.to_folded(trace, args.output, unit=args.unit, tasks=args.tasks)
        print(f"wrote {args.output}", file=sys.stderr)
    elif args.format == "chrome":
        s = E.to_chrome(trace, args.output, events=not args.no_events)
        print(f"wrote {args.output}: {s['slices']:,} slices, {s['instants']:,} events, "
              f"{s['tasks']} tasks ({s['clock']} clock); open it in ui.perfetto.dev or "
              f"chrome://tracing", file=sys.stderr)
    else:
        fn = E.to_parquet if args.format == "parquet" else E.to_csv
        w = fn(trace, args.output, events=args.events)
        print(f"wrote {w['calls']} ({fmt_count(w['calls_rows'])} calls)", file=sys.stderr)
        if "events" in w:
            print(f"wrote {w['events']} ({fmt_count(w['events_rows'])} events)", file=sys.stderr)
        elif len(trace.events):
            print(f"({fmt_count(len(trace.events))} events not written: add --events FILE)",
                  file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "plot", help="draw a plot of a trace to a PNG/SVG/PDF file",
        description="Draw one plot of a function_graph trace: hist (duration distribution of "
                    "FUNC), time (FUNC's durations over time), timeline (root calls per task), "
                    "flame (icicle chart of FUNC's slowest call, or --nth/--call), top (functions "
                    "by self time), compare (the functions that changed most against --against OTHER, "
                    "in the order of `ftracekit compare`).")
    p.add_argument("trace", help="trace file, or - for stdin")
    p.add_argument("--func", "-f", dest="function", help="function to plot (hist, time, flame; "
                   "optional for timeline: only its root calls; for top: only what runs inside "
                   "its calls)")
    p.add_argument("--kind", "-k", choices=KINDS, default="hist")
    p.add_argument("-o", "--output", help="output file (.png, .svg, .pdf; default "
                   "TRACE_KIND.png in the current directory)")
    p.add_argument("--nth", type=non_negative_int, default=None, help="flame: K-th call of FUNC "
                   "(default: the slowest)")
    p.add_argument("--call", type=non_negative_int, default=None, help="flame: call number")
    p.add_argument("--max-depth", type=non_negative_int, default=None, help="flame: levels to draw")
    p.add_argument("--by", choices=["task", "cpu"], default="task", help="timeline rows")
    p.add_argument("--rank", choices=["self", "total", "count", "p50", "p99"], default="self",
                   help="top: rank by self or total time; compare: show the functions whose "
                        "self/total time, count, p50 or p99 changed most (default self)")
    p.add_argument("--labels", nargs=2, metavar=("A", "B"), help="compare: legend names of "
                   "TRACE and OTHER (default: the file names, or their directories when equal)")
    p.add_argument("-n", type=non_negative_int, default=20, help="top/compare: functions (default 20)")
    p.add_argument("--label", type=non_negative_int, default=5, help="time: slowest calls to label")
    p.add_argument("--against", help="compare: the other trace")
    p.add_argument("--dpi", type=non_negative_int, default=120)
    add_filters(p)
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser(
        "export", help="convert a trace: folded stacks, Chrome/Perfetto JSON, Parquet, CSV",
        description="Convert a function_graph trace: folded stacks for flamegraph.pl / "
                    "speedscope (stdout by default), Chrome trace-event JSON for ui.perfetto.dev "
                    "and chrome://tracing, or the calls/events tables as Parquet or CSV: "
                    "-o calls.csv writes exactly that file (add --events events.csv for the "
                    "events table), -o DIR/ writes DIR/calls.EXT and DIR/events.EXT, and "
                    "-o PREFIX (no extension) PREFIX.calls.EXT and PREFIX.events.EXT.")
    p.add_argument("trace", help="trace file, or - for stdin")
    p.add_argument("--format", "-F", choices=FORMATS, required=True)
    p.add_argument("-o", "--output", help="output file, DIR/ or prefix (- for stdout: folded)")
    p.add_argument("--events", metavar="FILE", help="csv/parquet: also write the events table "
                   "to FILE (with -o calls.EXT; -o DIR/ and -o PREFIX write it anyway)")
    p.add_argument("--unit", choices=["us", "ns"], default="us",
                   help="folded: weight unit (integers; ns keeps full precision)")
    p.add_argument("--tasks", action="store_true", help="folded: task (comm-pid) as the root frame")
    p.add_argument("--no-events", action="store_true", help="chrome: leave events out")
    add_filters(p)
    p.set_defaults(func=_cmd_export)
