"""Netlink captures: the pcap writer (recording/nlmon.py) and reader (net: read_pcap), on
hand-built messages, hand-written pcap files (both byte orders, µs and ns, cut-off files, other
link types) and ``tcpdump -r`` reading what ftracekit writes."""

from __future__ import annotations

import io
import os
import shutil
import socket
import struct
import subprocess
import warnings

import pytest

import ftracekit
from ftracekit.errors import InputError
from ftracekit.net.netlink import PcapTruncatedWarning, read_pcap
from ftracekit.recording.nlmon import PcapWriter

RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 18, 20, 24


def nlmsg(mtype: int, flags: int, seq: int, pid: int, body: bytes = b"", order: str = "=") -> bytes:
    length = 16 + len(body)
    pad = (-length) % 4
    return struct.pack(order + "IHHII", length, mtype, flags, seq, pid) + body + b"\0" * pad


def attr(kind: int, value: bytes, order: str = "=") -> bytes:
    length = 4 + len(value)
    return struct.pack(order + "HH", length, kind) + value + b"\0" * ((-length) % 4)


def link(index: int, name: str, order: str = "=") -> bytes:
    return (struct.pack(order + "BxHiII", 0, 1, index, 0, 0)
            + attr(3, name.encode() + b"\0", order) + attr(4, struct.pack(order + "I", 1500), order))


REQUEST = nlmsg(RTM_GETLINK, 0x301, 7, 1234, struct.pack("=BxHiII", 0, 0, 0, 0, 0))
ROUND1 = b"".join(nlmsg(RTM_NEWLINK, 0x2, 7, 1234, link(i, f"d{i}")) for i in (1, 2, 3))
ROUND2 = nlmsg(RTM_NEWLINK, 0x2, 7, 1234, link(4, "dummy-four")) + nlmsg(3, 0x2, 7, 1234,
                                                                         struct.pack("=i", 0))


def write_ours(path, packets) -> None:
    with open(path, "wb") as fh:
        w = PcapWriter(fh)
        for ts_ns, family, data in packets:
            w.write(ts_ns, family, data)


PACKETS = [(1_700_000_000_123_456_789, 0, REQUEST), (1_700_000_000_223_456_000, 0, ROUND1),
           (1_700_000_001_000_000_001, 0, ROUND2 + b"\0" * 12)]       # padding after DONE


def test_our_pcap_reads_back(tmp_path):
    p = tmp_path / "n.pcap"
    write_ours(p, PACKETS)
    df = read_pcap(p)
    assert list(df["type"]) == ["RTM_GETLINK", "RTM_NEWLINK", "RTM_NEWLINK", "RTM_NEWLINK",
                                "RTM_NEWLINK", "NLMSG_DONE"]
    assert list(df["packet"]) == [0, 1, 1, 1, 2, 2]
    assert list(df["index"]) == [0, 0, 1, 2, 0, 1]
    assert list(df["flags"]) == ["REQUEST|DUMP", "MULTI", "MULTI", "MULTI", "MULTI", "MULTI"]
    assert list(df["direction"]) == ["to_kernel"] + ["to_user"] * 5
    assert set(df["family"]) == {"ROUTE"} and set(df["seq"]) == {7} and set(df["portid"]) == {1234}
    assert df["ts_s"].iloc[0] == pytest.approx(1_700_000_000.123456789, abs=1e-7)
    assert list(df["ifindex"].iloc[1:5]) == [1, 2, 3, 4] and df["ifindex"].isna().iloc[[0, 5]].all()
    assert list(df["ifname"].iloc[1:5]) == ["d1", "d2", "d3", "dummy-four"]
    assert df["error"].iloc[5] == 0 and df["error"].iloc[:5].isna().all()
    assert list(df["len"]) == [32] + [16 + len(link(1, "d1"))] * 3 + [16 + len(link(4, "dummy-four")), 20]
    assert list(df["packet_len"]) == [32] + [len(ROUND1)] * 3 + [len(ROUND2) + 12] * 2
    assert df.attrs["packets"] == 3 and df.attrs["truncated_bytes"] == 0


