"""CLI command ``netlink``: the netlink messages captured with a trace, and its dumps.

``ftracekit netlink TRACE [--pcap FILE]`` prints the messages per family/direction/type and
one line per dump request (rounds, messages, bytes, kernel time in the rounds, user-space time
between them, the slowest round's call, the verdict). A capture cut off at the end is read up
to its last complete packet, the tables are printed, and the note about the cut ends the run
with exit code 2 (the figures are incomplete).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import IO, Any

import pandas as pd

from ..errors import FtracekitError
from ..net.netlink import PcapTruncatedWarning
from ..show.format import fmt_count, fmt_s
from ..trace import Trace
from ._common import load_for_cli, table

__all__ = ["register", "print_netlink"]

_EPILOG = """\
examples:
  ftracekit record --netlink -o dump.txt -- ip -d link show
  ftracekit netlink dump.txt                       (netlink.pcap beside it is found)
  ftracekit netlink trace.txt --pcap nlmon0.pcap --clock-offset 1765000000.123456

Verdicts: kernel-bound (time in the rounds >= 2x the time between them), reader-bound (the
reverse), balanced, untraced (no netlink_dump call of the dump in the trace).
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "netlink", help="netlink messages captured with a trace, and its dumps",
        description="Join the netlink messages of a capture (recorded with `record --netlink`, "
                    "or a pcap from `tcpdump -i nlmon0 -w`) to the trace's calls: messages per "
                    "type, and each dump split into rounds with a verdict.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trace", help="trace file or raw capture directory")
    p.add_argument("--pcap", metavar="FILE",
                   help="the netlink capture (default: the one recorded with the trace)")
    p.add_argument("--clock-offset", type=float, metavar="S",
                   help="CLOCK_REALTIME - CLOCK_MONOTONIC in seconds of the recording machine "
                        "(needed for a capture ftracekit did not record)")
    p.add_argument("--messages", action="store_true", help="also list every message")
    p.set_defaults(func=_cmd_netlink)


def _task(comm: Any, pid: int) -> str:
    return "-" if pid < 0 else f"{comm if isinstance(comm, str) else '?'}-{pid}"


def print_netlink(trace: Trace, *, messages: bool = False, file: IO[str] | None = None) -> None:
    """The tables of ``ftracekit netlink``."""
    out = file or sys.stdout
    msgs = trace.netlink
    rec = (trace.meta.get("recording") or {}).get("netlink") or {}
    drops = rec.get("drops")
    print(f"netlink capture: {trace.meta.get('netlink_pcap')}: "
          f"{fmt_count(msgs['packet'].nunique())} packets, {fmt_count(len(msgs))} messages"
          + (f", {fmt_count(drops)} dropped by the capture socket" if drops is not None else ""),
          file=out)
    joined = int((msgs["call"] >= 0).sum())
    print(f"  {fmt_count(joined)} of {fmt_count(len(msgs))} messages joined to a traced call",
          file=out)
    print(file=out)
    print("messages per type:", file=out)
    counts = (msgs.groupby(["family", "direction", "type"], observed=True).agg(
        messages=("len", "size"), packets=("packet", "nunique"), bytes=("len", "sum"),
        joined=("call", lambda c: int((c >= 0).sum()))).reset_index())
    table(counts, ["family", "direction", "type", "messages", "packets", "bytes", "joined"], out,
          fmt={k: fmt_count for k in ("messages", "packets", "bytes", "joined")})
    d = trace.dumps()
    print(file=out)
    if d.empty:
        print("dumps: none (no request with NLM_F_DUMP in the capture)", file=out)
    else:
        print(f"dumps ({len(d)}):", file=out)
        t = d.copy()
        t["task"] = [_task(c, p) for c, p in zip(t["comm"], t["pid"])]
        t["done"] = t["done"].map({True: "yes", False: "no"})
        fm: dict[str, Any] = {c: fmt_count for c in ("n_rounds", "n_messages", "bytes")}
        fm.update({c: (lambda v: str(int(v))) for c in ("seq", "portid")})     # identifiers
        fm["slowest_call"] = lambda v: "-" if v < 0 else str(v)
        table(t, ["seq", "portid", "task", "type", "n_rounds", "n_messages", "bytes",
                  "duration_us", "kernel_us", "recv_us", "user_us", "slowest_round_us",
                  "slowest_call", "done", "verdict"], out, fmt=fm)
    if messages:
        print(file=out)
        print("messages:", file=out)
        m = msgs.reset_index()
        table(m, ["message", "ts_s", "packet", "index", "direction", "type", "flags", "seq",
                  "portid", "len", "ifname", "call"], out,
              fmt={"ts_s": fmt_s, "ifname": lambda v: "-" if v is pd.NA else str(v),
                   "seq": lambda v: str(int(v)), "portid": lambda v: str(int(v)),
                   "call": lambda v: str(int(v))})


def _cmd_netlink(args: argparse.Namespace) -> int:
    trace = load_for_cli(args.trace)
    if args.pcap is not None:
        if not os.path.isfile(args.pcap):
            raise FtracekitError(f"{args.pcap}: no such netlink capture file")
        trace.meta["netlink_pcap"] = args.pcap
    if args.clock_offset is not None:
        trace.meta["netlink_clock_offset_s"] = args.clock_offset
    if not trace.has_netlink:
        raise FtracekitError(f"{args.trace}: no netlink capture goes with this trace (record "
                             "with `ftracekit record --netlink`, or give --pcap FILE)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trace.netlink                                  # read now: a cut-off capture warns
    print_netlink(trace, messages=args.messages)
    cut = [w for w in caught if issubclass(w.category, PcapTruncatedWarning)]
    for w in caught:
        if w not in cut:
            print(f"ftracekit: warning: {w.message}", file=sys.stderr)
    if cut:
        print(f"ftracekit: error: {cut[0].message}", file=sys.stderr)
        return 2
    return 0
