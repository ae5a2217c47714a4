"""Entry/exit events joined into leaf records (ftracekit.read._pairs, issue 13): the same calls
and events tables as the two records, and the joining against its definition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftracekit.calltree import build_tables, link, task_keys
from ftracekit.read import K_COMMENT, K_ENTRY, K_EXIT, K_LEAF, LineRecords
from ftracekit.read import _pairs
from ftracekit.read._pairs import joinable_entries

_EVENT = st.tuples(st.sampled_from([K_ENTRY, K_ENTRY, K_EXIT, K_EXIT, K_COMMENT]),
                   st.integers(0, 5),                 # depth
                   st.integers(0, 3),                 # pid (0: one task per CPU)
                   st.integers(0, 1),                 # cpu
                   st.integers(0, 2),                 # function
                   st.sampled_from([np.nan, 0.5, 3.0, 100.0, 1e4]),   # exit duration, µs
                   st.integers(-2, 2))                # return value


def _records(events: list[tuple]) -> LineRecords:
    """Event records (as the decoder gives them without joining), one per event, 1 µs apart."""
    n = len(events)
    kind = np.array([e[0] for e in events], dtype=np.int8)
    graph = kind != K_COMMENT
    cols = {
        "line": np.arange(1, n + 1, dtype=np.int64),
        "kind": kind,
        "cpu": np.array([e[3] for e in events], dtype=np.int16),
        "pid": np.array([e[2] for e in events], dtype=np.int32),
        "comm": np.array([e[2] for e in events], dtype=np.int32),
        "ts": 100.0 + np.arange(n) * 1e-6,
        "dur": np.where(kind == K_EXIT, [e[5] for e in events], np.nan),
        "depth": np.where(graph, [e[1] for e in events], -1).astype(np.int16),
        "func": np.where(graph, [e[4] for e in events], -1).astype(np.int32),
        "module": np.full(n, -1, dtype=np.int32),
        "retval": np.where(kind == K_EXIT, [e[6] for e in events], 0).astype(np.int64),
        "has_ret": kind == K_EXIT,
    }
    cols["end_ts"] = np.full(n, np.nan)
    comments = {int(i) + 1: f"print: m{i}" for i in np.flatnonzero(kind == K_COMMENT)}
    return LineRecords(cols=cols, funcs=["f0", "f1", "f2"], modules=[],
                       comms=["c0", "c1", "c2", "c3"], comments=comments)


def _join_by_definition(recs: LineRecords) -> LineRecords:
    """The pairs to join, found one task at a time: an entry whose next record in its task is
    an exit of the same function at the same depth on the same CPU."""
    c = recs.cols
    task = task_keys(c["pid"], c["cpu"])
    last: dict[int, int] = {}
    pair_of: dict[int, int] = {}
    for i, t in enumerate(task.tolist()):
        j = last.get(t)
        if (j is not None and c["kind"][j] == K_ENTRY and c["kind"][i] == K_EXIT
                and c["depth"][j] == c["depth"][i] and c["func"][j] == c["func"][i]
                and c["cpu"][j] == c["cpu"][i]):
            pair_of[j] = i
        last[t] = i
    out = {k: v.copy() for k, v in c.items()}
    for e, x in pair_of.items():
        out["kind"][e] = K_LEAF
        out["end_ts"][e] = c["ts"][x]
        for k in ("dur", "retval", "has_ret"):
            out[k][e] = c[k][x]
    keep = np.ones(len(recs), dtype=bool)
    keep[list(pair_of.values())] = False
    return LineRecords(cols={k: v[keep] for k, v in out.items()}, funcs=recs.funcs,
                       modules=recs.modules, comms=recs.comms, comments=dict(recs.comments))


def _tables(recs: LineRecords) -> tuple[pd.DataFrame, pd.DataFrame]:
    calls, events, _ = build_tables(recs)
    return calls, events


@settings(max_examples=400, deadline=None)
@given(st.lists(_EVENT, max_size=80), st.sampled_from([10000, 2, 5]))
def test_joined_leaves_give_the_tables_of_their_events(events, scan):
    """Random event sequences (several tasks and CPUs, lost and late entries and exits,
    comments); the late-exit search window small too (a leaf counts as two records there)."""
    if not events:
        return
    plain = _records(events)
    joined = _join_by_definition(plain)
    old = link._LATE_EXIT_SCAN
    link._LATE_EXIT_SCAN = scan
    try:
        ca, ea = _tables(plain)
        cb, eb = _tables(joined)
    finally:
        link._LATE_EXIT_SCAN = old
    pd.testing.assert_frame_equal(ca, cb)
    pd.testing.assert_frame_equal(ea, eb)


@pytest.mark.parametrize("scan", range(2, 9))
def test_late_exit_window_counts_a_leaf_as_two_records(scan):
    """``f`` closed early by two calls at its own depth, its exit after them: paired with its
    entry only when the window reaches it, for the joined leaves as for their events."""
    E, X = K_ENTRY, K_EXIT
    events = [(E, 0, 1, 0, 0, np.nan, 0), (E, 1, 1, 0, 1, np.nan, 0),
              (E, 1, 1, 0, 2, np.nan, 0), (X, 1, 1, 0, 2, 1.0, 0),
              (E, 1, 1, 0, 0, np.nan, 0), (X, 1, 1, 0, 0, 1.0, 0),
              (X, 1, 1, 0, 1, 9.0, 0), (X, 0, 1, 0, 0, 20.0, 0)]
    test_joined_leaves_give_the_tables_of_their_events.hypothesis.inner_test(events, scan)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([K_ENTRY, K_EXIT, K_COMMENT]), st.integers(0, 2),
                          st.just(1), st.integers(0, 1), st.integers(0, 2),
                          st.sampled_from([np.nan, 1.0, 50.0]), st.just(0)), max_size=40),
       st.sampled_from([2, 3, 5, 8]))
def test_joined_leaves_one_task_shallow(events, scan):
    """One task, few depths: many late exits and entries, leaves in the search window."""
    test_joined_leaves_give_the_tables_of_their_events.hypothesis.inner_test(events, scan)


def _stream(events: list[tuple], n_cpus: int):
    """Per-CPU streams (stream order: CPU by CPU) of (kind, depth, pid, func, ts)."""
    per_cpu: list[list[tuple]] = [[] for _ in range(n_cpus)]
    for k, depth, pid, cpu, func, ts in events:
        per_cpu[cpu % n_cpus].append((k, depth, pid, func, ts))
    rows = [r for cpu_rows in per_cpu for r in cpu_rows]
    segments, lo = [], 0
    for cpu_rows in per_cpu:
        segments.append((lo, lo + len(cpu_rows)))
        lo += len(cpu_rows)
    arr = np.array(rows, dtype=np.int64).reshape(-1, 5)
    return arr, segments


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([K_ENTRY, K_EXIT, K_COMMENT]), st.integers(0, 2),
                          st.integers(0, 3), st.integers(0, 2), st.integers(0, 1),
                          st.integers(0, 6)), max_size=60),
       st.integers(1, 3), st.sampled_from([1 << 18, 2, 3, 7]))
def test_joinable_entries_equal_the_definition(events, n_cpus, piece):
    """Against one task at a time in time order (ties: stream order), with timestamps that
    tie and even go back within a CPU; the time order taken in small pieces too (a pair
    across two pieces is not joined)."""
    if not events:
        return
    arr, segments = _stream(events, n_cpus)
    kind = arr[:, 0].astype(np.int8)
    depth = np.where(kind == K_COMMENT, -1, arr[:, 1]).astype(np.int16)
    pid = arr[:, 2].astype(np.int32)
    func = np.where(kind == K_COMMENT, -1, arr[:, 3]).astype(np.int32)
    ts = arr[:, 4]
    order = np.argsort(ts, kind="stable")
    old = _pairs._PIECE
    _pairs._PIECE = piece
    try:
        got = joinable_entries(order, kind, pid, depth, func, segments)
    finally:
        _pairs._PIECE = old
    cpu = np.zeros(len(kind), dtype=np.int16)
    for slot, (lo, hi) in enumerate(segments):
        cpu[lo:hi] = slot
    task = task_keys(pid, cpu)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    want = []
    prev: dict[int, int] = {}
    for s in order.tolist():
        p = prev.get(int(task[s]))
        if (p is not None and s == p + 1 and cpu[p] == cpu[s] and kind[p] == K_ENTRY
                and kind[s] == K_EXIT and depth[p] == depth[s] and func[p] == func[s]
                and pid[p] == pid[s] and rank[p] // piece == rank[s] // piece):
            want.append(p)
        prev[int(task[s])] = s
    assert got.tolist() == sorted(want)


def test_joinable_entries_empty_and_single():
    z8, z16, z32 = (np.zeros(0, dtype=t) for t in (np.int8, np.int16, np.int32))
    assert len(joinable_entries(np.zeros(0, dtype=np.int64), z8, z32, z16, z32, [(0, 0)])) == 0
    one = np.array([K_ENTRY], dtype=np.int8)
    assert len(joinable_entries(np.zeros(1, dtype=np.int64), one, np.ones(1, np.int32),
                                np.zeros(1, np.int16), np.zeros(1, np.int32), [(0, 1)])) == 0


BINARY = [Path(__file__).parent / "data" / "tracecmd-6.17" / "rtnl_v7_zstd.dat",
          Path(__file__).parent / "data" / "tracecmd-6.17" / "rtnl_v6_events.dat.xz",
          Path(__file__).parent / "data" / "raw-6.17" / "rtnl_capture",
          Path(__file__).parent.parent / "bench" / "data" / "fg_1m.dat"]


@pytest.mark.parametrize("path", BINARY, ids=lambda p: p.name)
def test_binary_captures_keep_the_invariants(path):
    """Self time ≥ 0 (where the children's durations fit), children inside their parents,
    on the real captures (their tables equal those without joining: test_tracedat)."""
    import ftracekit
    from test_invariants import check_invariants

    if path.suffix == ".dat":
        pytest.importorskip("zstandard")
    if not path.exists():
        pytest.skip(f"{path} missing")
    t = ftracekit.load(path)
    check_invariants(t)
    c = t.calls
    done = c["status"].astype(str).to_numpy() == "complete"
    kids = c["parent"].to_numpy()
    has = kids >= 0
    # a child starts and ends within its parent's time (interrupts adopted by a late entry
    # moved the parent's start back to theirs)
    p = kids[has]
    both = done[has] & done[p]
    s, e = c["start_s"].to_numpy(), c["end_s"].to_numpy()
    assert (s[has][both] >= s[p][both] - 1e-6).all()
    assert (e[has][both] <= e[p][both] + 1e-6).all()
