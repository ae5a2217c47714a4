"""Exports of a :class:`~ftracekit.Trace` for other tools.

* :func:`to_folded` — folded stacks (``a;b;c 123``) for FlameGraph's ``flamegraph.pl``,
  speedscope, inferno, …; the weight of a stack is the summed self time of its calls.
* :func:`to_chrome` — Chrome trace-event JSON for the Perfetto UI (ui.perfetto.dev) and
  ``chrome://tracing``: one track per task, nested ``X`` slices, events as instant markers.
* :func:`to_parquet` / :func:`to_csv` — the calls and events tables; :func:`read_parquet`
  reads a Parquet export back into a Trace.

Everything here is vectorised over the calls table (loops run over tree levels or unique
stacks, never over calls), so exports of multi-million-call traces take seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Union

import numpy as np
import pandas as pd

from ..calltree.link import frame_names, task_keys
from ..errors import FtracekitError

if TYPE_CHECKING:  # pragma: no cover
    from ..trace import Trace

__all__ = ["to_folded", "to_chrome", "to_parquet", "to_csv", "read_parquet", "chrome_events",
           "layout", "task_ids", "task_names"]

PathLike = Union[str, "os.PathLike[str]"]

#: Chrome ``pid``/``tid`` of tasks without a real pid (pid 0 ``<idle>`` and unknown tasks are
#: kept apart per CPU): this offset plus a small per-CPU number. Linux pids are < 2**22.
PSEUDO_TID_BASE = 1 << 22


# ---------------------------------------------------------------------------------------------
# Tree helpers shared with ftracekit.plot

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
# Folded stacks

def _stack_ids(calls: pd.DataFrame, names: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Intern every call's stack: returns a stack id per call and the stack strings."""
    n = len(calls)
    ppos = _parent_pos(calls)
    sid = np.full(n, -1, dtype=np.int64)
    stacks: list[str] = []
    name_arr = np.asarray(names, dtype=object)
    for g, lv in enumerate(_levels(ppos)):
        parent_sid = np.full(len(lv), -1, dtype=np.int64) if g == 0 else sid[ppos[lv]]
        name_code, name_uniq = pd.factorize(name_arr[lv])
        pair = parent_sid * (len(name_uniq) + 1) + name_code
        codes, uniq = pd.factorize(pair)
        base = len(stacks)
        # one string per unique (parent stack, function) pair
        up = uniq // (len(name_uniq) + 1)
        un = uniq % (len(name_uniq) + 1)
        for ps, nc in zip(up.tolist(), un.tolist()):
            nm = name_uniq[nc]
            stacks.append(nm if ps < 0 else f"{stacks[ps]};{nm}")
        sid[lv] = base + codes
    return sid, stacks


def to_folded(trace: "Trace", path_or_file: PathLike | IO[str] | None = None, *,
              unit: str = "us", tasks: bool = False) -> str | None:
    """Folded stacks: one line ``root;child;…;func WEIGHT`` per distinct call stack.

    The weight is the summed self time of the calls with that stack, as an integer in
    ``unit`` (``"us"``, or ``"ns"`` for full precision: durations have ns resolution), because
    speedscope and most folded-stack readers accept integer weights only; stacks whose
    weight rounds to 0 are left out. Negative self times (measurement noise) and calls
    without a duration count as 0. ``tasks=True`` adds the task (``comm-pid``) as the
    outermost frame. Calls whose caller was not recorded start their own stacks.

    Writes to ``path_or_file`` when given (returns None), else returns the text.
    Open the result with ``flamegraph.pl --countname=us out.folded > out.svg`` or drop it on
    speedscope.
    """
    scale = {"us": 1.0, "ns": 1000.0}.get(unit)
    if scale is None:
        raise FtracekitError(f"unknown unit {unit!r}; use 'us' or 'ns'")
    calls = trace.calls
    names = frame_names(calls)
    if tasks and len(calls):
        tnames = task_names(calls["pid"].to_numpy(), calls["cpu"].to_numpy(), calls["comm"])
        # the task is prepended to every root's name; children inherit it through the stack
        roots = _parent_pos(calls) < 0
        names = names.copy()
        names[roots] = tnames[roots] + ";" + names[roots]
    sid, stacks = _stack_ids(calls, names)
    self_t = np.clip(calls["self_us"].to_numpy(dtype=float, na_value=np.nan), 0, None)
    w = np.bincount(sid, weights=np.nan_to_num(self_t) * scale, minlength=len(stacks)) \
        if len(calls) else np.zeros(0)
    wi = np.rint(w).astype(np.int64)
    keep = np.flatnonzero(wi > 0)
    text = "".join(f"{stacks[i]} {wi[i]}\n" for i in keep)   # one line per distinct stack
    return _write_text(text, path_or_file)


