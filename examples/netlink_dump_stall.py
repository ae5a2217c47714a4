#!/usr/bin/env python3
"""Why was that netlink request slow?

Answers, from a function_graph trace of ``rtnetlink_rcv`` (and, when graphed too,
``netlink_recvmsg``, where the later rounds of a dump run):

* which netlink requests were slow, and what kind they were (a dump, ``rtnl_getlink`` …);
* which task sent them;
* how each dump was split across ``netlink_dump`` rounds (one round fills one skb; the first
  runs inside the request, the others when the task reads the socket again);
* the critical path of the slowest request: the chain of heaviest children.

    python examples/netlink_dump_stall.py                 # the bundled real trace
    python examples/netlink_dump_stall.py --trace my.txt  # any function_graph trace
    sudo python examples/netlink_dump_stall.py --live     # record one here first
"""

from __future__ import annotations

import fnmatch
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

import ftracekit  # noqa: E402
from ftracekit.errors import FtracekitError  # noqa: E402

SAMPLES = ("netlink_dump", "netlink_dump_200", "netlink_live", "rtnl_capture.trace", "rtnl_trace_pipe")
LIVE_FUNCS = ["rtnetlink_rcv", "netlink_recvmsg"]
LIVE_COMMAND = ["sh", "-c", "ip -d -s link show >/dev/null; ip addr show >/dev/null"]


def _when(trace: ftracekit.Trace, calls: pd.DataFrame) -> pd.Series:
    """Start time in seconds as the trace prints them (``start_s``, what ``Trace.filter`` and
    the plots use), or the line number without timestamps."""
    if trace.has_times:
        return calls["start_s"].round(6)
    return calls["line"]


def requests(trace: ftracekit.Trace) -> pd.DataFrame:
    """One row per ``rtnetlink_rcv`` call: ``task``, ``when``, ``duration_us``, ``kind``
    (``dump`` when it started a dump, else the handler rtnetlink_rcv_msg spent most in),
    ``dump_round_us`` (time in the first ``netlink_dump`` round inside it)."""
    req = trace.calls_of("rtnetlink_rcv")
    c = trace.calls
    kinds, first_round = [], []
    for call in req.index:                    # requests: tens to hundreds, not millions
        sub = trace.subtree(int(call))
        funcs = sub["func"].astype(str)
        if (funcs == "__netlink_dump_start").any():
            kinds.append("dump")
            nd = sub[funcs == "netlink_dump"]
            first_round.append(float(nd["duration_us"].iloc[0]) if len(nd) else np.nan)
            continue
        first_round.append(np.nan)
        msg = sub[funcs == "rtnetlink_rcv_msg"]
        if not len(msg):
            kinds.append("?")
            continue
        kids = c[c["parent"].isin(msg.index) & ~c["in_irq"]]      # interrupts are not the handler
        kids = kids[~kids["func"].astype(str).isin(
            ["netlink_net_capable", "__rcu_read_lock", "__rcu_read_unlock", "try_module_get",
             "module_put", "mutex_lock", "mutex_unlock", "netdev_run_todo"])]
        kinds.append(str(kids.sort_values("duration_us").iloc[-1]["func"]) if len(kids) else "?")
    out = pd.DataFrame({
        "call": req.index,
        "task": C.task_of(trace, req).to_numpy(),
        "when": _when(trace, req).to_numpy(),
        "duration_us": req["duration_us"].to_numpy(),
        "kind": kinds,
        "dump_round_us": first_round,
    })
    return out.sort_values("duration_us", ascending=False, kind="stable").reset_index(drop=True)


def by_task(req: pd.DataFrame) -> pd.DataFrame:
    """Requests per task: ``requests``, ``total_us``, ``max_us``, ``p50_us``, ``dumps``."""
    g = req.groupby("task", sort=False)
    t = pd.DataFrame({
        "requests": g.size(),
        "total_us": g["duration_us"].sum(),
        "max_us": g["duration_us"].max(),
        "p50_us": g["duration_us"].median(),
        "dumps": g["kind"].apply(lambda k: int((k == "dump").sum())),
    })
    return t.sort_values("total_us", ascending=False).reset_index()


def _top_fill_counts(trace: ftracekit.Trace, rounds: pd.Index) -> list[int]:
    """Messages written per round: calls of ``*_fill_*`` functions (rtnl_fill_ifinfo,
    inet_fill_ifaddr …) not nested in another fill call."""
    out = []
    for call in rounds:
        sub = trace.subtree(int(call))
        is_fill = sub["func"].astype(str).map(lambda f: fnmatch.fnmatchcase(f, "*_fill_*")
                                              and not f.endswith("_size"))
        fills = sub[is_fill]
        nested = fills["parent"].isin(fills.index)
        out.append(int((~nested).sum()))
    return out