def test_public_name():
    assert ftracekit.netlink.read_pcap is read_pcap


def test_error_ack_route_and_generic(tmp_path):
    ack = nlmsg(2, 0x100, 9, 77, struct.pack("=i", -17) + REQUEST[:16])
    route = nlmsg(RTM_NEWROUTE, 0x2, 9, 77, struct.pack("=BBBBBBBBI", 2, 24, 0, 0, 254, 2, 0, 1, 0)
                  + attr(4, struct.pack("=I", 5)))
    addr = nlmsg(RTM_NEWADDR, 0x2, 9, 77, struct.pack("=BBBBI", 2, 8, 0, 0, 6) + attr(3, b"eth9\0"))
    genl = nlmsg(0x1C, 0x5, 3, 78, b"\x01\x02\x00\x00")
    p = tmp_path / "n.pcap"
    write_ours(p, [(10**18, 0, ack + route + addr), (10**18 + 5, 16, genl)])
    df = read_pcap(p)
    assert list(df["type"]) == ["NLMSG_ERROR", "RTM_NEWROUTE", "RTM_NEWADDR", "28"]
    assert list(df["flags"]) == ["CAPPED", "MULTI", "MULTI", "REQUEST|ACK"]
    assert list(df["family"]) == ["ROUTE", "ROUTE", "ROUTE", "GENERIC"]
    assert df["error"].iloc[0] == -17
    assert list(df["ifindex"].iloc[1:3]) == [5, 6] and df["ifname"].iloc[2] == "eth9"
    assert df["ifname"].isna().iloc[[0, 1, 3]].all()


