"""Where each call sits on a time axis: start and duration in whole ns per call, nested
inside its parent, for tools (Chrome/Perfetto JSON, the flame and timeline plots) that need
children strictly inside their parent even where printed µs round or timestamps are missing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..calltree import task_keys
from ..errors import FtracekitError

__all__ = ["layout"]


def _parent_pos(calls: pd.DataFrame) -> np.ndarray:
    """Position (row number) of each call's parent in ``calls``, −1 when it has none here
    (no parent, or a parent that a filter left out)."""
    idx = calls.index.to_numpy()
    parent = calls["parent"].to_numpy()
    if not len(idx):
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(idx, kind="stable")
    k = np.searchsorted(idx, parent, sorter=order)
    k = np.clip(k, 0, len(idx) - 1)
    pos = order[k]
    ok = (parent >= 0) & (idx[pos] == parent)
    return np.where(ok, pos, -1).astype(np.int64)


def _levels(ppos: np.ndarray) -> list[np.ndarray]:
    """Positions grouped by generation (0 = no parent here), each sorted by position."""
    n = len(ppos)
    has = ppos >= 0
    kids = np.argsort(np.where(has, ppos, n), kind="stable")[: int(has.sum())]
    offsets = np.concatenate(([0], np.cumsum(np.bincount(ppos[has], minlength=n))))
    levels = []
    cur = np.flatnonzero(~has)
    while len(cur):
        levels.append(cur)
        starts, ends = offsets[cur], offsets[cur + 1]
        lens = ends - starts
        total = int(lens.sum())
        if not total:
            break
        first = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
        cur = np.sort(kids[first + np.arange(total)])
    return levels


def _group_excl_cumsum(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Sum of ``values`` of the earlier members of the same group (rows in order)."""
    s = pd.Series(values).groupby(group, sort=False).cumsum().to_numpy()
    return s - values


