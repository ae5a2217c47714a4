"""Packets, journeys, callers, arguments and event fields on real captures (figures read off the
files with grep) and hand-written edge cases; the vectorised generation split against its
sequential definition."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import ftracekit
from ftracekit.errors import FtracekitError
from ftracekit.net.packets import (
    NoPacketsError, UnknownPacketError, generations, generations_sequential, steps,
)

DATA = Path(__file__).parent / "data"
EV = DATA / "6.18-events"
K617 = DATA / "6.17.13+deb13-amd64"


@pytest.fixture(scope="module")
def raw():
    return ftracekit.load(EV / "udp_tbf_raw.txt")


@pytest.fixture(scope="module")
def hashed():
    return ftracekit.load(EV / "udp_tbf_hashed.txt")


@pytest.fixture(scope="module")
def args_udp():
    return ftracekit.load(K617 / "funcgraph_args_retval_proc.txt")


# -- arguments ---------------------------------------------------------------------------------

def test_args_column_holds_the_printed_text(args_udp):
    c = args_udp.calls
    # grep -cE "\w\(\w+=.*\)( \{|;)" funcgraph_args_retval_proc.txt
    assert c["args"].notna().sum() == 48
    first = c.iloc[0]
    assert first["func"] == "__udp4_lib_rcv"
    assert first["args"] == "skb=0xff3c863e829a2b00, udptable=0xffffffffb73300c0, proto=17"
    assert pd.isna(c[c["func"] == "__rcu_read_lock"]["args"]).all()


def test_args_column_is_empty_without_funcgraph_args():
    t = ftracekit.load(K617 / "default_trace.txt")
    assert "args" in t.calls.columns and t.calls["args"].isna().all()
    with pytest.raises(FtracekitError, match="funcgraph-args"):
        t.arg("skb")


def test_arg_values_typed(args_udp):
    skb = args_udp.arg("skb")
    assert str(skb.dtype) == "UInt64"
    # grep -c "(skb=0x" : __udp4_lib_rcv, __ip_options_echo, sk_skb_reason_drop and 3 helpers
    assert skb.notna().sum() == 18
    assert skb.iloc[0] == 0xff3c863e829a2b00
    assert set(skb.dropna().tolist()) == {0xff3c863e829a2b00, 0xff3c863e829a2800}
    proto = args_udp.arg("proto")
    assert str(proto.dtype) == "Int64" and proto.dropna().unique().tolist() == [17]
    sport = args_udp.arg("sport")            # unsigned: hex on 6.17
    assert sport.dropna().unique().tolist() == [0xaba4]
    reason = args_udp.arg("reason")          # sk_skb_reason_drop(reason=3), skb_release_data(reason=2)
    assert sorted(reason.dropna().unique().tolist()) == [2, 3]
    with pytest.raises(FtracekitError, match="did you mean 'skb'"):
        args_udp.arg("skbb")


def test_arg_negative_and_wide_decimals_and_unknown_types():
    text = ("# tracer: function_graph\n#\n"
            " 0)   1.000 us    |  f(a=-22, b=0x10, c=?0xff, d=(STRUCT)[0x1:0x2]);\n"
            " 0)   1.000 us    |  f(a=4294967277, b=0xffffffffffffffff, c=5, ...);\n"
            " 0)   1.000 us    |  g();\n")
    t = ftracekit.parse(text)
    a = t.arg("a")
    assert str(a.dtype) == "Int64" and a.tolist()[:2] == [-22, 4294967277] and pd.isna(a.iloc[2])
    b = t.arg("b")
    assert str(b.dtype) == "UInt64" and b.tolist()[:2] == [16, 2**64 - 1]
    c = t.arg("c")                     # ?0x… (a type BTF cannot print) with a decimal: UInt64
    assert c.tolist()[:2] == [255, 5]
    d = t.arg("d")                     # a struct by value stays text
    assert d.iloc[0] == "(STRUCT)[0x1:0x2]"


# -- event fields ------------------------------------------------------------------------------

def test_event_fields_kfree_skb(raw):
    f = raw.event_fields("kfree_skb")
    assert len(f) == 3                                        # grep -c "kfree_skb:"
    assert list(f.columns) == ["line", "ts_s", "cpu", "pid", "comm", "call", "skbaddr", "rx_sk",
                               "protocol", "location", "location_func", "reason"]
    assert f["reason"].tolist() == ["NO_SOCKET"] * 3
    assert f["skbaddr"].tolist() == [0xffff888104d1d800, 0xffff888104d1dc00, 0xffff88818ae97000]
    assert f["protocol"].tolist() == [2048] * 3
    assert f["location_func"].tolist() == ["__udp4_lib_rcv"] * 3
    assert f["location"].iloc[0] == "__udp4_lib_rcv+0x4bc/0xd00"
    assert f["line"].tolist() == [72, 78, 84]


def test_event_fields_any_event(raw):
    f = raw.event_fields("net_dev_start_xmit")
    assert len(f) == 16                                       # grep -c net_dev_start_xmit:
    assert f["dev"].unique().tolist() == ["lo"]
    assert str(f["vlan_proto"].dtype) == "UInt64" and f["vlan_proto"].unique().tolist() == [0]
    assert sorted(f["len"].unique().tolist()) == [142, 170, 1042]
    assert f["protocol"].unique().tolist() == [0x0800]


def test_event_fields_hashed_and_inline_comments(hashed):
    f = hashed.event_fields("net_dev_queue")
    assert f["skbaddr"].iloc[0] == 0x000000003f864397
    t = ftracekit.load(K617 / "kfree_skb_events.txt")
    k = t.event_fields("kfree_skb")
    assert k["skbaddr"].tolist() == [0x7973fe3c, 0x9903b4c8, 0x7973fe3c]
    assert (k["call"] >= 0).all() and k["reason"].tolist() == ["NO_SOCKET"] * 3


def test_event_fields_unknown_event_suggests(raw):
    with pytest.raises(FtracekitError, match="did you mean 'kfree_skb'"):
        raw.event_fields("kfree_skbb")


def test_event_fields_several_layouts():
    text = ("# tracer: nop\n#\n"
            "  p-1 [000] ..... 1.000001: kfree_skb: skbaddr=ffff888100000100 protocol=2048 "
            "location=f+0x1/0x10\n"
            "  p-1 [000] ..... 1.000002: kfree_skb: skbaddr=ffff888100000200 rx_sk=0000000000000000 "
            "protocol=2048 location=g+0x2/0x10 reason: NO_SOCKET\n"
            "  p-1 [000] ..... 1.000003: sched_x: comm=a b c pid=7\n")
    t = ftracekit.parse(text)
    f = t.event_fields("kfree_skb")
    assert f["location_func"].tolist() == ["f", "g"]
    assert pd.isna(f["reason"].iloc[0]) and f["reason"].iloc[1] == "NO_SOCKET"
    assert pd.isna(f["rx_sk"].iloc[0]) and f["rx_sk"].iloc[1] == 0
    s = t.event_fields("sched_x")
    assert s["field_comm"].iloc[0] == "a b c" and s["field_pid"].iloc[0] == 7
    assert s["comm"].iloc[0] == "p" and s["pid"].iloc[0] == 1


# -- packets -----------------------------------------------------------------------------------

def test_packets_events_only_raw(raw):
    pk = raw.packets()
    # 16 distinct skbaddr values (grep -o "skbaddr=[0-9a-f]*" | sort -u); ffff888104d1d500 is a
    # consume_skb in a kworker first and a new datagram afterwards: 17 generations
    assert len(pk) == 17
    assert pk["skb"].str.startswith("0xffff").all()
    two = pk[pk["skb"] == "0xffff888104d1d500"]
    assert two["gen"].tolist() == [0, 1]
    assert two["n_steps"].tolist() == [1, 5]
    assert two["first"].tolist() == ["consume_skb", "net_dev_queue"]
    d = pk[pk["dropped"]]
    assert len(d) == 3 and d["reason"].tolist() == ["NO_SOCKET"] * 3
    assert d["drop_location"].unique().tolist() == ["__udp4_lib_rcv+0x4bc/0xd00"]
    assert d["skb"].tolist() == ["0xffff888104d1d800", "0xffff888104d1dc00", "0xffff88818ae97000"]
    p = pk[pk["skb"] == "0xffff888104d1d200"].iloc[0]
    # line 24 net_dev_queue 855.226632 … line 51 net_dev_start_xmit 855.340486 … 855.340498
    assert p["first_s"] == pytest.approx(855.226632)
    assert p["last_s"] == pytest.approx(855.340498)
    assert p["span_us"] == pytest.approx(113866, abs=0.01)
    assert p["max_gap_us"] == pytest.approx(113854, abs=0.01)
    assert (p["gap_after"], p["gap_before"]) == ("net_dev_queue", "net_dev_start_xmit")
    assert p["devs"] == "lo" and p["cpus"] == "0"
    assert p["tasks"] == "ftracekit-20343,python3-20357"
    assert pk["clone_of"].eq("").all()


def test_every_datagram_has_a_queue_to_receive_journey(raw):
    pk = raw.packets(dev="lo")
    big = [s for s, g in zip(pk["skb"], pk["gen"])
           if (j := raw.journey(s, gen=g))["name"].iloc[0] == "net_dev_queue"
           and "netif_receive_skb" in set(j["name"])]
    # 10 datagrams of 1000 bytes + 3 of 100 to the closed port + 3 ICMP replies
    assert len(big) == 16
    j = raw.journey("ffff888104d1d200")
    assert j["name"].tolist() == ["net_dev_queue", "net_dev_start_xmit", "netif_rx",
                                  "net_dev_xmit", "netif_receive_skb"]
    assert j["context"].tolist() == ["task"] + ["softirq"] * 4    # flags b.... / ..s..
    assert j["task"].tolist() == ["python3-20357"] + ["ftracekit-20343"] * 4
    assert j["kind"].unique().tolist() == ["event"] and (j["call"] == -1).all()
    assert j["gap_us"].iloc[1] == pytest.approx(113854, abs=0.01)
    assert list(j.columns) == ["gen", "ts_s", "cpu", "task", "context", "kind", "name", "dev",
                               "call", "duration_us", "gap_us"]


def test_packets_filters(raw):
    assert len(raw.packets(dropped=True)) == 3
    assert len(raw.packets(dropped=False)) == 14
    assert len(raw.packets(dev="eth0")) == 0
    # the kworker's consume_skb at 855.067747 is the only step before 855.1
    assert len(raw.packets(end_s=855.1)) == 1
    assert len(raw.packets(start_s=855.41)) == 4     # last_s ≥ 855.41: 0xffff88818ae97{000,200,500,600}


def test_packets_hashed(hashed):
    pk = hashed.packets()
    assert len(pk) == 17                       # 16 distinct hashes, one consumed then reused
    assert pk["skb"].str.len().eq(16).all() and not pk["skb"].str.startswith("0x").any()
    assert pk[pk["dropped"]]["reason"].tolist() == ["NO_SOCKET"] * 3
    j = hashed.journey("000000003f864397")
    assert j["name"].iloc[0] == "net_dev_queue" and j["name"].iloc[-1] == "netif_receive_skb"
    j2 = hashed.journey("0x3f864397")          # the hash without its leading zeros
    assert len(j2) == len(j)


def test_packets_from_args(args_udp):
    pk = args_udp.packets()
    # grep -c "skb[a-z_]*=0xff3c863e829a2b00": 14 (two datagrams, one address); …2800: 7
    assert pk[["skb", "gen", "n_steps"]].values.tolist() == [
        ["0xff3c863e829a2800", 0, 7], ["0xff3c863e829a2b00", 0, 7], ["0xff3c863e829a2b00", 1, 7]]
    assert pk["first"].unique().tolist() == ["__udp4_lib_rcv"]
    assert pk["last"].unique().tolist() == ["kfree_skbmem"]
    assert pk["dropped"].all()
    assert pk["reason"].tolist() == ["3"] * 3                      # sk_skb_reason_drop(reason=3)
    assert pk["drop_location"].unique().tolist() == ["__udp4_lib_rcv"]
    g0 = pk.iloc[1]
    # 420.147532 __udp4_lib_rcv( … ) { … 420.149842 } (its exit line)
    assert g0["first_s"] == pytest.approx(420.147532) and g0["last_s"] == pytest.approx(420.149842)
    j = args_udp.journey("0xff3c863e829a2b00", gen=0)
    assert j["name"].tolist() == ["__udp4_lib_rcv", "__icmp_send", "__ip_options_echo",
                                  "sk_skb_reason_drop", "skb_release_head_state",
                                  "skb_release_data", "kfree_skbmem"]
    assert j["kind"].unique().tolist() == ["call"]
    assert j["duration_us"].tolist() == [2318.280, 1557.685, 18.986, 90.364, 36.694, 11.311, 2.802]
    assert (j["call"] >= 0).all()


def test_event_free_inside_a_call_splits_generations():
    t = ftracekit.load(K617 / "kfree_skb_events.txt")
    pk = t.packets()
    # skbaddr=000000007973fe3c dropped twice (lines 183 and 537), 000000009903b4c8 once
    assert pk[["skb", "gen"]].values.tolist() == [["000000007973fe3c", 0], ["000000007973fe3c", 1],
                                                 ["000000009903b4c8", 0]]
    assert pk["drop_location"].unique().tolist() == ["return_to_handler+0x0/0x50"]
    j = t.journey("000000007973fe3c", gen=1)
    # the free fires in sk_skb_reason_drop below the graph root __udp4_lib_rcv on a python3
    # line: the receive path of loopback UDP, run by NET_RX in the sender's task → softirq
    assert j["context"].tolist() == ["softirq"] and j["call"].iloc[0] >= 0
    assert j["task"].tolist() == ["python3-944"]


def test_packets_without_skbs_names_the_recording():
    t = ftracekit.load(K617 / "default_trace.txt")
    with pytest.raises(NoPacketsError, match="record --packets"):
        t.packets()


def test_unknown_skb_suggests_closest(raw):
    with pytest.raises(UnknownPacketError, match="closest: 0xffff888104d1d"):
        raw.journey("0xffff888104d1d0ff")
    with pytest.raises(FtracekitError, match="not an skb address"):
        raw.journey("lo")
    with pytest.raises(FtracekitError, match="no generation 3"):
        raw.journey("ffff888104d1d500", gen=3)


def test_hashed_events_with_args_warn():
    text = ("# tracer: function_graph\n#\n"
            "#     TIME        CPU  TASK/PID         DURATION                  FUNCTION CALLS\n"
            "  1.000001 |   0)  p-1   |               |  netif_receive_skb(skb=0xffff888100000100) {\n"
            "  1.000002 |   0)  p-1   |               |    /* kfree_skb: skbaddr=000000003f864397 "
            "rx_sk=0000000000000000 protocol=2048 location=f+0x1/0x10 reason: NO_SOCKET */\n"
            "  1.000003 |   0)  p-1   |   2.000 us    |  }\n")
    t = ftracekit.parse(text)
    with pytest.warns(UserWarning, match="cannot be joined"):
        pk = t.packets()
    assert len(pk) == 2


def test_clone_is_linked_through_the_return_value():
    text = ("# tracer: function_graph\n#\n"
            "#     TIME        CPU  TASK/PID         DURATION                  FUNCTION CALLS\n"
            "  1.000001 |   0)  p-1   |   1.000 us    |  skb_clone(skb=0xffff888100000100, gfp_mask=0x820); /* ret=0xffff888100000200 */\n"
            "  1.000010 |   0)  p-1   |   1.000 us    |  dev_queue_xmit(skb=0xffff888100000200);\n"
            "  1.000020 |   0)  p-1   |   1.000 us    |  kfree_skbmem(skb=0xffff888100000100);\n")
    t = ftracekit.parse(text)
    pk = t.packets()
    row = pk[pk["skb"] == "0xffff888100000200"].iloc[0]
    assert row["clone_of"] == "0xffff888100000100"
    assert pk[pk["skb"] == "0xffff888100000100"]["clone_of"].tolist() == [""]


# -- generations -------------------------------------------------------------------------------

def _gen_case(rows):
    key, ts, pid, free, end = (np.array(c) for c in zip(*rows))
    return (key.astype(np.uint64), ts.astype(float), pid.astype(np.int64), free.astype(bool),
            end.astype(float))


@pytest.mark.parametrize("rows,expected", [
    # free call (ends at 5) with steps inside it, then reuse in another task
    ([(1, 1, 10, 0, 0), (1, 2, 10, 1, 5), (1, 3, 10, 0, 0), (1, 6, 20, 0, 0)], [0, 0, 0, 1]),
    # event free outside any call (end −inf): the very next step is a new packet, same task
    ([(1, 1, 10, 1, -np.inf), (1, 1, 10, 0, 0), (1, 2, 10, 0, 0)], [0, 1, 1]),
    # reuse by another task while the free call still runs
    ([(1, 1, 10, 1, 9), (1, 2, 20, 0, 0), (1, 3, 20, 1, -np.inf), (1, 4, 20, 0, 0)], [0, 1, 1, 2]),
    # no timestamps: every step after a free is a new generation
    ([(1, np.nan, 10, 1, np.nan), (1, np.nan, 10, 0, 0)], [0, 1]),
    # separate addresses never share generations
    ([(1, 1, 10, 1, -np.inf), (2, 2, 10, 0, 0), (2, 3, 10, 0, 0)], [0, 0, 0]),
])
def test_generation_cases(rows, expected):
    args = _gen_case(rows)
    assert generations(*args).tolist() == expected
    assert generations_sequential(*args).tolist() == expected


@pytest.mark.parametrize("seed", range(30))
def test_generations_vectorised_equals_sequential(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    key = np.sort(rng.integers(0, 8, n)).astype(np.uint64)
    ts = np.round(rng.uniform(0, 50, n), 0)
    ts[rng.random(n) < 0.05] = np.nan
    order = np.lexsort((np.nan_to_num(ts, nan=np.inf), key))
    key, ts = key[order], ts[order]
    pid = rng.integers(1, 4, n)
    free = rng.random(n) < 0.3
    end = np.where(rng.random(n) < 0.3, -np.inf, ts + rng.integers(0, 6, n))
    end[rng.random(n) < 0.05] = np.inf
    assert generations(key, ts, pid, free, end).tolist() == \
        generations_sequential(key, ts, pid, free, end).tolist()


def test_generations_agree_on_real_captures(raw, args_udp):
    for t in (raw, args_udp, ftracekit.load(K617 / "kfree_skb_events.txt")):
        st = steps(t)
        args = (st["key"].to_numpy(), st["ts_s"].to_numpy(), st["pid"].to_numpy(),
                st["is_free"].to_numpy(), st["free_end"].to_numpy())
        assert generations(*args).tolist() == generations_sequential(*args).tolist()


# -- callers -----------------------------------------------------------------------------------

def test_callers_of_a_function(args_udp):
    c = args_udp.callers("kfree_skbmem")
    assert c["chain"].tolist() == ["__udp4_lib_rcv > sk_skb_reason_drop > kfree_skbmem"]
    assert c["count"].tolist() == [3]
    # kfree_skbmem: 2.802 + 1.133 + 0.960 us (grep kfree_skbmem)
    assert c["total_us"].iloc[0] == pytest.approx(4.895)
    c2 = args_udp.callers("udp4_lib_lookup2")
    assert c2["chain"].tolist() == ["__udp4_lib_rcv > __udp4_lib_lookup > udp4_lib_lookup2"]
    assert c2["count"].tolist() == [6]


def test_callers_of_an_event():
    t = ftracekit.load(K617 / "kfree_skb_events.txt")
    c = t.callers(event="kfree_skb")
    assert c["chain"].tolist() == ["__udp4_lib_rcv > sk_skb_reason_drop > kfree_skb"]
    assert c["count"].tolist() == [3]


def test_callers_events_only(raw):
    c = raw.callers(event="kfree_skb")
    assert c["chain"].tolist() == ["kfree_skb"] and c["example_call"].tolist() == [-1]
    with pytest.raises(FtracekitError, match="did you mean 'kfree_skb'"):
        raw.callers(event="kfree_skbb")
    with pytest.raises(FtracekitError, match="one of them"):
        raw.callers()


# -- a real --packets recording with function_graph and funcgraph-args (6.17, in the VM) -------

def test_calls_and_events_joined_on_the_raw_address():
    """tests/data/6.17.13+deb13-amd64/packets_udp_tbf.txt: `Recorder(["__dev_queue_xmit",
    "ip_rcv", "__udp4_lib_rcv"], packets=True, max_depth=3)` around UDP through a 400 kbit/s tbf
    on lo (tests/live/test_packets_live.py), kernel 6.17.13+deb13 under QEMU."""
    t = ftracekit.load(K617 / "packets_udp_tbf.txt")
    assert t.meta["recording"]["settings"]["packets"] is True
    j = t.journey("0xff1790bc83360c00")
    # grep -n ff1790bc83360c00: lines 105-110 (sender), 267-278 (ksoftirqd), 288 (consume)
    assert j["name"].tolist() == [
        "__dev_queue_xmit", "netdev_core_pick_tx", "net_dev_queue", "dev_qdisc_enqueue",
        "tbf_enqueue", "qdisc_dequeue", "net_dev_start_xmit", "netif_rx_entry", "netif_rx",
        "net_dev_xmit", "netif_receive_skb", "ip_rcv", "ip_rcv_core", "ip_rcv_finish_core",
        "ip_local_deliver", "ip_local_deliver_finish", "consume_skb"]
    assert j["gen"].unique().tolist() == [0]
    assert j["kind"].tolist()[:5] == ["call", "call", "event", "call", "call"]
    assert j["task"].iloc[0] == "python-217" and j["task"].iloc[11] == "ksoftir-25"
    assert j["context"].iloc[0] == "task" and j["context"].iloc[11] == "softirq"
    # net_dev_queue fires inside __dev_queue_xmit (the call it is attached to)
    assert j["call"].iloc[2] == j["call"].iloc[0]
    # the wait in the tbf: tbf_enqueue at 236.915203 → qdisc_dequeue at 236.945614
    i = int(j["gap_us"].idxmax())
    assert (j["name"].iloc[i - 1], j["name"].iloc[i]) == ("tbf_enqueue", "qdisc_dequeue")
    assert j["gap_us"].iloc[i] == pytest.approx(30411, abs=0.01)
    pk = t.packets()
    row = pk[pk["skb"] == "0xff1790bc83360c00"].iloc[0]
    assert (row["first"], row["last"], row["n_steps"]) == ("__dev_queue_xmit", "consume_skb", 17)
    assert row["tasks"] == "ksoftir-25,python-217"
    # grep -c "reason: NO_SOCKET" → 3
    assert pk["reason"].value_counts().to_dict() == {"NO_SOCKET": 3}


def test_receive_path_root_in_a_user_task_is_softirq(tmp_path):
    """Loopback traffic is received in the sender's task (net_rx_action runs at its
    local_bh_enable): an ip_rcv graph root on a `python` line is softirq work, not the task's.
    The real capture with the receiving lines' task renamed from ksoftirqd to the sender."""
    text = (K617 / "packets_udp_tbf.txt").read_text().replace("ksoftir-25 ", "python-217")
    p = tmp_path / "t.txt"
    p.write_text(text)
    t = ftracekit.load(p)
    j = t.journey("0xff1790bc83360c00")
    assert j["task"].iloc[11] == "python-217" and j["name"].iloc[11] == "ip_rcv"
    ctx = dict(zip(j["name"], j["context"]))
    assert ctx["__dev_queue_xmit"] == "task" and ctx["tbf_enqueue"] == "task"
    assert [ctx[f] for f in ("ip_rcv", "ip_rcv_core", "ip_local_deliver")] == ["softirq"] * 3


