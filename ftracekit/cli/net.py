"""CLI commands about packets: ``packets``, ``journey``, ``callers`` (and the summary that
``record --packets`` prints)."""

from __future__ import annotations

import argparse
import math
import sys
from typing import IO, Any

import pandas as pd

from ..show.format import fmt_count, fmt_us
from ..trace import Trace
from ._common import table

__all__ = ["register", "print_packets_report"]


def _txt(v: Any) -> str:
    return "-" if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) or v == "" \
        else str(v)


# (one format per kind of number: show/format.py; text columns as text, "-" where empty)
_PK_FMT = {"gen": fmt_count, "n_steps": fmt_count, "reason": _txt, "drop_location": _txt,
           "gap_after": _txt, "gap_before": _txt, "devs": _txt, "cpus": _txt, "tasks": _txt,
           "clone_of": _txt, "dropped": str}
_PK_COLS = ["skb", "gen", "first_s", "span_us", "n_steps", "first", "last", "devs", "cpus",
            "dropped", "reason", "max_gap_us", "gap_after", "gap_before"]


def _load(path: str) -> Trace:
    from .. import load

    return load(path)


def print_packets_report(trace: Trace, *, top: int = 20, file: IO[str] | None = None) -> None:
    """What a packets recording holds: events per name, packets, drops per reason, and the
    packets with the largest gaps."""
    out = file or sys.stdout
    src = trace.meta.get("source", "?")
    print(f"trace: {src}", file=out)
    print(f"  {len(trace.calls):,} calls, {len(trace.events):,} events", file=out)
    if len(trace.events):
        counts = trace.events["event"].astype(str).value_counts()
        print("  events: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()), file=out)
    try:
        pk = trace.packets()
    except Exception as err:          # (a recording without any skb: say why, no traceback)
        print(f"  packets: none ({err})", file=out)
        return
    _packets_summary(pk, top, out)


def _packets_summary(pk: pd.DataFrame, n: int, out: IO[str]) -> None:
    drops = pk[pk["dropped"]]
    print(f"  packets (skb generations): {len(pk):,}, dropped {len(drops):,}", file=out)
    if len(drops):
        by = drops["reason"].fillna("?").value_counts()
        print("  drops by reason: " + ", ".join(f"{k} {v:,}" for k, v in by.items()), file=out)
    worst = pk.sort_values("max_gap_us", ascending=False, na_position="last", kind="stable").head(n)
    if len(worst):
        print(f"\nlargest gaps (top {len(worst)}):", file=out)
        table(worst, _PK_COLS, out, fmt=_PK_FMT)


def register(sub: Any) -> None:
    p = sub.add_parser("packets", help="one row per packet (skb generation): span, gaps, drops",
                       description="Packets seen in funcgraph-args (skb=) or events (skbaddr=), "
                                   "one per skb generation, in time order. Record them with "
                                   "`ftracekit record --packets`.")
    p.add_argument("trace", metavar="TRACE")
    p.add_argument("--dropped", action="store_true", help="only dropped packets")
    p.add_argument("--dev", help="only packets seen on this device")
    p.add_argument("--sort", choices=["first", "span", "gap"], default="first",
                   help="order: first seen (default), longest span, largest gap")
    p.add_argument("-n", type=int, default=50, metavar="N", help="rows to print (default 50)")
    p.set_defaults(func=_cmd_packets)

    p = sub.add_parser("journey", help="the steps of one packet across tasks, CPUs and softirqs",
                       description="Every call and event of one skb in time order, with the gap "
                                   "since the previous step. SKB as printed: 0xffff…, the 16 "
                                   "digits of skbaddr=, or a hash.")
    p.add_argument("trace", metavar="TRACE")
    p.add_argument("skb", metavar="SKB")
    p.add_argument("--gen", type=int, help="only this generation of the address")
    p.set_defaults(func=_cmd_journey)

    p = sub.add_parser("callers", help="the call chains that led to a function or an event",
                       description="Distinct call chains (root first) that led to FUNC, or to "
                                   "the event EVT (--event), with counts and time.")
    p.add_argument("trace", metavar="TRACE")
    p.add_argument("function", nargs="?", metavar="FUNC")
    p.add_argument("--event", metavar="EVT", help="an event name, e.g. kfree_skb")
    p.add_argument("-n", type=int, default=20, metavar="N", help="chains to print (default 20)")
    p.set_defaults(func=_cmd_callers)


def _cmd_packets(args: argparse.Namespace) -> int:
    t = _load(args.trace)
    pk = t.packets(dev=args.dev, dropped=True if args.dropped else None)
    key = {"first": "first_s", "span": "span_us", "gap": "max_gap_us"}[args.sort]
    pk = pk.sort_values(key, ascending=args.sort == "first", na_position="last", kind="stable")
    out = sys.stdout
    drops = int(pk["dropped"].sum())
    print(f"{len(pk):,} packets, {drops:,} dropped"
          + (f" (showing {min(args.n, len(pk))})" if len(pk) > args.n else ""), file=out)
    if len(pk):
        table(pk.head(args.n), _PK_COLS, out, fmt=_PK_FMT)
    return 0


def _cmd_journey(args: argparse.Namespace) -> int:
    t = _load(args.trace)
    j = t.journey(args.skb, gen=args.gen)
    out = sys.stdout
    gens = sorted(set(j["gen"].tolist()))
    print(f"skb {args.skb}: {len(j):,} steps in {len(gens)} generation(s)", file=out)
    for g in gens:
        jg = j[j["gen"] == g]
        big = jg["gap_us"].idxmax() if jg["gap_us"].notna().any() else None
        span = (jg["ts_s"].max() - jg["ts_s"].min()) * 1e6
        print(f"\ngen {g}: {len(jg)} steps over {fmt_us(span, unit=True)}"
              + (f"; largest gap {fmt_us(jg.loc[big, 'gap_us'], unit=True)} before "
                 f"{jg.loc[big, 'name']}" if big is not None else ""), file=out)
        table(jg, ["ts_s", "cpu", "task", "context", "kind", "name", "dev", "call",
                   "duration_us", "gap_us"], out, fmt={"dev": _txt, "task": _txt})
    return 0


def _cmd_callers(args: argparse.Namespace) -> int:
    from ..errors import FtracekitError

    if (args.function is None) == (args.event is None):
        raise FtracekitError("give a function (FUNC) or an event (--event EVT), one of them")
    t = _load(args.trace)
    c = t.callers(func=args.function, event=args.event)
    out = sys.stdout
    what = args.function or f"event {args.event}"
    print(f"{len(c):,} call chains led to {what} ({int(c['count'].sum()):,} times)", file=out)
    table(c.head(args.n), ["count", "total_us", "mean_us", "max_us", "chain"], out)
    return 0
