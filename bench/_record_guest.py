"""Guest side of bench/bench_record.py: runs INSIDE the VM, as root, in a private network
namespace. Records the same workload with each method and writes what it measured.

    python bench/_record_guest.py OUTDIR SECONDS BUFFER_KB LINKS METHOD[,METHOD...]

Workload (one run per method, same for all): ``ip -d link show`` in a loop over LINKS dummy
links for SECONDS, beside a CPU-bound busy loop (``sh -c 'while :; do :; done'``), both forked
from here. Graph: ``rtnetlink_rcv`` + ``netlink_dump``, full depth, ring buffer BUFFER_KB per
CPU. Methods:

* ``none``      — no tracing (the workload's own speed, for the slowdown);
* ``ftk-text``  — ``ftracekit.Recorder`` streaming ``trace_pipe`` text;
* ``ftk-raw``   — ``ftracekit.Recorder(raw=True)``: per-CPU ``trace_pipe_raw`` pages;
* ``pipe``      — plain tracefs writes, then ``cat trace_pipe > file`` while the workload runs;
* ``once``      — plain tracefs writes, then ``cat trace > file`` once at the end;
* ``trace-cmd`` — ``trace-cmd record -p function_graph -g … -b BUFFER_KB`` (until SIGINT).

For each: per-CPU ``stats`` (overrun, dropped events) before the workload and before tracing
stops, the recorder's CPU time (its own process tree, from rusage), the workload's iterations
and the time from "stop" to "file complete". The events captured are counted on the host from
the files (ftracekit.load), so every method is counted the same way.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

T = Path("/sys/kernel/tracing")
GRAPH = ["rtnetlink_rcv", "netlink_dump"]


def write(name: str, value: str) -> None:
    with open(T / name, "w") as f:
        f.write(value)


def stats(root: Path = T) -> dict[int, dict[str, int]]:
    out = {}
    for d in sorted((root / "per_cpu").glob("cpu*")):
        kv = {}
        for line in (d / "stats").read_text().splitlines():
            k, _, v = line.partition(":")
            v = v.strip()
            if v.isdigit():
                kv[k.strip()] = int(v)
        out[int(d.name[3:])] = kv
    return out


def lost(before: dict, after: dict) -> dict:
    per = {c: {"overrun": a.get("overrun", 0) - before.get(c, {}).get("overrun", 0),
               "dropped": a.get("dropped events", 0) - before.get(c, {}).get("dropped events", 0)}
           for c, a in after.items()}
    return {"per_cpu": per, "total": sum(v["overrun"] + v["dropped"] for v in per.values())}


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def wait_cpu(proc: subprocess.Popen, timeout_s: float | None = None,
             sig: int = signal.SIGINT) -> float:
    """Wait for ``proc`` (sending ``sig`` if it still runs after ``timeout_s``) and return the
    CPU time of it and its waited-for descendants, from wait4's rusage. Popen.poll/send_signal
    are avoided: they would reap the process first (`cat trace_pipe` ends by itself once
    tracing is off and the buffer is drained)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        pid, _, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = 0          # reaped here; keep Popen from waiting again
            return ru.ru_utime + ru.ru_stime
        if deadline is not None and time.monotonic() > deadline:
            os.kill(proc.pid, sig)
            deadline = None
        time.sleep(0.05)


def start_workload(seconds: float, out: Path) -> tuple[int, int]:
    """(workload pid, busy-loop pid). The workload writes its iteration count to ``out``."""
    loop = (f'end=$(( $(date +%s) + {int(seconds)} )); n=0; '
            f'while [ $(date +%s) -lt $end ]; do ip -d link show > /dev/null; n=$((n+1)); done; '
            f'echo $n > {out}')
    w = subprocess.Popen(["sh", "-c", loop])
    b = subprocess.Popen(["sh", "-c", "while :; do :; done"])
    return w.pid, b.pid


def wait_workload(pids: tuple[int, int], out: Path) -> int:
    os.waitpid(pids[0], 0)
    os.kill(pids[1], signal.SIGKILL)
    os.waitpid(pids[1], 0)
    return int(out.read_text().strip() or 0)


def manual_setup(buffer_kb: int) -> None:
    write("tracing_on", "0")
    write("current_tracer", "nop")
    write("buffer_size_kb", str(buffer_kb))
    write("set_graph_function", "\n".join(GRAPH) + "\n")
    for opt in ("funcgraph-proc", "funcgraph-abstime"):
        write(f"options/{opt}", "1")
    write("current_tracer", "function_graph")
    write("trace", "")


def manual_teardown() -> None:
    write("tracing_on", "0")
    write("current_tracer", "nop")
    write("set_graph_function", "")
    for opt in ("funcgraph-proc", "funcgraph-abstime"):
        write(f"options/{opt}", "0")
    write("buffer_size_kb", "1408")
    write("trace", "")
    write("tracing_on", "1")