def tcpdump_style(packets, *, order: str, nano: bool, linktype: int = 253, snaplen=262144) -> bytes:
    """A pcap as libpcap writes it, in ``order`` byte order (messages in that order too)."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = io.BytesIO()
    out.write(struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
    for sec, frac, family, data in packets:
        cooked = struct.pack(">HHH8sH", 4, 824, 0, b"", family)
        out.write(struct.pack(order + "IIII", sec, frac, 16 + len(data), 16 + len(data)))
        out.write(cooked + data)
    return out.getvalue()


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_both_byte_orders_and_resolutions(tmp_path, order, nano):
    req = nlmsg(RTM_GETLINK, 0x301, 5, 99, struct.pack(order + "BxHiII", 0, 0, 0, 0, 0), order)
    rep = nlmsg(RTM_NEWLINK, 0x2, 5, 99, link(42, "big", order), order) + nlmsg(3, 2, 5, 99,
                                                                               b"\0" * 4, order)
    frac = 250_000_000 if nano else 250_000
    p = tmp_path / "t.pcap"
    p.write_bytes(tcpdump_style([(100, frac, 0, req), (101, frac, 0, rep)], order=order, nano=nano))
    df = read_pcap(p)
    assert list(df["type"]) == ["RTM_GETLINK", "RTM_NEWLINK", "NLMSG_DONE"]
    assert list(df["ts_s"]) == [100.25, 101.25, 101.25]
    assert df["ifindex"].iloc[1] == 42 and df["ifname"].iloc[1] == "big"
    assert list(df["seq"]) == [5, 5, 5] and list(df["portid"]) == [99, 99, 99]


def test_clock_offset_is_subtracted(tmp_path):
    p = tmp_path / "n.pcap"
    write_ours(p, PACKETS[:1])
    assert read_pcap(p, clock_offset_s=1_699_999_000.0)["ts_s"].iloc[0] == pytest.approx(
        1000.123456789, abs=1e-6)


@pytest.mark.parametrize("cut", [1, 10, 17, 40])
def test_truncated_keeps_complete_packets(tmp_path, cut):
    p = tmp_path / "n.pcap"
    write_ours(p, PACKETS)
    whole = p.read_bytes()
    p.write_bytes(whole[:-cut])
    last = 16 + 16 + len(PACKETS[2][2])           # record header + cooked + data
    with pytest.warns(PcapTruncatedWarning, match=rf"lacks {cut} bytes; kept the 2 complete"):
        df = read_pcap(p)
    assert df.attrs["truncated_bytes"] == cut and df.attrs["packets"] == 2
    assert list(df["packet"]) == [0, 1, 1, 1]
    assert cut < last


def test_cut_inside_a_record_header(tmp_path):
    p = tmp_path / "n.pcap"
    write_ours(p, PACKETS[:1])
    p.write_bytes(p.read_bytes() + b"\1" * 6)            # 6 of a 16-byte record header
    with pytest.warns(PcapTruncatedWarning, match="lacks 10 bytes; kept the 1 complete"):
        df = read_pcap(p)
    assert len(df) == 1


def test_bad_inputs(tmp_path):
    cases = {
        "eth.pcap": (tcpdump_style([(1, 0, 0, b"x" * 60)], order="<", nano=False, linktype=1),
                     r"link type 1, not netlink \(253\)"),
        "text.pcap": (b"this is not a capture at all\n" * 3, r"not a pcap file \(magic 74686973\)"),
        "ng.pcap": (b"\x0a\x0d\x0d\x0a" + b"\0" * 40, "a pcapng file"),
        "empty.pcap": (b"", r"not a pcap file \(0 bytes\)"),
        "short.pcap": (b"\xd4\xc3\xb2\xa1\x02\x00", "the 24-byte file header has 6 bytes"),
    }
    for name, (blob, msg) in cases.items():
        p = tmp_path / name
        p.write_bytes(blob)
        with pytest.raises(InputError, match=msg) as info:
            read_pcap(p)
        assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="no such file"):
        read_pcap(tmp_path / "missing.pcap")
    with pytest.raises(InputError, match="is a directory"):
        read_pcap(tmp_path)


def _tcpdump():
    exe = shutil.which("tcpdump")
    if exe is None:
        missing = pytest.fail if os.environ.get("FTRACEKIT_STRICT") == "1" else pytest.skip
        missing("tcpdump is not installed (apt-get install tcpdump)")
    return exe


def test_tcpdump_reads_what_we_write(tmp_path):
    tcpdump = _tcpdump()
    p = tmp_path / "n.pcap"
    write_ours(p, PACKETS + [(1_700_000_002_000_000_000, 16, nlmsg(0x1C, 0x5, 3, 78, b"\1\2\0\0"))])
    r = subprocess.run([tcpdump, "-r", str(p), "-nn", "--nano", "-tt"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "link-type NETLINK" in r.stderr
    lines = [line for line in r.stdout.splitlines() if not line.startswith("\t")]
    assert len(lines) == 4
    assert lines[0].startswith("1700000000.123456789 ")
    assert lines[2].startswith("1700000001.000000001 ")
    # Debian's tcpdump 4.99 does not decode netlink; its hex dump starts with the cooked
    # header: packet type 4 (outgoing), ARPHRD 824 (0x0338), … the family (0x0010 = GENERIC)
    dumps = r.stdout.split("\n1")
    assert all("0x0000:  0004 0338 0000" in d for d in dumps)
    assert "0x0000:  0004 0338 0000 0000 0000 0000 0000 0010" in dumps[3]
    r = subprocess.run([tcpdump, "-r", str(p), "-nn", "-c", "2"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0
    assert [line.split()[1] for line in r.stdout.splitlines() if not line.startswith("\t")] == [
        "UNSUPPORTED"] * 2


def test_writer_cuts_at_snaplen():
    fh = io.BytesIO()
    w = PcapWriter(fh, snaplen=64)
    w.write(5, 0, b"\0" * 100)
    raw = fh.getvalue()
    incl, orig = struct.unpack_from("=II", raw, 24 + 8)
    assert (incl, orig) == (64, 116) and len(raw) == 24 + 16 + 64
    assert socket.ntohs(struct.unpack_from("=H", raw, 40 + 2)[0]) == 824
