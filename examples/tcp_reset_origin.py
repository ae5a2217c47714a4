#!/usr/bin/env python3
"""Who sent those TCP resets, and from where?

From a function_graph trace that contains ``tcp_v4_send_reset`` / ``tcp_v6_send_reset``
(a reset answering a segment: closed port, bad state …) or ``tcp_send_active_reset`` (a reset
we chose to send: close with unread data, SO_LINGER 0, abort …), this prints:

* every reset with its task, time and the call path that led to it (as far up as the trace
  recorded: graph a caller such as ``tcp_v4_rcv`` or ``tcp_close`` to see more);
* resets grouped by task and path;
* what the slowest reset spent its time in;
* ``tcp_send_reset`` trace events (tcp:tcp_send_reset), when recorded, with their addresses.

    python examples/tcp_reset_origin.py
    python examples/tcp_reset_origin.py --trace my.txt
    sudo python examples/tcp_reset_origin.py --live
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

SAMPLES = ("tcp_reset", "tcp_reset_events", "tcp_reset_live", "tcp_reset_proc")
RESET_FUNCS = ("tcp_v4_send_reset", "tcp_v6_send_reset", "tcp_send_active_reset")
LIVE_FUNCS = ["tcp_v4_rcv", "tcp_close"]
LIVE_EVENTS = ["tcp:tcp_send_reset"]
# a reset for a connection to a closed port, and one for a close with SO_LINGER 0
LIVE_COMMAND = [sys.executable, "-c", """
import socket, struct
s = socket.socket(); s.connect_ex(("127.0.0.1", 9)); s.close()
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
c = socket.create_connection(srv.getsockname()); a, _ = srv.accept()
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
a.close(); srv.close()
"""]


def resets(trace: ftracekit.Trace) -> pd.DataFrame:
    """One row per reset call: ``call``, ``func``, ``task``, ``when`` (s as the trace prints them, or
    the line number), ``duration_us``, ``path`` (outermost recorded caller → … → the reset
    function), ``kind`` (``answer`` for tcp_v*_send_reset, ``active`` for
    tcp_send_active_reset)."""
    present = [f for f in RESET_FUNCS if f in set(trace.functions)]
    if not present:
        raise FtracekitError(f"no TCP reset in this trace (looked for {', '.join(RESET_FUNCS)}); "
                             "record with --func tcp_v4_rcv --func tcp_close or the reset "
                             "functions themselves")
    c = trace.calls
    calls = c[c["func"].astype(str).isin(present).to_numpy()]
    if trace.has_times:
        when = calls["start_s"].round(6)      # seconds as the trace prints them
    else:
        when = calls["line"]
    func = calls["func"].astype(str)
    return pd.DataFrame({
        "call": calls.index,
        "func": func.to_numpy(),
        "kind": np.where(func == "tcp_send_active_reset", "active", "answer"),
        "task": C.task_of(trace, calls).to_numpy(),
        "when": when.to_numpy(),
        "duration_us": calls["duration_us"].to_numpy(),
        "path": C.call_paths(trace, calls.index).to_numpy(),
    })


def by_origin(r: pd.DataFrame) -> pd.DataFrame:
    """Resets per (task, path): ``resets``, ``first_when``, ``total_us``."""
    g = r.groupby(["task", "path"], sort=False)
    out = pd.DataFrame({"resets": g.size(), "first_when": g["when"].min(),
                        "total_us": g["duration_us"].sum()}).reset_index()
    return out.sort_values(["resets", "total_us"], ascending=False, kind="stable").reset_index(drop=True)


def reset_events(trace: ftracekit.Trace) -> pd.DataFrame:
    """``tcp_send_reset`` events: ``line``, ``task``, ``text``, ``in_call`` (function of the
    enclosing call, or ``-``)."""
    e = trace.events
    e = e[e["event"].astype(str) == "tcp_send_reset"]
    c = trace.calls
    in_call = np.where(e["call"].isin(c.index), c["func"].astype(str).reindex(e["call"]).to_numpy(), "-")
    comm = e["comm"].astype(object).where(e["comm"].notna(), "?").astype(str)
    return pd.DataFrame({"line": e["line"].to_numpy(), "task": (comm + "-" + e["pid"].astype(str)).to_numpy(),
                         "in_call": in_call, "text": e["text"].astype(str).to_numpy()})


def report(trace: ftracekit.Trace) -> None:
    s = trace.summary()
    print(f"trace {s['source']}: {s['calls']:,} calls, {s['tasks']} tasks"
          + ("" if trace.has_times else " (no timestamps: 'when' is a line number)"))
    r = resets(trace)
    n_ans, n_act = int((r["kind"] == "answer").sum()), int((r["kind"] == "active").sum())
    print(f"\n{len(r)} TCP resets: {n_ans} answering a segment (tcp_v*_send_reset), "
          f"{n_act} actively sent (tcp_send_active_reset)")
    show = r.assign(duration=r["duration_us"].map(C.fmt_us))
    C.print_table(show[["call", "task", "when", "duration", "path"]])

    print("\nby task and call path:")
    o = by_origin(r)
    o["total"] = o["total_us"].map(C.fmt_us)
    C.print_table(o[["resets", "task", "first_when", "total", "path"]])
    if (r["path"] == r["func"]).all():
        print("  (the resets are the graph roots here: graph a caller such as tcp_v4_rcv or "
              "tcp_close to see where they come from)")

    slow = int(r.sort_values("duration_us", ascending=False).iloc[0]["call"])
    kids = trace.children(slow).sort_values("duration_us", ascending=False).head(5)
    print(f"\nthe slowest reset (call {slow}, {C.fmt_us(float(trace.calls.loc[slow, 'duration_us']))}) "
          f"spent its time in:")
    kids = kids.assign(duration=kids["duration_us"].map(C.fmt_us), function=kids["func"].astype(str))
    C.print_table(kids[["function", "duration"]])

    ev = reset_events(trace)
    if len(ev):
        print(f"\n{len(ev)} tcp_send_reset events:")
        C.print_table(ev)


def run(args) -> int:
    if args.live:
        trace = C.live_record(LIVE_FUNCS, LIVE_COMMAND, args.output, events=LIVE_EVENTS,
                              what="connecting to a closed port and closing a connection with SO_LINGER 0")
    else:
        trace = ftracekit.load(args.trace or C.find_sample(*SAMPLES))
    report(trace)
    r = resets(trace)
    slow = int(r.sort_values("duration_us", ascending=False).iloc[0]["call"])
    C.save_plots(args, {
        "slowest_reset_flame": lambda: trace.plot.flame(slow),
        "top_self_time": lambda: trace.plot.top(15),
    })
    return 0


if __name__ == "__main__":
    C.main_wrapper(run, C.parser(__doc__.splitlines()[1]))
