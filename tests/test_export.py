"""Exports: folded stacks, Chrome trace-event JSON (checked against the calls table and by a
real reader, speedscope's importer under node), Parquet and CSV."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ftracekit
from ftracekit.show import export as ex
from ftracekit.errors import FtracekitError

sys.path.insert(0, str(Path(__file__).parent))
import fabricate  # noqa: E402

HERE = Path(__file__).parent
REAL = sorted(p for p in (HERE / "data").glob("*/*") if p.name.endswith((".txt", ".txt.xz", ".txt.gz")))
REAL_IDS = [f"{p.parent.name}/{p.name}" for p in REAL]


@pytest.fixture(scope="module")
def fab() -> ftracekit.Trace:
    return ftracekit.parse(fabricate.rtnl_like())


@pytest.fixture(scope="module", params=REAL, ids=REAL_IDS)
def real(request) -> ftracekit.Trace:
    return ftracekit.load(request.param)


def known_funcs(c: pd.DataFrame) -> list[str]:
    """func as text; "[unknown]" where an exit line did not name its function."""
    return ["[unknown]" if f != f else str(f) for f in c["func"].astype(object)]


# --- folded stacks ----------------------------------------------------------------------------

def naive_folded(trace: ftracekit.Trace, scale: float) -> dict[str, float]:
    """Reference: walk each call's parent chain (slow, obviously right)."""
    c = trace.calls
    func = {k: f if m != m else f"{f} [{m}]"
            for k, f, m in zip(c.index, known_funcs(c), c["module"].astype(object))}
    parent = c["parent"].to_dict()
    out: dict[str, float] = defaultdict(float)
    for call, s in c["self_us"].items():
        chain = []
        cur = call
        while cur >= 0 and cur in func:
            chain.append(func[cur])
            cur = parent[cur]
        v = 0.0 if s != s else max(float(s), 0.0)
        out[";".join(reversed(chain))] += v * scale
    return out


def parse_folded(text: str) -> dict[str, int]:
    d = {}
    for line in text.splitlines():
        m = re.fullmatch(r"(\S(?:.*\S)?) (\d+)", line)
        assert m, line
        assert m.group(1) not in d, "each stack once"
        d[m.group(1)] = int(m.group(2))
    return d


def test_folded_small_trace_exact():
    t = ftracekit.load(HERE / "data" / "shared" / "rtnl_depth3_markers.txt")
    got = parse_folded(ex.to_folded(t, unit="ns"))
    # self times read off the text: rtnetlink_rcv 278.446-233.429 and 1589.976-1578.348 …
    assert got == {
        "rtnetlink_rcv": 45017 + 11628,
        "rtnetlink_rcv;netlink_rcv_skb": 30346 + 15003,
        "rtnetlink_rcv;netlink_rcv_skb;rtnetlink_rcv_msg": 118427 + 1560141,
        "rtnetlink_rcv;netlink_rcv_skb;netlink_ack": 81612,
        "rtnetlink_rcv;netlink_rcv_skb;skb_pull": 3044 + 3204,
    }
    us = parse_folded(ex.to_folded(t))
    assert us["rtnetlink_rcv;netlink_rcv_skb;rtnetlink_rcv_msg"] == round(118.427 + 1560.141)


def test_folded_matches_reference_and_self_time_total(real):
    ref = naive_folded(real, 1000.0)
    got = parse_folded(ex.to_folded(real, unit="ns"))
    want = {k: round(v) for k, v in ref.items() if round(v) > 0}
    assert got == want
    total_self = np.clip(real.calls["self_us"].to_numpy(dtype=float, na_value=np.nan), 0, None)
    assert sum(got.values()) == pytest.approx(np.nansum(total_self) * 1000, abs=len(got))
    us = parse_folded(ex.to_folded(real))
    assert abs(sum(us.values()) - np.nansum(total_self)) <= 0.5 * len(ref) + 1e-6


def test_folded_tasks_and_file_output(tmp_path, fab):
    text = ex.to_folded(fab, tasks=True)
    first = {line.split(";")[0] for line in text.splitlines()}
    assert first == {"ip-407", "ping-512"}
    out = tmp_path / "x.folded"
    assert ex.to_folded(fab, out) is None
    assert out.read_text() == ex.to_folded(fab)
    with pytest.raises(FtracekitError, match="unit"):
        ex.to_folded(fab, unit="ms")


