#!/usr/bin/env python3
"""Where did the slowest packet wait?

From a trace recorded with ``ftracekit record --packets`` (skb events with raw addresses, and
on 6.15+ kernels function arguments too), this prints:

* how many packets (skb generations) the trace holds, and the drops per reason;
* the slowest packets (first to last step) with their largest gap;
* the journey of the slowest one — every call and event of that skb across tasks, CPUs and
  softirqs — and where its largest gap was.

    python examples/packet_journey.py                 (bundled 6.18 UDP-through-tbf capture)
    python examples/packet_journey.py --trace my.txt
    sudo python examples/packet_journey.py --live     (UDP through a slow tbf in a namespace)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

import ftracekit  # noqa: E402
from ftracekit.errors import FtracekitError  # noqa: E402

SAMPLES = ("udp_tbf_raw", "udp_tbf_hashed")
# 10 UDP datagrams to a bound socket and 3 to a closed port, on 127.0.0.1 in a private
# network namespace whose lo has a 400 kbit/s tbf: the qdisc holds them ~20 ms each
SENDER = (
    "import socket\n"
    "r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(('127.0.0.1', 5000))\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "for _ in range(10): s.sendto(b'x' * 1000, ('127.0.0.1', 5000))\n"
    "for _ in range(3): s.sendto(b'y' * 100, ('127.0.0.1', 5001))\n"
    "r.settimeout(5)\n"
    "for _ in range(10): r.recv(2000)\n")


def slowest(trace: ftracekit.Trace, n: int = 5) -> pd.DataFrame:
    """The ``n`` packets with the longest span (first to last step), longest first."""
    pk = trace.packets()
    return pk.sort_values("span_us", ascending=False, kind="stable").head(n)


def gap_of(journey: pd.DataFrame) -> dict:
    """The largest gap of a journey: ``gap_us``, the steps ``after``/``before`` it and where
    (``from_task``/``to_task``, ``from_context``/``to_context``)."""
    i = int(journey["gap_us"].idxmax())
    a, b = journey.iloc[i - 1], journey.iloc[i]
    return {"gap_us": round(float(b["gap_us"]), 3), "after": a["name"], "before": b["name"],
            "from_task": a["task"], "to_task": b["task"], "from_context": a["context"],
            "to_context": b["context"]}


def report(trace: ftracekit.Trace) -> pd.Series:
    pk = trace.packets()
    print(f"trace {trace.meta.get('source')}: {len(trace.calls):,} calls, "
          f"{len(trace.events):,} events, {len(pk):,} packets, {int(pk['dropped'].sum())} dropped")
    d = pk[pk["dropped"]]
    if len(d):
        print("\ndrops per reason:")
        C.print_table(d.groupby("reason").size().rename("drops").reset_index())
    top = slowest(trace)
    print("\nslowest packets:")
    C.print_table(top[["skb", "gen", "span_us", "n_steps", "first", "last", "max_gap_us",
                       "gap_after", "gap_before", "dropped"]])
    worst = top.iloc[0]
    j = trace.journey(worst["skb"], gen=int(worst["gen"]))
    print(f"\njourney of {worst['skb']} (generation {worst['gen']}):")
    C.print_table(j.assign(ts_s=j["ts_s"].map("{:.6f}".format))[
        ["ts_s", "cpu", "task", "context", "kind", "name", "dev", "duration_us", "gap_us"]])
    g = gap_of(j)
    print(f"\nlargest gap: {g['gap_us']:,.3f} us between {g['after']} ({g['from_task']}, "
          f"{g['from_context']}) and {g['before']} ({g['to_task']}, {g['to_context']})")
    return worst


def live(output: str) -> ftracekit.Trace:
    if os.geteuid() != 0:
        raise FtracekitError("--live records with ftrace and needs root (run it with sudo)")
    for tool in ("unshare", "ip", "tc"):
        if shutil.which(tool) is None:
            raise FtracekitError(f"--live needs {tool} (iproute2, util-linux)")
    script = ("ip link set lo up && tc qdisc add dev lo root tbf rate 400kbit burst 1600 "
              f"limit 100000 && {sys.executable} -m ftracekit record --packets -o {output} -- "
              f"{sys.executable} -c \"$SENDER\"")
    print("recording the skb events while sending UDP through a 400 kbit/s tbf on lo "
          "(private network namespace)", file=sys.stderr)
    env = dict(os.environ, SENDER=SENDER)
    p = subprocess.run(["unshare", "-n", "--", "sh", "-c", script], env=env,
                       stdout=subprocess.DEVNULL)
    if p.returncode:
        raise FtracekitError(f"the recording failed (exit {p.returncode})")
    return ftracekit.load(output)


def run(args) -> int:
    trace = live(args.output) if args.live else \
        ftracekit.load(args.trace or C.find_sample(*SAMPLES))
    worst = report(trace)
    plots = {"slowest_journey": lambda: trace.plot.journey(worst["skb"], gen=int(worst["gen"]))}
    if trace.packets()["dropped"].any():
        plots["drops"] = lambda: trace.plot.drops()
    C.save_plots(args, plots)
    return 0


if __name__ == "__main__":
    C.main_wrapper(run, C.parser(__doc__.splitlines()[1]))
