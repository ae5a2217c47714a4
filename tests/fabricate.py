"""Fabricated function_graph text with timestamps (funcgraph-abstime + proc), for the plot,
export and example tests: several tasks on several CPUs, nested calls, events.

The real traces in tests/data have the real-world quirks; these have exactly known times.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HEADER = """\
# tracer: function_graph
#
#     TIME        CPU  TASK/PID         DURATION                  FUNCTION CALLS
#      |          |     |    |           |   |                     |   |   |   |
"""


@dataclass
class Node:
    func: str
    start_us: float          # absolute, µs
    dur_us: float
    children: list["Node"] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)   # (time µs, comment text)


def _mark(d: float) -> str:
    for lim, m in ((1e6, "$ "), (1e5, "@ "), (1e4, "* "), (1e3, "# "), (100, "! "), (10, "+ ")):
        if d > lim:
            return m
    return "  "


def _dur_field(d: float) -> str:
    return (_mark(d) + f"{d:.3f} us").ljust(14)


def _lines(node: Node, depth: int, cpu: int, proc: str, out: list[tuple[float, int, str]],
           seq: list[int]) -> None:
    ind = "  " * depth

    def emit(t: float, dur: str, body: str) -> None:
        seq[0] += 1
        out.append((t, seq[0], f"{t / 1e6:13.6f} |   {cpu})  {proc:^14} | {dur} |  {body}"))

    if not node.children and not node.events:
        emit(node.start_us, _dur_field(node.dur_us), f"{ind}{node.func}();")
        return
    emit(node.start_us, " " * 14, f"{ind}{node.func}() {{")
    items = [(c.start_us, 0, c) for c in node.children] + [(t, 1, e) for t, e in node.events]
    for t, kind, x in sorted(items, key=lambda i: (i[0], i[1])):
        if kind == 0:
            _lines(x, depth + 1, cpu, proc, out, seq)
        else:
            emit(t, " " * 14, f"{ind}  /* {x} */")
    emit(node.start_us + node.dur_us, _dur_field(node.dur_us), f"{ind}}}")


def render(tasks: list[tuple[int, str, int, list[Node]]]) -> str:
    """``tasks``: (cpu, comm, pid, root nodes). Lines of all tasks merged by time."""
    out: list[tuple[float, int, str]] = []
    seq = [0]
    for cpu, comm, pid, roots in tasks:
        for r in roots:
            _lines(r, 0, cpu, f"{comm}-{pid}", out, seq)
    out.sort(key=lambda x: (x[0], x[1]))
    return HEADER + "\n".join(line for _, _, line in out) + "\n"


def rtnl_like(n_requests: int = 40, slow_every: int = 10, t0_s: float = 100.0) -> str:
    """A dumper task ``ip`` whose netlink requests are mostly fast with periodic slow ones,
    plus a ``ping`` task on another CPU whose sends drop packets (kfree_skb events)."""
    tasks = []
    roots = []
    t = t0_s * 1e6
    for i in range(n_requests):
        slow = (i % slow_every) == slow_every - 1
        dump = 900.0 if slow else 40.0
        msg = Node("rtnetlink_rcv_msg", t + 3, dump + 20, [
            Node("netlink_dump", t + 5, dump, [
                Node("rtnl_dump_ifinfo", t + 6, dump - 4,
                     [Node("rtnl_fill_ifinfo", t + 7 + k * (dump - 8) / 4, (dump - 8) / 4 - 1)
                      for k in range(4)]),
            ]),
        ])
        roots.append(Node("rtnetlink_rcv", t, dump + 30, [
            Node("netlink_rcv_skb", t + 1, dump + 27, [msg])]))
        t += dump + 30 + 200
    tasks.append((0, "ip", 407, roots))
    roots = []
    t = t0_s * 1e6 + 50
    for i in range(25):
        ev = [(t + 4, "kfree_skb: skbaddr=00000000a1b2c3d4 protocol=2048 location=ip_rcv_core "
                      "reason: OTHERHOST")] if i % 5 == 0 else []
        roots.append(Node("ip_rcv", t, 12.5, [Node("ip_rcv_core", t + 1, 6.25, events=ev),
                                              Node("ip_rcv_finish", t + 8, 3.5)]))
        t += 700
    tasks.append((1, "ping", 512, roots))
    return render(tasks)


def replicate(trace, copies: int):
    """A Trace made of ``copies`` back-to-back copies of ``trace``'s calls (ids, parents,
    roots, lines and times shifted), for speed tests on million-call tables."""
    import numpy as np
    import pandas as pd

    from ftracekit import Trace

    c = trace.calls
    n = len(c)
    lines = int(c["line"].max()) + 1
    span = 0.0
    if trace.has_times:
        span = float(np.nanmax(c["end_s"]) - np.nanmin(c["start_s"])) + 1e-3
    parts = []
    for k in range(copies):
        p = c.copy()
        p.index = p.index + k * n
        p["parent"] = np.where(p["parent"] >= 0, p["parent"] + k * n, -1)
        p["root"] = p["root"] + k * n
        p["line"] = p["line"] + k * lines
        p["start_s"] = p["start_s"] + k * span
        p["end_s"] = p["end_s"] + k * span
        parts.append(p)
    calls = pd.concat(parts)
    calls.index.name = "call"
    for col in ("func", "module", "comm", "status"):
        calls[col] = calls[col].astype(c[col].dtype)
    return Trace(calls, trace.events.iloc[0:0], dict(trace.meta))
