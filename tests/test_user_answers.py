"""What a user reads must point at the stall, in one format, with honest arguments (issue 10).

Real captures from tests/data; figures read off the text files."""

from __future__ import annotations

from pathlib import Path

import pytest

import ftracekit
from ftracekit import FtracekitError
from ftracekit.cli.main import main

DATA = Path(__file__).parent / "data"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- return values ------------------------------------------------------------------------
def test_errors_only_in_the_errno_range_and_named():
    # retval.txt (6.12 with funcgraph-retval): line 13 "rtnl_newlink(); /* = -19 */" is an
    # error; line 19 "__alloc_skb() ... = 0xff2fbb..." is a pointer, negative as signed.
    t = ftracekit.load(DATA / "6.12.117-ftkretval" / "retval.txt")
    e = t.errors()
    assert e.loc[e["line"] == 13, "errno"].tolist() == ["-ENODEV"]
    assert 19 not in set(e["line"])
    assert (t.calls.loc[t.calls["line"] == 19, "retval"] < -4095).all()
    assert set(t.errors("rtnl_newlink")["errno"]) == {"-ENODEV"}
    tree = str(t.tree(0)).splitlines()
    assert tree[2].endswith("rtnetlink_rcv  = 0x0")
    assert tree[4].rstrip().endswith("rtnetlink_rcv_msg  = -19 (-ENODEV)")


# -- filters and arguments ---------------------------------------------------------------
@pytest.fixture(scope="module")
def sample() -> ftracekit.Trace:
    import ftracekit.samples as samples

    return ftracekit.load(samples.path("netlink_dump"))


def test_filtered_trace_has_roots_and_honest_ids(sample):
    ip = sample.filter(comm="ip")
    assert len(ip.roots()) > 0 and len(ip.slowest()) > 0
    assert (ip.calls.loc[ip.roots().index, "parent"] == -1).all()
    with pytest.raises(FtracekitError, match=r"no call 0 in this trace \(it holds [\d,]+ calls "
                                             r"numbered \d+\.\.\d+, with gaps\)"):
        ip.tree(0)
    # a function's subtrees: its calls are the roots of the result
    sub = sample.filter(func="rtnl_fill_ifinfo*")
    assert set(sub.roots()["func"].astype(str)) == {"rtnl_fill_ifinfo.isra.0"}
    # a time window read off the calls' own start_s (the plots' time axis)
    t0 = float(sample.calls.loc[498, "start_s"])
    win = sample.filter(start_s=t0, end_s=t0 + 0.031)
    assert 498 in win.roots().index
    empty = ftracekit.parse("# tracer: function_graph\n#\n")
    with pytest.raises(FtracekitError, match="it holds no calls"):
        empty.tree(0)


@pytest.mark.parametrize("call, ok", [(498, True), (498.0, True), ("498", False), (True, False),
                                      (498.5, False)])
def test_call_ids_are_validated(sample, call, ok):
    if ok:
        assert sample.tree(call).call == 498
    else:
        with pytest.raises(FtracekitError, match="integer id"):
            sample.tree(call)


@pytest.mark.parametrize("kw, msg", [
    ({"cpu": "1"}, "cpu must be an integer"),
    ({"pid": [262, "x"]}, "pid must be an integer"),
    ({"comm": 5}, "comm must be a name"),
    ({"start_s": "58"}, "start_s must be a time in seconds"),
])
def test_filter_arguments_are_validated(sample, kw, msg):
    with pytest.raises(FtracekitError, match=msg):
        sample.filter(**kw)


def test_counts_are_validated(sample):
    with pytest.raises(FtracekitError, match="n must be an integer ≥ 0, not -1"):
        sample.slowest(n=-1)
    with pytest.raises(FtracekitError, match="n must be an integer ≥ 0 or None"):
        sample.top(2.5)
    with pytest.raises(FtracekitError, match="min_us must be"):
        sample.tree(498, min_us=-1)
    with pytest.raises(FtracekitError, match="compare needs another Trace"):
        sample.compare("foo")