# -- the column readers of skbaddr= and dev= against their regex definitions ------------------

_WORDS = st.sampled_from(["skbaddr=", "dev=", "0x", "ffff888104d1d000", "ff11a2b3c4d5e6f7",
                          "000000003f864397", "lo", "eth0", "veth-abcdefghijk", "vethXYZ123456789",
                          " ", "\t", "\r", "=", "g", "1", "é", "\x00", "len=84"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_WORDS, max_size=8).map("".join), max_size=40), st.integers(1, 7),
       st.booleans())
def test_swar_readers_equal_their_regexes(texts, chunk, subset):
    import re as _re

    import pyarrow as pa

    from ftracekit.net import values

    old = values._CHUNK
    values._CHUNK = chunk                                  # cross chunk edges on small input
    try:
        arr = pa.array(texts, type=pa.large_string())
        rows = np.arange(0, len(texts), 2) if subset else None
        want_rows = list(range(len(texts)))[::2] if subset else list(range(len(texts)))
        vals, ok = values.fixed_hex_after(arr, "skbaddr=", rows)
        codes, words = values.word_after(arr, "dev=", rows)
    finally:
        values._CHUNK = old
    hexdig = "0123456789abcdefABCDEF"
    for k, i in enumerate(want_rows):
        t = texts[i]
        j = t.find("skbaddr=")
        expect = None
        if j >= 0:
            rest = t[j + 8:]
            rest = rest[2:] if rest[:2].lower() == "0x" else rest
            if (len(rest) >= 16 and all(c in hexdig for c in rest[:16])
                    and not (len(rest) > 16 and rest[16] in hexdig)):
                expect = int(rest[:16], 16)
        assert (expect is not None) == bool(ok[k]), (t, ok[k])
        if expect is not None:
            assert int(vals[k]) == expect
        m = _re.search(r"(?:^|\s)dev=(\S+)", t)
        got = words[codes[k]] if codes[k] >= 0 else None
        assert got == (m.group(1) if m else None), (t, got)


