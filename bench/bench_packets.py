#!/usr/bin/env python3
"""Speed of the packet analyses: ``Trace.packets()``, ``Trace.arg()``, ``event_fields()``,
``journey()`` and ``callers()`` on large traces.

No multi-million-line ``--packets`` recording exists yet, so the inputs are built from two real
captures by repeating them with fresh addresses and times (every repetition is a new set of
packets, as a long recording would be):

* ``events``: tests/data/6.18-events/udp_tbf_raw.txt (events only, tracer nop, 84 event lines:
  net_dev_queue … netif_receive_skb, kfree_skb, consume_skb) — the host's own kernel;
* ``args``: tests/data/6.17.13+deb13-amd64/funcgraph_args_retval_proc.txt (function_graph with
  funcgraph-args, 72 lines, skb= on the UDP receive path, sk_skb_reason_drop/kfree_skbmem);
* ``packets``: tests/data/6.17.13+deb13-amd64/packets_udp_tbf.txt — what ``record --packets``
  records on 6.15+: function_graph with funcgraph-args *and* the skb events (hash-ptr 0), UDP
  over a tbf qdisc on loopback, calls and events of the same skbs (both joined).

Each repetition shifts timestamps by the capture's span and adds ``rep * 0x10000`` to every
kernel address. Results: bench/results_packets.md (overwritten).

    .venv/bin/python bench/bench_packets.py [--lines 1000000 10000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import ftracekit  # noqa: E402

SOURCES = {
    "events": REPO / "tests/data/6.18-events/udp_tbf_raw.txt",
    "args": REPO / "tests/data/6.17.13+deb13-amd64/funcgraph_args_retval_proc.txt",
    "packets": REPO / "tests/data/6.17.13+deb13-amd64/packets_udp_tbf.txt",
}
_ADDR = re.compile(r"(0x)?(ff[0-9a-f]{14})")
_TS = re.compile(r"(\d+\.\d{6})(?=:| \|)")


def build(kind: str, n_lines: int, path: Path) -> int:
    text = SOURCES[kind].read_text().splitlines()
    head = [ln for ln in text if ln.startswith("#")]
    body = [ln for ln in text if not ln.startswith("#") and ln.strip()]
    ts = [float(m.group(1)) for ln in body if (m := _TS.search(ln))]
    span = (max(ts) - min(ts)) + 0.001
    # templates: the body with placeholders for addresses and times
    tpl = []
    for ln in body:
        ln2 = _ADDR.sub(lambda m: (m.group(1) or "") + "{A%s}" % m.group(2), ln)
        ln2 = _TS.sub(lambda m: "{T%s}" % m.group(1), ln2)
        tpl.append(ln2)
    reps = max(1, n_lines // len(body))
    with open(path, "w") as f:
        f.write("\n".join(head) + "\n")
        for r in range(reps):
            off = r * 0x10000
            shift = r * span
            chunk = "\n".join(tpl)
            chunk = re.sub(r"\{A(ff[0-9a-f]{14})\}", lambda m: f"{int(m.group(1), 16) + off:016x}",
                           chunk)
            chunk = re.sub(r"\{T(\d+\.\d{6})\}", lambda m: f"{float(m.group(1)) + shift:.6f}",
                           chunk)
            f.write(chunk + "\n")
    return reps * len(body)


def timed(fn):
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def one(kind: str, n: int, path: Path) -> tuple:
    """Load ``path`` and time the analyses (in this process: its peak RSS is this input's)."""
    t_load, t = timed(lambda: ftracekit.load(path, progress=False))
    t_pk, pk = timed(t.packets)
    t_pk2, _ = timed(t.packets)          # steps cached on the trace
    if kind in ("args", "packets"):
        t_arg, a = timed(lambda: t.arg("skb"))
        func = "kfree_skbmem" if kind == "args" else "tbf_enqueue"
        t_cal, _ = timed(lambda: t.callers(func))
        extra = f"arg('skb') **{t_arg:.2f} s** ({int(a.notna().sum()):,} values); " \
                f"callers('{func}') {t_cal:.2f} s"
    else:
        t_ev, f = timed(lambda: t.event_fields("net_dev_start_xmit"))
        t_cal, _ = timed(lambda: t.callers(event="kfree_skb"))
        extra = f"event_fields('net_dev_start_xmit') {t_ev:.2f} s ({len(f):,} rows, " \
                f"{f.shape[1]} columns); callers(event='kfree_skb') {t_cal:.2f} s"
    worst = pk.sort_values("span_us").iloc[-1]
    t_j, _ = timed(lambda: t.journey(worst["skb"], gen=int(worst["gen"])))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return (len(t.calls), len(t.events), len(pk), t_load, t_pk, t_pk2, t_j, extra, rss)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--out", default=str(HERE / "results_packets.md"))
    ap.add_argument("--inputs", metavar="DIR",
                    help="keep the built inputs in DIR (KIND_LINES.txt) and reuse them on the "
                         "next run (they take minutes to build at 10^7 lines)")
    ap.add_argument("--one", nargs=3, metavar=("KIND", "LINES", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), Path(args.one[2]))))
        return 0
    rows = []
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        keep = Path(args.inputs) if args.inputs else None
        for kind in SOURCES:
            for n in args.lines:
                p = (keep or Path(tmp)) / f"{kind}_{n}.txt"
                if keep is not None and p.exists():
                    lines = sum(1 for ln in open(p, "rb") if ln.strip() and not ln.startswith(b"#"))
                else:
                    lines = build(kind, n, p)
                r = subprocess.run([sys.executable, __file__, "--one", kind, str(n), str(p)],
                                   capture_output=True, text=True)
                if keep is None:
                    p.unlink()
                if r.returncode:
                    print(r.stderr[-3000:], file=sys.stderr)
                    return 1
                res = json.loads(r.stdout.strip().splitlines()[-1])
                rows.append((kind, lines, *res))
                print(rows[-1], flush=True)
    u = platform.uname()
    with open(args.out, "w") as f:
        f.write("# Packet analyses benchmark\n\n")
        f.write(f"Generated by `bench/bench_packets.py` on "
                f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC: {u.machine}, "
                f"{os.cpu_count()} CPUs, kernel {u.release}, Python {platform.python_version()}; "
                f"load average {os.getloadavg()[0]:.2f} at the end (the machine is shared).\n\n")
        f.write("Inputs: real captures repeated with fresh addresses and times (see the script's "
                "docstring); one run each, wall clock; each input loaded in a fresh process "
                "(peak RSS is that process's: load and analyses).\n\n")
        f.write("| input | lines | calls | events | packets | load | packets() | packets() "
                "again | journey() | other | peak RSS |\n|---|---:|---:|---:|---:|---:|---:|---:|"
                "---:|---|---:|\n")
        for r in rows:
            f.write(f"| {r[0]} | {r[1]:,} | {r[2]:,} | {r[3]:,} | {r[4]:,} | {r[5]:.2f} s | "
                    f"**{r[6]:.2f} s** | {r[7]:.2f} s | {r[8]:.3f} s | {r[9]} | {r[10]:,.0f} MB |\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