def layout(calls: pd.DataFrame, clock: str = "auto") -> pd.DataFrame:
    """Start and duration of every call on one clock, with strict nesting.

    ``clock``:

    * ``"abstime"`` — from the trace's timestamps (``start_s``, or ``end_s − duration`` for
      calls without an entry), in µs since the earliest call. Timestamps have µs resolution
      while durations have ns, so a call that overlaps its previous sibling by up to 1 µs is
      moved to start after it; a call whose printed duration runs further into its next
      sibling (timestamps and duration disagree) is cut where the next one starts; every call
      is clamped into its parent. Root calls are siblings per task. A call's start is its
      exit time minus its duration when, started at its entry line's time, it would outlast
      its parent but not so (an entry line printed late, after interrupts that ran inside
      the call); an interrupt attached more than one level below
      its parent that starts inside a sibling is nested in that sibling.
    * ``"synthetic"`` — for traces without timestamps: root calls are laid end to end in
      order of appearance (all tasks on one clock starting at 0) and children are packed from
      their parent's start in order, so a parent's self time shows as a gap at its end.
      Durations are the printed ones, except that a parent whose children add up to more
      than its own duration (negative self time) is stretched to hold them. A trace without
      any durations gets 1 µs per call plus its children (the tree's shape only).
    * ``"auto"`` — ``abstime`` when the calls carry timestamps, else ``synthetic``.

    A call without a duration (``no-exit``: still running when the trace stopped) ends when
    its task's last recorded call ends (abstime), or 2 ns after the end of its last child
    (synthetic).

    Times are finally rounded to whole ns and touching slices separated by ≥ 1 ns (see
    :func:`_whole_ns`), so the result nests in any reader's floating point.

    Returns a DataFrame indexed like ``calls`` with ``ts_us``, ``dur_us``, ``gen`` (generation:
    0 for calls without a parent in ``calls``) and ``task`` (task key);
    ``attrs["clock"]``, ``attrs["t0_s"]`` (the abstime origin in trace seconds, NaN for
    synthetic) and ``attrs["adjusted"]`` (calls whose duration differs from ``duration_us`` by
    more than 0.01 µs).
    """
    n = len(calls)
    start = calls["start_s"].to_numpy(dtype=float, na_value=np.nan)
    end = calls["end_s"].to_numpy(dtype=float, na_value=np.nan)
    dur = calls["duration_us"].to_numpy(dtype=float, na_value=np.nan)
    if clock == "auto":
        clock = "abstime" if n and (np.isfinite(start).any() or np.isfinite(end).any()) else "synthetic"
    if clock not in ("abstime", "synthetic"):
        raise FtracekitError(f"unknown clock {clock!r}; use 'auto', 'abstime' or 'synthetic'")
    if clock == "abstime" and n and not (np.isfinite(start).any() or np.isfinite(end).any()):
        raise FtracekitError("this trace has no timestamps (record with funcgraph-abstime); "
                             "use clock='synthetic'")
    task = task_keys(calls["pid"].to_numpy(), calls["cpu"].to_numpy())
    ppos = _parent_pos(calls)
    levels = _levels(ppos)
    gen = np.zeros(n, dtype=np.int32)
    for g, lv in enumerate(levels):
        gen[lv] = g
    has_parent = ppos >= 0

    ts = np.zeros(n)
    out_dur = np.zeros(n)
    nested = np.zeros(n, dtype=bool)      # laid out inside an earlier sibling
    t0 = np.nan
    if clock == "synthetic":
        # Effective durations bottom-up: a call spans at least its children. A trace with no
        # durations at all (funcgraph-duration off, nocontext-info) gets 1 µs per call plus
        # its children: only the shape of the tree, but a shape every reader can nest.
        eff = np.ones(n) if n and np.isnan(dur).all() else dur.copy()
        for lv in reversed(levels):
            kids_sum = np.bincount(ppos[has_parent], weights=np.nan_to_num(eff[has_parent]),
                                   minlength=n)[lv]
            # a call without a duration (no exit) spans its children plus 2 ns, so that they
            # keep their printed durations inside it (see _whole_ns)
            e = eff[lv]
            eff[lv] = np.where(np.isnan(e), np.where(kids_sum > 0, kids_sum + 0.002, 0.0),
                               np.fmax(e, kids_sum))
        for g, lv in enumerate(levels):
            grp = np.full(len(lv), -1) if g == 0 else ppos[lv]
            base = 0.0 if g == 0 else ts[ppos[lv]]
            ts[lv] = base + _group_excl_cumsum(eff[lv], grp)
        out_dur = eff
    else:
        # A call starts at its entry line's time. Real traces also have entry lines printed
        # late (after interrupts that ran inside the call) and exit lines printed late; when
        # the call, started at its entry time, would outlast its parent's exit but, started
        # at its exit time minus its duration, would not, the latter is the right start.
        alt = end - dur / 1e6
        pp = np.maximum(ppos, 0)
        p_end = np.where(np.isfinite(end[pp]), end[pp], start[pp] + dur[pp] / 1e6)
        slack = 1.5e-6                                    # µs timestamps vs ns durations
        late_entry = (ppos >= 0) & (start + dur / 1e6 > p_end + slack) & \
            (alt + dur / 1e6 <= p_end + slack) & (alt >= start[pp] - slack)
        use_alt = np.isfinite(alt) & (np.isnan(start) | late_entry)
        raw = np.where(use_alt, alt, start)
        depth = calls["depth"].to_numpy()
        deep = np.where(ppos >= 0, depth > depth[np.maximum(ppos, 0)] + 1, depth > 0)
        t0 = float(np.nanmin(raw))
        raw_us = (raw - t0) * 1e6
        last = np.where(np.isfinite(end), (end - t0) * 1e6, raw_us + np.nan_to_num(dur))
        task_end = pd.Series(np.nan_to_num(last, nan=-np.inf)).groupby(task).transform("max")
        eff = np.where(np.isnan(dur), np.maximum(task_end.to_numpy() - raw_us, 0.0), dur)
        eff = np.nan_to_num(eff)
        for g, lv in enumerate(levels):
            p = ppos[lv] if g else None
            grp = -1 - task[lv] if g == 0 else p
            c = np.nan_to_num(raw_us[lv], nan=-np.inf)
            key = c
            if g:
                # a child whose time cannot be right (it would end after its parent: the
                # clock stood still or jumped, as inside interrupts on some machines) is
                # packed after its previous sibling instead, keeping its place in the trace
                p_end = ts[p] + out_dur[p]
                fits = c + eff[lv] <= p_end + 1.0
                key = np.where(fits, c, np.nan)
                c = np.where(fits, np.maximum(c, ts[p]), ts[p])
            t, e, nested[lv] = _place_siblings(grp, c, eff[lv], tol=1.0, deep=deep[lv], key=key)
            if g:
                p_end = ts[p] + out_dur[p]
                t = np.minimum(t, p_end)
                e = np.minimum(e, p_end)
            ts[lv] = t
            out_dur[lv] = np.maximum(e - t, 0.0)
    ts_ns, dur_ns = _whole_ns(ts, out_dur, ppos, levels, task, nested)
    res = pd.DataFrame({"ts_us": ts_ns / 1000, "dur_us": dur_ns / 1000, "gen": gen, "task": task},
                       index=calls.index)
    res.attrs["clock"] = clock
    res.attrs["t0_s"] = t0
    res.attrs["adjusted"] = int((np.abs(res["dur_us"].to_numpy() - dur) > 0.01).sum())
    return res


