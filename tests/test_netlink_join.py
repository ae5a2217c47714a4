"""The netlink joins (request → handler call, dump reply → netlink_dump round) and dumps(), on
hand-made messages and calls; the vectorised joins against their sequential definitions."""

from __future__ import annotations

import struct

import numpy as np
import pandas as pd
import pytest

import ftracekit
from ftracekit.net import netlink as N
from ftracekit.recording.nlmon import PcapWriter

from test_netlink_pcap import link, nlmsg


def calls_table(rows):
    """rows: (func, pid, comm, start_s, end_s)."""
    df = pd.DataFrame(rows, columns=["func", "pid", "comm", "start_s", "end_s"])
    df["func"] = df["func"].astype("category")
    df["duration_us"] = (df["end_s"] - df["start_s"]) * 1e6
    df.index.name = "call"
    return df


def dump_packets(seq, portid, t0, rounds, names=None, done_alone=False, request_portid=None):
    """(ts, family, data) packets of a GETLINK dump: request at t0, one reply packet per round
    at the given times, each with n links; DONE in the last (or alone). ``request_portid``:
    what the request says (iproute2 writes 0; the replies carry the socket's port)."""
    req = nlmsg(18, 0x301, seq, portid if request_portid is None else request_portid,
                struct.pack("=BxHiII", 0, 0, 0, 0, 0))
    out = [(t0, 0, req)]
    k = 0
    for i, (t, n) in enumerate(rounds):
        data = b"".join(nlmsg(16, 0x2, seq, portid, link(k + j + 1, f"d{k + j}")) for j in range(n))
        k += n
        if i == len(rounds) - 1 and not done_alone:
            data += nlmsg(3, 0x2, seq, portid, b"\0" * 4)
        out.append((t, 0, data))
    if done_alone:
        out.append((rounds[-1][0] + 1e-4, 0, nlmsg(3, 0x2, seq, portid, b"\0" * 4)))
    return out


def messages_of(pkts):
    return N.decode_packets(sorted(pkts, key=lambda p: p[0]))


def scenario():
    """Two tasks dumping at the same time: ip (pid 100, fast reader, 3 rounds) and a slow
    reader (pid 200, 4 rounds with 10 ms sleeps), plus a dump nobody traced (portid 300) and a
    request with an ack (RTM_NEWLINK, handled by pid 100)."""
    ip = dump_packets(1, 100, 1.000000, [(1.000020, 3), (1.000200, 3), (1.000400, 2)],
                      request_portid=0)
    slow = dump_packets(9, 200, 1.000050, [(1.000080, 2), (1.010200, 2), (1.020300, 2),
                                           (1.030350, 1)], done_alone=True)
    lost = dump_packets(5, 300, 2.0, [(2.0001, 1)])
    new = nlmsg(16, 0x605, 2, 100, struct.pack("=BxHiII", 0, 1, 0, 0, 0))
    ack = nlmsg(2, 0x100, 2, 100, struct.pack("=i", 0) + new[:16])
    pkts = ip + slow + lost + [(3.0, 0, new), (3.00005, 0, ack)]
    calls = calls_table([
        ("rtnetlink_rcv", 100, "ip", 1.000005, 1.000030),          # 0: ip's request
        ("netlink_dump", 100, "ip", 1.000006, 1.000028),           # 1: round 1 (in the handler)
        ("rtnetlink_rcv", 200, "slow", 1.000055, 1.000090),        # 2: slow's request
        ("netlink_dump", 200, "slow", 1.000060, 1.000085),         # 3
        ("netlink_recvmsg", 100, "ip", 1.000090, 1.000392),        # 4
        ("netlink_dump", 100, "ip", 1.000100, 1.000390),           # 5: round 2
        ("netlink_dump", 100, "ip", 1.000395, 1.000600),           # 6: round 3 + DONE
        ("netlink_dump", 200, "slow", 1.010190, 1.010210),         # 7
        ("netlink_dump", 200, "slow", 1.020290, 1.020310),         # 8
        ("netlink_dump", 200, "slow", 1.030340, 1.030360),         # 9
        ("netlink_dump", 200, "slow", 1.030440, 1.030460),         # 10: DONE alone
        ("rtnetlink_rcv", 100, "ip", 3.000010, 3.000100),          # 11: the NEWLINK + its ack
    ])
    return messages_of(pkts), calls