_ARGS = st.lists(st.tuples(
    st.sampled_from(["skb", "nskb", "skb_in", "sk", "dev", "reason", "skbaddr", "len"]),
    st.sampled_from(["0xffff888104d1d000", "0xff11a2b3c4d5e6f7", "0x0", "0xffff88810", "42",
                     "(STRUCT)[0x1:0x2]", "?0xffff888104d1d0", "0xffff888104d1d000ff"])),
    max_size=5).map(lambda kv: ", ".join(f"{k}={v}" for k, v in kv))


@settings(max_examples=300, deadline=None)
@given(st.lists(_ARGS, min_size=1, max_size=30, unique=True))
def test_skb_arguments_read_column_wise_equal_the_regex(texts):
    """The column-wise read of ``skb=0x…`` agrees with the regex that defines it."""
    import re as _re

    from ftracekit.net._scan import _SKB_ARG, _arg_skb_keys

    key, found = _arg_skb_keys(pd.Index(texts, dtype=object))
    for t, k, f in zip(texts, key, found):
        m = _re.search(_SKB_ARG, t)
        assert f == (m is not None), t
        if m:
            assert int(k) == int(m.group(1), 16), t


# -- event fields against their per-row definition ---------------------------------------------

_KEYS = ["dev", "len", "skbaddr", "proto", "name", "loc"]
_VALUE = st.one_of(
    st.integers(-2**63, 2**64 - 1).map(str),                     # decimal (wide: wraps)
    st.integers(0, 2**64 - 1).map(lambda v: f"0x{v:x}"),         # 0x hex
    st.integers(0, 2**64 - 1).map(lambda v: f"{v:016x}"),        # %p
    st.text("abcxyz_.", min_size=0, max_size=6),                 # words (or empty)
    st.lists(st.text("abc", min_size=1, max_size=3), min_size=2, max_size=3).map(" ".join),
)


