"""Run every benchmark and assemble bench/results.md (what `./run bench` calls).

    .venv/bin/python bench/run_all.py [--skip-record]

1. bench_parse.py  — parse throughput and peak memory vs the naive parser and trace-cmd report
2. bench_binary.py — decoding trace.dat and raw captures vs the text path and trace-cmd report
3. bench_report.py — time to first answer (`ftracekit report` on 10^6 lines)
4. bench_record.py — recording on a real kernel in a QEMU guest: events captured and lost,
   recorder CPU, workload slowdown, for ftracekit record (text and --raw), cat trace_pipe,
   reading trace once, trace-cmd record
Each writes its own results_*.md; this script concatenates them.

The 10^7-line trace (and its trace-cmd .dat) is too big for git: when it is missing from
/var/tmp/fg10m it is recorded first with bench/make_data.py in a QEMU guest (8–18 min, ~1 GB
of disk; --skip-10m leaves that size out).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = [("bench_parse.py", "results_parse.md"), ("bench_binary.py", "results_binary.md"),
         ("bench_report.py", "results_report.md"), ("bench_record.py", "results_record.md")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-record", action="store_true", help="leave out the VM recording benchmark")
    ap.add_argument("--skip-10m", action="store_true", help="leave out the 10^7-line parse")
    args = ap.parse_args()
    failed = []
    big = Path("/var/tmp/fg10m")
    if not args.skip_10m and not (big / "fg_10m.txt").exists() \
            and not (HERE / "data" / "fg_10m.txt").exists():
        print("== make_data.py (the 10^7-line trace)", flush=True)
        big.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([sys.executable, str(HERE / "make_data.py"), "--name", "fg_10m",
                            "--dumps", "80", "--bufkb", "786432", "--plain", "--out", str(big)])
        if r.returncode != 0:
            failed.append("make_data.py")
    for script, _ in PARTS:
        if args.skip_record and script == "bench_record.py":
            continue
        print(f"== {script}", flush=True)
        extra = ["--sizes", "10k,100k,1m"] if args.skip_10m and script == "bench_parse.py" else []
        r = subprocess.run([sys.executable, str(HERE / script), *extra])
        if r.returncode != 0:
            failed.append(script)
    head = [
        "# Benchmarks",
        "",
        f"Assembled by `bench/run_all.py` on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC: "
        f"{platform.node()}, {os.cpu_count()} CPUs, kernel {platform.release()}, "
        f"Python {platform.python_version()}.",
        "",
    ]
    body = []
    for _, out in PARTS:
        p = HERE / out
        if p.exists():
            body.append(p.read_text().rstrip() + "\n")
    (HERE / "results.md").write_text("\n".join(head) + "\n".join(body))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