def test_join_calls():
    msgs, calls = scenario()
    j = N.join(msgs, calls)
    per_packet = j.groupby("packet")[["call", "pid"]].first()
    pk = N.packets(msgs)
    want = {}
    for p, row in pk.iterrows():
        key = (int(row["portid"]), row["direction"], row["type"], round(row["ts_s"], 6))
        want[key] = tuple(per_packet.loc[p])
    assert want == {
        (0, "to_kernel", "RTM_GETLINK", 1.0): (0, 100),
        (200, "to_kernel", "RTM_GETLINK", 1.00005): (2, 200),
        (100, "to_user", "RTM_NEWLINK", 1.00002): (1, 100),
        (200, "to_user", "RTM_NEWLINK", 1.00008): (3, 200),
        (100, "to_user", "RTM_NEWLINK", 1.0002): (5, 100),
        (100, "to_user", "RTM_NEWLINK", 1.0004): (6, 100),
        (200, "to_user", "RTM_NEWLINK", 1.0102): (7, 200),
        (200, "to_user", "RTM_NEWLINK", 1.0203): (8, 200),
        (200, "to_user", "RTM_NEWLINK", 1.03035): (9, 200),
        (200, "to_user", "NLMSG_DONE", 1.03045): (10, 200),
        (300, "to_kernel", "RTM_GETLINK", 2.0): (-1, -1),
        (300, "to_user", "RTM_NEWLINK", 2.0001): (-1, -1),
        (100, "to_kernel", "RTM_NEWLINK", 3.0): (11, 100),
        (100, "to_user", "NLMSG_ERROR", 3.00005): (11, 100),
    }


def assert_joins_agree(pk, calls) -> None:
    """The vectorised joins equal their plain-loop definitions."""
    req = N.join_requests(pk, calls)
    pd.testing.assert_series_equal(req, N.join_requests_sequential(pk, calls))
    pd.testing.assert_series_equal(N.join_rounds(pk, calls, req),
                                   N.join_rounds_sequential(pk, calls, req))
    assert_dump_replies_agree(pk)


def test_vectorised_joins_agree_with_their_definitions():
    msgs, calls = scenario()
    pk = N.packets(msgs)
    assert_joins_agree(pk, calls)
    # random scenarios (seqs shared between tasks, requests with port 0 as iproute2 writes): many tasks, rounds at random gaps, some calls missing
    rng = np.random.default_rng(12)
    for trial in range(20):
        pkts, rows = [], []
        for task in range(rng.integers(1, 5)):
            pid, t = 1000 + task, float(rng.uniform(0, 0.01))
            for dump in range(rng.integers(1, 4)):
                n = int(rng.integers(1, 6))
                times = t + 10e-6 + np.cumsum(rng.uniform(20e-6, 3e-3, n))
                pkts += dump_packets(int(rng.integers(1, 4)), pid, t,
                                     [(float(x), 2) for x in times],
                                     request_portid=0 if rng.random() < 0.5 else None)
                if rng.random() < 0.9:
                    rows.append(("rtnetlink_rcv", pid, "t", t + 5e-6, times[0] + 10e-6))
                for x in times:
                    if rng.random() < 0.85:
                        rows.append(("netlink_dump", pid, "t", float(x) - 5e-6, float(x) + 5e-6))
                t = float(times[-1]) + 1e-3
        msgs = messages_of(pkts)
        calls = calls_table(sorted(rows, key=lambda r: r[3]))
        pk = N.packets(msgs)
        assert_joins_agree(pk, calls)