def _sorted_groups(grp: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order of rows by (group, time, row) and the group of each row in that order."""
    o = np.lexsort((np.arange(len(t)), t, grp))
    return o, grp[o]


def _place_siblings(grp: np.ndarray, c: np.ndarray, d: np.ndarray, tol: float,
                    deep: np.ndarray | None = None, key: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start/end of siblings (rows of one tree level, grouped by parent) from their own start
    times ``c`` and durations ``d``, so that they nest; and which rows were nested inside an
    earlier sibling.

    ``deep`` rows sit more than one level below their parent (an interrupt printed before the
    entry line of the function it interrupted): one that starts inside an earlier sibling keeps
    its time and ends inside that sibling, so that readers nest it there. Among the other
    rows, in time order: a row whose printed duration runs more than ``tol`` past the next
    sibling's start is cut at that start (the timestamps disagree with the duration; the start
    times win), unless the two start within ``tol`` of each other (a clock standing still);
    other overlaps are rounding or a still clock, so the next row is moved to start when this
    one ends, ``ts_i = max(c_i, ts_{i−1} + d_{i−1})``, computed as
    ``D_i + cummax(c_i − D_i)`` with ``D`` the running sum of durations.
    """
    # time order (``key``, default ``c``); rows without a usable time (NaN key) keep their
    # place after the row before them in the trace
    k = pd.Series(np.where(np.isfinite(c), c, np.nan) if key is None else key)
    o, g = _sorted_groups(grp, k.groupby(grp).ffill().fillna(-np.inf).to_numpy())
    cs, ds = c[o], d[o].copy()
    inside = np.zeros(len(o), dtype=bool)
    if deep is not None and deep.any():
        ends = pd.Series(np.where(deep[o], -np.inf, cs + ds))
        prev_end = ends.groupby(g).cummax().groupby(g).shift(1).to_numpy()
        inside = deep[o] & np.isfinite(prev_end) & (cs < prev_end - tol)
        enc = np.where(inside, prev_end, np.nan)
    out = ~inside
    t = cs.copy()
    go, co, do = g[out], cs[out], ds[out]
    nxt = pd.Series(co).groupby(go).shift(-1).to_numpy()
    # (a next sibling printed with the same time is a stopped clock, not a contradiction:
    # inside interrupts the time stamp can stand still for a whole handler)
    cut = np.isfinite(nxt) & (co + do > nxt + tol) & (nxt > co + tol)
    do[cut] = np.maximum(nxt[cut] - co[cut], 0.0)
    D = _group_excl_cumsum(do, go)
    t[out] = D + pd.Series(co - D).groupby(go).cummax().to_numpy()
    ds[out] = do
    if inside.any():
        ds[inside] = np.maximum(np.minimum(cs[inside] + ds[inside], enc[inside]) - cs[inside], 0.0)
    ts = np.empty_like(t)
    te = np.empty_like(t)
    nested = np.zeros(len(t), dtype=bool)
    ts[o] = t
    te[o] = t + ds
    nested[o] = inside
    return ts, te, nested


def _whole_ns(ts_us: np.ndarray, dur_us: np.ndarray, ppos: np.ndarray,
              levels: list[np.ndarray], task: np.ndarray, nested: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Round times to whole ns and separate touching slices by at least 1 ns.

    Readers work in doubles parsed from the µs text and shift them (speedscope subtracts the
    thread's first timestamp), so a child ending exactly where its parent ends, or a slice
    ending exactly where its next sibling starts, may compare either way (6.189 + 7.341 >
    13.53 in binary) and get mis-nested. Each end is therefore kept at least 1 ns before the
    next sibling's start and its parent's end: durations can lose a few ns, never more.
    ``nested`` rows (laid out inside an earlier sibling) end inside that sibling instead.
    """
    ts_ns = np.rint(ts_us * 1000).astype(np.int64)
    dur_ns = np.maximum(np.rint(dur_us * 1000).astype(np.int64), 0)
    end_ns = ts_ns + dur_ns
    big = np.iinfo(np.int64).max // 4

    for g, lv in enumerate(levels):
        grp = -1 - task[lv] if g == 0 else ppos[lv]
        if g:
            # a call squeezed to the very end of its parent still starts inside it
            p = ppos[lv]
            ts_ns[lv] = np.maximum(np.minimum(ts_ns[lv], ts_ns[p] + dur_ns[p] - 1), ts_ns[p])
            end_ns[lv] = np.minimum(ts_ns[lv] + dur_ns[lv], end_ns[lv])
        o, gs = _sorted_groups(grp, ts_ns[lv])
        rows = lv[o]
        t = ts_ns[rows]
        e = pd.Series(np.maximum(end_ns[rows], t))
        inside = nested[rows]
        bound = np.full(len(rows), big, dtype=np.int64)
        out = ~inside
        # outer rows: before the next outer sibling; inside rows: inside their enclosing one
        nxt = pd.Series(t[out]).groupby(gs[out]).shift(-1).fillna(big).to_numpy(dtype=np.int64)
        bound[out] = nxt
        if inside.any():
            enc = pd.Series(np.where(out, e.to_numpy(), -1)).groupby(gs).cummax().to_numpy()
            bound[inside] = enc[inside]
        if g:
            bound = np.minimum(bound, end_ns[ppos[rows]])
        d = np.clip(np.minimum(dur_ns[rows], bound - 1 - t), 0, None)
        dur_ns[rows] = d
        end_ns[rows] = t + d
    return ts_ns, dur_ns