def dump_rounds(trace: ftracekit.Trace) -> pd.DataFrame:
    """One row per ``netlink_dump`` round: ``call``, ``task``, ``dump`` (numbered per task: a
    round called from ``__netlink_dump_start`` starts a new dump), ``round`` (1, 2, …),
    ``from`` (the caller), ``when``, ``duration_us``, ``messages``."""
    try:
        nd = trace.calls_of("netlink_dump")
    except FtracekitError:
        return pd.DataFrame(columns=["call", "task", "dump", "round", "from", "when",
                                     "duration_us", "messages"])
    c = trace.calls
    parent = nd["parent"]
    caller = np.where(parent.isin(c.index), c["func"].astype(str).reindex(parent).to_numpy(),
                      "(not recorded)")
    task = C.task_of(trace, nd).to_numpy()
    starts = pd.Series(caller == "__netlink_dump_start")
    dump = starts.groupby(task).cumsum().to_numpy()
    df = pd.DataFrame({"call": nd.index, "task": task, "dump": dump, "from": caller,
                       "when": _when(trace, nd).to_numpy(),
                       "duration_us": nd["duration_us"].to_numpy(),
                       "messages": _top_fill_counts(trace, nd.index)})
    df["round"] = df.groupby(["task", "dump"]).cumcount() + 1
    return df[["call", "task", "dump", "round", "from", "when", "duration_us", "messages"]]


def dumps(rounds: pd.DataFrame) -> pd.DataFrame:
    """Per dump: ``rounds``, ``messages`` (total), ``per_round`` (messages in each round),
    ``total_us``, ``slowest_round_us``."""
    if not len(rounds):
        return pd.DataFrame(columns=["task", "dump", "rounds", "messages", "per_round",
                                     "total_us", "slowest_round_us"])
    g = rounds.groupby(["task", "dump"], sort=False)
    return pd.DataFrame({
        "rounds": g.size(),
        "messages": g["messages"].sum(),
        "per_round": g["messages"].apply(lambda m: "+".join(str(x) for x in m)),
        "total_us": g["duration_us"].sum(),
        "slowest_round_us": g["duration_us"].max(),
    }).reset_index()


def report(trace: ftracekit.Trace, n: int = 10) -> None:
    s = trace.summary()
    print(f"trace {s['source']}: {s['calls']:,} calls, {s['tasks']} tasks, {s['cpus']} CPUs"
          + (f", {s['span_s']:.3f} s" if s["span_s"] else " (no timestamps: 'when' is a line number)"))
    req = requests(trace)
    print(f"\n{len(req)} netlink requests (rtnetlink_rcv calls); the {min(n, len(req))} slowest:")
    show = req.head(n).assign(duration=req["duration_us"].head(n).map(C.fmt_us))
    C.print_table(show[["call", "task", "when", "duration", "kind"]])

    print("\nwho sent them:")
    bt = by_task(req)
    for col in ("total_us", "max_us", "p50_us"):
        bt[col] = bt[col].map(C.fmt_us)
    C.print_table(bt.rename(columns={"total_us": "total", "max_us": "slowest", "p50_us": "median"}))

    rounds = dump_rounds(trace)
    print("\nhow the dumps were split across netlink_dump rounds:")
    if not len(rounds):
        print("  no netlink_dump calls in this trace")
    else:
        d = dumps(rounds)
        d["total"] = d["total_us"].map(C.fmt_us)
        d["slowest round"] = d["slowest_round_us"].map(C.fmt_us)
        C.print_table(d[["task", "dump", "rounds", "messages", "per_round", "total", "slowest round"]])
        later = (rounds["round"] > 1).sum()
        if not later:
            print("  (only first rounds: graph netlink_recvmsg too to see the rounds run when "
                  "the task reads the rest of the dump)")

    slow = int(req["call"].iloc[0])
    cp = trace.critical_path(slow)
    print(f"\ncritical path of the slowest request (call {slow}, {C.fmt_us(req['duration_us'].iloc[0])}, "
          f"{req['task'].iloc[0]}):")
    base = int(cp["depth"].iloc[0])
    cp["function"] = ["  " * (int(d) - base) + str(f) for d, f in zip(cp["depth"], cp["func"])]
    cp["duration"] = cp["duration_us"].map(C.fmt_us)
    cp["self"] = cp["self_us"].map(C.fmt_us)
    cp["share"] = cp["pct_of_top"].map(lambda v: f"{v:5.1f}%")
    C.print_table(cp[["share", "duration", "self", "function"]])


def run(args) -> int:
    if args.live:
        trace = C.live_record(LIVE_FUNCS, LIVE_COMMAND, args.output,
                              what="running ip link show / ip addr show")
    else:
        trace = ftracekit.load(args.trace or C.find_sample(*SAMPLES))
    report(trace)
    req = requests(trace)
    slow = int(req["call"].iloc[0])
    C.save_plots(args, {
        "rtnetlink_rcv_time": lambda: trace.plot.time("rtnetlink_rcv"),
        "rtnetlink_rcv_hist": lambda: trace.plot.hist("rtnetlink_rcv"),
        "slowest_request_flame": lambda: trace.plot.flame(slow),
        "timeline": lambda: trace.plot.timeline(),
    })
    return 0


if __name__ == "__main__":
    C.main_wrapper(run, C.parser(__doc__.splitlines()[1]))
