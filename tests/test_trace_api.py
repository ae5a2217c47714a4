"""The Trace analyses on real traces, with figures checked against the text (grep/awk)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ftracekit
from ftracekit import FtracekitError, UnknownFunctionError

DATA = Path(__file__).parent / "data" / "shared"


@pytest.fixture(scope="module")
def pipe() -> ftracekit.Trace:
    return ftracekit.load(DATA / "rtnl_trace_pipe.txt")


@pytest.fixture(scope="module")
def thresh() -> ftracekit.Trace:
    return ftracekit.load(DATA / "rtnl_thresh50.txt")


def test_top_by_self_count_total(pipe):
    top = pipe.top(None, by="count")
    # grep -c ' skb_put();' → 672; awk sum of their durations → 808.206; max 2.434.
    assert top.index[0] == "skb_put"
    row = top.loc["skb_put"]
    assert row["count"] == 672
    assert row["total_us"] == pytest.approx(808.206)
    assert row["self_us"] == pytest.approx(808.206)
    assert row["max_us"] == 2.434
    assert list(top.columns) == ["count", "total_us", "self_us", "mean_us", "p50_us", "p90_us",
                                 "p99_us", "max_us"]
    # Self times over all functions add up to the durations of the roots (all complete).
    assert top["self_us"].sum() == pytest.approx(pipe.roots()["duration_us"].sum())
    assert pipe.top(3, by="total").index[0] == "rtnetlink_rcv"
    with pytest.raises(FtracekitError, match="cannot sort by 'bogus'"):
        pipe.top(by="bogus")


def test_stats(pipe):
    s = pipe.stats("rtnetlink_rcv")
    assert s["count"] == 4 and s["complete"] == 4 and s["roots"] == 4
    assert s["max_us"] == 5404.684
    assert s["min_us"] == 781.367
    assert s["total_us"] == pytest.approx(781.367 + 5404.684 + 2082.261 + 2231.534)
    assert s["tasks"] == 2


def test_calls_of_glob_and_unknown(pipe):
    assert set(pipe.calls_of("rtnetlink_*")["func"].astype(str)) == {"rtnetlink_rcv", "rtnetlink_rcv_msg"}
    assert len(pipe.calls_of("rtnl_calcit")) == 2          # matches rtnl_calcit.isra.0
    with pytest.raises(UnknownFunctionError) as e:
        pipe.calls_of("netlink_dmup")
    assert e.value.suggestions[0] == "netlink_dump"


def test_slowest_and_roots(pipe):
    s = pipe.slowest("netlink_dump", n=2)
    assert len(s) == 2
    assert s["duration_us"].is_monotonic_decreasing
    assert list(pipe.slowest(n=1)["line"]) == [199]
    assert len(pipe.roots("rtnetlink_rcv")) == 4


def test_critical_path(pipe):
    cp = pipe.critical_path(141)
    assert list(cp.columns) == ["call", "func", "depth", "duration_us", "self_us", "irq_us",
                                "n_children", "pct_of_top", "share_of_parent"]
    assert list(cp["func"][:6]) == ["rtnetlink_rcv", "netlink_rcv_skb", "rtnetlink_rcv_msg",
                                    "__netlink_dump_start", "netlink_dump", "rtnl_dump_ifinfo"]
    assert cp["pct_of_top"].iloc[0] == 100.0
    # Each step is the heaviest child that is not an interrupt of the previous one.
    for a, b in zip(cp["call"][:-1], cp["call"][1:]):
        kids = pipe.children(int(a))
        kids = kids[~kids["in_irq"] | bool(pipe.calls.loc[int(a), "in_irq"])]
        assert kids["duration_us"].idxmax() == b
    # It ends in inet6_fill_ifla6_attrs (353.849 us): its own 74.379 us outweigh any child it
    # could follow; the timer interrupt under it (lines 949-1049: irq_enter_rcu 1.322,
    # __sysvec_apic_timer_interrupt 245.427, irq_exit_rcu 4.157 us) is reported, not followed.
    last = cp.iloc[-1]
    assert last["func"] == "inet6_fill_ifla6_attrs" and cp.attrs["end"] == "self time"
    assert last["irq_us"] == pytest.approx(1.322 + 245.427 + 4.157)
    with_irq = pipe.critical_path(141, include_irq=True)
    assert "__sysvec_apic_timer_interrupt" in set(with_irq["func"])


def test_critical_path_stops_where_the_time_is_spent():
    # lost_events.txt (6.1), call 30: rtnetlink_rcv 10,997.690 us; its rtnetlink_rcv_msg spends
    # 10,580.159 us (96 %) in itself: the path ends there, not in a 0.5 % child.
    t = ftracekit.load(DATA.parent / "6.1.0-56-amd64" / "lost_events.txt")
    cp = t.critical_path(30)
    assert list(cp["func"]) == ["rtnetlink_rcv", "netlink_rcv_skb", "rtnetlink_rcv_msg"]
    assert cp["self_us"].iloc[-1] == pytest.approx(10580.159)


def test_critical_path_of_the_bundled_sample_ends_at_the_stall():
    # call 498 (rtnetlink_rcv, 30,335.810 us): devlink_compat_switch_id_get spends 12,518.606 us
    # itself; the 6,488.735 us of interrupts inside it are reported, not followed.
    import ftracekit.samples as samples

    t = ftracekit.load(samples.path("netlink_dump"))
    cp = t.critical_path(498)
    assert cp["func"].iloc[-1] == "devlink_compat_switch_id_get"
    assert cp["irq_us"].iloc[-1] == pytest.approx(6488.735)
    assert not t.calls.loc[cp["call"], "in_irq"].any()


def test_tree_text(pipe):
    text = str(pipe.tree(141, max_depth=1))
    lines = text.splitlines()
    assert lines[0].startswith("call 141: rtnetlink_rcv  task <...>-398  cpu 1  line 199")
    assert lines[1].split() == ["duration", "µs", "self", "µs", "function"]
    assert lines[2].split() == ["5,404.684", "9.073", "rtnetlink_rcv"]
    assert lines[3].split() == ["5,395.611", "5.958", "netlink_rcv_skb"]
    # what max_depth folds says how many calls, how much time and why
    assert lines[4].split() == ["2.194", "…", "1", "call", "folded", "(deeper", "than", "max_depth=1)"]
    # the critical path stays visible below max_depth
    assert any(ln.rstrip().endswith("inet6_fill_ifla6_attrs") for ln in lines)
    assert lines[-1].startswith("(folded calls hold ")
    html = pipe.tree(141, max_depth=2)._repr_html_()
    assert "<details open><summary>" in html and "netlink_rcv_skb" in html


def test_tree_of_thresh_trace(thresh):
    rows = thresh.tree(4).rows()
    assert [r["func"] for r in rows] == ["rtnetlink_rcv", "netlink_rcv_skb", "rtnetlink_rcv_msg",
                                         "netlink_net_capable", "netlink_ack"]
    assert [r["level"] for r in rows] == [0, 1, 2, 3, 2]
    assert all(r["status"] == "no-entry" for r in rows)


def test_children_and_subtree(pipe):
    kids = pipe.children(141)
    assert list(kids.index) == [142]
    sub = pipe.subtree(141)
    assert sub.index[0] == 141
    assert (sub["root"] == 141).all()
    assert len(sub) == int((pipe.calls["root"] == 141).sum())
    with pytest.raises(FtracekitError, match="no call 999999"):
        pipe.children(999999)


def test_filter(pipe):
    f = pipe.filter(pid=400)
    # grep -c ' ip-400\| <...>-400' → 2095 lines of pid 400; its calls are all there.
    assert set(f.calls["pid"]) == {400}
    assert len(f.calls) == int((pipe.calls["pid"] == 400).sum())
    g = pipe.filter(comm="<*")
    assert set(g.calls["comm"].astype(str)) == {"<...>"}
    h = pipe.filter(func="netlink_dump")
    assert set(h.calls["root"]) <= set(pipe.calls_of("netlink_dump").index) | set(pipe.calls["root"])
    assert h.calls["func"].iloc[0] == "netlink_dump"
    # Subtrees are kept whole: every call's parent is in the subset, except the tops.
    tops = set(pipe.calls_of("netlink_dump").index)
    assert all((p in h.calls.index) or (c in tops) for c, p in zip(h.calls.index, h.calls["parent"]))
    # Analyses work on the filtered trace (ids are kept).
    assert h.critical_path(int(h.calls.index[0]))["call"].iloc[0] == h.calls.index[0]
    with pytest.raises(FtracekitError, match="no timestamps"):
        pipe.filter(start_s=1.0)
    assert len(pipe.filter(cpu=0).calls) == 0


def test_compare(pipe, thresh):
    d = pipe.compare(thresh)
    assert list(d.columns)[:3] == ["count_a", "count_b", "count_change"]
    assert d.loc["rtnetlink_rcv", "count_a"] == 4
    assert d.loc["rtnetlink_rcv", "count_b"] == 4
    assert d.loc["skb_put", "count_b"] == 0
    assert d.loc["skb_put", "total_change_us"] == pytest.approx(-808.206)
    same = pipe.compare(pipe)
    assert (same["count_change"] == 0).all()
    assert np.allclose(same["total_change_us"], 0)


def test_summary_and_repr(pipe):
    s = pipe.summary()
    assert s["calls"] == 3715 and s["tasks"] == 2 and s["cpus"] == 1 and s["events"] == 0
    assert s["functions"] == 218
    assert s["span_s"] is None
    assert repr(pipe).endswith("3,715 calls, 0 events, 2 tasks, 1 CPUs>")
    html = pipe._repr_html_()
    assert "top functions by self time" in html


def test_empty_trace_analyses():
    t = ftracekit.parse("# tracer: function_graph\n#\n")
    assert len(t.top()) == 0
    assert t.summary()["calls"] == 0
    assert t.n_tasks == 0
    assert isinstance(t.calls, pd.DataFrame)


def test_public_api_names():
    exported = set(ftracekit.__all__)
    assert {"load", "parse", "Trace", "FtracekitError", "UnknownFunctionError"} <= exported
    for name in exported:
        assert hasattr(ftracekit, name)


def test_import_does_not_pull_matplotlib():
    import subprocess
    import sys
    code = "import ftracekit, sys; ftracekit.load(sys.argv[1]); print('matplotlib' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code, str(DATA / "rtnl_depth3_markers.txt")],
                       capture_output=True, text=True,
                       env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert r.stdout.strip() == "False", r.stderr
