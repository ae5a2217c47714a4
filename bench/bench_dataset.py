"""Datasets (issue 14): streaming conversion, DuckDB and Dask queries vs the in-memory Trace.

    .venv/bin/python bench/bench_dataset.py [--copies 10] [--skip-memory] [--skip-dask]
    .venv/bin/python bench/bench_dataset.py --convert-copies 10     (step 4 alone)

1. ``convert`` the 10^7-line trace (/var/tmp/fg10m/fg_10m.txt, see bench/make_data.py) and
   the trace-cmd recording of the same workload (fg_10m.dat, ~2×10^7 events) in child
   processes: seconds, lines (events) per s, peak RSS (ru_maxrss), dataset size vs text / .dat.
2. A synthetic ~10^8-line fleet: the 10^7 dataset's files copied ``--copies`` times as other
   hosts (``host`` tag h00, h01, …), each copy's times shifted past the one before (calls'
   ``start_s``/``end_s``, events' ``ts_s``, and the manifest's per-file time ranges), so the
   fleet is real rows of one capture, tagged and timed as N hosts recording one after the
   other. (Converting that much text is extrapolated from step 1, which is linear: one
   window at a time.)
3. ``top`` / ``stats`` / ``slowest`` on the 10^7 dataset with the in-memory Trace (load timed
   apart) and DuckDB; on the whole fleet with DuckDB and with Dask on a LocalCluster (2 worker
   processes, this machine's 2 cores). The answers are checked: DuckDB's top of one host
   against the in-memory one, Dask's fleet answers against DuckDB's.
4. (``--convert-copies N``, alone) a real N×10^7-line conversion: the text converted N times
   into one dataset (N inputs), for the rate and the peak RSS of a 10^8-line conversion.
Writes bench/results_dataset.json. The machine is shared and noisy (2 cores; the same run
varies 1.5–3×): the load average before and after is recorded with the figures.
"""

from __future__ import annotations

import argparse
import io
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
    """Run ``code`` in a fresh interpreter: (its JSON output, wall seconds, peak RSS MB —
    the largest of all children so far: a child that reports its own peak is preferred)."""
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
import resource
out = {k: i[k] for k in ("lines", "calls", "events", "windows", "forced_cuts",
                         "max_window_lines", "seconds")}
