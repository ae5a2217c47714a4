"""Netlink capture while recording: an nlmon device, an ``AF_PACKET`` reader thread, a pcap.

The ONLY code that creates or removes nlmon devices. How the kernel behaves
(``drivers/net/nlmon.c``, ``net/netlink/af_netlink.c``, ``net/packet/af_packet.c``):

* ``nlmon`` registers itself as a netlink tap when its device is up; every netlink skb sent
  to or from a user socket of the families ROUTE, USERSOCK, SOCK_DIAG, NFLOG, XFRM,
  FIB_LOOKUP, NETFILTER and GENERIC *in the device's network namespace* is cloned to it
  (``netlink_deliver_tap``): requests just before the family's ``netlink_rcv`` runs, replies in
  ``__netlink_sendskb`` before they are queued. Kernel↔kernel traffic is not tapped.
* An ``AF_PACKET`` socket bound to the device receives each skb whole, data starting at the
  first ``nlmsghdr``; ``sll_protocol`` is the family. The tap is synchronous: when the traced
  command has returned, every packet it caused is already in the socket's queue, so stopping
  drains the queue without waiting.
* Timestamps (``SO_TIMESTAMPNS``) are ``CLOCK_REALTIME``; the recorder samples
  realtime − monotonic at start and stop so the packets can be put on ftrace's ``mono`` clock.
* Socket drops (receive buffer full) are counted by ``PACKET_STATISTICS``; reading it resets
  the counters, so they are summed.

The device is named ``ftknl<pid>`` (15 characters at most, as IFNAMSIZ demands). It is removed
on every exit path of a recording; after a SIGKILL the lock file names it and the next
recording or ``ftracekit doctor --clean`` removes it (:func:`remove_stale_devices`).

The pcap file (:class:`PcapWriter`) is what libpcap writes for an nlmon device: nanosecond
magic, host byte order, link type ``LINKTYPE_NETLINK`` (253), and before each skb the 16-byte
cooked header (ARPHRD 824 and the family, big-endian).
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import PermissionDeniedError, RecordError, TracerUnavailableError

__all__ = ["stale_devices", "default_functions", "GRAPH_DEFAULT", "FILTER_DEFAULT", "PcapWriter", "NlmonCapture", "nlmon_support", "check_nlmon", "remove_stale_devices",
           "clock_offset_s", "DEVICE_PREFIX", "PCAP_NAME"]

DEVICE_PREFIX = "ftknl"
PCAP_NAME = "netlink.pcap"
LINKTYPE_NETLINK = 253
ARPHRD_NETLINK = 824
_ETH_P_ALL = 0x0003
_SOL_PACKET = 263
_PACKET_STATISTICS = 6
_SNAPLEN = 262144
#: SO_TIMESTAMPNS = SCM_TIMESTAMPNS (asm-generic/socket.h; Python < 3.12 has no name for it):
#: a struct timespec (two longs) of CLOCK_REALTIME per packet
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_CAP_NET_ADMIN = 12


def _devices() -> set[str]:
    """Interface names of this network namespace (not /sys/class/net: that shows the netns
    sysfs was mounted in)."""
    try:
        return {name for _, name in socket.if_nameindex()}
    except OSError:
        return set()


# ------------------------------------------------------------------------------------ pcap
class PcapWriter:
    """Write a classic pcap of link type 253 (netlink), nanosecond timestamps, host byte order
    — what ``tcpdump -i nlmon0 -w`` writes — readable by tcpdump, Wireshark and
    :func:`ftracekit.net.netlink.read_pcap`."""

    _HEADER = struct.Struct("=IHHiIII")
    _RECORD = struct.Struct("=IIII")

    def __init__(self, fh: BinaryIO, snaplen: int = _SNAPLEN):
        self.fh = fh
        self.snaplen = snaplen
        self.packets = 0
        self.bytes = 0
        fh.write(self._HEADER.pack(0xA1B23C4D, 2, 4, 0, 0, snaplen, LINKTYPE_NETLINK))

    def write(self, ts_ns: int, family: int, data: bytes, orig_len: int | None = None) -> None:
        """One packet: realtime ``ts_ns``, netlink ``family``, the skb's bytes."""
        cooked = struct.pack(">HHH8sH", 4, ARPHRD_NETLINK, 0, b"", family)   # 4: OUTGOING
        body = cooked + data[: self.snaplen - len(cooked)]
        orig = len(cooked) + (orig_len if orig_len is not None else len(data))
        sec, nsec = divmod(int(ts_ns), 1_000_000_000)
        self.fh.write(self._RECORD.pack(sec, nsec, len(body), orig) + body)
        self.packets += 1
        self.bytes += len(data)


