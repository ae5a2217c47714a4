"""Plots: what is drawn equals the calls table (bar widths, point counts, box widths), units on
the axes, headless rendering, lazy matplotlib import, speed on a million calls."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

import ftracekit  # noqa: E402
from ftracekit.show import plot as P  # noqa: E402
from ftracekit.errors import FtracekitError, UnknownFunctionError  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import fabricate  # noqa: E402

DATA = Path(__file__).parent / "data" / "shared"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def pipe() -> ftracekit.Trace:
    return ftracekit.load(DATA / "rtnl_trace_pipe.txt")


@pytest.fixture(scope="module")
def fab() -> ftracekit.Trace:
    return ftracekit.parse(fabricate.rtnl_like())


def test_import_ftracekit_does_not_import_matplotlib():
    code = ("import sys, ftracekit; t = ftracekit.load(sys.argv[1]); t.top(); t.plot; "
            "import ftracekit.show.export, ftracekit.show.plot; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    r = subprocess.run([sys.executable, "-c", code, str(DATA / "rtnl_depth3_markers.txt")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_hist(pipe, tmp_path):
    ah = pipe.plot.hist("rtnetlink_rcv_msg")
    ae = ah.ecdf_axes
    assert ah.figure.axes == [ah, ae]
    d = pipe.calls_of("rtnetlink_rcv_msg")["duration_us"].to_numpy()
    (stairs,) = [p for p in ah.patches]
    assert stairs.get_data().values.sum() == len(d) == 4
    assert ah.get_xscale() == "log" and "µs" in ah.get_xlabel()
    assert ae.get_ylabel().startswith("fraction")
    # p50 and p99 marked on both axes
    lines = [ln.get_xdata()[0] for ln in ah.get_lines()]
    assert lines == pytest.approx(list(np.percentile(d, [50, 99])))
    # the ECDF: 0 from the axis' left end, a step of 1/4 at each call, 1 to the right end
    x, y = ae.get_lines()[0].get_data()
    assert list(x[1:-1]) == sorted(d) and list(y) == [0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert (x[0], x[-1]) == pytest.approx(ae.get_xlim())
    assert ah.get_title(loc="left") == "rtnetlink_rcv_msg: 4 calls"
    ah.figure.savefig(tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hist_into_given_axes_and_linear(fab):
    fig, axes = plt.subplots(1, 2)
    ah = P.plot_hist(fab, "ip_rcv_core", axes, log=False)
    assert (ah, ah.ecdf_axes) == tuple(axes)
    assert ah.get_xscale() == "linear"
    # one Axes: the ECDF on a right-hand y axis of the same plot, one title with the figures
    fig, ax = plt.subplots()
    ah = P.plot_hist(fab, "ip_rcv_core", ax)
    assert ah is ax and ah.ecdf_axes.get_ylabel().startswith("fraction")
    assert ah.ecdf_axes.get_xlim() == ah.get_xlim() and "p99" in ah.get_title(loc="left")


ABS61 = Path(__file__).parent / "data" / "6.1.0-56-amd64" / "proc_abstime.txt"


def test_hist_of_one_call():
    """Issue 10 item 5: rtnl_dump_ifinfo has one call in proc_abstime.txt, line 165 → its
    exit '! 329.797 us' (awk)."""
    t = ftracekit.load(ABS61)
    ah = t.plot.hist("rtnl_dump_ifinfo")
    ae = ah.ecdf_axes
    assert ah.get_title(loc="left") == "rtnl_dump_ifinfo: 1 call"
    # the true maximum, not the widened axis limit
    assert ae.get_title(loc="left") == ("ECDF  (p50 329.797 µs, p99 329.797 µs, "
                                        "max 329.797 µs)")
    # a single step, drawn: 0 left of the call, 1 from it on
    x, y = ae.get_lines()[0].get_data()
    assert list(y) == [0.0, 1.0, 1.0] and x[1] == 329.797
    assert x[0] < 329.797 < x[-1]
    # p50 and p99 coincide: one label, not two on top of each other
    assert [txt.get_text() for txt in ah.texts] == ["p50 = p99 329.797 µs"]
    # one bar, around the call's duration, on a log or a linear axis
    for log in (True, False):
        ah = t.plot.hist("rtnl_dump_ifinfo", log=log)
        (bar,) = ah.patches
        lo, hi = bar.get_data().edges
        assert lo < 329.797 < hi and bar.get_data().values.tolist() == [1]
        assert ah.get_xlim()[0] < lo and hi < ah.get_xlim()[1]


def test_hist_p50_p99_labels_do_not_overlap(tmp_path):
    # rtnetlink_rcv in proc_abstime.txt: 281.069 and 537.479 µs (the two '|  }' lines)
    t = ftracekit.load(ABS61)
    ah = t.plot.hist("rtnetlink_rcv")
    assert ah.get_title(loc="left") == "rtnetlink_rcv: 2 calls"
    assert ah.ecdf_axes.get_title(loc="left") == ("ECDF  (p50 409.274 µs, p99 534.915 µs, "
                                                  "max 537.479 µs)")
    ah.figure.savefig(tmp_path / "h.png")
    r = ah.figure.canvas.get_renderer()
    boxes = [txt.get_window_extent(r) for txt in ah.texts]
    assert [txt.get_text() for txt in ah.texts] == ["p50 409.274 µs", "p99 534.915 µs"]
    assert not boxes[0].overlaps(boxes[1])
    # both inside the figure
    fig_box = ah.figure.bbox
    assert all(fig_box.x0 <= b.x0 and b.x1 <= fig_box.x1 for b in boxes)


def test_unknown_function_suggests(pipe):
    with pytest.raises(UnknownFunctionError, match="rtnetlink_rcv"):
        pipe.plot.hist("rtnetlink_rvc")


def test_time_with_timestamps(fab):
    ax = fab.plot.time("rtnetlink_rcv", label=3)
    calls = fab.calls_of("rtnetlink_rcv")
    x, y = ax.get_lines()[0].get_data()
    assert len(x) == len(calls) == 40
    assert list(y) == list(calls["duration_us"])
    assert np.allclose(x, calls["start_s"])          # the trace's own seconds
    assert ax.get_xlabel() == "time (s, trace clock)"
    assert "µs" in ax.get_ylabel()
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 3 and all("ip-407" in t and "930.000 µs" in t for t in texts)


def test_time_without_timestamps_uses_line_numbers(pipe):
    ax = pipe.plot.time("rtnetlink_rcv_msg")
    x, _ = ax.get_lines()[0].get_data()
    assert list(x) == list(pipe.calls_of("rtnetlink_rcv_msg")["line"])
    assert "line number" in ax.get_xlabel() and "funcgraph-abstime" in ax.get_xlabel()


def _bars(ax):
    out = []
    for coll in ax.collections:
        if isinstance(coll, PolyCollection):
            for path in coll.get_paths():
                v = path.vertices
                out.append((v[:, 0].min(), v[:, 0].max(), (v[:, 1].min() + v[:, 1].max()) / 2))
    return out


def test_timeline_by_task(fab):
    ax = fab.plot.timeline()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["ip-407", "ping-512"]
    bars = _bars(ax)
    # every root call is a bar (none closer than 1/2000 of the span here)
    assert len(bars) == len(fab.roots())
    ip = sorted(b for b in bars if b[2] == 0)
    roots = fab.roots("rtnetlink_rcv")
    assert np.allclose([b[0] for b in ip], roots["start_s"], rtol=0, atol=1e-9)
    assert np.allclose([b[1] - b[0] for b in ip], roots["duration_us"] / 1e6, rtol=0, atol=1e-9)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["rtnetlink_rcv", "ip_rcv"]
    assert ax.get_xlabel() == "time (s, trace clock)"


def test_timeline_by_cpu_and_func(fab, pipe):
    ax = fab.plot.timeline(by="cpu", func="ip_rcv")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["CPU 1"]
    ax = pipe.plot.timeline()
    assert "line number" in ax.get_xlabel()
    # 4 root calls, back to back in each task: merged into one bar per task
    assert sorted((b[0], b[2]) for b in _bars(ax)) == [(1, 0), (2361, 1)]
    with pytest.raises(FtracekitError, match="task"):
        pipe.plot.timeline(by="irq")


def test_flame_boxes_are_the_calls(pipe):
    call = int(pipe.slowest("rtnetlink_rcv", 1).index[0])
    ax = pipe.plot.flame(call, min_frac=0.0)
    sub = pipe.subtree(call)
    bars = _bars(ax)
    assert len(bars) == len(sub)
    widths = sorted(b[1] - b[0] for b in bars)
    # width = duration in ms (5.4 ms call), packed layout loses ≤ a few ns per box
    assert np.allclose(widths, sorted(sub["duration_us"] / 1e3), atol=5e-5)
    assert ax.get_xlim() == pytest.approx((0, 5.404684))
    assert "ms" in ax.get_xlabel()
    labels = {t.get_text() for t in ax.texts}
    assert "rtnetlink_rcv" in labels and "netlink_dump" in labels
    # default: boxes under 0.1% of the call are not drawn
    assert len(_bars(pipe.plot.flame(call))) < len(sub)


def test_flame_labels_fit_their_boxes(pipe, tmp_path):
    call = int(pipe.slowest("rtnetlink_rcv", 1).index[0])
    ax = pipe.plot.flame(call)
    fig = ax.figure
    fig.savefig(tmp_path / "f.png")
    renderer = fig.canvas.get_renderer()
    boxes = {}
    for x0, x1, y in _bars(ax):
        boxes.setdefault(round(y), []).append((x0, x1))
    for t in ax.texts:
        bb = t.get_window_extent(renderer).transformed(ax.transData.inverted())
        row = [b for b in boxes[round(t.get_position()[1])] if b[0] <= t.get_position()[0] <= b[1]]
        assert row, t.get_text()
        assert bb.x0 >= row[0][0] - 1e-9 and bb.x1 <= row[0][1] + 1e-9, t.get_text()


def test_flame_abstime_places_children_at_their_start(fab):
    call = int(fab.slowest("rtnetlink_rcv", 1).index[0])
    ax = fab.plot.flame(call)
    sub = fab.subtree(call)
    starts = sorted(b[0] for b in _bars(ax))
    assert np.allclose(starts, sorted((sub["start_s"] - sub["start_s"].min()) * 1e6), atol=1e-3)
    assert ax.get_xlabel() == "time since the call started (µs)"


def test_top(pipe):
    ax = pipe.plot.top(10)
    t = pipe.top(10)
    widths = [p.get_width() for p in ax.patches]
    assert widths == pytest.approx(list(t["self_us"]))       # < 2 ms: µs
    assert [x.get_text() for x in ax.get_yticklabels()] == list(t.index)
    assert ax.get_xlabel() == "self time (µs)"
    ax = pipe.plot.top(5, by="total")
    assert [p.get_width() for p in ax.patches] == pytest.approx(list(pipe.top(5, by="total")["total_us"] / 1e3))
    assert ax.get_xlabel() == "total time (ms)"


def test_compare(pipe):
    other = ftracekit.load(DATA / "rtnl_depth3_markers.txt")
    ax = pipe.plot.compare(other, 5, labels=("pipe", "depth3"))
    names = [x.get_text() for x in ax.get_yticklabels()]
    # the plot draws the first rows of the table, in its order (largest self change first)
    table = pipe.compare(other, 5, by="self")
    assert names == list(table.index)
    assert names[0] == "rtnetlink_rcv_msg"      # 181.200 → 1678.568 µs self: the largest change
    a = [p.get_width() for p in ax.patches[: len(names)]]
    b = [p.get_width() for p in ax.patches[len(names):]]
    assert a == pytest.approx(list(table["self_us_a"]))     # < 2 ms: µs
    assert b == pytest.approx(list(table["self_us_b"]))
    assert ax.get_xlabel() == "self time (µs)"
    texts = [t.get_text().strip() for t in ax.texts]
    assert texts[0] == "+826 %  (181.200 µs → 1,678.568 µs)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["pipe", "depth3"]


def test_no_calls_with_duration_is_an_error():
    t = ftracekit.parse("""\
 0)               |  f() {
 0)               |    g() {
""")
    with pytest.raises(FtracekitError, match="no call with a duration"):
        P.plot_hist(t, "f")


def test_million_calls_plot_fast():
    t = ftracekit.load(DATA / "rtnl_trace_pipe.txt")
    big = fabricate.replicate(t, 270)
    assert len(big) > 1_000_000
    start = time.perf_counter()
    big.plot.hist("__rcu_read_lock")
    big.plot.time("__rcu_read_lock")
    big.plot.timeline()
    big.plot.top()
    ax = big.plot.flame(int(big.slowest("rtnetlink_rcv", 1).index[0]))
    ax.figure.savefig(Path("/dev/null"), format="png")
    elapsed = time.perf_counter() - start
    assert elapsed < 15, elapsed


def test_time_labels_do_not_overlap(tmp_path):
    n = fabricate.Node
    roots = [n("f", 100e6 + k * 100, 500.0 if k in (3, 4, 5) else 10.0) for k in range(20)]
    t = ftracekit.parse(fabricate.render([(0, "worker", 42, roots)]))
    ax = t.plot.time("f", label=3)
    fig = ax.figure
    fig.savefig(tmp_path / "t.png")
    r = fig.canvas.get_renderer()
    from matplotlib.text import Text

    boxes = [Text.get_window_extent(a, r) for a in ax.texts]     # the text, not its arrow
    assert len(boxes) == 3
    assert not any(boxes[i].overlaps(boxes[j]) for i in range(3) for j in range(i + 1, 3))


def test_plots_use_the_clock_that_filter_takes(tmp_path):
    """Issue 10 item 6: a window read off a plot selects the same calls in ``filter``.
    proc_abstime.txt: rtnetlink_rcv() { at 56.665421 (line 5) and 56.666824 (line 111), exits
    '! 281.069 us' and '! 537.479 us'."""
    t = ftracekit.load(ABS61)
    ax = t.plot.time("rtnetlink_rcv", label=0)
    x, y = ax.get_lines()[0].get_data()
    assert list(x) == [56.665421, 56.666824] and list(y) == [281.069, 537.479]
    assert ax.get_xlabel() == "time (s, trace clock)"
    ax.figure.savefig(tmp_path / "t.png")
    ticks = [tk.get_text() for tk in ax.get_xticklabels()]
    assert ax.xaxis.get_offset_text().get_text() == ""            # no "+5.6e1" offset
    assert all(tk.startswith("56.66") for tk in ticks if tk)      # plain trace seconds
    ax = t.plot.timeline()
    (x0, x1, _), = [b for b in _bars(ax) if b[0] > 56.6666]
    assert (x0, x1) == pytest.approx((56.666824, 56.666824 + 537.479e-6), abs=1e-9)
    window = t.filter(start_s=x0, end_s=x1)
    assert list(window.roots()["line"]) == [111]
    assert list(window.calls_of("rtnetlink_rcv")["duration_us"]) == [537.479]
    ax = t.plot.flame(int(window.roots().index[0]))
    assert "from 56.666824 s (trace clock)" in ax.get_title(loc="left")


def test_top_of_a_trace_without_durations():
    # noduration.txt: funcgraph-duration off, no 'us' on any line (grep -c ' us ' → 0)
    t = ftracekit.load(Path(__file__).parent / "data" / "6.1.0-56-amd64" / "noduration.txt")
    with pytest.raises(FtracekitError, match="no self time to rank: the trace prints no durations"):
        t.plot.top()