out["self_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(json.dumps(out))
"""

COPY = """
import json, os, sys
import duckdb
from ftracekit.dataset.layout import read_manifest, write_manifest
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
man = read_manifest(src)
base = man["inputs"][0]
ranges = [(f["t_min"], f["t_max"]) for f in base["files"]["calls"] if f["t_min"] is not None]
t0 = min(a for a, _ in ranges)
step = float(int(max(b for _, b in ranges) - t0) + 10)      # (whole seconds: exact shifts)
con = duckdb.connect()
inputs = []
for k in range(n):
    host, shift = f"h{k:02d}", k * step
    inp = json.loads(json.dumps(base))
    inp["tags"]["host"] = host
    for table, tcols in (("calls", ("start_s", "end_s")), ("events", ("ts_s",))):
        for f in inp["files"][table]:
            old = os.path.join(src, f["path"])
            f["path"] = f["path"].replace("host=h00", f"host={host}")
            new = os.path.join(dst, f["path"])
            os.makedirs(os.path.dirname(new), exist_ok=True)
            if k == 0:
                os.link(old, new) if not os.path.exists(new) else None
                continue
            repl = ", ".join([f"{c} + {shift!r} AS {c}" for c in tcols] + [f"'{host}' AS host"])
            con.execute(f"COPY (SELECT * REPLACE ({repl}) FROM read_parquet('{old}')) TO "
                        f"'{new}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1048576)")
            for key in ("t_min", "t_max"):
                if f[key] is not None:
                    f[key] += shift
    inputs.append(inp)
man["inputs"] = inputs
write_manifest(dst, man)
print(json.dumps({"hosts": n, "shift_s": step}))
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
    r = r.reset_index() if name == "slowest" else r.to_frame() if name == "stats" else r
    out[name + "_answer"] = r.to_json()
print(json.dumps(out))
"""

DASK = """
import json, sys, time
import ftracekit.dask as fd
from dask.distributed import Client, LocalCluster
if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cl, Client(cl) as c:
        out = {}
        for name, f in (("top", lambda: fd.top(sys.argv[1], 20, client=c)),
                        ("stats", lambda: fd.stats(sys.argv[1], sys.argv[2], client=c)),
                        ("slowest", lambda: fd.slowest(sys.argv[1], sys.argv[2], 10,
                                                       client=c))):
            t0 = time.monotonic(); r = f(); out[name] = time.monotonic() - t0
            r = r.reset_index() if name == "slowest" else r.to_frame() if name == "stats" else r
            out[name + "_answer"] = r.to_json()
        print(json.dumps(out))
"""

CONVERT_DAT = CONVERT             # (the same script: convert takes .dat files too)


def _same(a: str, b: str) -> dict:
    """Two JSON answers (frames or series): equal, or the largest relative difference."""
    import numpy as np
    import pandas as pd

    x, y = pd.read_json(io.StringIO(a)), pd.read_json(io.StringIO(b))
    if x.shape != y.shape or list(x.index) != list(y.index):
        return {"equal": False, "why": "different rows"}
    num = x.select_dtypes("number").columns
    rel = (np.abs(x[num] - y[num]) / np.abs(y[num]).where(y[num] != 0, 1)).max().max()
    return {"equal": bool(x.equals(y)), "max_rel_diff": float(rel) if len(num) else 0.0}


CONVERT_MANY = """
import json, resource, sys, ftracekit
n = int(sys.argv[3])
r = ftracekit.convert([sys.argv[1]] * n, sys.argv[2], tags={"host": "h00"}, progress=False)
out = {k: sum(i[k] for i in r["inputs"]) for k in ("lines", "calls", "events", "forced_cuts",
                                                  "seconds")}
out["inputs"] = len(r["inputs"])
out["self_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(json.dumps(out))
"""


def convert_many(copies: int) -> int:
    """Step 4 (``--convert-copies N``, run alone): one ``convert`` of the 10^7-line text N
    times (N inputs of one dataset, ``trace`` = fg_10m.txt, fg_10m.txt-2, …): the real
    conversion of N×10^7 lines — wall time, rate, peak RSS, size — added to the results."""
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    out = HERE / "results_dataset.json"
    res = json.loads(out.read_text()) if out.exists() else {}
    before = open("/proc/loadavg").read().split()[:3]
    conv, wall, peak = _child(CONVERT_MANY, str(TEXT), str(WORK / "many"), str(copies))
    res["convert_copies"] = dict(conv, wall_s=wall, peak_rss_mb=conv.pop("self_peak_rss_mb"),
                                 lines_per_s=conv["lines"] / conv["seconds"],
                                 text_mb=copies * TEXT.stat().st_size / 2**20,
                                 dataset_mb=_size(WORK / "many") / 2**20,
                                 loadavg_before=before,
                                 loadavg_after=open("/proc/loadavg").read().split()[:3])
    out.write_text(json.dumps(res, indent=1))
    shutil.rmtree(WORK, ignore_errors=True)
    print(json.dumps(res["convert_copies"], indent=1))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=10, help="hosts in the synthetic fleet")
    ap.add_argument("--skip-memory", action="store_true", help="no in-memory load (1.3+ GB)")
    ap.add_argument("--skip-dask", action="store_true", help="no Dask on the fleet")
    ap.add_argument("--keep", action="store_true", help=f"keep {WORK} (default: deleted)")
    ap.add_argument("--convert-copies", type=int, default=0, metavar="N",
                    help="only convert the 10^7-line text N times into one dataset (a real "
                         "N×10^7-line conversion) and add it to the results")
    args = ap.parse_args()
    if not TEXT.exists():
        raise SystemExit(f"{TEXT} missing: record it with bench/make_data.py")
    if args.convert_copies:
        return convert_many(args.convert_copies)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    one, fleet, dat = WORK / "one", WORK / "fleet", WORK / "dat"
    res: dict = {"loadavg_before": open("/proc/loadavg").read().split()[:3],
                 "cpus": os.cpu_count()}
    out = HERE / "results_dataset.json"

    def save() -> None:
        res["loadavg_now"] = open("/proc/loadavg").read().split()[:3]
        out.write_text(json.dumps(res, indent=1))

    conv, wall, peak = _child(CONVERT, str(TEXT), str(one))
    res["convert"] = dict(conv, wall_s=wall, peak_rss_mb=conv.pop("self_peak_rss_mb", peak),
                          lines_per_s=conv["lines"] / conv["seconds"],
                          text_mb=TEXT.stat().st_size / 2**20,
                          dat_mb=DAT.stat().st_size / 2**20 if DAT.exists() else None,
                          dataset_mb=_size(one) / 2**20)
    save()
    if DAT.exists():
        conv, wall, peak = _child(CONVERT_DAT, str(DAT), str(dat))
        res["convert_dat"] = dict(conv, wall_s=wall,
                                  peak_rss_mb=conv.pop("self_peak_rss_mb", peak),
                                  events_per_s=conv["lines"] / conv["seconds"],
                                  dat_mb=DAT.stat().st_size / 2**20,
                                  dataset_mb=_size(dat) / 2**20)
        shutil.rmtree(dat, ignore_errors=True)
        save()
    copy, wall, _ = _child(COPY, str(one), str(fleet), str(args.copies))
    res["fleet"] = dict(copy, copy_s=wall, dataset_mb=_size(fleet) / 2**20,
                        lines=res["convert"]["lines"] * args.copies,
                        calls=res["convert"]["calls"] * args.copies)
    save()
    if not args.skip_memory:
        res["memory"], _, res["memory_peak_rss_mb"] = _child(MEMORY, str(TEXT), FUNC)
        save()
    res["duckdb_10m"], _, _ = _child(DUCK, str(one), FUNC)
    save()
    res["duckdb_fleet"], _, _ = _child(DUCK, str(fleet), FUNC)
    save()
    if "memory" in res:
        import pandas as pd
        mem = pd.read_json(io.StringIO(res["memory"].pop("top_answer")))
        got = pd.read_json(io.StringIO(res["duckdb_10m"].pop("top_one_host_answer")))
        res["duckdb_top_equals_memory"] = bool(got.equals(mem))
        for k in ("stats_answer", "slowest_answer"):
            res["memory"].pop(k, None)
    res["duckdb_10m"].pop("top_one_host_answer", None)
    if not args.skip_dask:
        res["dask_fleet"], _, _ = _child(DASK, str(fleet), FUNC)
        for name in ("top", "stats", "slowest"):
            res[f"dask_{name}_vs_duckdb"] = _same(res["dask_fleet"].pop(name + "_answer"),
                                                  res["duckdb_fleet"][name + "_answer"])
    for name in ("top", "stats", "slowest"):
        res["duckdb_fleet"].pop(name + "_answer", None)
    res["duckdb_fleet"].pop("top_one_host_answer", None)
    save()
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