def _expected_column(values: list) -> list:
    """The definition of :func:`typed_column` on one column, value by value."""
    import re as _re
    present = [v for v in values if v is not None]
    if present and all(_re.fullmatch(r"[0-9a-fA-F]{16}", v) for v in present):
        return [None if v is None else int(v, 16) for v in values]

    def dec(v):
        n = int(v)
        return n - 2**64 if n >= 2**63 else n
    if all(_re.fullmatch(r"-?[0-9]{1,20}", v) for v in present):
        return [None if v is None else dec(v) for v in values]
    if all(_re.fullmatch(r"-?[0-9]{1,20}|\??0[xX][0-9a-fA-F]{1,16}", v) for v in present):
        return [None if v is None else (int(v.lstrip("?"), 16) if "x" in v.lower()
                                        else dec(v) % 2**64) for v in values]
    return values


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from(_KEYS), _VALUE), min_size=1, max_size=4,
                         unique_by=lambda kv: kv[0]), min_size=1, max_size=3),
       st.lists(st.integers(0, 2), min_size=1, max_size=40))
def test_event_fields_equal_their_per_row_definition(templates, picks):
    """Rows of a few templates (fields in varying order, some missing, values of every kind,
    some with spaces): each field of each row is its text's value, typed per column."""
    rows = [templates[p % len(templates)] for p in picks]
    lines = ["# tracer: nop", "#"]
    for i, fields in enumerate(rows):
        body = " ".join(f"{k}={v}" for k, v in fields)
        lines.append(f"  p-1 [000] ..... {1 + i / 1e6:.6f}: ev_x: {body}")
    t = ftracekit.parse("\n".join(lines) + "\n")
    f = t.event_fields("ev_x")
    assert len(f) == len(rows)
    for key in {k for fields in rows for k, _v in fields}:
        col = "field_" + key if key in ("comm", "pid") else key
        texts = [dict(fields).get(key) for fields in rows]
        spaced = any(v is not None and " " in v for fields in rows for _k, v in fields)
        if spaced and any(v is not None and v == "" for v in texts):
            continue            # (an empty value before a spaced one: the lazy regex decides)
        got = [None if pd.isna(v) else (v if isinstance(v, str) else int(v))
               for v in f[col].tolist()]
        assert got == _expected_column(texts), key