def clock_sample(tries: int = 8) -> tuple[float, float, float]:
    """``(monotonic, realtime − monotonic, width)`` now, in seconds: realtime read between two
    monotonic reads, its offset taken against their midpoint, so the error is at most half
    their distance (``width``). A thread preempted between the reads (milliseconds under a
    loaded emulator) would make that error milliseconds: the tightest of ``tries`` reads is
    kept."""
    best: tuple[int, int, int] | None = None
    for _ in range(max(1, tries)):
        m1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        r = time.clock_gettime_ns(time.CLOCK_REALTIME)
        m2 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        if best is None or m2 - m1 < best[2]:
            best = ((m1 + m2) // 2, r, m2 - m1)
        if best[2] < 2_000:
            break
    mono, r, width = best
    return mono / 1e9, (r - mono) / 1e9, width / 1e9


def clock_offset_s() -> float:
    """CLOCK_REALTIME − CLOCK_MONOTONIC now, in seconds (see :func:`clock_sample`)."""
    return clock_sample()[1]


#: The capture samples realtime − monotonic after reading packets, at most this often: a
#: guest's realtime clock can be slewed by milliseconds within a second, and the packets'
#: (realtime) stamps are put on the trace's monotonic clock with the samples around them.
SAMPLE_EVERY_S = 0.005


# ---------------------------------------------------------------------- what to graph
#: Graph roots of a netlink recording without FUNC: each family's request handler (a request
#: is tapped just before it runs; a dump's first round runs inside it) and ``netlink_recvmsg``
#: (later rounds run there, one per ``recvmsg``).
GRAPH_DEFAULT = ("rtnetlink_rcv", "genl_rcv", "sock_diag_rcv", "netlink_recvmsg")
#: What the graph keeps under those roots (``set_ftrace_filter``): the full graph of a dump of
#: 200 links is ~10^5 lines, these ~2 per link — the round (``netlink_dump``), the family's dump
#: callback, the per-object fill functions, the send and the copy to user space.
FILTER_DEFAULT = GRAPH_DEFAULT + (
    "netlink_rcv_skb", "rtnetlink_rcv_msg", "genl_rcv_msg", "__netlink_dump_start",
    "netlink_dump", "__netlink_sendskb", "skb_copy_datagram_iter", "rtnl_dumpit",
    "rtnl_dump_ifinfo", "rtnl_fill_ifinfo", "rtnl_dump_all", "inet_dump_ifaddr",
    "inet6_dump_addr", "inet_dump_fib", "inet6_dump_fib", "neigh_dump_info",
    "ctrl_dumpfamily", "inet_diag_dump", "unix_diag_dump")


def default_functions(available: list[str]) -> tuple[list[str], list[str]]:
    """(graph roots, filter) for a netlink recording, keeping the names this kernel has
    (``available``: ``available_filter_functions``; GCC clones such as ``.isra.0`` count)."""
    have: dict[str, list[str]] = {}
    for name in available:
        have.setdefault(name.split(".", 1)[0], []).append(name)
    graph = [n for n in GRAPH_DEFAULT if n in have]
    filt = [v for n in FILTER_DEFAULT for v in have.get(n, [])]
    return graph, list(dict.fromkeys(filt))


# ------------------------------------------------------------------------------- support
def _has_cap_net_admin() -> bool:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_NET_ADMIN & 1)
    except OSError:
        pass
    return os.geteuid() == 0


def _module_state() -> tuple[str, str]:
    """("loaded"|"builtin"|"module"|"missing", detail)."""
    if Path("/sys/module/nlmon").exists():
        return "loaded", "nlmon is loaded"
    release = os.uname().release
    base = Path("/lib/modules") / release
    for listing, state in (("modules.builtin", "builtin"), ("modules.dep", "module")):
        try:
            text = (base / listing).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if "/nlmon.ko" in text:
            return state, f"nlmon is {'built in' if state == 'builtin' else 'a module'} ({base})"
    return "missing", f"this kernel ({release}) has no nlmon (CONFIG_NLMON) in {base}"


