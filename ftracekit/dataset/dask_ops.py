"""The dataset analyses as Dask graphs, for a cluster (``ftracekit.dask``).

``top``, ``stats``, ``slowest`` and ``compare`` read the dataset's Parquet files with
``dask.dataframe.read_parquet`` and run on the given ``dask.distributed`` client (or Dask's
default scheduler). Results equal :class:`ftracekit.Trace`'s: the calls are shuffled by
function so that each function's rows meet in one partition, in call order, where the
per-function statistics are computed with :func:`ftracekit.analysis.func_stats` itself
(exact percentiles, no sketches). ``slowest`` keeps each partition's ``n`` longest calls on
the workers and ranks those few where they meet. Needs ``dask[dataframe,distributed]``
(``pip install 'ftracekit[scale]'``).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from .. import analysis as A
from ..errors import InputError
from .layout import need, read_manifest

__all__ = ["top", "stats", "slowest", "compare", "read_calls"]

_STATS_COLUMNS = ["call", "func", "duration_us", "self_us"]


def read_calls(dataset: str | os.PathLike[str], columns: list[str] | None = None,
               **tags: str) -> Any:
    """``(calls, tag_keys)``: the calls of ``dataset`` (inputs with these tag values) as a
    Dask DataFrame (``columns`` plus the tag columns), and the dataset's tag names."""
    dd = need("dask.dataframe")
    root = os.path.abspath(os.fspath(dataset))
    man = read_manifest(root)
    unknown = set(tags) - set(man["tag_keys"])
    if unknown:
        raise InputError(f"{root}: no tag {', '.join(sorted(unknown))}")
    files = [os.path.join(root, f["path"]) for i in man["inputs"]
             if all(i["tags"].get(k) == str(v) for k, v in tags.items())
             for f in i["files"]["calls"]]
    if not files:
        raise InputError(f"{root}: no calls for {tags or 'any input'}")
    cols = None if columns is None else list(dict.fromkeys(columns + man["tag_keys"]))
    return dd.read_parquet(files, columns=cols), man["tag_keys"]


def _run(obj: Any, client: Any) -> Any:
    return client.compute(obj).result() if client is not None else obj.compute()