def _write_text(text: str, path_or_file: PathLike | IO[str] | None) -> str | None:
    if path_or_file is None:
        return text
    if hasattr(path_or_file, "write"):
        path_or_file.write(text)  # type: ignore[union-attr]
        return None
    try:
        Path(path_or_file).write_text(text, encoding="utf-8")
    except OSError as err:
        raise FtracekitError(f"cannot write {os.fspath(path_or_file)}: {err.strerror or err}") from err
    return None


# ---------------------------------------------------------------------------------------------
# Chrome trace-event JSON

def _json_strings(values: Any) -> pd.Series:
    """JSON string literal of each value (missing → ``""``), encoding each distinct value once."""
    codes, uniq = pd.factorize(pd.Series(values).astype(object), use_na_sentinel=True)
    lit = np.array([json.dumps(str(u)) for u in uniq] + ['""'], dtype=object)
    return pd.Series(lit[codes])   # code −1 picks the trailing ""


def chrome_events(trace: "Trace", *, clock: str = "auto", events: bool = True
                  ) -> tuple[list[str], dict[str, Any]]:
    """The trace-event records as JSON texts (one per record) and a summary dict.

    See :func:`to_chrome`."""
    calls = trace.calls
    lay = layout(calls, clock=clock)
    out: list[str] = []
    tid = task_ids(calls["pid"].to_numpy(), calls["cpu"].to_numpy())
    ev = trace.events if events else trace.events.iloc[0:0]
    etid = task_ids(ev["pid"].to_numpy(), ev["cpu"].to_numpy())

    # Metadata: one process + thread per task, named comm-pid.
    tn = pd.DataFrame({"tid": np.concatenate([tid, etid]),
                       "name": np.concatenate([
                           task_names(calls["pid"].to_numpy(), calls["cpu"].to_numpy(), calls["comm"]),
                           task_names(ev["pid"].to_numpy(), ev["cpu"].to_numpy(), ev["comm"])])})
    tn = tn.drop_duplicates("tid")
    for t, name in tn.itertuples(index=False):   # one per task
        nm = json.dumps(str(name))
        out.append(f'{{"name":"process_name","ph":"M","pid":{t},"tid":{t},"args":{{"name":{nm}}}}}')
        out.append(f'{{"name":"thread_name","ph":"M","pid":{t},"tid":{t},"args":{{"name":{nm}}}}}')
    n_meta = len(out)

    if len(calls):
        # one f-string per slice: ~2.5 s per million calls (floats print as their shortest
        # repr, which for whole-ns values is the exact decimal)
        out.extend(
            f'{{"name":{nm},"cat":"function","ph":"X","ts":{t},"dur":{d},"pid":{p},"tid":{p},'
            f'"args":{{"call":{c},"line":{ln},"cpu":{cp},"status":{st}}}}}'
            for nm, t, d, p, c, ln, cp, st in zip(
                _json_strings(frame_names(calls)).tolist(), lay["ts_us"].tolist(),
                lay["dur_us"].tolist(), tid.tolist(), calls.index.tolist(),
                calls["line"].tolist(), calls["cpu"].tolist(),
                _json_strings(calls["status"].to_numpy()).tolist()))
    n_slices = len(calls)

    n_inst = 0
    if len(ev):
        ets = np.rint(_event_times(trace, ev, lay) * 1000) / 1000
        name = ev["event"].astype(object).fillna("comment").astype(str)
        out.extend(
            f'{{"name":{nm},"cat":"event","ph":"i","s":"t","ts":{t},"pid":{p},"tid":{p},'
            f'"args":{{"text":{tx},"line":{ln},"call":{c}}}}}'
            for nm, t, p, tx, ln, c in zip(
                _json_strings(name.to_numpy()).tolist(), ets.tolist(), etid.tolist(),
                _json_strings(ev["text"].to_numpy()).tolist(), ev["line"].tolist(),
                ev["call"].tolist()))
        n_inst = len(ev)
    summary = {"slices": n_slices, "instants": n_inst, "tasks": len(tn), "metadata": n_meta,
               "clock": lay.attrs["clock"], "t0_s": lay.attrs["t0_s"],
               "span_us": float(np.nanmax(lay["ts_us"] + lay["dur_us"])) if len(calls) else 0.0}
    return out, summary


