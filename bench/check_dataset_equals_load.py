"""Check that a converted dataset holds exactly the calls and events ``load`` gives.

    .venv/bin/python bench/check_dataset_equals_load.py TRACE [--window N]

Converts TRACE (text, trace.dat or a raw capture directory) into a temporary dataset under
/var/tmp with the default (or given) window, loads TRACE in memory, and compares the two
column by column (call ids, values; strings as text). Prints one JSON line: rows, the
columns that differ (none expected), convert seconds and peak RSS. For the big benchmark
captures (fg_10m.*): ``load`` needs 1.6 GB (text) to ~3 GB (trace.dat) of memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time

import numpy as np
import pandas as pd

import ftracekit


def _same(a: pd.Series, b: pd.Series) -> bool:
    """Equal values (NaN = NaN, NA = NA; categoricals and strings as text)."""
    if isinstance(a.dtype, pd.CategoricalDtype) or a.dtype == object or b.dtype == object \
            or str(a.dtype) in ("str", "string"):
        x = a.astype(object).where(a.notna(), None).to_numpy()
        y = b.astype(object).where(b.notna(), None).to_numpy()
        return len(x) == len(y) and bool((x == y).all())
    if str(a.dtype) == "Int64" or str(b.dtype) == "Int64":
        return pd.Series(a.astype("Int64").to_numpy()).equals(
            pd.Series(b.astype("Int64").to_numpy()))
    x, y = a.to_numpy(), b.to_numpy(dtype=a.dtype)
    return bool(np.array_equal(x, y, equal_nan=x.dtype.kind == "f"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--window", type=int, default=None)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ftk-check-", dir="/var/tmp")
    try:
        t0 = time.monotonic()
        ftracekit.convert(args.trace, work + "/ds", window_lines=args.window, progress=False)
        conv_s = time.monotonic() - t0
        conv_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        ds = ftracekit.open_dataset(work + "/ds")
        keys = ds.tag_keys
        trace = ftracekit.load(args.trace)
        out: dict = {"trace": args.trace, "convert_s": round(conv_s, 1),
                     "convert_peak_rss_mb": conv_peak, "differ": []}
        for table, order in (("calls", "call"), ("events", "line")):
            want = trace.calls if table == "calls" else trace.events
            got = ds.sql(f"SELECT * FROM {table} ORDER BY {order}").drop(columns=keys)
            if table == "calls":
                got = got.set_index("call")
                if not np.array_equal(got.index.to_numpy(), want.index.to_numpy()):
                    out["differ"].append("calls.call")
            out[table] = [len(got), len(want)]
            for c in want.columns:
                if len(got) != len(want) or not _same(want[c].reset_index(drop=True),
                                                      got[c].reset_index(drop=True)):
                    out["differ"].append(f"{table}.{c}")
        print(json.dumps(out))
        return 1 if out["differ"] else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