def _partition_stats(part: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """func_stats of the functions of one shuffled partition, rows in call order, with the
    first appearance (``first_*``: tags then call) for ordering."""
    if not len(part):
        return _empty_stats(keys)
    part = part.sort_values(keys + ["call"], kind="stable")
    table = A.func_stats(part)
    first = part.groupby("func", sort=False).head(1).set_index("func")[keys + ["call"]]
    first.index = first.index.astype(str)
    return table.join(first.add_prefix("first_"))


def _empty_stats(keys: list[str]) -> pd.DataFrame:
    cols = {c: pd.Series(dtype=np.int64 if c == "count" else float) for c in A.TOP_COLUMNS}
    cols.update({f"first_{k}": pd.Series(dtype=object) for k in keys})
    cols["first_call"] = pd.Series(dtype=np.int64)
    return pd.DataFrame(cols, index=pd.Index([], name="func", dtype=object))


def _func_stats(ddf: Any, keys: list[str], client: Any) -> pd.DataFrame:
    """func_stats of all calls of ``ddf`` (column ``func``), in order of first appearance."""
    ddf = ddf[ddf["func"].notnull()]
    shuffled = ddf.shuffle("func")
    stats = shuffled.map_partitions(_partition_stats, keys, meta=_empty_stats(keys))
    table = _run(stats, client)
    order = [f"first_{k}" for k in keys] + ["first_call"]
    table = table.sort_values(order, kind="stable").drop(columns=order)
    table.index.name = "func"
    table["count"] = table["count"].astype(np.int64)
    return table[A.TOP_COLUMNS]


def top(dataset: str | os.PathLike[str], n: int | None = 20, by: str = "self", *,
        client: Any = None, **tags: str) -> pd.DataFrame:
    """Per-function statistics of the calls of ``dataset`` (inputs with these tag values),
    largest ``by`` first: :meth:`ftracekit.Trace.top`'s columns, computed on ``client``."""
    A.rank_top(pd.DataFrame(columns=A.TOP_COLUMNS), 0, by)      # (checks ``by`` first)
    ddf, keys = read_calls(dataset, _STATS_COLUMNS, **tags)
    return A.rank_top(_func_stats(ddf, keys, client), n, by)


def stats(dataset: str | os.PathLike[str], func: str, *, client: Any = None,
          **tags: str) -> pd.Series:
    """Statistics of one function (:meth:`ftracekit.Trace.stats`): its calls are selected on
    the cluster and their statistics taken where they meet."""
    ddf, keys = read_calls(dataset, ["func", "duration_us", "self_us", "status", "pid", "cpu",
                                     "parent", "call"], **tags)
    names = _run(ddf["func"].dropna().unique(), client)
    probe = pd.DataFrame({"func": pd.Categorical(sorted(map(str, names)))})
    match = A.match_funcs(probe, func)
    calls = _run(ddf[ddf["func"].isin(match)], client)
    calls = calls.sort_values(keys + ["call"], kind="stable")
    out = A.stats(calls, func)
    if len(keys) and len(calls):
        out["tasks"] = int(calls.groupby(keys + ["pid"]).ngroups)
    return out


def _longest(part: pd.DataFrame, n: int, keys: list[str]) -> pd.DataFrame:
    """The ``n`` longest calls of one partition: by ``duration_us`` (longest first, calls
    without a duration last), ties in (tags, call) order, as :meth:`Dataset.slowest`."""
    order = ["duration_us"] + keys + ["call"]
    return part.sort_values(order, ascending=[False] + [True] * (len(order) - 1),
                            na_position="last", kind="stable").head(n)


def slowest(dataset: str | os.PathLike[str], func: str | None = None, n: int = 10, *,
            client: Any = None, **tags: str) -> pd.DataFrame:
    """The ``n`` longest calls of ``func`` (exact, glob or base name; default: of the roots),
    longest first: the rows and columns of :meth:`ftracekit.dataset.Dataset.slowest` (the
    calls table's columns, index ``call``, plus the tag columns; ``duration_us`` in µs).
    Each partition's ``n`` longest are found on the workers; only those travel."""
    from .frames import as_calls

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InputError(f"n must be a non-negative integer, not {n!r}")
    ddf, keys = read_calls(dataset, None, **tags)
    if func is None:
        sel = ddf[ddf["parent"] < 0]
    else:
        names = _run(ddf["func"].dropna().unique(), client)
        probe = pd.DataFrame({"func": pd.Categorical(sorted(map(str, names)))})
        sel = ddf[ddf["func"].isin(A.match_funcs(probe, func))]
    meta = sel._meta
    heads = _run(sel.map_partitions(_longest, int(n), keys, meta=meta), client)
    out = _longest(heads, int(n), keys).reset_index(drop=True)
    for k in keys:             # (the dtype of tag columns in query results)
        out[k] = pd.array(out[k].astype(object).to_numpy(), dtype=pd.StringDtype(na_value=np.nan))
    return as_calls(out, keys)


def compare(dataset: str | os.PathLike[str], a: dict[str, str], b: dict[str, str],
            n: int | None = None, by: str = "total", *, client: Any = None) -> pd.DataFrame:
    """Per-function change from the inputs tagged ``a`` to those tagged ``b``
    (:meth:`ftracekit.Trace.compare`'s columns and order)."""
    sides = []
    for tags in (a, b):
        ddf, keys = read_calls(dataset, _STATS_COLUMNS, **tags)
        ddf = ddf[ddf["func"].notnull()]
        printed = ddf["func"]
        ddf = ddf.assign(func=printed.map(A.base_name, meta=("func", object)),
                         printed=printed)
        table = _func_stats(ddf.drop(columns="printed"), keys, client)
        pairs = _run(ddf[["func", "printed"]].drop_duplicates(), client)
        names = pairs.groupby("func")["printed"].agg(lambda v: ", ".join(sorted(map(str, v))))
        sides += [table, names]
    return A.compare_stats(*sides, n=n, by=by)