def nlmon_support() -> dict[str, Any]:
    """What ``doctor`` reports: ``{"ok": bool, "module": state, "cap_net_admin": bool,
    "ip": path or None, "detail": one line}``. Looks only: changes nothing."""
    state, detail = _module_state()
    cap = _has_cap_net_admin()
    ip = shutil.which("ip")
    reasons = []
    if state == "missing":
        reasons.append(detail)
    if not cap:
        reasons.append("creating an nlmon device needs CAP_NET_ADMIN (run as root)")
    if ip is None:
        reasons.append("the `ip` command (iproute2) is needed to create the nlmon device")
    return {"ok": not reasons, "module": state, "cap_net_admin": cap, "ip": ip,
            "detail": "; ".join(reasons) if reasons else detail}


def check_nlmon() -> None:
    """Raise, before anything is touched, when a netlink capture cannot work here."""
    s = nlmon_support()
    if s["ok"]:
        return
    cls = PermissionDeniedError if not s["cap_net_admin"] else TracerUnavailableError
    raise cls(f"cannot capture netlink: {s['detail']}")


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=60)


def _remove_device(name: str) -> str | None:
    """Delete ``name``; None when done (or already gone), else why not."""
    if name not in _devices():
        return None
    r = _ip("link", "del", "dev", name)
    if r.returncode != 0 and name in _devices():
        return f"nlmon device {name}: {r.stderr.strip() or 'ip link del failed'}"
    return None


def device_name(pid: int | None = None) -> str:
    return f"{DEVICE_PREFIX}{os.getpid() if pid is None else pid}"


def stale_devices() -> list[str]:
    """nlmon devices of dead ftracekit recordings (``ftknl<pid>`` whose pid is gone)."""
    return sorted(n for n in _devices() if n.startswith(DEVICE_PREFIX)
                  and n[len(DEVICE_PREFIX):].isdigit()
                  and not Path(f"/proc/{n[len(DEVICE_PREFIX):]}").exists())


def remove_stale_devices(named: str | None = None) -> list[str]:
    """Remove nlmon devices left by dead ftracekit processes (``ftknl<pid>`` whose pid is
    gone), and ``named`` (from a dead recording's lock file). Returns what was done."""
    done = []
    candidates = set()
    if named:
        candidates.add(named)
    present = _devices()
    for name in present:
        tail = name[len(DEVICE_PREFIX):]
        if name.startswith(DEVICE_PREFIX) and tail.isdigit() and not Path(f"/proc/{tail}").exists():
            candidates.add(name)
    for name in sorted(candidates):
        if name not in present:
            continue
        failure = _remove_device(name)
        done.append(failure or f"removed nlmon device {name} of a dead ftracekit")
    return done