def run(method: str, outdir: Path, seconds: float, buffer_kb: int) -> dict:
    res: dict = {"method": method}
    count_file = outdir / f"{method}.iterations"
    if method == "none":
        t0 = time.monotonic()
        res["iterations"] = wait_workload(start_workload(seconds, count_file), count_file)
        res["workload_s"] = time.monotonic() - t0
        return res

    if method in ("ftk-text", "ftk-raw"):
        from ftracekit import Recorder
        raw = method == "ftk-raw"
        out = outdir / ("ftk-raw.capture" if raw else "ftk-text.txt")
        kw = {"raw": True} if raw else {}
        rec = Recorder(GRAPH, output=out, buffer_kb=buffer_kb, instance=False, **kw)
        c0 = cpu_self()
        rec.start()
        t0 = time.monotonic()
        res["iterations"] = wait_workload(start_workload(seconds, count_file), count_file)
        res["workload_s"] = time.monotonic() - t0
        t1 = time.monotonic()
        rec.stop(load=False)
        res["stop_s"] = time.monotonic() - t1
        res["recorder_cpu_s"] = cpu_self() - c0
        res["lost"] = rec.meta["lost_events"]
        res["file"] = out.name
        return res

    if method in ("pipe", "once"):
        manual_setup(buffer_kb)
        out = outdir / f"{method}.txt"
        before = stats()
        cat = None
        if method == "pipe":
            cat = subprocess.Popen(["cat", str(T / "trace_pipe")], stdout=out.open("wb"))
        write("tracing_on", "1")
        t0 = time.monotonic()
        res["iterations"] = wait_workload(start_workload(seconds, count_file), count_file)
        res["workload_s"] = time.monotonic() - t0
        after = stats()
        write("tracing_on", "0")
        t1 = time.monotonic()
        if cat is not None:
            cpu = wait_cpu(cat, timeout_s=10.0)   # drains what is left, then ends by itself
        else:
            cpu = wait_cpu(subprocess.Popen(["cat", str(T / "trace")], stdout=out.open("wb")))
        res["stop_s"] = time.monotonic() - t1
        res["recorder_cpu_s"] = cpu
        res["lost"] = lost(before, after)
        res["file"] = out.name
        manual_teardown()
        return res

    if method == "trace-cmd":
        out = outdir / "trace-cmd.dat"
        log = (outdir / "trace-cmd.log").open("wb")
        tc = subprocess.Popen(["trace-cmd", "record", "-p", "function_graph",
                               *[a for g in GRAPH for a in ("-g", g)], "-b", str(buffer_kb),
                               "-o", str(out)], stdout=log, stderr=subprocess.STDOUT)
        # trace-cmd is recording once the tracer is set and tracing is on (its "Hit Ctrl^C"
        # line stays in its stdout buffer when stdout is not a terminal); then give its
        # per-CPU reader processes a moment to start
        deadline = time.monotonic() + 300
        while not ((T / "current_tracer").read_text().strip() == "function_graph"
                   and (T / "tracing_on").read_text().strip() == "1"):
            if tc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"trace-cmd record did not start: "
                                 f"{(outdir / 'trace-cmd.log').read_text()[-500:]}")
            time.sleep(0.2)
        time.sleep(2.0)
        before = stats()
        t0 = time.monotonic()
        res["iterations"] = wait_workload(start_workload(seconds, count_file), count_file)
        res["workload_s"] = time.monotonic() - t0
        after = stats()
        t1 = time.monotonic()
        res["recorder_cpu_s"] = wait_cpu(tc, timeout_s=0.0)   # SIGINT at once: stop recording
        res["stop_s"] = time.monotonic() - t1
        res["lost"] = lost(before, after)
        res["file"] = out.name
        res["trace_cmd_log"] = (outdir / "trace-cmd.log").read_text(errors="replace")[-1500:]
        return res
    raise SystemExit(f"unknown method {method}")


def main() -> int:
    outdir, seconds, buffer_kb, links, methods = sys.argv[1:6]
    outdir = Path(outdir)
    seconds, buffer_kb, links = float(seconds), int(buffer_kb), int(links)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    batch = outdir / "batch"
    batch.write_text("".join(f"link add d{i} type dummy\n" for i in range(links)))
    subprocess.run(["ip", "-batch", str(batch)], check=True)
    batch.unlink()
    results = {"kernel": os.uname().release, "cpus": os.cpu_count(), "seconds": seconds,
               "buffer_kb": buffer_kb, "links": links, "graph": GRAPH, "runs": []}
    for method in methods.split(","):
        print(f"== {method}", flush=True)
        r = run(method, outdir, seconds, buffer_kb)
        print(json.dumps(r), flush=True)
        results["runs"].append(r)
        (outdir / "guest_results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