def _event_times(trace: "Trace", ev: pd.DataFrame, lay: pd.DataFrame) -> np.ndarray:
    """Time of each event on the layout's clock.

    With timestamps: the event's own. Otherwise (synthetic clock): right after the last
    child of its enclosing call that started before the event's line (or at the call's start),
    or for events outside any call, at the end of the last root of its task before it."""
    if lay.attrs["clock"] == "abstime":
        t0 = lay.attrs["t0_s"]
        ts = (ev["ts_s"].to_numpy(dtype=float, na_value=np.nan) - t0) * 1e6
        # an event lies inside the call it happened in, even where the layout had to move
        # that call (a clock that stood still or jumped)
        call = ev["call"].to_numpy()
        inside = np.isin(call, lay.index.to_numpy()) & np.isfinite(ts)
        if inside.any():
            lo = lay["ts_us"].reindex(call[inside]).to_numpy()
            hi = lo + lay["dur_us"].reindex(call[inside]).to_numpy()
            ts[inside] = np.minimum(np.maximum(ts[inside], lo), hi)
        if not np.isnan(ts).any():
            return ts
    else:
        ts = np.full(len(ev), np.nan)
    calls = trace.calls
    ends = (lay["ts_us"] + lay["dur_us"]).to_numpy()
    lines = calls["line"].to_numpy()
    ev_call = ev["call"].to_numpy()
    ev_line = ev["line"].to_numpy()
    known = pd.Index(calls.index)
    out = ts.copy()
    need = np.isnan(out)
    # enclosing call present in the table: after its last child started before the event
    inside = need & np.isin(ev_call, known) & (ev_call >= 0)
    if inside.any():
        kids = pd.DataFrame({"parent": calls["parent"].to_numpy(), "line": lines, "end": ends})
        kids = kids[kids["parent"].isin(ev_call[inside])].sort_values("line")
        q = pd.DataFrame({"parent": ev_call[inside], "line": ev_line[inside],
                          "i": np.flatnonzero(inside)}).sort_values("line")
        m = pd.merge_asof(q, kids, on="line", by="parent", direction="backward")
        start_of = pd.Series(lay["ts_us"].to_numpy(), index=calls.index)
        m["end"] = m["end"].fillna(m["parent"].map(start_of))
        out[m["i"].to_numpy()] = m["end"].to_numpy()
    rest = np.isnan(out)
    if rest.any():
        # outside any call: the synthetic clock lays roots of all tasks end to end in line
        # order, so "after the last root that started before this line" is well defined
        roots = lay["gen"].to_numpy() == 0
        r = pd.DataFrame({"line": lines[roots], "end": ends[roots]}).sort_values("line")
        r["end"] = r["end"].cummax()
        q = pd.DataFrame({"line": ev_line[rest], "i": np.flatnonzero(rest)}).sort_values("line")
        m = pd.merge_asof(q, r, on="line", direction="backward")
        out[m["i"].to_numpy()] = m["end"].fillna(0.0).to_numpy()
    return out


def to_chrome(trace: "Trace", path: PathLike | IO[str], *, clock: str = "auto",
              events: bool = True) -> dict[str, Any]:
    """Write Chrome trace-event JSON (open it in ui.perfetto.dev or ``chrome://tracing``).

    * every call is a complete slice (``"ph": "X"``) with ``ts``/``dur`` in µs, on the track
      of its task: ``pid`` = ``tid`` = the task's pid (pid 0 and unknown tasks get one pseudo
      id per CPU, ``PSEUDO_TID_BASE + n``); ``args`` holds ``call`` (the call number in
      ``trace.calls``), ``line``, ``cpu`` and ``status``;
    * ``M`` metadata records name each process/thread ``comm-pid``;
    * events/comments (``kfree_skb``, trace_marker text …) are thread-scoped instant events
      (``"ph": "i"``) with the text in ``args``.

    Times come from :func:`layout`: the trace's timestamps (µs since its first call) when it has
    them, else a synthetic clock that lays root calls end to end and packs children from their
    parent's start — durations are exact, positions between calls are not. Calls without an
    exit end with their task's last recorded activity. Slices always nest strictly.

    Returns a summary: ``slices``, ``instants``, ``tasks``, ``metadata``, ``clock``, ``t0_s``,
    ``span_us``, ``path``.
    """
    recs, summary = chrome_events(trace, clock=clock, events=events)
    other = json.dumps({"source": str(trace.meta.get("source")), "clock": summary["clock"],
                        "t0_s": None if summary["t0_s"] != summary["t0_s"] else summary["t0_s"],
                        "generator": "ftracekit"})
    head = '{"displayTimeUnit":"ns","otherData":' + other + ',"traceEvents":[\n'
    body = ",\n".join(recs)
    text = head + body + "\n]}\n"
    _write_text(text, path)
    summary["path"] = (os.fspath(path) if isinstance(path, (str, os.PathLike))
                       else getattr(path, "name", None))
    return summary