# ------------------------------------------------------------------------------- capture
class NlmonCapture:
    """Create the device, capture every tapped skb into ``path`` from a thread, remove it.

    ``start()`` raises :class:`RecordError` (after removing what it created) when the device
    cannot be made or bound; ``stop()`` drains the socket, closes the file and returns the
    statistics; ``close()`` removes the device (idempotent, returns a failure or None).
    """

    def __init__(self, path: str | os.PathLike[str], name: str | None = None):
        self.path = Path(path)
        self.name = name or device_name()
        self.error: BaseException | None = None
        self.drops = 0
        self.offset_start_s: float | None = None
        self.offset_end_s: float | None = None
        self.samples: list[tuple[float, float, float]] = []   # see clock_sample()
        self._sock: socket.socket | None = None
        self._fh: BinaryIO | None = None
        self._writer: PcapWriter | None = None
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1
        self._created = False

    @property
    def packets(self) -> int:
        return self._writer.packets if self._writer is not None else 0

    def start(self) -> "NlmonCapture":
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        if not Path("/sys/module/nlmon").exists():
            r = subprocess.run(["modprobe", "nlmon"], capture_output=True, text=True, timeout=60)
            if r.returncode != 0 and not Path("/sys/module/nlmon").exists():
                raise RecordError(f"cannot load the nlmon module: {r.stderr.strip()}")
        if self.name in _devices():             # ours from a previous recording of this pid
            _remove_device(self.name)
        r = _ip("link", "add", "name", self.name, "type", "nlmon")
        if r.returncode != 0:
            raise RecordError(f"cannot create the nlmon device {self.name}: {r.stderr.strip()}")
        self._created = True
        r = _ip("link", "set", "dev", self.name, "up")
        if r.returncode != 0:
            raise RecordError(f"cannot bring {self.name} up: {r.stderr.strip()}")
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
        self._sock = sock
        try:
            sock.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)    # SO_RCVBUFFORCE (root)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        sock.bind((self.name, _ETH_P_ALL))
        sock.setblocking(False)
        try:
            self._fh = open(self.path, "wb")
        except OSError as err:
            raise RecordError(f"cannot write the netlink capture to {self.path}: "
                              f"{err.strerror}") from err
        self._writer = PcapWriter(self._fh)
        self._fh.flush()
        self._wake_r, self._wake_w = os.pipe()
        self._sample(force=True)
        self.offset_start_s = self.samples[-1][1]
        self._thread = threading.Thread(target=self._loop, name="ftracekit-nlmon", daemon=True)
        self._thread.start()

    def _sample(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or not self.samples or now - self.samples[-1][0] >= SAMPLE_EVERY_S:
            mono, off, width = clock_sample()
            self.samples.append((round(mono, 9), round(off, 9), round(width, 9)))

    def _drain(self) -> None:
        assert self._sock is not None and self._writer is not None
        cmsg_size = socket.CMSG_SPACE(16)
        while True:
            try:
                data, anc, flags, addr = self._sock.recvmsg(_SNAPLEN, cmsg_size)
            except BlockingIOError:
                return
            ts_ns = None
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("=qq", value[:16])
                    ts_ns = sec * 1_000_000_000 + nsec
            if ts_ns is None:
                ts_ns = time.time_ns()
            family = addr[1] if isinstance(addr, tuple) and len(addr) > 1 else 0
            orig = len(data)
            if flags & socket.MSG_TRUNC:
                orig = _SNAPLEN + 1      # longer than the buffer; its real length is not known
            self._writer.write(ts_ns, family, data, orig)
            self._sample()

    def _loop(self) -> None:
        assert self._sock is not None
        try:
            while True:
                ready, _, _ = select.select([self._sock, self._wake_r], [], [])
                self._drain()
                if self._wake_r in ready:
                    return
        except BaseException as err:    # reported by stop(); the recording must not die silently
            self.error = err

    def _read_drops(self) -> None:
        if self._sock is None:
            return
        try:
            raw = self._sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 8)
            _packets, drops = struct.unpack("=II", raw)
            self.drops += drops
        except OSError:
            pass

    def stop(self) -> dict[str, Any]:
        """Drain what is queued, stop the thread, close the file; the capture's statistics:
        ``pcap`` (file name), ``device``, ``packets``, ``bytes``, ``drops`` (socket drops:
        packets the kernel tapped but could not queue), ``clock_offset_s`` ([start, end]:
        realtime − monotonic, s), ``clock_samples`` ([[monotonic s, realtime − monotonic s,
        width s], …]: at the start, after packets (at most every :data:`SAMPLE_EVERY_S`) and at
        the end; see :func:`clock_sample`)."""
        if self._thread is not None:
            os.write(self._wake_w, b"x")
            self._thread.join()
            self._thread = None
        if self.error is None and self._sock is not None and self._writer is not None:
            self._drain()
        self._read_drops()
        self._sample(force=True)
        self.offset_end_s = self.samples[-1][1]
        if self._fh is not None and not self._fh.closed:
            self._fh.close()
        if self.error is not None:
            raise RecordError(f"capturing netlink on {self.name} failed: {self.error}")
        return {"pcap": self.path.name, "device": self.name, "packets": self.packets,
                "bytes": self._writer.bytes if self._writer else 0, "drops": self.drops,
                "clock_offset_s": [self.offset_start_s, self.offset_end_s],
                "clock_samples": [list(x) for x in self.samples]}

    def close(self) -> str | None:
        """Stop if still running, close everything, remove the device. Returns a failure
        description or None."""
        if self._thread is not None:
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass
            self._thread.join()
            self._thread = None
        if self._fh is not None and not self._fh.closed:
            self._fh.close()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._wake_r = self._wake_w = -1
        failure = None
        if self._created:
            failure = _remove_device(self.name)
            self._created = failure is not None
        return failure


if __name__ == "__main__":  # pragma: no cover - manual check: capture for N seconds
    cap = NlmonCapture(sys.argv[1]).start()
    try:
        time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 5)
        print(cap.stop())
    finally:
        print(cap.close())
