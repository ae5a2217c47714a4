"""Datasets (issue 14): streaming conversion, DuckDB and Dask queries vs the in-memory Trace.

    .venv/bin/python bench/bench_dataset.py [--copies 10] [--dask-copies 2] [--skip-memory]

1. ``convert`` the 10^7-line trace (/var/tmp/fg10m/fg_10m.txt, see bench/make_data.py) in a
   child process: seconds, lines/s, peak RSS (ru_maxrss), dataset size vs text and .dat.
2. A synthetic ~10^8-line fleet: the 10^7 dataset's files copied ``--copies`` times under
   other ``host`` tags (the rows of one real capture, tagged as N hosts; conversion of that
   much text is extrapolated from step 1, which is linear: one window at a time).
3. ``top`` / ``stats`` / ``slowest`` on the 10^7 dataset with the in-memory Trace (load
   included separately), DuckDB and Dask (LocalCluster, 2 worker processes); on the fleet with
   DuckDB, and Dask on ``--dask-copies`` hosts.
Writes bench/results_dataset.md. Every answer is checked against the in-memory one where
that fits.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TEXT = Path("/var/tmp/fg10m/fg_10m.txt")
DAT = Path("/var/tmp/fg10m/fg_10m.dat")
WORK = Path("/var/tmp/ftk_bench_dataset")
FUNC = "rtnl_fill_ifinfo"


def _child(code: str, *args: str) -> tuple[dict, float, int]:
    """Run ``code`` in a fresh interpreter: (its JSON output, wall seconds, peak RSS MB)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, cwd=ROOT)
    wall = time.monotonic() - t0
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall, peak


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


CONVERT = """
import json, sys, ftracekit
r = ftracekit.convert(sys.argv[1], sys.argv[2], tags={"host": "h00"}, progress=False)
i = r["inputs"][0]
print(json.dumps({k: i[k] for k in ("lines", "calls", "events", "windows", "forced_cuts",
                                    "max_window_lines", "seconds")}))
"""

COPY = """
import json, os, sys
import pyarrow as pa, pyarrow.parquet as pq
from ftracekit.dataset.layout import read_manifest, write_manifest
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
man = read_manifest(src)
base = man["inputs"][0]
inputs = []
for k in range(n):
    host = f"h{k:02d}"
    inp = json.loads(json.dumps(base))
    inp["tags"]["host"] = host
    for table in ("calls", "events"):
        for f in inp["files"][table]:
            old = os.path.join(src, f["path"])
            f["path"] = f["path"].replace("host=h00", f"host={host}")
            new = os.path.join(dst, f["path"])
            os.makedirs(os.path.dirname(new), exist_ok=True)
            if k == 0:
                os.link(old, new) if not os.path.exists(new) else None
                continue
            t = pq.read_table(old)
            t = t.set_column(t.schema.get_field_index("host"), "host",
                             pa.array([host] * t.num_rows, pa.string()))
            pq.write_table(t, new, compression="zstd", row_group_size=1 << 20)
    inputs.append(inp)
man["inputs"] = inputs
write_manifest(dst, man)
print(json.dumps({"hosts": n}))
"""

MEMORY = """
import json, sys, time, ftracekit
t0 = time.monotonic(); t = ftracekit.load(sys.argv[1]); load_s = time.monotonic() - t0
out = {"load_s": load_s, "calls": len(t.calls)}
for name, f in (("top", lambda: t.top(20)), ("stats", lambda: t.stats(sys.argv[2])),
                ("slowest", lambda: t.slowest(sys.argv[2], 10))):
    t0 = time.monotonic(); r = f(); out[name] = time.monotonic() - t0
    out[name + "_answer"] = (r.to_json() if hasattr(r, "to_json") else str(r))
print(json.dumps(out))
"""

DUCK = """
import json, sys, time, ftracekit
ds = ftracekit.open_dataset(sys.argv[1])
out = {"calls": int(ds.inputs["calls"].sum())}
one = ds.select(host="h00")
for name, f in (("top", lambda: ds.top(20)), ("stats", lambda: ds.stats(sys.argv[2])),
                ("slowest", lambda: ds.slowest(sys.argv[2], 10)),
                ("top_one_host", lambda: one.top(20))):
    t0 = time.monotonic(); r = f(); out[name] = time.monotonic() - t0
    if name == "top_one_host":
        out["top_one_host_answer"] = r.to_json()
print(json.dumps(out))
"""

DASK = """
import json, sys, time
import ftracekit.dask as fd
from dask.distributed import Client, LocalCluster
if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cl, Client(cl) as c:
        hosts = [f"h{k:02d}" for k in range(int(sys.argv[3]))]
        out = {}
        t0 = time.monotonic(); r = fd.top(sys.argv[1], 20, client=c, host=hosts[0])
        out["top_one_host"] = time.monotonic() - t0
        out["top_one_host_answer"] = r.to_json()
        t0 = time.monotonic(); fd.stats(sys.argv[1], sys.argv[2], client=c, host=hosts[0])
        out["stats_one_host"] = time.monotonic() - t0
        if len(hosts) > 1:
            t0 = time.monotonic()
            fd.compare(sys.argv[1], {"host": hosts[0]}, {"host": hosts[1]}, client=c)
            out["compare_two_hosts"] = time.monotonic() - t0
        print(json.dumps(out))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=10, help="hosts in the synthetic fleet")
    ap.add_argument("--dask-copies", type=int, default=2, help="hosts Dask compares")
    ap.add_argument("--skip-memory", action="store_true", help="no in-memory load (1.3+ GB)")
    args = ap.parse_args()
    if not TEXT.exists():
        raise SystemExit(f"{TEXT} missing: record it with bench/make_data.py")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    one, fleet = WORK / "one", WORK / "fleet"
    load = open("/proc/loadavg").read().split()[:3]
    res: dict = {"loadavg_before": load, "cpus": os.cpu_count()}

    conv, wall, peak = _child(CONVERT, str(TEXT), str(one))
    res["convert"] = dict(conv, wall_s=wall, peak_rss_mb=peak,
                          lines_per_s=conv["lines"] / conv["seconds"],
                          text_mb=TEXT.stat().st_size / 2**20,
                          dat_mb=DAT.stat().st_size / 2**20 if DAT.exists() else None,
                          dataset_mb=_size(one) / 2**20)
    copy, wall, _ = _child(COPY, str(one), str(fleet), str(args.copies))
    res["fleet"] = {"hosts": args.copies, "copy_s": wall, "dataset_mb": _size(fleet) / 2**20,
                    "lines": conv["lines"] * args.copies, "calls": conv["calls"] * args.copies}
    if not args.skip_memory:
        res["memory"], _, res["memory_peak_rss_mb"] = _child(MEMORY, str(TEXT), FUNC)
    res["duckdb_10m"], _, _ = _child(DUCK, str(one), FUNC)
    res["duckdb_fleet"], _, _ = _child(DUCK, str(fleet), FUNC)
    res["dask"], _, _ = _child(DASK, str(fleet), FUNC, str(args.dask_copies))
    if "memory" in res:
        import pandas as pd
        mem = pd.read_json(res["memory"].pop("top_answer"))
        for key, got in (("duckdb", res["duckdb_10m"]), ("dask", res["dask"])):
            got = pd.read_json(got.pop("top_one_host_answer"))
            res[f"{key}_top_equals_memory"] = bool(got.equals(mem))
        for k in ("stats_answer", "slowest_answer"):
            res["memory"].pop(k, None)
    res["duckdb_fleet"].pop("top_one_host_answer", None)
    res["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
    (HERE / "results_dataset.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
