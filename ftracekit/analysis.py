"""Analyses on the calls table: pure functions that :class:`~ftracekit.Trace`, plots, exports
and the CLI share (selecting calls of a function, roots, children, subtrees, per-function
statistics, critical paths, display names of calls and tasks).

Every function takes the calls table (the column contract is on :class:`~ftracekit.Trace`)
and returns numpy arrays or DataFrames; durations are in µs, times in seconds. Nothing here
draws, prints or reads files.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import numpy as np
import pandas as pd

from .calltree import task_keys
from .errors import FtracekitError, UnknownFunctionError

__all__ = ["UNKNOWN_FUNC", "TOP_COLUMNS", "frame_names", "base_name", "match_funcs", "calls_of",
           "roots", "ChildIndex", "func_stats", "top", "rank_top", "stats", "compare", "compare_stats",
           "COMPARE_KEYS",
           "COMPARE_COLUMNS", "critical_path", "task_ids", "task_names", "PSEUDO_TID_BASE",
           "reroot", "errors", "errno_name", "MAX_ERRNO"]

#: Display name of a call whose function the trace does not name (``func`` is NA): an exit
#: line ``}`` without ``/* name */`` and no entry to pair it with.
UNKNOWN_FUNC = "[unknown]"


def frame_names(calls: pd.DataFrame, *, module: bool = True) -> np.ndarray:
    """Display name of each row of a calls table (object array): ``func``, or
    :data:`UNKNOWN_FUNC` where it is NA, plus `` [module]`` where ``module`` is set."""
    names = calls["func"].astype(object).to_numpy(dtype=object)
    names = np.where(pd.isna(names), UNKNOWN_FUNC, names).astype(object)
    if module and "module" in calls and calls["module"].notna().any():
        m = calls["module"].astype(object).to_numpy(dtype=object)
        has = pd.notna(m)
        names[has] = names[has] + " [" + m[has].astype(str) + "]"
    return names


#: Chrome ``pid``/``tid`` of tasks without a real pid (pid 0 ``<idle>`` and unknown tasks are
#: kept apart per CPU): this offset plus a small per-CPU number. Linux pids are < 2**22.
PSEUDO_TID_BASE = 1 << 22


def task_ids(pid: np.ndarray, cpu: np.ndarray) -> np.ndarray:
    """Chrome ``pid``/``tid`` per row: the pid, or ``PSEUDO_TID_BASE + n`` for pid 0 and
    unknown tasks (one per CPU, as the calls table keeps them apart)."""
    key = task_keys(np.asarray(pid), np.asarray(cpu))
    return np.where(key > 0, key, PSEUDO_TID_BASE - key).astype(np.int64)


def task_names(pid: np.ndarray, cpu: np.ndarray, comm: Any) -> np.ndarray:
    """Name of each row's task: ``comm-pid`` with the first comm printed for that task other
    than ``<...>`` (the kernel prints ``<...>`` until its comm cache knows the name),
    ``<idle>-0 (cpu N)`` or ``cpu N`` for per-CPU pseudo tasks."""
    pid = np.asarray(pid)
    cpu = np.asarray(cpu)
    key = task_keys(pid, cpu)
    codes, uniq = pd.factorize(key)
    if not len(key):
        return np.zeros(0, dtype=object)
    comm_s = pd.Series(comm).astype(object).to_numpy()
    unknown = pd.isna(comm_s) | (comm_s == "<...>")
    order = np.lexsort((np.arange(len(key)), unknown, codes))
    first = pd.Series(order).groupby(codes[order]).first().to_numpy()
    names = []
    for i in first:                 # one per task, not per row
        p, c, cm = int(pid[i]), int(cpu[i]), comm_s[i]
        cm = cm if isinstance(cm, str) else None
        if p > 0:
            names.append(f"{cm or '?'}-{p}")
        elif p == 0:
            names.append(f"{cm or '<idle>'}-0 (cpu {c})")
        else:
            names.append(f"cpu {c}" if c >= 0 else "unknown task")
    return np.array(names, dtype=object)[codes]


# ---------------------------------------------------------------------------------------------
# Selecting calls

TOP_COLUMNS = ["count", "total_us", "self_us", "mean_us", "p50_us", "p90_us", "p99_us", "max_us"]

_GCC_SUFFIX = re.compile(r"(\.(?:isra|constprop|part|cold|lto_priv|llvm)(?:\.\d+)?)+$")


def base_name(func: str) -> str:
    """``finish_task_switch.isra.0`` → ``finish_task_switch`` (GCC clone suffixes removed)."""
    return _GCC_SUFFIX.sub("", func)


def functions(calls: pd.DataFrame) -> list[str]:
    """Names of the functions that have at least one call, sorted."""
    return sorted(str(x) for x in calls["func"].dropna().unique())


def match_funcs(calls: pd.DataFrame, func: str) -> list[str]:
    """Function names matching ``func``: exact, else glob, else same name without GCC suffix.

    Raises :class:`~ftracekit.errors.UnknownFunctionError` (with close matches) if none."""
    cats = list(calls["func"].cat.categories)
    present = set(functions(calls))
    if func in present:
        return [func]
    if any(ch in func for ch in "*?["):
        hits = [c for c in cats if c in present and fnmatch.fnmatchcase(c, func)]
        if hits:
            return hits
    base = base_name(func)
    hits = [c for c in cats if c in present and base_name(c) == base]
    if hits:
        return hits
    raise UnknownFunctionError(func, sorted(present))


def calls_of(calls: pd.DataFrame, func: str) -> pd.DataFrame:
    """The rows of ``calls`` whose function matches ``func`` (see :func:`match_funcs`)."""
    names = match_funcs(calls, func)
    f = calls["func"]
    mask = f == names[0] if len(names) == 1 else f.isin(names)
    return calls[mask.to_numpy(dtype=bool, na_value=False)]


def roots(calls: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``calls`` without a parent."""
    return calls[calls["parent"].to_numpy() < 0]


