"""Who did it: the distinct call chains (graph root → … → function) that led to a function or
an event — ``bpftrace -e 'kprobe:f { @[kstack] = count(); }'`` answered from the call graph,
with time as well as counts.

Chains are built column-wise: the ancestors of all targets are gathered one level at a time
(a look-up of ``parent`` per level for every target at once), the rows of function codes are
grouped with ``np.unique(axis=0)``, and only the distinct chains become text.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import FtracekitError, UnknownFunctionError
from .events import events_named

__all__ = ["callers", "CALLER_COLUMNS", "SEP"]

CALLER_COLUMNS = ["chain", "depth", "count", "total_us", "mean_us", "max_us", "example_call"]
#: Separator of the functions in a chain (root first).
SEP = " > "


def _ancestry(calls: pd.DataFrame, pos: np.ndarray) -> np.ndarray:
    """Function codes of the chains ending at the calls at positions ``pos``: a matrix
    ``(len(pos), depth)``, root first, right-aligned, −2 on the left where a chain is shorter."""
    parent = calls["parent"].to_numpy()
    index = calls.index
    codes = calls["func"].cat.codes.to_numpy().astype(np.int64)
    levels = [codes[pos]]
    cur = pos
    for _ in range(4096):
        live = cur >= 0
        if not live.any():
            break
        nxt = np.full(len(cur), -1, dtype=np.int64)
        nxt[live] = index.get_indexer(parent[cur[live]])
        cur = nxt
        if not (cur >= 0).any():
            break
        levels.append(np.where(cur >= 0, codes[np.maximum(cur, 0)], -2))
    return np.stack(levels[::-1], axis=1)


def callers(calls: pd.DataFrame, events: pd.DataFrame, func: str | None = None,
            event: str | None = None, match_funcs=None) -> pd.DataFrame:
    """Distinct call chains that led to ``func`` (its calls) or to ``event`` (the calls it
    fired in), most frequent first.

    Columns: ``chain`` (``root > … > func``, for an event ``… > call > event``), ``depth``
    (functions in the chain), ``count`` (calls or events), ``total_us``/``mean_us``/``max_us``
    (duration of the last call of the chain; for an event, of the call it fired in; NaN where
    not printed), ``example_call`` (one call id, −1 for an event outside any call).
    """
    if (func is None) == (event is None):
        raise FtracekitError("callers needs a function or an event (one of them)")
    if func is not None:
        names = match_funcs(func) if match_funcs else [func]
        fcol = calls["func"].astype(object)
        ids = calls.index[fcol.isin(names).to_numpy()].to_numpy()
        tail = None
        if not len(ids):
            raise UnknownFunctionError(func, [str(f) for f in calls["func"].cat.categories])
    else:
        sel = events_named(events, str(event))
        ids = sel["call"].to_numpy()
        tail = str(event)
    pos = calls.index.get_indexer(ids) if len(calls) else np.full(len(ids), -1)
    dur = calls["duration_us"].to_numpy(dtype=float)
    d = np.where(pos >= 0, dur[np.maximum(pos, 0)] if len(dur) else np.nan, np.nan)
    if len(calls) and (pos >= 0).any():
        mat = np.full((len(pos), 1), -2, dtype=np.int64)
        ok = pos >= 0
        anc = _ancestry(calls, pos[ok])
        mat = np.full((len(pos), anc.shape[1]), -2, dtype=np.int64)
        mat[ok] = anc
    else:
        mat = np.full((len(pos), 1), -2, dtype=np.int64)
    uniq, inv = np.unique(mat, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    names = np.asarray(calls["func"].cat.categories, dtype=object) if len(calls) else np.array([])
    chains = []
    depths = []
    for row in uniq:
        fs = ["?" if c == -1 else str(names[c]) for c in row if c != -2]
        if tail is not None:
            fs.append(tail)
        chains.append(SEP.join(fs))
        depths.append(len(fs))
    g = pd.DataFrame({"g": inv, "d": d, "id": ids})
    agg = g.groupby("g").agg(count=("g", "size"), total_us=("d", "sum"), mean_us=("d", "mean"),
                             max_us=("d", "max"), example_call=("id", "first"))
    allnan = g.groupby("g")["d"].count() == 0
    agg.loc[allnan, "total_us"] = np.nan
    out = pd.DataFrame({"chain": np.asarray(chains, dtype=object)[agg.index.to_numpy()],
                        "depth": np.asarray(depths)[agg.index.to_numpy()],
                        "count": agg["count"].to_numpy(np.int64),
                        "total_us": agg["total_us"].round(3).to_numpy(),
                        "mean_us": agg["mean_us"].round(3).to_numpy(),
                        "max_us": agg["max_us"].round(3).to_numpy(),
                        "example_call": agg["example_call"].to_numpy(np.int64)})
    return out.sort_values(["count", "total_us", "chain"], ascending=[False, False, True],
                           kind="stable").reset_index(drop=True)