# ---------------------------------------------------------------------------------------------
# Tables

def _table_paths(dir_or_prefix: PathLike, ext: str) -> tuple[Path, Path]:
    """``dir/`` (existing directory or trailing slash) → ``dir/calls.EXT``, ``dir/events.EXT``;
    anything else is a prefix: ``out/run1`` → ``out/run1.calls.EXT``, ``out/run1.events.EXT``."""
    s = os.fspath(dir_or_prefix)
    p = Path(s)
    if p.is_dir() or s.endswith(os.sep) or s.endswith("/"):
        p.mkdir(parents=True, exist_ok=True)
        return p / f"calls.{ext}", p / f"events.{ext}"
    if p.parent and not p.parent.exists():
        raise FtracekitError(f"cannot write {s}.*: directory {p.parent} does not exist")
    return Path(f"{s}.calls.{ext}"), Path(f"{s}.events.{ext}")


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError as err:
        raise FtracekitError("Parquet export needs pyarrow: pip install pyarrow") from err


def _meta_json(trace: "Trace") -> str:
    return json.dumps(trace.meta, default=str)


def to_parquet(trace: "Trace", dir_or_prefix: PathLike) -> dict[str, str]:
    """Write the calls and events tables as Parquet (needs pyarrow); returns their paths.

    Column types are kept (categoricals, nullable ``retval``); ``trace.meta`` is stored as
    JSON in the file metadata so :func:`read_parquet` gives the same Trace back.
    """
    _require_pyarrow()
    import pyarrow as pa
    import pyarrow.parquet as pq

    cpath, epath = _table_paths(dir_or_prefix, "parquet")
    try:
        for df, path in ((trace.calls, cpath), (trace.events, epath)):
            table = pa.Table.from_pandas(df, preserve_index=True)
            md = dict(table.schema.metadata or {})
            md[b"ftracekit.meta"] = _meta_json(trace).encode()
            # pyarrow gives categories back as str; remember the ones that were object
            cats = {c: str(df[c].cat.categories.dtype) for c in df.columns
                    if isinstance(df[c].dtype, pd.CategoricalDtype)}
            md[b"ftracekit.categories"] = json.dumps(cats).encode()
            pq.write_table(table.replace_schema_metadata(md), path)
    except OSError as err:
        raise FtracekitError(f"cannot write {cpath}: {err}") from err
    return {"calls": str(cpath), "events": str(epath)}


def read_parquet(dir_or_prefix: PathLike) -> "Trace":
    """Read a :func:`to_parquet` export back into a :class:`~ftracekit.Trace`."""
    _require_pyarrow()
    import pyarrow.parquet as pq

    from ..trace import Trace

    s = os.fspath(dir_or_prefix)
    p = Path(s)
    cpath, epath = ((p / "calls.parquet", p / "events.parquet") if p.is_dir()
                    else (Path(f"{s}.calls.parquet"), Path(f"{s}.events.parquet")))
    for f in (cpath, epath):
        if not f.exists():
            raise FtracekitError(f"no {f} (write it with ftracekit.export.to_parquet)")
    def read(path: Path) -> tuple[pd.DataFrame, dict]:
        table = pq.read_table(path)
        md = table.schema.metadata or {}
        df = table.to_pandas()
        for col, dt in json.loads(md.get(b"ftracekit.categories", b"{}")).items():
            if col not in df:
                continue
            if not isinstance(df[col].dtype, pd.CategoricalDtype):   # all-null column
                df[col] = pd.Categorical(df[col].astype(object).where(df[col].notna(), None))
            if dt == "object":
                cats = pd.Index(list(df[col].cat.categories), dtype=object)
                df[col] = pd.Categorical.from_codes(df[col].cat.codes, categories=cats)
        return df, json.loads(md.get(b"ftracekit.meta", b"{}"))

    calls, meta = read(cpath)
    events, _ = read(epath)
    return Trace(calls, events, meta)


def to_csv(trace: "Trace", dir_or_prefix: PathLike) -> dict[str, str]:
    """Write the calls and events tables as CSV (``call`` is the first column of the calls
    file); returns their paths. Paths as in :func:`to_parquet`."""
    cpath, epath = _table_paths(dir_or_prefix, "csv")
    try:
        trace.calls.to_csv(cpath, index=True)
        trace.events.to_csv(epath, index=False)
    except OSError as err:
        raise FtracekitError(f"cannot write {cpath}: {err.strerror or err}") from err
    return {"calls": str(cpath), "events": str(epath)}