def test_event_fields_without_pyarrow_equal_the_arrow_path(raw, monkeypatch):
    """pyarrow is an optional extra: the regex fallback gives the same typed tables."""
    import ftracekit.net.events as events_mod
    import ftracekit.net.values as values_mod

    names = ["kfree_skb", "net_dev_start_xmit", "net_dev_queue", "consume_skb"]
    want = {n: raw.event_fields(n) for n in names}
    for mod, attr in ((events_mod, "to_arrow"), (values_mod, "to_arrow"),
                      (values_mod, "_arrow_strings")):
        monkeypatch.setattr(mod, attr, lambda s: None)
    for n in names:
        pd.testing.assert_frame_equal(raw.event_fields(n), want[n], check_dtype=False)


def test_fields_found_where_the_format_guess_misses(tmp_path):
    """skbaddr= and dev= are looked for where each event's first text has them; rows whose
    words before them are longer or shorter (other devices, wider queue_mapping=) are
    searched. The real capture with its devices and queue numbers varied line by line: every
    step keeps its address and reads its own device (the regex of each line is the
    definition)."""
    src = (EV / "udp_tbf_raw.txt").read_text().splitlines()
    out = []
    for i, ln in enumerate(src):
        if not ln.startswith("#"):
            ln = ln.replace("dev=lo ", ("dev=lo ", "dev=eth0 ", "dev=veth1234567890ab ")[i % 3])
            ln = ln.replace("queue_mapping=0 ", "queue_mapping=12 " if i % 2 else
                            "queue_mapping=0 ")
        out.append(ln)
    p = tmp_path / "t.txt"
    p.write_text("\n".join(out) + "\n")
    t, base = ftracekit.load(p), ftracekit.load(EV / "udp_tbf_raw.txt")
    cols = ["skb", "gen", "n_steps", "first", "last", "dropped", "reason", "max_gap_us"]
    pd.testing.assert_frame_equal(t.packets()[cols], base.packets()[cols], check_dtype=False,
                                  check_categorical=False)
    st = steps(t)
    text = dict(zip(t.events["line"], t.events["text"]))
    import re as _re
    for line, key, dev in zip(st["line"], st["key"], st["dev"].astype(object)):
        m = _re.search(r"(?:^|\s)dev=(\S+)", text[line])
        assert (dev if isinstance(dev, str) else None) == (m.group(1) if m else None)
        assert int(_re.search(r"skbaddr=([0-9a-f]{16})", text[line]).group(1), 16) == key
    assert set(st["dev"].dropna()) == {"lo", "eth0", "veth1234567890ab"}