# -- one format per kind of number ---------------------------------------------------------
def test_tables_hold_us_to_the_ns_and_counts_as_integers(sample):
    st = sample.stats("rtnetlink_rcv")
    assert type(st["count"]) is int and st["count"] == 10
    assert st["max_us"] == 30335.81
    top = sample.top(5)
    assert top["count"].dtype.kind == "i"
    assert all(round(v, 3) == v for v in top["p99_us"])


def test_report_uses_one_format(capsys, sample):
    code, out, _ = run(capsys, "report", sample.meta["source"], "--func", "rtnetlink_rcv")
    assert code == 0
    assert " us " not in out and " us)" not in out
    assert "critical path of call 498 (rtnetlink_rcv, 30,335.810 µs):" in out
    assert ("→ the time is spent in devlink_compat_switch_id_get itself: self 12,518.606 µs "
            "(41.3 % of call 498); interrupts took 6,488.735 µs inside it") in out
    # the heaviest-children table is only shown when the call has more than one child
    assert "children of call 498" not in out


def test_report_on_thresh_trace_says_so(capsys):
    # thresh.txt (6.1, tracing_thresh): 22 exit lines, no entries
    code, out, _ = run(capsys, "report", DATA / "6.1.0-56-amd64" / "thresh.txt")
    assert code == 0
    assert "tracing_thresh trace" in out and "functions by total time" in out


def test_report_lost_events_in_words(capsys):
    # lost_events.txt (6.1): 11 "[LOST EVENTS]" lines without a count
    code, out, _ = run(capsys, "report", DATA / "6.1.0-56-amd64" / "lost_events.txt")
    assert code == 0
    assert "lost in the ring buffer: 11 'LOST EVENTS' lines without a count" in out
    assert "[]" not in out


def test_report_events_summary_and_no_pid_task(capsys):
    # kfree_skb_events.txt (6.1): 3 kfree_skb events, inside kfree_skb_reason calls
    code, out, _ = run(capsys, "report", DATA / "6.1.0-56-amd64" / "kfree_skb_events.txt")
    assert code == 0
    assert "events (3):" in out and "kfree_skb      3  kfree_skb_reason (3)" in out
    # default_trace.txt has no pid column: tasks read "cpu N", never "nan--1" or "?"
    code, out, _ = run(capsys, "report", DATA / "6.1.0-56-amd64" / "default_trace.txt")
    assert "nan" not in out and "--1" not in out


def test_tree_cli_defaults_to_the_slowest_call_and_fits_a_screen(capsys, sample):
    code, out, _ = run(capsys, "tree", sample.meta["source"], "--func", "rtnetlink_rcv")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "rtnetlink_rcv: the slowest of 10 calls (--nth K for another)"
    assert lines[1].startswith("call 498: rtnetlink_rcv")
    assert len(lines) < 60
    assert any(ln.rstrip().endswith("devlink_compat_switch_id_get") for ln in lines)
    assert "--all for every call" in lines[-1]


def test_tree_shows_events_where_they_happened():
    # kfree_skb_events.txt line 376: "/* kfree_skb: ... reason: NO_SOCKET */" inside
    # kfree_skb_reason (line 283), before its child kfree_skbmem (line 387)
    t = ftracekit.load(DATA / "6.1.0-56-amd64" / "kfree_skb_events.txt")
    c = t.calls
    call = int(c.index[c["line"] == 283][0])
    lines = str(t.tree(call)).splitlines()
    ev = [i for i, ln in enumerate(lines) if "· kfree_skb: skbaddr=00000000af0176a3" in ln]
    mem = [i for i, ln in enumerate(lines) if ln.rstrip().endswith("kfree_skbmem")]
    assert len(ev) == 1 and mem and ev[0] < mem[0]
    assert "reason: NO_SOCKET" in lines[ev[0]]


def test_cli_filters(capsys, sample):
    src = sample.meta["source"]
    code, out, _ = run(capsys, "top", src, "--comm", "ip", "--cpu", "1", "-n", "3")
    assert code == 0
    code, _, err = run(capsys, "report", src, "--pid", "999999")
    assert code == 2 and "no calls left after --pid 999999" in err
