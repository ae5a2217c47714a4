#!/usr/bin/env python3
"""Where were packets dropped, and why?

From a trace that recorded the ``skb:kfree_skb`` event (kernels 5.17+ print a drop
``reason``) — ideally together with a function_graph of the receive path, so each event sits
inside the call it happened in — this prints:

* drops per reason;
* drops grouped by the function call they happened in (and its call path), with the tasks;
* drops outside any recorded call, by the code location the event names;
* the call chains (graph root → … → the call the drop fired in) behind the drops.

The event's fields come from ``Trace.event_fields("kfree_skb")`` (typed columns, any kernel's
layout) and the chains from ``Trace.callers(event="kfree_skb")``.

    python examples/packet_drops.py
    python examples/packet_drops.py --trace my.txt
    sudo python examples/packet_drops.py --live
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

import ftracekit  # noqa: E402
from ftracekit.errors import FtracekitError  # noqa: E402

SAMPLES = ("packet_drops", "packet_drops_live", "kfree_skb_events", "rtnl_capture.trace")
FREE_FUNCS = ["kfree_skb_reason", "kfree_skb", "__kfree_skb", "kfree_skb_list_reason",
              "sk_skb_reason_drop", "kfree_skb_partial"]
LIVE_FUNCS = ["ip_rcv"]                 # IPv4: the workload sends to 127.0.0.1
LIVE_EVENTS = ["skb:kfree_skb"]
# UDP to a closed port on loopback: dropped with reason NO_SOCKET in __udp4_lib_rcv
LIVE_COMMAND = [sys.executable, "-c",
                "import socket\n"
                "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                "for _ in range(5): s.sendto(b'x', ('127.0.0.1', 9))\n"]


def drops(trace: ftracekit.Trace) -> pd.DataFrame:
    """One row per ``kfree_skb`` event: ``line``, ``task``, ``reason`` (``-`` when the kernel
    prints none), ``location`` (the freeing code, without the offset), ``protocol``, ``call``
    (the call it happened in — the caller of kfree_skb_reason() & co. when those are graphed
    —, −1 for none), ``function``, ``path`` (call path of that call)."""
    try:
        f = trace.event_fields("kfree_skb")        # one typed column per field of the event
    except FtracekitError:
        raise FtracekitError("no skb:kfree_skb events in this trace; record with "
                             "--event skb:kfree_skb") from None
    e = f
    n = len(f)
    reason = (f["reason"].astype(object).fillna("-") if "reason" in f
              else pd.Series(["-"] * n, index=f.index))
    if "location_func" in f:
        location = f["location_func"].astype(object).fillna("?")
    elif "location" in f and not pd.api.types.is_integer_dtype(f["location"].dtype):
        location = f["location"].astype(str).str.extract(r"^([^+\s]+)", expand=False).fillna("?")
    else:
        # kernels that hash pointers print the location as a bare address (typed as a
        # number): say so
        location = pd.Series(["(hashed address)" if "location" in f else "?"] * n, index=f.index)
    proto = (f["protocol"].astype(object).fillna("?").astype(str) if "protocol" in f
             else pd.Series(["?"] * n, index=f.index))
    c = trace.calls
    call = e["call"].to_numpy().copy()
    inside = np.isin(call, c.index.to_numpy()) & (call >= 0)
    # the event fires inside kfree_skb_reason() & co. when those are graphed: the drop
    # happened in their caller
    for _ in range(4):
        f = np.full(len(call), "", dtype=object)
        f[inside] = c["func"].astype(str).loc[call[inside]].to_numpy()
        up = inside & np.isin(f, FREE_FUNCS)
        if not up.any():
            break
        par = c["parent"].loc[call[up]].to_numpy()
        ok = np.isin(par, c.index.to_numpy())
        idx = np.flatnonzero(up)
        call[idx[ok]] = par[ok]
    func = np.full(len(e), "-", dtype=object)
    path = np.full(len(e), "-", dtype=object)
    if inside.any():
        func[inside] = c["func"].astype(str).loc[call[inside]].to_numpy()
        uniq = np.unique(call[inside])
        paths = C.call_paths(trace, uniq)
        path[inside] = paths.loc[call[inside]].to_numpy()
    comm = e["comm"].astype(object).where(e["comm"].notna(), "?").astype(str)
    return pd.DataFrame({"line": e["line"].to_numpy(),
                         "task": (comm + "-" + e["pid"].astype(str)).to_numpy(),
                         "reason": reason.to_numpy(), "location": location.to_numpy(),
                         "protocol": proto.to_numpy(), "call": np.where(inside, call, -1),
                         "function": func, "path": path})


def by_reason(d: pd.DataFrame) -> pd.DataFrame:
    out = d.groupby("reason", sort=False).agg(drops=("line", "size"),
                                             locations=("location", lambda s: ", ".join(sorted(set(s)))))
    return out.sort_values("drops", ascending=False, kind="stable").reset_index()


def by_call(d: pd.DataFrame) -> pd.DataFrame:
    """Drops inside recorded calls, per (function, path, reason): ``drops``, ``calls`` (distinct
    calls), ``tasks``."""
    inside = d[d["call"] >= 0]
    if not len(inside):
        return pd.DataFrame(columns=["function", "reason", "drops", "calls", "tasks", "path"])
    g = inside.groupby(["function", "path", "reason"], sort=False)
    out = pd.DataFrame({"drops": g.size(), "calls": g["call"].nunique(),
                        "tasks": g["task"].apply(lambda s: ", ".join(sorted(set(s))))}).reset_index()
    out = out.sort_values("drops", ascending=False, kind="stable").reset_index(drop=True)
    return out[["function", "reason", "drops", "calls", "tasks", "path"]]


def outside(d: pd.DataFrame) -> pd.DataFrame:
    """Drops outside any recorded call, per (location, reason): ``drops``, ``tasks``."""
    o = d[d["call"] < 0]
    if not len(o):
        return pd.DataFrame(columns=["location", "reason", "drops", "tasks"])
    g = o.groupby(["location", "reason"], sort=False)
    out = pd.DataFrame({"drops": g.size(),
                        "tasks": g["task"].apply(lambda s: ", ".join(sorted(set(s))))}).reset_index()
    return out.sort_values("drops", ascending=False, kind="stable").reset_index(drop=True)


def report(trace: ftracekit.Trace) -> None:
    s = trace.summary()
    d = drops(trace)
    print(f"trace {s['source']}: {s['calls']:,} calls, {s['events']:,} events, "
          f"{len(d)} kfree_skb drops")
    print("\ndrops per reason:")
    C.print_table(by_reason(d))
    bc = by_call(d)
    print("\ndrops inside recorded calls, by the call they happened in:")
    if len(bc):
        C.print_table(bc)
    else:
        print("  none: no kfree_skb happened inside a graphed function (graph the receive path, "
              "e.g. ip_rcv, to place them)")
    o = outside(d)
    if len(o):
        print("\ndrops outside any recorded call, by location:")
        C.print_table(o)
    if len(trace.calls):
        who = trace.callers(event="kfree_skb")       # call chains from the graph root down
        print("\nwho dropped: call chains that led to kfree_skb")
        C.print_table(who[["count", "total_us", "chain"]])


def run(args) -> int:
    if args.live:
        trace = C.live_record(LIVE_FUNCS, LIVE_COMMAND, args.output, events=LIVE_EVENTS,
                              what="sending UDP to a closed port on 127.0.0.1")
    else:
        trace = ftracekit.load(args.trace or C.find_sample(*SAMPLES))
    report(trace)
    d = drops(trace)
    calls = d.loc[d["call"] >= 0, "call"]
    plots = {"top_self_time": lambda: trace.plot.top(15)}
    if len(calls):
        first = int(calls.iloc[0])
        root = int(trace.calls.loc[first, "root"])
        plots["first_drop_flame"] = lambda: trace.plot.flame(root)
    C.save_plots(args, plots)
    return 0


if __name__ == "__main__":
    C.main_wrapper(run, C.parser(__doc__.splitlines()[1]))