# --- Chrome JSON: structure against the calls table -------------------------------------------

def load_chrome(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)


def check_chrome(trace: ftracekit.Trace, doc: dict, summary: dict) -> pd.DataFrame:
    """Counts, names, nesting and durations of the exported slices; returns them."""
    evs = doc["traceEvents"]
    xs = [e for e in evs if e["ph"] == "X"]
    ins = [e for e in evs if e["ph"] == "i"]
    meta = [e for e in evs if e["ph"] == "M"]
    c = trace.calls
    assert len(xs) == len(c) == summary["slices"]
    assert len(ins) == len(trace.events) == summary["instants"]
    assert {e["name"] for e in meta} == {"process_name", "thread_name"}
    names = {e["tid"]: e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    assert {e["tid"] for e in xs} <= set(names)
    s = pd.DataFrame({"call": [e["args"]["call"] for e in xs], "ts": [e["ts"] for e in xs],
                      "dur": [e["dur"] for e in xs], "tid": [e["tid"] for e in xs],
                      "name": [e["name"] for e in xs]}).set_index("call").loc[c.index]
    mod = c["module"].astype(object)
    want = [f if m != m else f"{f} [{m}]" for f, m in zip(known_funcs(c), mod)]
    assert list(s["name"]) == want
    # one track per task, named comm-pid (the first comm printed for it other than <...>)
    seen: dict[int, str] = {}
    for pid, comm, tid in zip(c["pid"], c["comm"], s["tid"]):
        if pid > 0:
            assert tid == pid
            comm = comm if isinstance(comm, str) else "?"
            if pid not in seen or (seen[pid] in ("<...>", "?") and comm not in ("<...>", "?")):
                seen[pid] = comm
    assert all(names[pid] == f"{n}-{pid}" for pid, n in seen.items())
    # nesting: a child lies inside its parent, siblings do not overlap (in doubles, as read)
    has = c["parent"].isin(c.index).to_numpy()
    ch = s[has]
    par = s.loc[c.loc[has, "parent"].to_numpy()]
    assert (ch["tid"].to_numpy() == par["tid"].to_numpy()).all()
    assert (ch["ts"].to_numpy() >= par["ts"].to_numpy()).all()
    ch_end = ch["ts"].to_numpy() + ch["dur"].to_numpy()
    par_end = par["ts"].to_numpy() + par["dur"].to_numpy()
    # ends strictly inside (≥ 1 ns apart), except zero-length slices squeezed to the very end
    assert ((ch_end < par_end) | ((ch["dur"].to_numpy() == 0) & (ch_end <= par_end))).all()
    # siblings: disjoint, or (an interrupt attached below the function it interrupted) inside
    # an earlier sibling
    sib = s.assign(parent=c["parent"].to_numpy())[has].sort_values(["parent", "ts"], kind="stable")
    end = sib["ts"] + sib["dur"]
    prev_end = end.groupby(sib["parent"]).cummax().groupby(sib["parent"]).shift(1)
    nested = (sib["ts"] < prev_end) & (end < prev_end)
    outer = sib[~nested]
    nxt = outer.groupby("parent")["ts"].shift(-1)
    oend = outer["ts"] + outer["dur"]
    assert ((oend < nxt) | ((outer["dur"] == 0) & (oend <= nxt)) | nxt.isna()).all()
    depth = c["depth"]
    pdepth = depth.reindex(c["parent"]).to_numpy()
    assert (depth.loc[nested[nested].index].to_numpy() > pdepth[has][nested.reindex(c.index[has]).to_numpy()] + 1).all()
    # durations: as printed, except calls without an exit, parents stretched around children
    # longer than themselves (synthetic clock) and the ≤ 1 µs clamping of µs timestamps
    d = c["duration_us"].to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(d)
    diff = np.abs(s["dur"].to_numpy()[ok] - d[ok])
    tol = 0.003 if summary["clock"] == "synthetic" else 1.01
    assert (diff <= tol).sum() >= ok.sum() - ex.layout(c).attrs["adjusted"]
    if "duration" in trace.meta.get("layout", ["duration"]):  # else no call has a duration
        assert (c.loc[~ok, "status"] == "no-exit").all()
    # an event inside a call is drawn inside that call's slice, on its track
    inst = pd.DataFrame({"call": [e["args"]["call"] for e in ins], "ts": [e["ts"] for e in ins],
                         "tid": [e["tid"] for e in ins]})
    inst = inst[inst["call"].isin(c.index)]
    if len(inst):
        sl = s.loc[inst["call"].to_numpy()]
        tol = 1e-9 if summary["clock"] == "synthetic" else 1.0
        assert (inst["ts"].to_numpy() >= sl["ts"].to_numpy() - tol).all()
        assert (inst["ts"].to_numpy() <= (sl["ts"] + sl["dur"]).to_numpy() + tol).all()
        assert (inst["tid"].to_numpy() == sl["tid"].to_numpy()).all()
    return s


def test_chrome_real_traces(tmp_path, real):
    out = tmp_path / "t.json"
    summary = ex.to_chrome(real, out)
    assert summary["clock"] == ("abstime" if real.has_times else "synthetic")
    check_chrome(real, load_chrome(out), summary)


def test_chrome_synthetic_clock_is_exact_on_regular_traces(tmp_path):
    t = ftracekit.load(HERE / "data" / "shared" / "tcp_reset_proc.txt")
    out = tmp_path / "t.json"
    summary = ex.to_chrome(t, out)
    s = check_chrome(t, load_chrome(out), summary)
    # every duration as printed, to the ns, minus at most 1 ns of separation
    diff = s["dur"].to_numpy() - t.calls["duration_us"].to_numpy()
    assert (diff <= 1e-9).all() and (diff >= -0.0011).all()
    # roots end to end from 0
    roots = s.loc[t.roots().index]
    assert roots["ts"].iloc[0] == 0
    assert np.allclose(roots["ts"].to_numpy()[1:],
                       np.cumsum(t.roots()["duration_us"].to_numpy())[:-1], atol=1e-9)


def test_chrome_abstime(tmp_path, fab):
    out = tmp_path / "f.json"
    summary = ex.to_chrome(fab, out)
    assert summary["clock"] == "abstime" and summary["t0_s"] == 100.0
    doc = load_chrome(out)
    s = check_chrome(fab, doc, summary)
    c = fab.calls
    # the fabricated times are exact: slices sit at their printed start, with their duration
    assert np.allclose(s["ts"].to_numpy(), (c["start_s"].to_numpy() - 100.0) * 1e6, atol=1e-3)
    assert np.allclose(s["dur"].to_numpy(), c["duration_us"].to_numpy(), atol=0.0011)
    inst = [e for e in doc["traceEvents"] if e["ph"] == "i"]
    assert [e["ts"] for e in inst] == pytest.approx(
        list((fab.events["ts_s"].to_numpy() - 100.0) * 1e6), abs=1e-3)
    assert all(e["tid"] == 512 and e["name"] == "kfree_skb" and "OTHERHOST" in e["args"]["text"]
               for e in inst)
    assert doc["otherData"]["clock"] == "abstime"


def test_chrome_events_placed_inside_their_call_on_synthetic_clock(tmp_path):
    t = ftracekit.load(HERE / "data" / "shared" / "rtnl_depth3_markers.txt")
    out = tmp_path / "m.json"
    ex.to_chrome(t, out)
    inst = [e for e in load_chrome(out)["traceEvents"] if e["ph"] == "i"]
    # markers before the first and after the last call (outside any call)
    assert [e["args"]["text"] for e in inst] == ["ftracekit marker start", "ftracekit marker end"]
    assert inst[0]["ts"] == 0
    assert inst[1]["ts"] == pytest.approx(278.446 + 1589.976, abs=0.002)
    ex.to_chrome(t, out, events=False)
    assert not [e for e in load_chrome(out)["traceEvents"] if e["ph"] == "i"]


NO_EXIT = """\
# tracer: function_graph
#
#     TIME        CPU  TASK/PID         DURATION                  FUNCTION CALLS
#      |          |     |    |           |   |                     |   |   |   |
   10.000000 |   0)     ip-407     |               |  outer() {
   10.000002 |   0)     ip-407     |   3.000 us    |    leaf();
   10.000010 |   0)     ip-407     |               |    open_inner() {
   10.000011 |   0)     ip-407     |   2.500 us    |      deep();
   10.000020 |   1)   ping-512     |   9.000 us    |  other();
"""


def test_chrome_no_exit_calls_end_with_their_task(tmp_path):
    t = ftracekit.parse(NO_EXIT)
    c = t.calls
    assert list(c["status"]) == ["no-exit", "complete", "no-exit", "complete", "complete"]
    out = tmp_path / "n.json"
    summary = ex.to_chrome(t, out)
    s = check_chrome(t, load_chrome(out), summary)
    # ip-407's last activity: deep() ends at 11 + 2.5 = 13.5 µs after t0
    assert s.loc[0, "ts"] == 0 and s.loc[0, "dur"] == pytest.approx(13.5, abs=0.0021)
    assert s.loc[2, "ts"] == 10 and s.loc[2, "dur"] == pytest.approx(3.5, abs=0.0021)
    lay = ex.layout(c, clock="synthetic")
    # synthetic: open calls span their children plus 2 ns (children keep their durations)
    assert lay.loc[3, "dur_us"] == 2.5
    assert lay.loc[2, "dur_us"] == pytest.approx(2.502, abs=1e-9)
    assert lay.loc[0, "dur_us"] == pytest.approx(3 + 2.502 + 0.002, abs=1e-9)
    with pytest.raises(FtracekitError, match="clock"):
        ex.layout(c, clock="wall")


def test_chrome_big_trace_is_vectorised(tmp_path):
    import time

    t = ftracekit.load(HERE / "data" / "shared" / "rtnl_trace_pipe.txt")
    big = fabricate.replicate(t, 60)        # 223k calls
    start = time.perf_counter()
    summary = ex.to_chrome(big, tmp_path / "big.json")
    elapsed = time.perf_counter() - start
    assert summary["slices"] == len(big)
    assert elapsed < 10, elapsed


# --- Chrome JSON through a real reader: speedscope ---------------------------------------------

SPEEDSCOPE = "1.25.0"


def speedscope_bundle() -> Path:
    """speedscope's browser bundle from the npm registry (installed once into a cache dir)."""
    base = Path(os.environ.get("FTRACEKIT_SPEEDSCOPE_DIR")
                or Path.home() / ".cache" / "ftracekit-tests" / f"speedscope-{SPEEDSCOPE}")
    found = sorted(base.glob("node_modules/speedscope/dist/release/speedscope-*.js"))
    if found:
        return found[0]
    # ./run test (CI) sets FTRACEKIT_STRICT=1: there the real reader must run, not be skipped
    missing = pytest.fail if os.environ.get("FTRACEKIT_STRICT") == "1" else pytest.skip
    if not shutil.which("node") or not shutil.which("npm"):
        missing("node and npm are needed to run speedscope's importer (apt install nodejs npm)")
    base.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["npm", "install", "--prefix", str(base), "--no-audit", "--no-fund",
                        "--loglevel=error", f"speedscope@{SPEEDSCOPE}"],
                       capture_output=True, text=True, timeout=300)
    found = sorted(base.glob("node_modules/speedscope/dist/release/speedscope-*.js"))
    if r.returncode or not found:
        missing(f"could not install speedscope@{SPEEDSCOPE} from npm: {r.stderr.strip()[-300:]}")
    return found[0]