class ChildIndex:
    """Children of every call (CSR by call id): children of ``c`` are
    ``kids[offsets[c]:offsets[c+1]]``, in order of appearance.

    Works for filtered tables too (ids need not be dense; parents may be absent)."""

    __slots__ = ("kids", "offsets")

    def __init__(self, calls: pd.DataFrame) -> None:
        parent = calls["parent"].to_numpy()
        index = calls.index.to_numpy()
        n = int(max(index.max(), parent.max())) + 2 if len(index) else 1
        has = parent >= 0
        order = np.argsort(np.where(has, parent, n), kind="stable")[: int(has.sum())]
        self.kids = index[order]
        counts = np.bincount(parent[has], minlength=n)
        self.offsets = np.concatenate(([0], np.cumsum(counts)))

    def children(self, call: int) -> np.ndarray:
        """Ids of the direct children of ``call``."""
        return self.kids[self.offsets[call]:self.offsets[call + 1]]

    def subtree(self, call: int) -> np.ndarray:
        """Ids of ``call`` and all its descendants (breadth-first order)."""
        order, offsets = self.kids, self.offsets
        out = [np.array([call])]
        frontier = np.array([call])
        while len(frontier):
            starts, ends = offsets[frontier], offsets[frontier + 1]
            lens = ends - starts
            if not lens.sum():
                break
            idx = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens) + np.arange(lens.sum())
            frontier = order[idx]
            out.append(frontier)
        return np.concatenate(out)


# ---------------------------------------------------------------------------------------------
# Per-function statistics

def func_stats(calls: pd.DataFrame) -> pd.DataFrame:
    """Per-function statistics, index ``func``, columns :data:`TOP_COLUMNS`: ``count`` (calls),
    ``total_us``, ``self_us`` (sums), ``mean_us``, ``p50_us``, ``p90_us``, ``p99_us``,
    ``max_us`` (of durations; calls without a duration are counted but not in the duration
    statistics)."""
    if not len(calls):
        return pd.DataFrame(columns=TOP_COLUMNS, index=pd.Index([], name="func"))
    g = calls.groupby("func", observed=True, sort=False)
    dur = g["duration_us"]
    table = pd.DataFrame({
        "count": g.size(),
        "total_us": dur.sum(min_count=1),
        "self_us": g["self_us"].sum(min_count=1),
        "mean_us": dur.mean(),
    })
    q = dur.quantile([0.5, 0.9, 0.99]).unstack()
    table["p50_us"] = q[0.5]
    table["p90_us"] = q[0.9]
    table["p99_us"] = q[0.99]
    table["max_us"] = dur.max()
    table.index = table.index.astype(str)
    table.index.name = "func"
    table = table[TOP_COLUMNS]
    us = TOP_COLUMNS[1:]
    table[us] = table[us].round(3)        # µs to the ns the kernel measured: no float noise
    return table


def top(calls: pd.DataFrame, n: int | None = 20, by: str = "self") -> pd.DataFrame:
    """:func:`func_stats`, largest ``by`` first (``self``, ``total``, ``count`` or ``max``)."""
    _top_key(by)
    return rank_top(func_stats(calls), n, by)


