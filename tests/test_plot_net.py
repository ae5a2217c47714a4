"""Packet plots on real captures: what is drawn (lanes, marks, bars, the gap), not pixels."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import ftracekit  # noqa: E402

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_journey_lanes_marks_and_gap():
    t = ftracekit.load(DATA / "6.18-events" / "udp_tbf_raw.txt")
    ax = t.plot.journey("0xffff888104d1d200")
    assert [x.get_text() for x in ax.get_yticklabels()] == ["0 · python3-20357",
                                                            "0 · ftracekit-20343"]
    texts = [x.get_text() for x in ax.texts]
    assert "gap 113,854.000 µs\nnet_dev_queue → net_dev_start_xmit" in texts
    assert sum(len(c.get_offsets()) for c in ax.collections) == 5     # 5 events as marks
    assert ax.get_xlabel() == "time since the first step (ms)"


def test_journey_of_calls_draws_bars():
    t = ftracekit.load(DATA / "6.17.13+deb13-amd64" / "funcgraph_args_retval_proc.txt")
    ax = t.plot.journey("0xff3c863e829a2b00", gen=1)
    assert len(ax.containers[0].patches) == 7                         # 7 calls as bars
    assert "generation 1" in ax.get_title()
    # default generation: the longest (gen 0 spans 2.31 ms, gen 1 66 µs)
    ax2 = t.plot.journey("0xff3c863e829a2b00")
    assert "generation 0" in ax2.get_title()


def test_drops_per_reason():
    t = ftracekit.load(DATA / "6.18-events" / "udp_tbf_raw.txt")
    ax = t.plot.drops(bins=10)
    assert [x.get_text() for x in ax.get_legend().get_texts()] == ["NO_SOCKET (3)"]
    assert sum(p.get_height() for p in ax.patches) == 3


def test_callers_bars():
    t = ftracekit.load(DATA / "6.17.13+deb13-amd64" / "funcgraph_args_retval_proc.txt")
    ax = t.plot.callers("kfree_skbmem")
    assert [x.get_text() for x in ax.get_yticklabels()] == [
        "__udp4_lib_rcv > sk_skb_reason_drop > kfree_skbmem"]
    assert [p.get_width() for p in ax.patches] == [3]


def test_journey_labels_of_steps_at_nearly_the_same_time_are_merged():
    # the slowest packet of the 6.17 capture: 17 steps, 5 at the sender within µs, 11 in the
    # receive softirq within 8 ms of a 171 ms journey — one label per bunch, none on another
    t = ftracekit.load(DATA / "6.17.13+deb13-amd64" / "packets_udp_tbf.txt")
    pk = t.packets().sort_values("span_us")
    worst = pk.iloc[-1]
    ax = t.plot.journey(worst["skb"], gen=int(worst["gen"]))
    steps = [a for a in ax.texts if not a.get_text().startswith("gap")]
    assert [a.get_text() for a in steps] == [
        "__dev_queue_xmit … tbf_enqueue (5 steps)", "consume_skb",
        "qdisc_dequeue … ip_local_deliver_finish (11 steps)"]
    width = ax.get_xlim()[1] - ax.get_xlim()[0]
    for a in steps:
        for b in steps:
            if a is not b and a.xy[1] == b.xy[1]:
                assert abs(a.xy[0] - b.xy[0]) >= 0.04 * width * 0.9
