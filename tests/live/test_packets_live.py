"""`record --packets` with function_graph on a real kernel (inside the VM): UDP through a slow
tbf on lo, recorded with the skb events and, on 6.15+ kernels, funcgraph-args, so journeys hold
calls (``skb=0x…``) and events (``skbaddr=…``) of the same packet, joined on the raw address.

Run by tests/test_live_vm.py with FTRACEKIT_LIVE=1; see conftest.py for the fixtures.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from ftracekit.recording.recorder import Recorder

from .conftest import kernel_version

#: The send and receive paths, shallow (emulation is slow): the skb is the first argument.
#: (Not __netif_receive_skb: loopback's backlog calls __netif_receive_skb_one_core directly.)
FUNCS = ["__dev_queue_xmit", "ip_rcv", "__udp4_lib_rcv"]
BIG, SMALL = 1000, 100


def _send() -> int:
    """10 datagrams to a bound socket, 3 to a closed port, all on 127.0.0.1; returns how many
    the bound socket received."""
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.bind(("127.0.0.1", 5000))
    r.settimeout(20)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(10):
        s.sendto(b"x" * BIG, ("127.0.0.1", 5000))
    for _ in range(3):
        s.sendto(b"y" * SMALL, ("127.0.0.1", 5001))
    got = 0
    try:
        while got < 10:
            r.recv(2000)
            got += 1
    except OSError:
        pass
    r.close()
    s.close()
    time.sleep(0.5)                  # the ICMP errors and the last softirqs
    return got


@pytest.fixture
def tbf_on_lo():
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["tc", "qdisc", "replace", "dev", "lo", "root", "tbf", "rate", "400kbit",
                    "burst", "1600", "limit", "100000"], check=True)
    yield
    subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], check=False)


def test_packets_calls_and_events_joined(tmp_path, tfs, unchanged, tbf_on_lo):
    args_ok = tfs.exists("options/funcgraph-args")
    if not args_ok:
        pytest.skip("funcgraph-args needs Linux 6.15+: this suite runs on such a kernel "
                    "(test_packet_suite_on_a_funcgraph_args_kernel)")
    out = tmp_path / f"packets-{os.uname().release}.txt"   # kept by conftest on failure
    with Recorder(FUNCS, packets=True, max_depth=3, output=out) as rec:
        received = _send()
    t = rec.trace
    assert received == 10
    assert not rec.events_only and t.meta["tracer"] == "function_graph"
    assert len(t.calls) and len(t.events)
    q = t.event_fields("net_dev_queue")
    q = q[q["len"].isin([BIG + 42, SMALL + 42])]
    assert sorted(q["len"].tolist()).count(BIG + 42) == 10
    pk = t.packets()
    assert pk["skb"].str.startswith("0xff").all()          # raw: hash-ptr was 0 when read
    drops = pk[pk["dropped"] & (pk["reason"] == "NO_SOCKET")]
    assert len(drops) >= 3
    journeys = [t.journey(f"0x{a:016x}") for a in q["skbaddr"]]
    for j in journeys:
        names = j["name"].tolist()
        assert "net_dev_queue" in names and "netif_receive_skb" in names
    if args_ok and kernel_version() >= (6, 15):
        assert t.calls["args"].notna().any()
        joined = [j for j in journeys if {"call", "event"} <= set(j["kind"])]
        # every datagram: __dev_queue_xmit(skb=…) with net_dev_queue inside it (seen on 6.17:
        # the queued ones also pass through dev_qdisc_enqueue, tbf_enqueue, sch_direct_xmit
        # with the same skb)
        assert len(joined) == len(journeys)
        for j in joined:
            calls = set(j.loc[j["kind"] == "call", "name"])
            assert "__dev_queue_xmit" in calls
            i_call = j.index[j["name"] == "__dev_queue_xmit"][0]
            i_ev = j.index[j["name"] == "net_dev_queue"][0]
            assert j.loc[i_ev, "call"] == j.loc[i_call, "call"] or j.loc[i_ev, "call"] >= 0
        # the receive side joins the same packets: ip_rcv(skb=…) in the softirq, in the same
        # generation as the sender's net_dev_queue (6.17: 13 of the 16 journeys; the first
        # datagrams' ip_rcv can be missing while the graph is being enabled)
        with_rcv = [j for j in journeys
                    if "ip_rcv" in set(j.loc[j["kind"] == "call", "name"])
                    and j.loc[j["name"] == "ip_rcv", "gen"].iloc[0]
                    == j.loc[j["name"] == "net_dev_queue", "gen"].iloc[0]]
        assert len(with_rcv) >= len(journeys) // 2
        assert len(t.callers(event="kfree_skb"))
    else:
        assert t.calls["args"].isna().all()
