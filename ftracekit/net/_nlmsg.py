"""Netlink captures: pcap files of ``LINKTYPE_NETLINK`` (253) → one row per netlink message.

What the bytes are (kernel ``drivers/net/nlmon.c``, ``net/netlink/af_netlink.c``; libpcap
``pcap-linux.c``; Wireshark ``packet-netlink.c``):

* a classic pcap file (magic ``a1b2c3d4`` µs or ``a1b23c4d`` ns, either byte order, link type
  in the low 16 bits of the header's last word; pcapng is not read);
* each packet starts with the 16-byte cooked header that libpcap's ``linux_sll`` writes: bytes
  2–3 the ARPHRD type (824 = ``ARPHRD_NETLINK``), bytes 14–15 the netlink family, both
  big-endian;
* then one tapped netlink skb, whole: one or more ``nlmsghdr`` messages (``len u32, type u16,
  flags u16, seq u32, pid u32``) in the capturing host's byte order — taken here to be the
  pcap file's byte order, as tcpdump and ftracekit write the header in host order — each
  padded to 4 bytes; a datagram may have padding after the last ``nlmsg_len``.

Every packet nlmon sees reads ``PACKET_OUTGOING``, so the direction comes from the messages:
``NLM_F_REQUEST`` set means user → kernel.
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = ["read_pcap", "decode_packets", "PcapTruncatedWarning", "LINKTYPE_NETLINK",
           "FAMILIES", "MESSAGE_COLUMNS", "type_name", "flag_names"]

LINKTYPE_NETLINK = 253
ARPHRD_NETLINK = 824
_COOKED = 16

#: netlink families by number (``include/uapi/linux/netlink.h``); nlmon taps the first eight
#: that are listed in the module docstring, the rest are named for completeness.
FAMILIES = {0: "ROUTE", 1: "UNUSED", 2: "USERSOCK", 3: "FIREWALL", 4: "SOCK_DIAG", 5: "NFLOG",
            6: "XFRM", 7: "SELINUX", 8: "ISCSI", 9: "AUDIT", 10: "FIB_LOOKUP", 11: "CONNECTOR",
            12: "NETFILTER", 13: "IP6_FW", 14: "DNRTMSG", 15: "KOBJECT_UEVENT", 16: "GENERIC",
            18: "SCSITRANSPORT", 19: "ECRYPTFS", 20: "RDMA", 21: "CRYPTO", 22: "SMC"}

_CONTROL = {1: "NLMSG_NOOP", 2: "NLMSG_ERROR", 3: "NLMSG_DONE", 4: "NLMSG_OVERRUN"}
_RTM_KINDS = ["LINK", "ADDR", "ROUTE", "NEIGH", "RULE", "QDISC", "TCLASS", "TFILTER", "ACTION",
              "PREFIX", "MULTICAST", "ANYCAST", "NEIGHTBL", "NDUSEROPT", "ADDRLABEL", "DCB",
              "NETCONF", "MDB", "NSID", "STATS", "CACHEREPORT", "CHAIN", "NEXTHOP", "LINKPROP",
              "VLAN", "NEXTHOPBUCKET", "TUNNEL"]
_RTM_SET = {"LINK", "NEIGHTBL", "DCB", "STATS"}
#: rtnetlink message types (``include/uapi/linux/rtnetlink.h``): from RTM_NEWLINK = 16, four
#: per kind (NEW, DEL, GET, and SET for the few kinds that have one)
RTM_TYPES = {16 + 4 * i + j: f"RTM_{verb}{kind}" for i, kind in enumerate(_RTM_KINDS)
             for j, verb in enumerate(["NEW", "DEL", "GET", "SET"])
             if verb != "SET" or kind in _RTM_SET}
_SOCK_DIAG_TYPES = {20: "SOCK_DIAG_BY_FAMILY", 21: "SOCK_DESTROY"}
_GENL_TYPES = {16: "GENL_ID_CTRL"}

_COMMON_FLAGS = [(0x01, "REQUEST"), (0x02, "MULTI"), (0x04, "ACK"), (0x08, "ECHO"),
                 (0x10, "DUMP_INTR"), (0x20, "DUMP_FILTERED")]
_GET_FLAGS = [(0x300, "DUMP"), (0x100, "ROOT"), (0x200, "MATCH"), (0x400, "ATOMIC")]
_NEW_FLAGS = [(0x100, "REPLACE"), (0x200, "EXCL"), (0x400, "CREATE"), (0x800, "APPEND")]
_DEL_FLAGS = [(0x100, "NONREC"), (0x200, "BULK")]
_ACK_FLAGS = [(0x100, "CAPPED"), (0x200, "ACK_TLVS")]

#: The columns of a messages table, in order (see :func:`read_pcap`).
MESSAGE_COLUMNS = ["ts_s", "packet", "index", "family", "direction", "type", "flags", "seq",
                   "portid", "len", "error", "ifindex", "ifname", "packet_len"]


class PcapTruncatedWarning(UserWarning):
    """The capture ends inside a packet (the writer was killed): the complete packets are
    kept; ``attrs["truncated_bytes"]`` of the table says how many bytes the last one lacks."""


def type_name(family: int, msg_type: int) -> str:
    """``RTM_GETLINK``, ``NLMSG_DONE`` …; the number as text where the family's types are not
    known (e.g. generic netlink family ids, which are assigned at run time)."""
    if msg_type in _CONTROL:
        return _CONTROL[msg_type]
    table = {0: RTM_TYPES, 4: _SOCK_DIAG_TYPES, 16: _GENL_TYPES}.get(family, {})
    return table.get(msg_type, str(msg_type))


def flag_names(family: int, msg_type: int, flags: int) -> str:
    """``REQUEST|DUMP``, ``MULTI``, ``ACK|CAPPED`` …; bits without a name as ``0x…``; ``""``
    for none. The upper byte's meaning depends on the message: GET/NEW/DEL requests
    (rtnetlink: type % 4 = 2/0/1) and acknowledgements (``NLMSG_ERROR``)."""
    names = []
    rest = flags
    table = list(_COMMON_FLAGS)
    if msg_type == 2:
        table += _ACK_FLAGS
    elif flags & 0x01 and family == 0 and msg_type >= 16:
        table += {2: _GET_FLAGS, 0: _NEW_FLAGS, 1: _DEL_FLAGS}.get(msg_type % 4, [])
    elif flags & 0x01 and msg_type > 4:
        table += _GET_FLAGS        # other families follow the same GET convention for dumps
    for bit, name in table:
        if rest & bit == bit:
            names.append(name)
            rest &= ~bit
    if rest:
        names.append(hex(rest))
    return "|".join(names)


# ------------------------------------------------------------------------------------- pcap
_MAGICS = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
           b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a pcap file")
    try:
        data = p.read_bytes()
    except FileNotFoundError as err:
        raise InputError(f"{p}: no such file") from err
    except OSError as err:
        raise InputError(f"{p}: cannot read it: {err.strerror}") from err
    try:                     # a compressed capture (pcaps of dumps compress ~70x)
        if data[:2] == b"\x1f\x8b":
            import gzip

            return gzip.decompress(data)
        if data[:6] == b"\xfd7zXZ\x00":
            import lzma

            return lzma.decompress(data)
    except (OSError, EOFError, ValueError) as err:
        raise InputError(f"{p}: a damaged compressed file: {err}") from err
    return data


def _split_pcap(data: bytes, name: str) -> tuple[str, list[tuple[float, int, int, int]], int, int]:
    """(byte order, [(ts_s, offset, incl_len, orig_len)], bytes cut from a last packet,
    snaplen). Checks magic and link type."""
    if len(data) < 24:
        if data[:4] in _MAGICS:
            raise InputError(f"{name}: truncated pcap: the 24-byte file header has {len(data)} bytes")
        raise InputError(f"{name}: not a pcap file ({len(data)} bytes)")
    magic = data[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        raise InputError(f"{name}: a pcapng file; ftracekit reads classic pcap (what "
                         "`tcpdump -w` writes): convert it with `editcap -F pcap IN OUT`")
    if magic not in _MAGICS:
        raise InputError(f"{name}: not a pcap file (magic {magic.hex()})")
    order, unit = _MAGICS[magic]
    _major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(order + "HHiIII", data, 4)
    linktype = network & 0xFFFF
    if linktype != LINKTYPE_NETLINK:
        raise InputError(f"{name}: link type {linktype}, not netlink (253): capture on an nlmon "
                         "device (`ftracekit record --netlink`, or `tcpdump -i nlmon0 -w`)")
    rec = struct.Struct(order + "IIII")
    packets = []
    off, n = 24, len(data)
    cut = 0
    while off < n:
        if off + 16 > n:
            cut = off + 16 - n         # part of a record header: say what is missing of it
            break
        sec, frac, incl, orig = rec.unpack_from(data, off)
        if off + 16 + incl > n:
            cut = off + 16 + incl - n
            break
        packets.append((sec + frac * unit, off + 16, incl, orig))
        off += 16 + incl
    return order, packets, cut, snaplen


def decode_packets(packets: list[tuple[float, int, bytes]], order: str = "=") -> pd.DataFrame:
    """Messages table from ``(ts_s, family, data)`` triples (``data`` after the cooked header).
    ``order`` is the struct byte order of the messages (``<``, ``>`` or ``=`` native)."""
    hdr = struct.Struct(order + "IHHII")
    i32 = struct.Struct(order + "i")
    u32 = struct.Struct(order + "I")
    attr = struct.Struct(order + "HH")
    cols: dict[str, list[Any]] = {c: [] for c in MESSAGE_COLUMNS}
    for pkt, (ts, family, data) in enumerate(packets):
        off, n, index = 0, len(data), 0
        while off + 16 <= n:
            length, mtype, flags, seq, pid = hdr.unpack_from(data, off)
            if length < 16 or off + length > n:
                break                  # padding after the last message, or a cut-off one
            body = data[off + 16: off + length]
            error = ifindex = ifname = None
            if mtype in (2, 3) and len(body) >= 4:
                error = i32.unpack_from(body)[0]
            elif family == 0:
                ifindex, ifname = _route_ids(mtype, body, order, u32, attr)
            cols["ts_s"].append(ts)
            cols["packet"].append(pkt)
            cols["index"].append(index)
            cols["family"].append(FAMILIES.get(family, str(family)))
            cols["direction"].append("to_kernel" if flags & 1 else "to_user")
            cols["type"].append(type_name(family, mtype))
            cols["flags"].append(flag_names(family, mtype, flags))
            cols["seq"].append(seq)
            cols["portid"].append(pid)
            cols["len"].append(length)
            cols["error"].append(error)
            cols["ifindex"].append(ifindex)
            cols["ifname"].append(ifname)
            cols["packet_len"].append(n)
            index += 1
            off += (length + 3) & ~3
    return _frame(cols)


def _frame(cols: dict[str, list[Any]]) -> pd.DataFrame:
    df = pd.DataFrame({
        "ts_s": np.asarray(cols["ts_s"], dtype=np.float64),
        "packet": np.asarray(cols["packet"], dtype=np.int64),
        "index": np.asarray(cols["index"], dtype=np.int64),
        "family": pd.Categorical(cols["family"]),
        "direction": pd.Categorical(cols["direction"], categories=["to_kernel", "to_user"]),
        "type": pd.Categorical(cols["type"]),
        "flags": pd.Categorical(cols["flags"]),
        "seq": np.asarray(cols["seq"], dtype=np.int64),
        "portid": np.asarray(cols["portid"], dtype=np.int64),
        "len": np.asarray(cols["len"], dtype=np.int64),
        "error": pd.array(cols["error"], dtype="Int64"),
        "ifindex": pd.array(cols["ifindex"], dtype="Int64"),
        "ifname": pd.array(cols["ifname"], dtype="string"),
        "packet_len": np.asarray(cols["packet_len"], dtype=np.int64),
    })
    df.index.name = "message"
    return df


#: header sizes before the attributes, and the ``ifindex`` offset/format in it:
#: ifinfomsg (16, index i32 at 4), ifaddrmsg (8, u32 at 4), ndmsg (12, i32 at 4); rtmsg (12:
#: the interface is attribute RTA_OIF = 4)
_RTM_HEADERS = {"LINK": (16, 4, 3), "ADDR": (8, 4, 3), "NEIGH": (12, 4, None),
                "ROUTE": (12, None, None)}


def _route_ids(mtype: int, body: bytes, order: str, u32: struct.Struct,
               attr: struct.Struct) -> tuple[int | None, str | None]:
    """(interface index, interface name) of a link/address/neighbour/route message."""
    name = RTM_TYPES.get(mtype, "")
    kind = next((k for k in _RTM_HEADERS if name.endswith(k)), None)
    if kind is None:
        return None, None
    size, index_at, name_attr = _RTM_HEADERS[kind]
    if len(body) < size:
        return None, None
    ifindex = struct.unpack_from(order + "i", body, index_at)[0] if index_at is not None else None
    ifname = None
    off = size
    while off + 4 <= len(body):
        alen, atype = attr.unpack_from(body, off)
        if alen < 4 or off + alen > len(body):
            break
        atype &= 0x3FFF                # NLA_F_NESTED / NLA_F_NET_BYTEORDER
        if name_attr is not None and atype == name_attr:
            ifname = body[off + 4: off + alen].split(b"\0", 1)[0].decode("utf-8", "replace")
        elif kind == "ROUTE" and atype == 4 and alen >= 8:
            ifindex = u32.unpack_from(body, off + 4)[0]
        off += (alen + 3) & ~3
    if kind == "LINK" and mtype == 18 and ifindex == 0:
        ifindex = None                 # a GETLINK dump request names no interface
    return ifindex, ifname


def read_pcap(path: str | os.PathLike[str], *, clock_offset_s: float = 0.0) -> pd.DataFrame:
    """Read a netlink capture (pcap, link type 253) into one row per netlink message.

    Reads what ``tcpdump -i nlmon0 -w`` writes (µs or ns timestamps, either byte order) and
    what ``ftracekit record --netlink`` writes (``netlink.pcap``), also gzip/xz-compressed. ``clock_offset_s`` is
    subtracted from the packet times (``CLOCK_REALTIME``): pass the recording's
    realtime − monotonic offset to get the trace's ``mono`` clock.

    Columns (index ``message``, 0-based in file order):

    ========== ===================================================================================
    ts_s       packet time in seconds (realtime minus ``clock_offset_s``)
    packet     0-based packet number in the file (one packet = one netlink skb)
    index      position of the message in its packet (0-based)
    family     netlink family (``ROUTE``, ``GENERIC``, ``SOCK_DIAG`` …; number as text if unknown)
    direction  ``to_kernel`` (``NLM_F_REQUEST`` set) or ``to_user``
    type       ``RTM_GETLINK``, ``RTM_NEWLINK``, ``NLMSG_DONE``, ``NLMSG_ERROR`` …; the number as
               text where unknown
    flags      ``REQUEST|DUMP``, ``MULTI``, ``REQUEST|ACK|CREATE|EXCL`` … (``""`` for none)
    seq        ``nlmsg_seq``
    portid     ``nlmsg_pid``: the sender's port id in requests, the receiver's in replies
    len        ``nlmsg_len`` in bytes (header included)
    error      ``NLMSG_ERROR``'s error (0 = acknowledgement, −errno) and ``NLMSG_DONE``'s
               status; NA for other messages
    ifindex    interface index of link/address/neighbour/route (RTA_OIF) messages, else NA
    ifname     interface name (IFLA_IFNAME / IFA_LABEL) where the message carries one, else NA
    packet_len bytes of the packet's netlink data (what the skb held, padding included)
    ========== ===================================================================================

    ``attrs`` of the result: ``packets`` (count), ``snaplen``, ``truncated_bytes`` (bytes the
    last packet lacks when the file is cut off, else 0; a :class:`PcapTruncatedWarning` says so),
    ``snapped_packets`` (packets cut by the snap length), ``source``.

    Raises :class:`~ftracekit.errors.InputError` (one line) for a missing file, a file that is
    not a pcap, a pcapng, or another link type.
    """
    data = _read_bytes(path)
    name = os.fspath(path)
    order, recs, cut, snaplen = _split_pcap(data, name)
    packets = []
    bad_cooked = 0
    for ts, off, incl, _orig in recs:
        if incl < _COOKED:
            bad_cooked += 1
            continue
        family = struct.unpack_from(">H", data, off + 14)[0]
        packets.append((ts - clock_offset_s, family, data[off + _COOKED: off + incl]))
    if recs and bad_cooked == len(recs):
        raise InputError(f"{name}: no packet has the 16-byte netlink cooked header")
    df = decode_packets(packets, order)
    df.attrs.update({"packets": len(packets), "snaplen": snaplen, "truncated_bytes": cut,
                     "snapped_packets": sum(1 for r in recs if r[2] < r[3]),
                     "source": name})
    if cut:
        warnings.warn(truncation_note(name, len(packets), cut), PcapTruncatedWarning, stacklevel=2)
    return df


def truncation_note(name: str, kept: int, cut: int) -> str:
    """The one line that says a capture was cut off."""
    return (f"{name}: truncated pcap: the last packet lacks {cut} bytes; kept the {kept} "
            "complete packets before it")