def _top_key(by: str) -> str:
    keys = {"self": "self_us", "total": "total_us", "count": "count", "max": "max_us"}
    if by not in keys:
        raise FtracekitError(f"cannot sort by {by!r}; use one of: {', '.join(keys)}")
    return keys[by]


def rank_top(table: pd.DataFrame, n: int | None = 20, by: str = "self") -> pd.DataFrame:
    """A :func:`func_stats` table (rows in order of first appearance) sorted as :func:`top`
    sorts it: largest ``by`` first, then most calls, then first appearance."""
    table = table.sort_values([_top_key(by), "count"], ascending=False, kind="stable")
    return table.head(n) if n is not None else table


def stats(c: pd.DataFrame, name: str) -> pd.Series:
    """Statistics of the calls ``c`` of one function (see :meth:`ftracekit.Trace.stats`)."""
    d = c["duration_us"]
    st = c["status"].value_counts()

    def us(v: float) -> float:
        return round(float(v), 3)

    return pd.Series({
        "count": len(c),
        "complete": int(st.get("complete", 0)),
        "no_exit": int(st.get("no-exit", 0)),
        "no_entry": int(st.get("no-entry", 0)),
        "total_us": us(d.sum()),
        "self_us": us(c["self_us"].sum()),
        "mean_us": us(d.mean()),
        "std_us": us(d.std()),
        "min_us": us(d.min()),
        "p50_us": us(d.quantile(0.5)),
        "p90_us": us(d.quantile(0.9)),
        "p99_us": us(d.quantile(0.99)),
        "max_us": us(d.max()),
        "tasks": int(c["pid"].nunique()),
        "cpus": int(c["cpu"].nunique()),
        "roots": int((c["parent"] < 0).sum()),
    }, name=name, dtype=object)     # (object: counts stay integers, µs keep 3 decimals)


#: What :func:`compare` can sort by, and the column it sorts on (largest absolute change first).
COMPARE_KEYS = {"total": "total_change_us", "self": "self_change_us", "count": "count_change",
                "p50": "p50_change_pct", "p99": "p99_change_pct"}

COMPARE_COLUMNS = ["count_a", "count_b", "count_change", "total_us_a", "total_us_b",
                   "total_change_us", "total_change_pct", "self_us_a", "self_us_b",
                   "self_change_us", "p50_us_a", "p50_us_b", "p50_change_pct", "p99_us_a",
                   "p99_us_b", "p99_change_pct", "funcs_a", "funcs_b"]


