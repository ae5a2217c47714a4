"""``ftracekit convert``, and ``report``/``top``/``tree`` on a dataset folder (issue 14)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..analysis import frame_names
from ..dataset import MANIFEST, Dataset, convert, open_dataset, parse_tags
from ..errors import FtracekitError
from ..show.format import fmt_count
from ._common import non_negative_int, table, tasks_of

__all__ = ["register", "is_dataset", "open_for_cli", "report", "top", "pick_call"]


def is_dataset(path: str) -> bool:
    """Whether ``path`` is a dataset folder (it holds the manifest)."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, MANIFEST))


def open_for_cli(path: str, args: argparse.Namespace) -> Dataset:
    """The dataset ``path``, narrowed to ``--tag`` values; the trace filters do not apply."""
    used = [f"--{n.replace('_s', '')}" for n in ("comm", "pid", "cpu", "from_s", "to_s")
            if getattr(args, n, None) is not None]
    if used:
        raise FtracekitError(f"{' '.join(used)}: not for a dataset; select inputs with "
                             "--tag key=value, or use ftracekit.open_dataset(...).sql(...)")
    ds = open_dataset(path)
    tags = parse_tags(getattr(args, "tag", None) or [])
    return ds.select(**tags) if tags else ds


def report(ds: Dataset, *, func: str | None, top_n: int, slowest: int) -> None:
    """The dataset summary of ``ftracekit report DATASET``."""
    out = sys.stdout
    inp = ds.inputs
    print(f"dataset: {ds.path}", file=out)
    print(f"  {len(inp)} input{'s' if len(inp) != 1 else ''}: {fmt_count(int(inp['lines'].sum()))} "
          f"lines, {fmt_count(int(inp['calls'].sum()))} calls, "
          f"{fmt_count(int(inp['events'].sum()))} events", file=out)
    table(inp, [*ds.tag_keys, "lines", "calls", "events"], out)
    rows = ds.slowest(func, n=slowest)
    print(file=out)
    what = f"{func} calls" if func else "root calls"
    print(f"slowest {what}:", file=out)
    if len(rows):
        show = rows.copy()
        show["func"] = frame_names(show)
        show["task"] = tasks_of(show)
        show.insert(0, "call", show.index)
        table(show, ["call", *ds.tag_keys, "func", "duration_us", "self_us", "n_children",
                     "task", "cpu"], out)
    t = ds.top(top_n).reset_index()
    print(file=out)
    print(f"top {len(t)} functions by self time:", file=out)
    table(t, ["func", "count", "self_us", "total_us", "mean_us", "p50_us", "p99_us", "max_us"],
          out)


def top(ds: Dataset, n: int, by: str, csv: bool) -> None:
    """``ftracekit top DATASET``."""
    t = ds.top(n, by=by)
    if csv:
        t.to_csv(sys.stdout, float_format="%.3f")
    else:
        table(t.reset_index(), ["func"] + list(t.columns), sys.stdout, indent="")


def pick_call(ds: Dataset, func: str, nth: int | None) -> tuple[Any, int, str]:
    """The call ``tree`` shows: the slowest of ``func`` (or its ``nth``, in dataset order):
    the in-memory subtree, the call id and how it was chosen."""
    if nth is None:
        rows = ds.slowest(func, n=1)
        which = "the slowest call in the dataset"
    else:
        rows = ds.calls_of(func)
        if not 0 <= nth < len(rows):
            raise FtracekitError(f"--nth {nth} is out of range: {func} has {len(rows)} call"
                                 f"{'s' if len(rows) != 1 else ''} (0..{len(rows) - 1})")
        rows = rows.iloc[nth:nth + 1]
        which = f"call {nth} of {fmt_count(len(ds.calls_of(func)))}"
    row = rows.iloc[0]
    tags = {k: str(row[k]) for k in ds.tag_keys}
    call = int(rows.index[0])
    sub = ds.trace(call=call, **tags)
    return sub, call, f"{which} ({', '.join(f'{k}={v}' for k, v in tags.items())})"


def _cmd_convert(args: argparse.Namespace) -> int:
    res = convert(args.traces, args.output, tags=parse_tags(args.tag or []),
                  append=args.append, window_lines=args.window_lines)
    for inp in res["inputs"]:
        forced = (f"; {inp['forced_cuts']} forced cut(s): rows near them may differ from load"
                  if inp["forced_cuts"] else "")
        print(f"{inp['source']}: {fmt_count(inp['lines'])} lines → {fmt_count(inp['calls'])} "
              f"calls, {fmt_count(inp['events'])} events in {inp['seconds']:.1f} s "
              f"({', '.join(f'{k}={v}' for k, v in inp['tags'].items())}){forced}")
    print(f"dataset: {res['dataset']}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("convert", help="stream traces into a Parquet dataset (DuckDB/Dask)",
                       description="Convert function_graph captures (text: plain, .gz, .xz; "
                                   "trace-cmd trace.dat; record --raw directories) into a "
                                   "Parquet dataset, a window of lines (binary: events) at a "
                                   "time in bounded memory. Query it with report/top/tree "
                                   "DATASET, ftracekit.open_dataset() or ftracekit.dask.")
    p.add_argument("traces", nargs="+", metavar="TRACE")
    p.add_argument("-o", "--output", required=True, metavar="DATASET", help="dataset folder")
    p.add_argument("--tag", action="append", metavar="KEY=VALUE",
                   help="tag every input (host=a, kernel=6.1, run=3; repeatable)")
    p.add_argument("--append", action="store_true", help="add to an existing dataset")
    p.add_argument("--window-lines", type=non_negative_int, default=None, metavar="N",
                   help="lines (binary: events) linked at a time (default 1000000 lines, "
                        "500000 events; memory grows with it)")
    p.set_defaults(func=_cmd_convert)

