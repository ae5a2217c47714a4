#!/usr/bin/env python3
"""Regenerate bench/data: large real function_graph traces for benchmarks.

Usage (host, as root, from the repo root; takes ~30-60 min under TCG)::

    .venv/bin/python bench/make_data.py [--kernel 6.1.0-57-amd64] [--dumps 8] [--skip-dat]

Boots a Debian kernel in QEMU (tests/live/vm.py) and in the guest:

0. enters a new network namespace (``unshare -n``) so udev never sees the links;
1. creates 1000 dummy links (``ip -batch``, untraced);
2. text trace: ``set_graph_function`` = rtnetlink_rcv + netlink_dump, options
   funcgraph-proc + funcgraph-abstime, ``buffer_size_kb`` 131072 (nothing lost), tracer
   function_graph, then ``ip -d link show`` DUMPS times, tracing off, ``cat trace``;
3. the same workload under ``trace-cmd record -p function_graph -g rtnetlink_rcv
   -g netlink_dump -b 131072`` -> fg_1m.dat;
4. with ``--raw``: the same workload under ``ftracekit.Recorder(raw=True)`` (what
   ``ftracekit record --raw`` runs, without its summary) -> a raw capture directory
   ``NAME.raw``, copied to ``--raw-out`` (default ``/var/tmp/ftk-bench-data``: it is
   ~60 MB per 10^6 events and stays out of git); ``NAME.json`` gets its provenance.

On the host it writes ``bench/data/fg_1m.txt.xz`` (whole text trace), ``fg_100k.txt.xz`` and
``fg_10k.txt.xz`` (the first 100,000 / 10,000 lines of it, cut at a line boundary),
``fg_1m.dat`` (or ``.dat.xz`` if xz helps; trace-cmd already compresses it) and ``fg_1m.json`` (commands, stats, sizes, line counts).  xz level -6.
"""

from __future__ import annotations

import argparse
import json
import lzma
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "live"))
import vm  # noqa: E402

DATA = HERE / "data"

GUEST = r"""
set -u
T=/sys/kernel/tracing
OUT="$RWDIR"
log() { printf '%s\n' "$*" >> "$OUT/log.txt"; }
uname -r > "$OUT/uname"
ip link set lo up
i=0; while [ $i -lt {links} ]; do echo "link add d$i type dummy"; i=$((i+1)); done > "$OUT/batch"
log "setup: ip -batch (ip link add d0..d{last} type dummy)"
ip -batch "$OUT/batch" || log "ip -batch failed"
rm -f "$OUT/batch"
log "links: $(ip -o link show | wc -l)"

if [ "{do_text}" = 1 ]; then
echo 0 > $T/tracing_on
echo {bufkb} > $T/buffer_size_kb
echo rtnetlink_rcv > $T/set_graph_function
echo netlink_dump >> $T/set_graph_function
echo 1 > $T/options/funcgraph-proc
echo 1 > $T/options/funcgraph-abstime
echo function_graph > $T/current_tracer
: > $T/trace
log "text: buffer_size_kb={bufkb} set_graph_function=rtnetlink_rcv,netlink_dump funcgraph-proc=1 funcgraph-abstime=1"
s=$(date +%s)
echo 1 > $T/tracing_on
n=0; while [ $n -lt {dumps} ]; do ip -d link show > /dev/null; n=$((n+1)); done
echo 0 > $T/tracing_on
log "text: workload 'ip -d link show' x {dumps} took $(( $(date +%s) - s )) s"
for c in $T/per_cpu/cpu*; do printf '%s|%s\n' "${c##*/}" "$(tr '\n' '|' < $c/stats)"; done > "$OUT/stats_text"
s=$(date +%s)
cat $T/trace > "$OUT/{name}.txt"
log "text: cat trace took $(( $(date +%s) - s )) s"
echo nop > $T/current_tracer
: > $T/set_graph_function
echo 0 > $T/options/funcgraph-proc
echo 0 > $T/options/funcgraph-abstime
echo 1408 > $T/buffer_size_kb
echo 1 > $T/tracing_on
fi

if [ "{do_dat}" = 1 ]; then
cd "$OUT"
s=$(date +%s)
log "dat: trace-cmd record -p function_graph -g rtnetlink_rcv -g netlink_dump -b {bufkb} -o {name}.dat sh -c 'for i in \$(seq {dumps}); do ip -d link show > /dev/null; done'"
trace-cmd record -p function_graph -g rtnetlink_rcv -g netlink_dump -b {bufkb} -o "$OUT/{name}.dat" \
    sh -c 'for i in $(seq {dumps}); do ip -d link show > /dev/null; done' > "$OUT/record.log" 2>&1
log "dat: trace-cmd record exit $? took $(( $(date +%s) - s )) s"
fi

if [ "{do_raw}" = 1 ]; then
cd "{repo}"
s=$(date +%s)
log "raw: ftracekit.Recorder([rtnetlink_rcv, netlink_dump], raw=True, buffer_kb={bufkb}, instance=False) around 'ip -d link show' x {dumps}"
PYTHONPATH="{repo}" "{python}" - "$OUT/{name}.raw" > "$OUT/raw.log" 2>&1 <<'EOF_PY'
import json, subprocess, sys
from ftracekit import Recorder
rec = Recorder(["rtnetlink_rcv", "netlink_dump"], output=sys.argv[1], buffer_kb={bufkb},
               instance=False, raw=True)
rec.start()
for _ in range({dumps}):
    subprocess.run(["ip", "-d", "link", "show"], stdout=subprocess.DEVNULL, check=True)
rec.stop(load=False)
print(json.dumps({"lost_events": rec.meta.get("lost_events")}, default=str))
EOF_PY
log "raw: exit $? took $(( $(date +%s) - s )) s"
fi
"""