def test_a_wrong_format_guess_is_never_read(tmp_path):
    """Where skbaddr= sat in the event's first text, the second row holds 16 hex digits of a
    long device name: the guess is checked against the marker's bytes before anything is read
    there."""
    head = ("# tracer: nop\n#\n#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n"
            "#              | |         |   |||||     |         |\n")
    lines = ["dev=lo skbaddr=ffff888104d1df00 len=1042",
             "dev=abcdef0123456789abcdef01234 skbaddr=ffff888104d1d000 len=1042"]
    body = "".join(f"         python3-20357   [000] b....   855.22658{i}: net_dev_queue: {t}\n"
                   for i, t in enumerate(lines))
    p = tmp_path / "t.txt"
    p.write_text(head + body)
    st = steps(ftracekit.load(p))
    assert sorted(st["key"].tolist()) == [0xffff888104d1d000, 0xffff888104d1df00]
    assert sorted(st["dev"].astype(str)) == ["abcdef0123456789abcdef01234", "lo"]


@settings(max_examples=300, deadline=None)
@given(st.lists(_ARGS, min_size=1, max_size=30, unique=True),
       st.sampled_from(["skb", "nskb", "sk", "dev", "reason", "len", "skb_in"]))
def test_arguments_read_column_wise_equal_the_regex(texts, name):
    """arg(): the column-wise read of pointers (and the regex over the rest) gives exactly
    what the regex over every text defines, values and type."""
    from ftracekit.net.values import _arg_values, extract_arg, typed_column

    s = pd.Series(texts, dtype=object)
    want = typed_column(extract_arg(s, name), bare_hex=False)
    got = _arg_values(s, name)
    assert str(got.dtype) == str(want.dtype)
    pd.testing.assert_series_equal(got.reset_index(drop=True), want.reset_index(drop=True),
                                   check_names=False)


