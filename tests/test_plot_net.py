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