def _by_base_name(calls: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The columns :func:`func_stats` needs, with ``func`` replaced by its base name, and the
    original names per base name (``", "``-joined, sorted)."""
    f = calls["func"]
    cats = np.asarray([base_name(str(c)) for c in f.cat.categories], dtype=object)
    codes = f.cat.codes.to_numpy()
    base = np.where(codes >= 0, cats[np.maximum(codes, 0)] if len(cats) else "", None)
    slim = pd.DataFrame({"func": pd.Categorical(base), "duration_us": calls["duration_us"],
                         "self_us": calls["self_us"]}, index=calls.index)
    seen = pd.DataFrame({"base": base, "func": f.astype(object).to_numpy()}).dropna()
    seen = seen.drop_duplicates()
    names = seen.groupby("base")["func"].agg(lambda v: ", ".join(sorted(map(str, v))))
    return slim, names


def compare(a_calls: pd.DataFrame, b_calls: pd.DataFrame, n: int | None = None,
            by: str = "total") -> pd.DataFrame:
    """Per-function change from ``a_calls`` to ``b_calls`` (see :meth:`ftracekit.Trace.compare`).

    Functions are matched by :func:`base_name` (``rtnl_fill_ifinfo`` in one kernel is
    ``rtnl_fill_ifinfo.isra.0`` in another); ``funcs_a``/``funcs_b`` list the names as each
    trace printed them."""
    if by not in COMPARE_KEYS:
        raise FtracekitError(f"cannot sort by {by!r}; use one of: {', '.join(COMPARE_KEYS)}")
    sa, names_a = _by_base_name(a_calls)
    sb, names_b = _by_base_name(b_calls)
    return compare_stats(func_stats(sa), names_a, func_stats(sb), names_b, n, by)


def compare_stats(a: pd.DataFrame, names_a: pd.Series, b: pd.DataFrame, names_b: pd.Series,
                  n: int | None = None, by: str = "total") -> pd.DataFrame:
    """:func:`compare` from the two sides' :func:`func_stats` by base name (index: base
    name) and their printed names per base name (``", "``-joined); the datasets'
    ``compare`` computes those sides out of core."""
    if by not in COMPARE_KEYS:
        raise FtracekitError(f"cannot sort by {by!r}; use one of: {', '.join(COMPARE_KEYS)}")
    cols = ["count", "total_us", "self_us", "p50_us", "p99_us"]
    t = a[cols].add_suffix("_a").join(b[cols].add_suffix("_b"), how="outer")
    for side in ("a", "b"):
        t[f"count_{side}"] = t[f"count_{side}"].fillna(0).astype(np.int64)
        for c in ("total_us", "self_us"):
            t[f"{c}_{side}"] = t[f"{c}_{side}"].astype(float).fillna(0.0)
    t["count_change"] = t["count_b"] - t["count_a"]
    t["total_change_us"] = t["total_us_b"] - t["total_us_a"]
    t["self_change_us"] = t["self_us_b"] - t["self_us_a"]

    def pct(new: pd.Series, old: pd.Series) -> pd.Series:
        with np.errstate(divide="ignore", invalid="ignore"):
            return 100 * (new - old) / old.replace(0, np.nan)

    t["total_change_pct"] = pct(t["total_us_b"], t["total_us_a"])
    t["p50_change_pct"] = pct(t["p50_us_b"], t["p50_us_a"])
    t["p99_change_pct"] = pct(t["p99_us_b"], t["p99_us_a"])
    t["funcs_a"] = names_a.reindex(t.index).fillna("").astype(object)
    t["funcs_b"] = names_b.reindex(t.index).fillna("").astype(object)
    key = t[COMPARE_KEYS[by]].abs()
    # largest change first; ties (and no change) by the larger of the two values, then name
    size = t[[f"{by}_us_a" if by in ("total", "self") else "count_a",
              f"{by}_us_b" if by in ("total", "self") else "count_b"]].max(axis=1)
    order = pd.DataFrame({"k": key, "s": size, "name": t.index}, index=t.index).sort_values(
        ["k", "s", "name"], ascending=[False, False, True], na_position="last").index
    t = t.loc[order, COMPARE_COLUMNS]
    us = [c for c in COMPARE_COLUMNS if "_us" in c]
    t[us] = np.round(t[us].astype(float), 3)       # the ns the kernel measured, no float noise
    t.index.name = "func"
    return t.head(n) if n is not None else t


# ---------------------------------------------------------------------------------------------
# One call

def critical_path(calls: pd.DataFrame, index: ChildIndex, call: int, *,
                  include_irq: bool = False) -> pd.DataFrame:
    """The chain from ``call`` down to where its time is spent (see
    :meth:`ftracekit.Trace.critical_path` for the rule and the columns)."""
    dur = calls["duration_us"].to_numpy(dtype=float, na_value=np.nan)
    selfs = calls["self_us"].to_numpy(dtype=float, na_value=np.nan)
    irq = calls["in_irq"].to_numpy(dtype=bool)
    pos = pd.Index(calls.index)
    chain: list[int] = []
    irq_us: list[float] = []
    cur = call
    end = "no children"
    while True:
        chain.append(cur)
        kids = index.children(cur)
        kp = pos.get_indexer(kids)
        kd = dur[kp]
        ki = irq[kp] & ~irq[pos.get_loc(cur)]     # interrupts of this call (not its own context)
        irq_us.append(float(np.nansum(kd[ki])))
        follow = kd if include_irq else np.where(ki, np.nan, kd)
        if not len(kids) or np.all(np.isnan(follow)):
            end = "no children" if not len(kids) else "only interrupts below"
            break
        j = int(np.nanargmax(follow))
        own = selfs[pos.get_loc(cur)]
        if own == own and own >= follow[j]:
            end = "self time"        # its own time outweighs any child's: the time is spent here
            break
        cur = int(kids[j])
    rows = calls.loc[chain, ["func", "depth", "duration_us", "self_us", "n_children"]].copy()
    rows.insert(4, "irq_us", np.round(irq_us, 3))   # (µs to the ns, as the kernel prints)
    head = rows["duration_us"].iloc[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        rows["pct_of_top"] = (100 * rows["duration_us"] / head).round(1) if head else np.nan
        rows["share_of_parent"] = (100 * rows["duration_us"] / rows["duration_us"].shift(1)).round(1)
    rows.insert(0, "call", rows.index)
    out = rows.reset_index(drop=True)
    out.attrs["end"] = end
    return out


def reroot(calls: pd.DataFrame) -> pd.DataFrame:
    """A subset of a calls table made self-contained: calls whose parent is not in it get
    ``parent`` −1, and ``root`` is the outermost ancestor within the subset."""
    parent = calls["parent"].to_numpy()
    ids = calls.index.to_numpy()
    inside = np.isin(parent, ids)
    if inside.all() or not len(calls):
        outside_root = ~np.isin(calls["root"].to_numpy(), ids)
        if not outside_root.any():
            return calls
    out = calls.copy()
    new_parent = np.where(inside, parent, -1)
    out["parent"] = new_parent
    # root: follow parents within the subset (positions), pointer jumping
    pos = pd.Index(ids).get_indexer(new_parent)
    r = np.where(pos >= 0, pos, np.arange(len(ids)))
    while True:
        nr = r[r]
        if np.array_equal(nr, r):
            break
        r = nr
    out["root"] = ids[r]
    return out


def errors(calls: pd.DataFrame) -> pd.DataFrame:
    """The calls that returned an error: ``retval`` in the kernel's error range (-4095..-1).
    Other negative values are kernel pointers (``0xffff…`` read as signed) or what a void
    function left in the return register (see :func:`errno_name` for the names)."""
    rv = calls["retval"]
    mask = (rv >= -MAX_ERRNO) & (rv <= -1)
    return calls[mask.to_numpy(dtype=bool, na_value=False)]


# Linux errno names (include/uapi/asm-generic/errno-base.h, errno.h, and the kernel-internal
# include/linux/errno.h ones a function can return).
_ERRNO = {
    1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG",
    8: "ENOEXEC", 9: "EBADF", 10: "ECHILD", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES",
    14: "EFAULT", 15: "ENOTBLK", 16: "EBUSY", 17: "EEXIST", 18: "EXDEV", 19: "ENODEV",
    20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 23: "ENFILE", 24: "EMFILE", 25: "ENOTTY",
    26: "ETXTBSY", 27: "EFBIG", 28: "ENOSPC", 29: "ESPIPE", 30: "EROFS", 31: "EMLINK",
    32: "EPIPE", 33: "EDOM", 34: "ERANGE", 35: "EDEADLK", 36: "ENAMETOOLONG", 37: "ENOLCK",
    38: "ENOSYS", 39: "ENOTEMPTY", 40: "ELOOP", 42: "ENOMSG", 43: "EIDRM", 61: "ENODATA",
    62: "ETIME", 71: "EPROTO", 74: "EBADMSG", 75: "EOVERFLOW", 84: "EILSEQ", 88: "ENOTSOCK",
    89: "EDESTADDRREQ", 90: "EMSGSIZE", 91: "EPROTOTYPE", 92: "ENOPROTOOPT",
    93: "EPROTONOSUPPORT", 94: "ESOCKTNOSUPPORT", 95: "EOPNOTSUPP", 96: "EPFNOSUPPORT",
    97: "EAFNOSUPPORT", 98: "EADDRINUSE", 99: "EADDRNOTAVAIL", 100: "ENETDOWN",
    101: "ENETUNREACH", 102: "ENETRESET", 103: "ECONNABORTED", 104: "ECONNRESET",
    105: "ENOBUFS", 106: "EISCONN", 107: "ENOTCONN", 108: "ESHUTDOWN", 110: "ETIMEDOUT",
    111: "ECONNREFUSED", 112: "EHOSTDOWN", 113: "EHOSTUNREACH", 114: "EALREADY",
    115: "EINPROGRESS", 116: "ESTALE", 122: "EDQUOT", 125: "ECANCELED", 512: "ERESTARTSYS",
    513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND", 515: "ENOIOCTLCMD",
    516: "ERESTART_RESTARTBLOCK", 517: "EPROBE_DEFER", 518: "EOPENSTALE", 524: "ENOTSUPP",
}

#: The kernel's error range for return values: IS_ERR_VALUE, -MAX_ERRNO..-1.
MAX_ERRNO = 4095


def errno_name(value: Any) -> str | None:
    """``-2`` → ``-ENOENT``; ``None`` outside the kernel's error range (-4095..-1), where a
    "negative" value is a kernel pointer or the garbage a void function leaves in the
    return register, not an error."""
    if value is None or value is pd.NA or value != value:
        return None
    v = int(value)
    if not -MAX_ERRNO <= v <= -1:
        return None
    name = _ERRNO.get(-v)
    return f"-{name}" if name else f"-errno {-v}"