def speedscope_import(path: Path) -> tuple[dict, str]:
    bundle = speedscope_bundle()
    r = subprocess.run(["node", str(HERE / "consumers" / "speedscope_chrome.js"), str(bundle),
                        str(path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout), r.stderr


CALL_RE = re.compile(r'^(.*) \{"call":(\d+),')


@pytest.mark.parametrize("which", ["fabricated-abstime"] + REAL, ids=["fabricated-abstime"] + REAL_IDS)
def test_speedscope_imports_chrome_json(tmp_path, which):
    if which == "fabricated-abstime":
        t = ftracekit.parse(fabricate.rtnl_like())
    else:
        t = ftracekit.load(which)
    out = tmp_path / "t.json"
    summary = ex.to_chrome(t, out)
    doc = load_chrome(out)
    s = check_chrome(t, doc, summary)
    got, stderr = speedscope_import(out)
    # speedscope warns (and repairs) on any mis-nested or unclosed slice: there must be none
    assert "Tried to end" not in stderr and "still open" not in stderr, stderr[:1000]
    tids = {tid for tid in s["tid"]}
    assert len(got["profiles"]) == len(tids)
    for prof in got["profiles"]:
        m = re.search(r"\(tid (\d+)\)", prof["name"])
        tid = int(m.group(1))
        mine = s[s["tid"] == tid]
        assert prof["unit"] == "microseconds"
        opens = [CALL_RE.match(name) for kind, name, _ in prof["calls"] if kind == "O"]
        # every slice of the task, each opened once, in time order (parents first); speedscope
        # leaves out zero-length slices (calls squeezed to nothing where a trace's clock and
        # durations disagree)
        order = mine[mine["dur"] > 0]
        order = order.assign(negdur=-order["dur"]).sort_values(["ts", "negdur"], kind="stable")
        assert [int(o.group(2)) for o in opens] == list(order.index)
        assert [o.group(1) for o in opens] == list(order["name"])
        # open/close times are ours, relative to the thread's first slice
        t0 = mine["ts"].min()
        stack = []
        for kind, name, v in prof["calls"]:
            call = int(CALL_RE.match(name).group(2))
            if kind == "O":
                assert v == pytest.approx(mine.loc[call, "ts"] - t0, abs=1e-6)
                stack.append(call)
            else:
                assert stack.pop() == call
                assert v == pytest.approx(mine.loc[call, "ts"] + mine.loc[call, "dur"] - t0, abs=1e-6)
        assert not stack


# --- tables -------------------------------------------------------------------------------------

def test_parquet_round_trip(tmp_path, fab):
    paths = ex.to_parquet(fab, tmp_path / "run1")
    assert paths == {"calls": str(tmp_path / "run1.calls.parquet"), "calls_rows": len(fab.calls),
                     "events": str(tmp_path / "run1.events.parquet"),
                     "events_rows": len(fab.events)}
    back = ex.read_parquet(tmp_path / "run1")
    pd.testing.assert_frame_equal(back.calls, fab.calls)
    pd.testing.assert_frame_equal(back.events, fab.events)
    assert back.meta["source"] == fab.meta["source"]
    assert back.top(5).equals(fab.top(5))
    d = tmp_path / "dir"
    d.mkdir()
    assert ex.to_parquet(fab, d)["calls"] == str(d / "calls.parquet")
    assert len(ex.read_parquet(d)) == len(fab)
    with pytest.raises(FtracekitError, match="to_parquet"):
        ex.read_parquet(tmp_path / "nothing")
    # one named file: exactly that file; the events only when named; read back alike
    w = ex.to_parquet(fab, tmp_path / "calls.parquet")
    assert w == {"calls": str(tmp_path / "calls.parquet"), "calls_rows": len(fab.calls)}
    only = ex.read_parquet(tmp_path / "calls.parquet")
    pd.testing.assert_frame_equal(only.calls, fab.calls)
    assert len(only.events) == 0
    assert list(only.events.dtypes.astype(str)) == list(fab.events.dtypes.astype(str))
    ex.to_parquet(fab, tmp_path / "c2.parquet", events=tmp_path / "e2.parquet")
    both = ex.read_parquet(tmp_path / "c2.parquet", events=tmp_path / "e2.parquet")
    pd.testing.assert_frame_equal(both.events, fab.events)


def test_parquet_without_pyarrow_names_the_install_command(tmp_path, fab, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(FtracekitError, match=r"pip install pyarrow"):
        ex.to_parquet(fab, tmp_path / "x")


def test_csv(tmp_path, real):
    paths = ex.to_csv(real, tmp_path / "out/")
    calls = pd.read_csv(paths["calls"])
    events = pd.read_csv(paths["events"])
    assert len(calls) == len(real.calls) and len(events) == len(real.events)
    assert list(calls.columns) == ["call"] + list(real.calls.columns)
    assert np.allclose(calls["duration_us"].to_numpy(dtype=float),
                       real.calls["duration_us"].to_numpy(dtype=float, na_value=np.nan),
                       equal_nan=True)
    # an exit line that names no function: NA in the table, an empty field in the CSV
    assert (calls["func"].fillna("[unknown]") == known_funcs(real.calls)).all()
    with pytest.raises(FtracekitError, match="does not exist"):
        ex.to_csv(real, tmp_path / "missing" / "prefix")
    w = ex.to_csv(real, tmp_path / "one.csv")
    assert w == {"calls": str(tmp_path / "one.csv"), "calls_rows": len(real.calls)}