def xz(src: Path, dst: Path, data: bytes | None = None) -> None:
    if data is None:
        subprocess.run(["xz", "-6", "-T1", "-c", str(src)], stdout=dst.open("wb"), check=True)
    else:
        subprocess.run(["xz", "-6", "-T1", "-c"], input=data, stdout=dst.open("wb"), check=True)


def head_lines(path: Path, n: int) -> bytes:
    out = bytearray()
    with path.open("rb") as f:
        for i, ln in enumerate(f):
            if i >= n:
                break
            out += ln
    return bytes(out)


def _python() -> str:
    """The interpreter the guest runs the recorder with (the host's root is its root)."""
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _keep_raw(src: Path, out_dir: Path, log: Path) -> dict:
    """Copy the guest's raw capture to ``out_dir`` (out of git); its provenance for NAME.json:
    where it is, its size, and what the capture's own metadata and a decode say."""
    info: dict = {"record_log": log.read_text(errors="replace")[-3000:] if log.exists() else ""}
    if not (src / "capture.json").exists():
        info["error"] = "no capture written"
        return info
    out_dir.mkdir(parents=True, exist_ok=True)
    dst = out_dir / src.name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    sys.path.insert(0, str(REPO))
    from ftracekit.read.rawtrace import load_capture
    recs, meta = load_capture(dst, progress=False)
    cap = json.loads((dst / "capture.json").read_text())
    info.update({
        "stored_as": str(dst),
        "bytes": sum(f.stat().st_size for f in dst.iterdir() if f.is_file()),
        "events": len(recs),
        "line_kinds": meta["line_kinds"],
        "lost_events": meta["lost_events"],
        "kernel": cap.get("kernel"),
        "page_size": cap.get("page_size"),
    })
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", default=None,
                    help="guest kernel (default: the oldest Debian kernel in /boot, a 6.1)")
    ap.add_argument("--links", type=int, default=1000)
    ap.add_argument("--dumps", type=int, default=8)
    ap.add_argument("--bufkb", type=int, default=131072)
    ap.add_argument("--memory", default="4G")
    ap.add_argument("--timeout", type=float, default=5400)
    ap.add_argument("--skip-dat", action="store_true")
    ap.add_argument("--skip-text", action="store_true")
    ap.add_argument("--raw", action="store_true",
                    help="also record NAME.raw with ftracekit's raw recorder (step 4)")
    ap.add_argument("--raw-out", default="/var/tmp/ftk-bench-data",
                    help="where NAME.raw goes (default /var/tmp/ftk-bench-data; not in git)")
    ap.add_argument("--out", default=str(DATA), help="output directory (default: bench/data)")
    ap.add_argument("--name", default="fg_1m", help="file name stem (default fg_1m)")
    ap.add_argument("--plain", action="store_true",
                    help="keep NAME.txt and NAME.dat uncompressed, no prefixes (e.g. the 10^7-line "
                         "trace: --name fg_10m --dumps 80 --bufkb 786432 --plain)")
    args = ap.parse_args(argv)
    if args.kernel is None:
        kernels = vm.find_kernels()
        if not kernels:
            print("no Debian kernel in /boot (./run test installs them)", file=sys.stderr)
            return 2
        args.kernel = kernels[-1]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out).free
    if free < 5 << 30:
        print(f"need ~5 GB free, have {free >> 20} MB", file=sys.stderr)
        return 1
    inner = (GUEST.replace("{links}", str(args.links)).replace("{last}", str(args.links - 1))
              .replace("{dumps}", str(args.dumps)).replace("{bufkb}", str(args.bufkb))
              .replace("{do_text}", "0" if args.skip_text else "1")
              .replace("{do_dat}", "0" if args.skip_dat else "1")
              .replace("{do_raw}", "1" if args.raw else "0")
              .replace("{repo}", str(REPO)).replace("{python}", _python())
              .replace("{name}", args.name))
    # A private network namespace: uevents of its 1000 dummy links never reach the guest's
    # udevd (whose workers would otherwise run rtnetlink requests during the trace for minutes).
    script = f"cat > /tmp/inner.sh <<'EOF_INNER'\n{inner}\nEOF_INNER\nexec unshare -n sh /tmp/inner.sh\n"
    with tempfile.TemporaryDirectory(prefix="ftk-bench-", dir="/var/tmp") as tmp:
        rw = Path(tmp)
        t0 = time.monotonic()
        cp = vm.run_in_vm(script, kernel=args.kernel, rwdir=rw, timeout=args.timeout, memory=args.memory)
        print(cp.stdout[-3000:], cp.stderr[-3000:], sep="\n")
        print(f"VM exit {cp.returncode} after {time.monotonic() - t0:.0f} s")
        log = (rw / "log.txt").read_text() if (rw / "log.txt").exists() else ""
        print(log)
        meta_path = out / f"{args.name}.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        meta.update({"kernel": (rw / "uname").read_text().strip(), "generator": "bench/make_data.py",
                     "args": vars(args), "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        meta.setdefault("guest_log", {})
        if not args.skip_text:
            meta["guest_log"]["text"] = [ln for ln in log.splitlines() if not ln.startswith("dat:")]
            txt = rw / f"{args.name}.txt"
            stats = {}
            for ln in (rw / "stats_text").read_text().splitlines():
                cpu, *kv = ln.split("|")
                stats[cpu] = {k.strip(): v.strip() for k, v in (x.split(":", 1) for x in kv if ":" in x)}
            n = sum(1 for _ in txt.open("rb"))
            lost = sum(1 for ln in txt.open("rb") if ln.startswith(b"CPU:") and b"LOST" in ln)
            meta["text"] = {"lines": n, "bytes": txt.stat().st_size, "lost_lines": lost,
                            "stats_at_end": stats}
            if args.plain:
                shutil.move(str(txt), out / f"{args.name}.txt")
            else:
                xz(txt, out / f"{args.name}.txt.xz")
            for label, k in (() if args.plain else (("fg_100k", 100_000), ("fg_10k", 10_000))):
                data = head_lines(txt, k)
                xz(txt, out / f"{label}.txt.xz", data)
                meta[label] = {"lines": data.count(b"\n"), "bytes": len(data),
                               "xz_bytes": (out / f"{label}.txt.xz").stat().st_size}
            if not args.plain:
                meta["text"]["xz_bytes"] = (out / f"{args.name}.txt.xz").stat().st_size
        if not args.skip_dat:
            meta["guest_log"]["dat"] = [ln for ln in log.splitlines() if ln.startswith("dat:")]
            dat = rw / f"{args.name}.dat"
            meta["dat"] = {"record_log": (rw / "record.log").read_text(errors="replace")[-3000:]}
            if dat.exists():
                rep = subprocess.run(["trace-cmd", "report", "-i", str(dat)], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, timeout=3600)
                meta["dat"].update({
                    "bytes": dat.stat().st_size,
                    "report_lines": rep.stdout.count(b"\n"),
                    "funcgraph_events": len(re.findall(rb"funcgraph_(?:entry|exit):", rep.stdout)),
                })
                # trace-cmd >= 3.0 already compresses the per-CPU data in the .dat (zstd/zlib):
                # keep it plain (trace-cmd reads it directly) unless xz saves >= 10 %.
                stem = args.name
                xzb = None
                if not args.plain:
                    xz(dat, out / f"{stem}.dat.xz")
                    xzb = (out / f"{stem}.dat.xz").stat().st_size
                if xzb is None or xzb > 0.9 * dat.stat().st_size:
                    (out / f"{stem}.dat.xz").unlink(missing_ok=True)
                    shutil.copyfile(dat, out / f"{stem}.dat")
                    meta["dat"]["stored_as"] = f"{stem}.dat"
                    if xzb is not None:
                        meta["dat"]["note"] = f"xz -6 would only give {xzb} bytes: stored uncompressed"
                else:
                    (out / f"{stem}.dat").unlink(missing_ok=True)
                    meta["dat"]["stored_as"] = f"{stem}.dat.xz"
                    meta["dat"]["xz_bytes"] = xzb
        if args.raw:
            meta["guest_log"]["raw"] = [ln for ln in log.splitlines() if ln.startswith("raw:")]
            meta["raw"] = _keep_raw(rw / f"{args.name}.raw", Path(args.raw_out), rw / "raw.log")
        meta_path.write_text(json.dumps(meta, indent=1) + "\n")
        print(json.dumps({k: v for k, v in meta.items() if k not in ("guest_log",)}, indent=1)[:4000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
