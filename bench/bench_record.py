"""Recording benchmark on a real kernel (QEMU guest): events captured and lost, recorder CPU and
workload slowdown, for ftracekit (text and raw) against plain `cat trace_pipe`, reading `trace`
once at the end, and `trace-cmd record` — the same workload for each.

    .venv/bin/python bench/bench_record.py                 # writes bench/results_record.md
    .venv/bin/python bench/bench_record.py --seconds 10 --methods none,ftk-raw,trace-cmd

The guest side is bench/_record_guest.py (the workload and the methods are described there).
The guest is a Debian kernel booted with virtme-ng under QEMU's software emulation (TCG), so
every figure is 10-50x slower than on hardware; the comparison between methods is what counts.
Events are counted on the host from each method's output with ftracekit.load: every call row
is its entry and exit events (2 for a complete call, 1 without entry or without exit).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "live"))
import vm  # noqa: E402

OUT = HERE / "results_record.md"
METHODS = ["none", "ftk-text", "ftk-raw", "pipe", "once", "trace-cmd"]
LABELS = {
    "none": "no tracing (workload alone)",
    "ftk-text": "`ftracekit record` (streams `trace_pipe` text)",
    "ftk-raw": "`ftracekit record --raw` (per-CPU `trace_pipe_raw` pages)",
    "pipe": "`cat trace_pipe > file` (hand-typed tracefs set-up)",
    "once": "`cat trace` once at the end (hand-typed set-up)",
    "trace-cmd": "`trace-cmd record -p function_graph -g … -b …`",
}


def _python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv if venv.exists() else Path(sys.executable))


def count_events(path: Path) -> dict:
    """Function-graph events (entries + exits) in a method's output, via ftracekit.load."""
    import ftracekit

    t = ftracekit.load(path)
    st = t.calls["status"].astype(str)
    complete = int((st == "complete").sum())
    events = 2 * complete + int((st != "complete").sum())
    lost_in_text = t.meta.get("lost_events", {})
    return {"events": events, "calls": len(t.calls), "complete": complete,
            "lines": int(t.meta.get("lines", 0) or 0), "lost_marks": lost_in_text}


def _du(p: Path) -> int:
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size if p.exists() else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", help="guest kernel (default: the oldest installed, a 6.1)")
    ap.add_argument("--seconds", type=float, default=30.0, help="workload length per method")
    ap.add_argument("--buffer-kb", type=int, default=4096, help="ring buffer per CPU (all methods)")
    ap.add_argument("--links", type=int, default=1000, help="dummy links dumped by `ip -d link show`")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--memory", default="3G")
    ap.add_argument("--keep", help="keep the guest's files in this directory")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    kernels = vm.find_kernels()
    kernel = args.kernel or (kernels[-1] if kernels else None)
    if kernel is None:
        print("no Debian kernel in /boot (./run test installs them)", file=sys.stderr)
        return 2
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        print(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}",
              file=sys.stderr)
        return 2

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ftk-bench-rec-",
                                                                    dir="/var/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    guest = (f"cd '{REPO}' && exec unshare -n '{_python()}' bench/_record_guest.py '{work}' "
             f"{args.seconds:g} {args.buffer_kb} {args.links} {','.join(methods)} "
             f"> '{work}/guest.log' 2>&1")
    t0 = time.monotonic()
    cp = vm.run_in_vm(guest, kernel=kernel, rwdir=work, cpus=args.cpus, memory=args.memory,
                      timeout=600 + len(methods) * (args.seconds * 4 + 240))
    vm_s = time.monotonic() - t0
    log = (work / "guest.log").read_text(errors="replace") if (work / "guest.log").exists() else ""
    res_path = work / "guest_results.json"
    if cp.returncode != 0 or not res_path.exists():
        print(f"guest failed (exit {cp.returncode}):\n{log[-4000:]}\n{cp.stderr[-2000:]}",
              file=sys.stderr)
        return 1
    res = json.loads(res_path.read_text())
    for r in res["runs"]:
        if "file" in r:
            f = work / r["file"]
            r["bytes"] = _du(f)
            r.update(count_events(f))
    base = next((r for r in res["runs"] if r["method"] == "none"), None)
    base_rate = base["iterations"] / base["workload_s"] if base else None

    lines = [
        "# Recording benchmark",
        "",
        f"Generated by `bench/bench_record.py` on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} "
        f"UTC (overwritten on each run); host {platform.node()}, {os.cpu_count()} CPUs.",
        "",
        f"- Guest: Debian kernel `{res['kernel']}` under QEMU TCG (software emulation, "
        f"{res['cpus']} vCPUs on one host thread), {args.memory} RAM; VM run {vm_s:.0f} s in all.",
        f"- Workload per method: `ip -d link show` over {res['links']} dummy links in a loop for "
        f"{res['seconds']:g} s, beside a CPU-bound busy loop; graph "
        f"`{' + '.join(res['graph'])}` at full depth; ring buffer {res['buffer_kb']} KiB per CPU "
        "for every method.",
        "- events = function_graph entry + exit events in the method's output (counted with "
        "`ftracekit.load`); lost = per-CPU `stats` overrun + dropped during the workload; kept = "
        "events / (events + lost). Recorder CPU = CPU time of the recording process tree "
        "(rusage). Slowdown = workload iterations per second without tracing / with.",
        "",
        "| method | events | lost | kept | recorder CPU | workload iterations | slowdown | stop → file | output |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["runs"]:
        m = r["method"]
        rate = r["iterations"] / r["workload_s"] if r.get("workload_s") else 0
        slow = f"{base_rate / rate:.2f}×" if base_rate and rate else "-"
        if m == "none":
            lines.append(f"| {LABELS[m]} | - | - | - | - | {r['iterations']} | 1.00× | - | - |")
            continue
        lost = r["lost"]["total"]
        ev = r.get("events", 0)
        kept = f"{100 * ev / (ev + lost):.1f}%" if ev + lost else "-"
        cpu = r.get("recorder_cpu_s", 0.0)
        lines.append(
            f"| {LABELS[m]} | {ev:,} | {lost:,} | {kept} | {cpu:.1f} s "
            f"({100 * cpu / r['workload_s']:.0f}%) | {r['iterations']} | {slow} | "
            f"{r.get('stop_s', 0):.1f} s | {r.get('bytes', 0) / 1e6:.1f} MB |")
    lines += ["", "Raw figures (guest_results.json with the host's event counts):", "",
              "```json", json.dumps(res, indent=1)[:6000], "```", ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines[:len(lines) - 5]))
    print(f"wrote {args.out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
