"""`ftracekit record --packets` on this machine's own kernel, no VM.

The development/CI kernel has trace events but no function_graph, so the recording falls back to
the events alone (tracer nop). The test makes its own network namespace (only ``lo``, so every
datagram stays on 127.0.0.1 inside it) with a ``tbf`` qdisc slow enough to queue, sends UDP from
Python sockets to a bound socket and to a closed port, and checks the journeys, the qdisc wait,
the drops and that tracefs is exactly as before.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ftracekit
from ftracekit.recording.settings import PACKET_EVENTS

TRACEFS = Path("/sys/kernel/tracing")
RATE_BIT_S = 400_000          # tbf rate: a 1042-byte frame takes 1042*8/400000 s = 20.84 ms
BIG, SMALL = 1000, 100        # UDP payloads: frames of 1042 and 142 bytes on lo
LAST = 50                     # the closing datagram (frame of 92 bytes), not one of the checked

SENDER = r"""
import json, os, socket, sys
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(("127.0.0.1", 5000)); r.settimeout(5)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(10): s.sendto(b"x" * %d, ("127.0.0.1", 5000))
for i in range(3): s.sendto(b"y" * %d, ("127.0.0.1", 5001))
s.sendto(b"z" * %d, ("127.0.0.1", 5000))      # last in the tbf's FIFO: once it is received,
got = last = 0                                # every datagram before it has left the qdisc
try:
    while not last:
        data = r.recv(2000)
        got += data[:1] == b"x"; last = data[:1] == b"z"
