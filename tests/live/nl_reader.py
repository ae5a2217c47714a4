"""A small netlink client for the live tests: dump the links (RTM_GETLINK) and read the dump
with a given receive buffer, sleeping between ``recv`` calls — a slow reader.

    python nl_reader.py [--sleep S] [--bufsize B]

Prints ``links=N rounds=R seq=S portid=P`` (R = number of ``recv`` calls that returned data).
Standard library only: it runs as a command under the recorder inside the VM.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import time

NETLINK_ROUTE = 0
RTM_GETLINK = 18
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300


def dump_links(sleep_s: float = 0.0, bufsize: int = 4096, seq: int = 4242,
               raw: bool = False) -> tuple[int, int, int, int]:
    """(links, rounds, seq, portid). ``raw``: do not walk the messages (a reader that asks for
    the next round at once); links is then -1 and the end is seen by the NLMSG_DONE header
    (20 bytes: len, type 3) ending the last skb."""
    done = struct.pack("=IH", 20, 3)
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        s.bind((0, 0))
        portid = s.getsockname()[0]
        ifinfo = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0)
        msg = struct.pack("=IHHII", 16 + len(ifinfo), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP,
                          seq, portid) + ifinfo
        s.send(msg)
        links = rounds = 0
        while True:
            data = s.recv(bufsize)
            rounds += 1
            if raw:
                if data[-20:-14] == done or data[-24:-18] == done:
                    return -1, rounds, seq, portid
                continue
            off = 0
            while off + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, off)
                if kind == 3:          # NLMSG_DONE
                    return links, rounds, seq, portid
                if kind == 2:
                    raise OSError("netlink error in the dump")
                links += 1
                off += (length + 3) & ~3
            if sleep_s:
                time.sleep(sleep_s)
    finally:
        s.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sleep", type=float, default=0.0)
    ap.add_argument("--bufsize", type=int, default=4096)
    ap.add_argument("--raw", action="store_true", help="do not parse the messages")
    a = ap.parse_args()
    links, rounds, seq, portid = dump_links(a.sleep, a.bufsize, raw=a.raw)
    print(f"links={links} rounds={rounds} seq={seq} portid={portid} pid={os.getpid()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
