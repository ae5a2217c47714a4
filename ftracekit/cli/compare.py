"""``ftracekit compare A B``: per-function change between two traces, as text or CSV.

The table is :meth:`ftracekit.Trace.compare` (functions matched by name without GCC clone
suffixes), in its order: largest absolute change of ``--by`` first — the order
``ftracekit plot A --kind compare --against B --rank BY`` draws.
"""

from __future__ import annotations

import argparse
import sys
from typing import IO, Any

import pandas as pd

from ..analysis import COMPARE_KEYS
from ..show import plot
from ..show.format import fmt_count, fmt_us
from ._common import add_filters, load_for_cli, non_negative_int

__all__ = ["register", "print_compare"]

#: Columns shown per ``--by`` (besides the function and the two counts).
_SHOWN = {
    "total": ["total_us_a", "total_us_b", "total_change_us", "total_change_pct"],
    "self": ["self_us_a", "self_us_b", "self_change_us", "total_us_a", "total_us_b"],
    "count": ["count_change", "total_us_a", "total_us_b", "total_change_us"],
    "p50": ["p50_us_a", "p50_us_b", "p50_change_pct"],
    "p99": ["p99_us_a", "p99_us_b", "p99_change_pct"],
}

_HEADERS = {"count_a": "calls a", "count_b": "calls b", "count_change": "calls change",
            "total_change_us": "change", "self_change_us": "change", "total_change_pct": "change %",
            "p50_change_pct": "change %", "p99_change_pct": "change %"}

_TITLES = {"total": "total time", "self": "self time", "count": "number of calls",
           "p50": "median duration (p50)", "p99": "p99 duration"}


def _signed_us(v: Any) -> str:
    return "-" if v != v else f"{float(v):+,.3f}"


def _signed_pct(v: Any) -> str:
    return "-" if v != v else f"{float(v):+.1f} %"


def _cell(col: str, v: Any) -> str:
    if col.endswith("_change_us"):
        return _signed_us(v)
    if col.endswith("_pct"):
        return _signed_pct(v)
    if col == "count_change":
        return f"{int(v):+,}"
    if col.startswith("count"):
        return fmt_count(v)
    if "_us" in col:
        return fmt_us(v)
    return str(v)


def print_compare(table: pd.DataFrame, labels: tuple[str, str], by: str, sources: tuple[str, str],
                  total_rows: int, file: IO[str] | None = None) -> None:
    """The text of ``ftracekit compare``: which trace is a and b, what the rows are sorted by,
    then the table (µs with 3 decimals, counts as integers, changes signed)."""
    out = file or sys.stdout
    print(f"a = {labels[0]}: {sources[0]}", file=out)
    print(f"b = {labels[1]}: {sources[1]}", file=out)
    shown = f"{len(table):,} of {total_rows:,}" if len(table) < total_rows else f"{total_rows:,}"
    print(f"{shown} functions by change in {_TITLES[by]}, largest first (µs; functions "
          "matched without GCC suffixes such as .isra.0)", file=out)
    cols = ["count_a", "count_b"] + [c for c in _SHOWN[by] if c not in ("count_a", "count_b")]
    head = ["func"] + [_HEADERS.get(c) or c.replace("_us_", " ") for c in cols]
    rows = [head]
    renamed = False
    for func, r in table.iterrows():
        cells = [str(func)] + [_cell(c, r[c]) for c in cols]
        if not r["count_a"] or not r["count_b"]:     # a % of nothing: say what happened
            gone = "new" if not r["count_a"] else "gone"
            cells = [gone if c.endswith("_pct") else v for c, v in zip(["func"] + cols, cells)]
        fa, fb = r["funcs_a"], r["funcs_b"]
        if fa and fb and fa != fb:
            cells.append(f"a: {fa}; b: {fb}")
            renamed = True
        elif fa != str(func) and fa and not fb:
            cells.append(f"a: {fa}")
            renamed = True
        elif fb != str(func) and fb and not fa:
            cells.append(f"b: {fb}")
            renamed = True
        rows.append(cells)
    if renamed:
        rows[0].append("as printed")
    n = max(len(r) for r in rows)
    for r in rows:
        r.extend([""] * (n - len(r)))
    widths = [max(len(r[i]) for r in rows) for i in range(n)]
    for r in rows:
        cells = [r[0].ljust(widths[0])]
        cells += [r[j].rjust(widths[j]) for j in range(1, len(cols) + 1)]
        cells += [r[j].ljust(widths[j]) for j in range(len(cols) + 1, n)]
        print("  ".join(cells).rstrip(), file=out)


def _cmd_compare(args: argparse.Namespace) -> int:
    a = load_for_cli(args.a, args)
    b = load_for_cli(args.b, args)
    full = a.compare(b, None, by=args.by)
    table = full.head(args.n) if args.n else full
    if args.csv:
        table.to_csv(sys.stdout, float_format="%.3f")
        return 0
    labels = tuple(args.labels) if args.labels else plot.trace_labels(a, b)
    print_compare(table, labels, args.by, (args.a, args.b), len(full))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "compare", help="per-function change between two traces (count, total, self, p50, p99)",
        description="Compare two function_graph traces function by function: calls, total and "
                    "self time, p50 and p99 in A and B and the change from A to B, largest "
                    "change first. Functions are matched by name without GCC clone suffixes "
                    "(rtnl_fill_ifinfo = rtnl_fill_ifinfo.isra.0), so traces of two kernels "
                    "compare.")
    p.add_argument("a", metavar="A", help="the first trace (before)")
    p.add_argument("b", metavar="B", help="the second trace (after)")
    p.add_argument("--by", choices=list(COMPARE_KEYS), default="total",
                   help="sort by the change in this (default total)")
    p.add_argument("-n", type=non_negative_int, default=20, help="rows (default 20; 0: all)")
    p.add_argument("--csv", action="store_true",
                   help="all columns as CSV on stdout (µs with 3 decimals)")
    p.add_argument("--labels", nargs=2, metavar=("A", "B"),
                   help="names of A and B in the header (default: file names, or their "
                        "directories when the file names are equal)")
    add_filters(p)          # applied to both traces
    p.set_defaults(func=_cmd_compare)