_TAIL = st.sampled_from(["", " reason: NO_SOCKET", " reason: ", " reason:  x=1", " why: A=B",
                         "\treason: X", "  k=1", " ", " a: b: c"])


_KEYS2 = _KEYS + ["de", "devs", "d"]             # (keys that begin other keys)
_VALUE2 = st.one_of(_VALUE, st.text("ab\t=:d", max_size=4))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.lists(st.tuples(st.sampled_from(_KEYS2), _VALUE2), min_size=1,
                                   max_size=4, unique_by=lambda kv: kv[0]), _TAIL),
                min_size=1, max_size=3),
       st.lists(st.integers(0, 2), min_size=1, max_size=40))
@example(templates=[([("dev", "1"), ("len", "2")], ""), ([("devs", "1"), ("len", "2")], "")],
         picks=[0, 0, 1, 1])                      # a key that begins with the common one's
@example(templates=[([("dev", "1"), ("len", "2")], ""), ([("dev", "1\tx"), ("len", "2")], "")],
         picks=[0, 0, 1, 1])                      # a tab (no token break, a regex break)
@example(templates=[([("dev", "1")], " reason: X"), ([("dev", "1")], " reason: ")],
         picks=[0, 0, 1, 1])                      # "key:" without its value token
def test_event_fields_common_template_shortcut_equals_the_regexes(templates, picks):
    """The rows of the sample's common template skip the template regexes (see
    ``events._signatures``): with a sample of 2 rows, every table equals the regex-only one."""
    import ftracekit.net.events as events_mod

    rows = [templates[p % len(templates)] for p in picks]
    lines = ["# tracer: nop", "#"]
    for i, (fields, tail) in enumerate(rows):
        body = " ".join(f"{k}={v}" for k, v in fields) + tail
        lines.append(f"  p-1 [000] ..... {1 + i / 1e6:.6f}: ev_x: {body}")
    t = ftracekit.parse("\n".join(lines) + "\n")
    saved = events_mod._SAMPLE
    try:
        events_mod._SAMPLE = 1 << 30
        want = t.event_fields("ev_x")
        events_mod._SAMPLE = 2
        got = t.event_fields("ev_x")
    finally:
        events_mod._SAMPLE = saved
    pd.testing.assert_frame_equal(got, want)