except OSError as e: print("recv", e, file=sys.stderr)
json.dump({"pid": os.getpid(), "received": got, "last": bool(last)}, open(sys.argv[1], "w"))
""" % (BIG, SMALL, LAST)


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (tracefs and network namespaces)"
    if not (TRACEFS / "available_tracers").exists():
        return f"no tracefs at {TRACEFS}"
    if not (TRACEFS / "events" / "net" / "net_dev_queue").is_dir():
        return "this kernel has no net:net_dev_queue event"
    for tool in ("unshare", "ip", "tc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = subprocess.run(["unshare", "-n", "--", "sh", "-c",
                            "ip link set lo up && tc qdisc add dev lo root tbf rate 400kbit "
                            "burst 1600 limit 100000"], capture_output=True, text=True)
    if probe.returncode:
        return f"cannot make a network namespace with a tbf qdisc: {probe.stderr.strip()}"
    return None


def _tracefs_state() -> dict[str, str]:
    files = ["options/hash-ptr", "current_tracer", "tracing_on"]
    files += [f"events/{spec.replace(':', '/')}/enable" for spec in PACKET_EVENTS]
    out = {f: (TRACEFS / f).read_text() for f in files if (TRACEFS / f).exists()}
    out["instances"] = " ".join(sorted(p.name for p in (TRACEFS / "instances").iterdir()
                                       if p.name.startswith("ftracekit-")))
    return out


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    why = _why_not()
    if why:
        pytest.skip(why)
    d = tmp_path_factory.mktemp("packets_host")
    (d / "send.py").write_text(SENDER)
    before = _tracefs_state()
    env = dict(os.environ, PYTHONPATH=str(Path(ftracekit.__file__).parent.parent))
    script = (f"ip link set lo up && tc qdisc add dev lo root tbf rate {RATE_BIT_S // 1000}kbit "
              "burst 1600 limit 100000 && "
              f"{sys.executable} -m ftracekit record --packets -o {d}/trace.txt -- "
              f"{sys.executable} {d}/send.py {d}/send.json")
    for _attempt in range(3):          # another ftracekit may hold the recording lock a moment
        p = subprocess.run(["unshare", "-n", "--", "sh", "-c", script], capture_output=True,
                           text=True, env=env, timeout=300)
        if "another ftracekit" not in p.stderr:
            break
        import time
        time.sleep(5)
    after = _tracefs_state()
    assert p.returncode == 0, p.stderr
    return {"dir": d, "stderr": p.stderr, "stdout": p.stdout, "before": before, "after": after,
            "sender": json.loads((d / "send.json").read_text()),
            "trace": ftracekit.load(d / "trace.txt")}


def test_recording_says_events_only_in_one_line(recorded):
    notes = [ln for ln in recorded["stderr"].splitlines() if "events alone" in ln]
    assert len(notes) == 1 and "tracer nop" in notes[0]
    t = recorded["trace"]
    assert t.meta["events_only"] and len(t.calls) == 0
    assert t.meta["recording"]["events_only"] is True
    assert "NO_SOCKET" in t.meta["recording"]["skb_drop_reasons"].values()
    assert "packets (skb generations)" in recorded["stdout"]


def test_tracefs_is_back(recorded):
    assert recorded["after"] == recorded["before"]


def _datagrams(t, pid):
    q = t.event_fields("net_dev_queue")
    q = q[(q["pid"] == pid) & q["len"].isin([BIG + 42, SMALL + 42])]
    return q


def test_every_datagram_travels_queue_to_receive(recorded):
    t = recorded["trace"]
    assert recorded["sender"]["received"] == 10 and recorded["sender"]["last"]
    q = _datagrams(t, recorded["sender"]["pid"])
    assert sorted(q["len"].tolist()) == [SMALL + 42] * 3 + [BIG + 42] * 10
    pk = t.packets(dev="lo")
    assert pk["skb"].str.startswith("0xffff").all()          # hash-ptr was 0 when read
    for addr, ts in zip(q["skbaddr"], q["ts_s"]):
        rows = pk[(pk["skb"] == f"0x{addr:016x}") & (pk["first_s"] <= ts) & (pk["last_s"] >= ts)]
        assert len(rows) == 1
        j = t.journey(f"0x{addr:016x}", gen=int(rows["gen"].iloc[0]))
        names = j["name"].tolist()
        assert names[0] == "net_dev_queue"
        i_start, i_recv = names.index("net_dev_start_xmit"), names.index("netif_receive_skb")
        assert 0 < i_start < i_recv
        assert j["context"].iloc[i_recv] == "softirq"


def test_queued_datagrams_wait_in_the_qdisc(recorded):
    t = recorded["trace"]
    q = _datagrams(t, recorded["sender"]["pid"])
    big = q[q["len"] == BIG + 42].sort_values("ts_s")
    frame_s = (BIG + 42) * 8 / RATE_BIT_S
    waits, starts = [], []
    for addr, ts in zip(big["skbaddr"], big["ts_s"]):
        j = t.journey(f"0x{addr:016x}")
        j = j[j["ts_s"] >= ts]
        queued = j["ts_s"].iloc[0]
        start = j[j["name"] == "net_dev_start_xmit"]["ts_s"].iloc[0]
        waits.append(start - queued)
        starts.append(start)
        if start - queued > frame_s / 2:
            # the largest gap of the packet is its wait in the qdisc: it starts at
            # net_dev_queue and ends by net_dev_start_xmit (qdisc_dequeue may come between)
            top = j.loc[j["gap_us"].idxmax()]
            prev = j["name"].iloc[j.index.get_loc(top.name) - 1]
            assert prev == "net_dev_queue"
            assert top["name"] in ("qdisc_dequeue", "net_dev_start_xmit")
            assert top["gap_us"] >= 0.95 * (start - queued) * 1e6
    # the tbf releases one 1042-byte frame every 20.84 ms: the waits grow by that much
    queued_n = [w for w in waits if w > frame_s / 2]
    assert len(queued_n) >= 7
    steps = [b - a for a, b in zip(starts, starts[1:])]
    steps = sorted(steps)[1:-1]                   # (the first frames leave on the burst)
    median = steps[len(steps) // 2]
    assert median == pytest.approx(frame_s, rel=0.15)


def test_closed_port_datagrams_are_dropped_no_socket(recorded):
    t = recorded["trace"]
    q = _datagrams(t, recorded["sender"]["pid"])
    small = q[q["len"] == SMALL + 42]
    pk = t.packets(dropped=True)
    for addr, ts in zip(small["skbaddr"], small["ts_s"]):
        rows = pk[(pk["skb"] == f"0x{addr:016x}") & (pk["first_s"] <= ts) & (pk["last_s"] >= ts)]
        assert len(rows) == 1
        assert rows["reason"].iloc[0] == "NO_SOCKET"
        assert rows["drop_location"].iloc[0].startswith("__udp4_lib_rcv+")
    c = t.callers(event="kfree_skb")
    assert c["chain"].tolist() == ["kfree_skb"]     # events only: no calls to chain


def test_any_events_alone_without_functions(tmp_path):
    """`record --event …` without FUNC records those events alone (tracer nop), on any kernel."""
    why = _why_not()
    if why:
        pytest.skip(why)
    from ftracekit.recording import Recorder

    before = _tracefs_state()
    with Recorder([], events=["sched:sched_process_exec"], output=tmp_path / "e.txt",
                  command=None) as rec:
        subprocess.run(["true"], check=True)
        subprocess.run(["/bin/sh", "-c", "true"], check=True)
    assert _tracefs_state() == before
    t = rec.trace
    assert rec.events_only and rec.note.startswith("no functions given")
    assert len(t.calls) == 0
    f = t.event_fields("sched_process_exec")
    assert {"true", "sh"} <= {p.rsplit("/", 1)[-1] for p in f["filename"].astype(str)}