def assert_dump_replies_agree(pk):
    """All dumps' replies at once (numpy) = each request's replies by the definition."""
    pairs = N.dump_replies(pk)
    for p, req in N._dump_requests(pk).iterrows():
        assert list(pairs.loc[pairs["request"] == p, "packet"]) == list(
            N._replies_of(pk, req).index)
    assert len(pairs) == sum(len(N._replies_of(pk, r)) for _, r in N._dump_requests(pk).iterrows())


def test_dumps_and_rounds():
    msgs, calls = scenario()
    j = N.join(msgs, calls)
    d = N.dumps(j, calls)
    assert list(d["seq"]) == [1, 9, 5]
    assert list(d["portid"]) == [100, 200, 300]
    assert list(d["pid"]) == [100, 200, -1]
    assert list(d["n_rounds"]) == [3, 5, 1]
    assert list(d["n_messages"]) == [8, 7, 1]
    assert list(d["done"]) == [True, True, True]
    assert list(d["verdict"]) == ["kernel-bound", "reader-bound", "untraced"]
    ip, slow = d.iloc[0], d.iloc[1]
    assert ip["kernel_us"] == pytest.approx(22 + 290 + 205)
    assert ip["user_us"] == pytest.approx((100 - 28) + (395 - 390))
    assert ip["slowest_call"] == 5 and ip["slowest_round_us"] == pytest.approx(290)
    assert N.verdict(100, 60, 2) == "balanced" and N.verdict(100, 200, 2) == "reader-bound"
    assert slow["user_us"] == pytest.approx(10105 + 10080 + 10030 + 80)
    assert slow["end_s"] == pytest.approx(1.030460) and ip["error"] == 0
    r = N.rounds(j, calls, int(d.index[1]))
    assert list(r["call"]) == [3, 7, 8, 9, 10]
    assert list(r["n_messages"]) == [2, 2, 2, 1, 0]
    assert list(r["done"]) == [False] * 4 + [True]
    assert list(r["first_ifname"].iloc[:4]) == ["d0", "d2", "d4", "d6"]
    assert r["gap_before_us"].iloc[1] == pytest.approx(10105)


def test_plot_dump():
    import matplotlib

    matplotlib.use("Agg")
    msgs, calls = scenario()
    trace = ftracekit.Trace(calls, calls.iloc[:0], {"netlink_pcap": "scenario"})
    trace._netlink = N.join(msgs, calls)
    ax = trace.plot.dump(9)                      # by seq
    assert len(ax.patches) >= 5                  # 5 rounds (+ the user-space spans)
    assert "5 rounds, 7 messages" in ax.get_title() and "reader-bound" in ax.get_title()
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["2", "2", "2", "1", "0"]
    ax2 = trace.plot.dump(0)                     # no dump has seq 0: the first row
    assert "dump seq 1 by ip-100: 3 rounds" in ax2.get_title()
    with pytest.raises(ftracekit.FtracekitError, match="no dump with seq 77"):
        trace.plot.dump(77)


def test_a_round_keeps_one_packet():
    """A round sends one skb: a packet whose own round was not traced, 40 µs after another
    round, is not put in that round beside the packet that round sent (−1: untraced)."""
    msgs = messages_of(dump_packets(1, 100, 1.0, [(1.000020, 2), (1.000200, 2), (1.000240, 1)]))
    calls = calls_table([
        ("rtnetlink_rcv", 100, "ip", 1.000005, 1.000030),
        ("netlink_dump", 100, "ip", 1.000006, 1.000028),
        ("netlink_dump", 100, "ip", 1.000190, 1.000205),     # the third round is missing
    ])
    pk = N.packets(msgs)
    req = N.join_requests(pk, calls)
    got = N.join_rounds(pk, calls, req)
    assert got.tolist() == [-1, 1, 2, -1]
    assert got.tolist() == N.join_rounds_sequential(pk, calls, req).tolist()
